"""Which V_h learns the shapes world's shapes? TaiChi's `pretrain_vision` stage alone, for several tiny V_h towers.

Each variant builds `TaiChiConfig.tiny()` with another `vision_hr_config`, trains V_l + V_h with the stage's own
objective (`training.stages_taichi.VisionPretraining`: linear heads per grid cell) on the recipe's training images
(AdamW, warmup + cosine, batch 32, as the engine runs the stage), and scores the objective's heads on the held-out
test images: per attribute, accuracy on occupied cells (chance for shape 0.33).

    python benchmarks/taichi_tower_variants.py [--variants resnet convnext_p4 ...] [--steps 1200]
        [--attributes-on occupied|all_cells] [--output results/taichi_visual_probe/tower_variants.json]

Variants (`VARIANTS`): `convnext_p4` is the tiny V_h before session 12 (ConvNeXt, 4-px patchify stem, stages
[32, 64] x depth 1); `convnext_p2_d333` a 2-px stem and three stages [32, 48, 64] of depth 3; `resnet` the tiny
preset now (transformers' ResNet, basic blocks, [32, 64] x depth 1). Results: results/taichi_visual_probe/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from unitocom_common import finish_report  # noqa: E402

CONVNEXT = {"model_type": "convnext", "image_size": 64, "num_channels": 3}
VARIANTS = {
    "convnext_p4": {**CONVNEXT, "patch_size": 4, "num_stages": 2, "hidden_sizes": [32, 64], "depths": [1, 1]},
    "convnext_p2_d333": {**CONVNEXT, "patch_size": 2, "num_stages": 3, "hidden_sizes": [32, 48, 64], "depths": [3, 3, 3]},
    "resnet": None,  # TaiChiConfig.tiny()'s own V_h
}
ATTRIBUTE_NAMES = ("shape", "color", "size", "material")


def corpora():
    from tokcom.training.recipe import load_recipe
    from tokcom.training.taichi_corpus import TaiChiCorpus

    recipe = load_recipe("taichi_tiny")
    data = {**recipe["data"], "seed": recipe["seed"], "questions_per_scene": 1}
    return TaiChiCorpus.build(data, "train"), TaiChiCorpus.build(data, "test")


def run_variant(name: str, train, test, steps: int, attributes_on: str, learning_rate: float = 2e-3) -> dict:
    """Train the towers of variant `name` for `steps` and score the stage's heads on `test`."""
    from transformers import get_cosine_schedule_with_warmup

    from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
    from tokcom.modeling.processing_taichi import TaiChiProcessor
    from tokcom.training.stages_taichi import VisionPretraining
    from tokcom.training.tokenization import build_word_tokenizer

    torch.manual_seed(0)
    overrides = {} if VARIANTS[name] is None else {"vision_hr_config": dict(VARIANTS[name])}
    model = TaiChiForConditionalGeneration(TaiChiConfig.tiny(**overrides))
    processor = TaiChiProcessor(build_word_tokenizer(["a"]), model.config.hr_image_size, model.config.lr_image_size)
    objective = VisionPretraining(model, attributes_on=attributes_on).train()
    params = [p for n, p in model.named_parameters() if n.startswith(("vision_lr.", "vision_hr."))]
    params += list(objective.heads.parameters())
    optimizer = torch.optim.AdamW(params, learning_rate, weight_decay=0.01)
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    rng = np.random.default_rng(0)
    began = time.time()
    for _ in range(steps):
        picks = rng.choice(len(train.images), 32)
        high, low = processor.image_tensors(torch.from_numpy(train.images[picks]))
        loss = objective(high, low, train.cell_targets(train.coarse_side, picks), train.cell_targets(train.fine_side, picks))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.time() - began
    model.eval()
    out = {"variant": name, "vision_hr_config": VARIANTS[name] or "TaiChiConfig.tiny()", "steps": steps,
           "train_seconds": round(seconds, 1), "final_loss": round(loss.item(), 4),
           "vision_hr_parameters": sum(p.numel() for p in model.vision_hr.parameters())}  # fmt: skip
    with torch.no_grad():
        high, low = processor.image_tensors(torch.from_numpy(test.images))
        coarse, fine = model.tokenize_image(high, low)
        for grid, tokens, side in (("coarse", coarse, test.coarse_side), ("fine", fine, test.fine_side)):
            targets = test.cell_targets(side, range(len(test.images)))
            occupied = targets[..., 0] > 0
            for column, attribute in enumerate(ATTRIBUTE_NAMES):
                predicted = objective.heads[grid][column](tokens).argmax(-1)
                out[f"{grid}_{attribute}"] = round(float((predicted == targets[..., column])[occupied].float().mean()), 3)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--attributes-on", default="occupied", choices=("occupied", "all_cells"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    train, test = corpora()
    results = []
    for name in args.variants:
        results.append(run_variant(name, train, test, args.steps, args.attributes_on))
        print(json.dumps(results[-1]), flush=True)
    report = {"attributes_on": args.attributes_on, "test_images": len(test.images), "results": results}
    return finish_report(report, "taichi_tower_variants.py", argv, args.output, echo=False)


if __name__ == "__main__":
    raise SystemExit(main())
