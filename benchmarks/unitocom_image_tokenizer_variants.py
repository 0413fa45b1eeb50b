"""Which image tokenizer gives UniToCom readable reconstructions? A diagnostic for issue 16 (text-to-image attribute
accuracy 0.16, the tokenizer's own reconstructions 0.28, real images 0.72 with the 32-px reader).

Each variant is the embedded recipe `unitocom_tokenizer_tiny` with its `model` section overridden, trained by the
training engine (the `tokenizer` stage alone: eq. 13, no channel), then scored on held-out test scenes at its own
image size:
- PSNR [dB] of the reconstructions from the mean tokens (ideal link);
- the shapes-world attribute reader's phrase accuracy (`attribute_accuracy`) on the reconstructions, beside the
  same reader on the real images (its ceiling) and on real images with other scenes' captions (the floor);
- FID between real and reconstructed images in the reader's feature space.
One reader per image size is trained (`train_attribute_reader(image_size=...)`, its defaults) and cached, like the
tokenizers, under `--work-dir`.

    python benchmarks/unitocom_image_tokenizer_variants.py --variants 32_p8 64_p16 64_p16_h128 \
        [--steps 8000] [--work-dir ~/.cache/tokcom/unitocom_image_variants] [--output results/...json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from unitocom_common import cached_tokenizer, finish_report  # noqa: E402

# name -> overrides of the recipe's `model` section (`UniToComTokenizerConfig` fields)
VARIANTS = {
    "32_p8": {"image_size": 32, "patch_size": 8},  # the installed default's tokenizer
    "32_p8_h128": {"image_size": 32, "patch_size": 8, "hidden_size": 128, "intermediate_size": 256},
    "32_p8_xi1e-5": {"image_size": 32, "patch_size": 8, "rate_weight": 1e-5},
    "32_p8_csigma0.1": {"image_size": 32, "patch_size": 8, "c_sigma": 0.1},
    "32_p8_l1": {"image_size": 32, "patch_size": 8, "reconstruction_loss": "l1"},
    "32_p4": {"image_size": 32, "patch_size": 4},
    "32_p8_conv16": {"image_size": 32, "patch_size": 8, "decoder_conv_channels": 16},
    "64_p16": {"image_size": 64, "patch_size": 16},
    "64_p16_h128": {"image_size": 64, "patch_size": 16, "hidden_size": 128, "intermediate_size": 256},
    "64_p8": {"image_size": 64, "patch_size": 8},
    "64_p16_h128_l4": {"image_size": 64, "patch_size": 16, "hidden_size": 128, "intermediate_size": 256,
                       "num_encoder_layers": 4, "num_decoder_layers": 4},  # fmt: skip
}
TEST_SCENES = 500


def variant_recipe(name: str, steps: int) -> dict:
    from tokcom.training.recipe import load_recipe

    recipe = copy.deepcopy(load_recipe("unitocom_tokenizer_tiny"))
    recipe["name"] = f"unitocom_image_tokenizer_{name}"
    recipe["model"].update(VARIANTS[name])
    recipe["stages"] = {"tokenizer": {**recipe["stages"]["tokenizer"], "steps": steps}}
    return recipe


def trained(name: str, steps: int, work_dir: Path):
    """The tokenizer of variant `name` (trained now unless `work_dir` holds it) and its training seconds."""
    return cached_tokenizer(variant_recipe(name, steps), work_dir / f"{name}-{steps}")


def reader_for(image_size: int, work_dir: Path):
    from tokcom.training.shapes_reader import ShapesAttributeReader, train_attribute_reader

    folder = work_dir / f"reader_{image_size}"
    if not (folder / "model.safetensors").is_file():
        reader, report = train_attribute_reader(image_size=image_size, progress=False)
        reader.save_pretrained(folder)
        (folder / "training_report.json").write_text(json.dumps(report, indent=2))
    return ShapesAttributeReader.from_pretrained(folder)


def score(name: str, steps: int, work_dir: Path) -> dict:
    from tokcom.training.shapes_reader import attribute_accuracy, frechet_distance, reader_baselines, shapes_reader_data

    tokenizer, seconds = trained(name, steps, work_dir)
    size = tokenizer.config.image_size
    reader = reader_for(size, work_dir)
    data = shapes_reader_data(TEST_SCENES, "test", image_size=size)
    real = data["images"].float() / 255
    began = time.time()
    with torch.no_grad():
        restored = torch.cat([tokenizer.decode(tokenizer.encode(pixel_values=real[i : i + 100]).mean)
                              for i in range(0, len(real), 100)]).clamp(0, 1)  # fmt: skip
    mse = float((restored - real).pow(2).mean())
    base = reader_baselines(reader, real, data["captions"])
    result = {"variant": name, "model": VARIANTS[name], "steps": steps, "train_seconds": round(seconds),
              "parameters": sum(p.numel() for p in tokenizer.parameters()),
              "psnr_db": round(10 * torch.log10(torch.tensor(1.0 / mse)).item(), 2),
              "reconstruction": attribute_accuracy(reader, restored, data["captions"]),
              "real_own": base["real_own"], "real_shuffled": base["shuffled"],
              "fid_reconstruction": round(frechet_distance(reader, real, restored), 2),
              "fid_real_halves": round(base["fid_real_halves"], 2),
              "decode_seconds": round(time.time() - began, 1)}  # fmt: skip
    print(json.dumps(result), flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["32_p8", "64_p16"], choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=8000, help="tokenizer steps (the embedded recipe's: 8000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default=str(Path.home() / ".cache" / "tokcom" / "unitocom_image_variants"))
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    results = [score(name, args.steps, Path(args.work_dir)) for name in args.variants]
    return finish_report({"test_scenes": TEST_SCENES, "results": results}, "unitocom_image_tokenizer_variants.py",
                         argv, args.output, echo=False)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
