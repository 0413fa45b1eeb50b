"""Do UniToCom's image tokens carry the scene's attributes? A diagnostic for issue 16 (VQA near the question-only
baseline).

A per-cell MLP probe (4 x 4 grid, each cell: empty or the object's shape, colour, size, material) trained on the
image tokenizer's clean tokens (mu, `(32, 8)` flattened) of 4000 training scenes, tested on 500 held-out scenes;
the same probe on the pixels (at the tokenizer's `image_size`) beside it.

    python benchmarks/unitocom_token_probe.py [--tokenizer runs/unitocom_v2/image_tokenizer/model] [--steps 3000]
        [--output results/unitocom_vqa_mllm_variants/token_probe.json]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from unitocom_common import finish_report  # noqa: E402


def probe(name: str, train_x, test_x, train_cells, test_cells, steps: int) -> dict:
    """Train the MLP probe on `train_x` `(n, features)` -> `train_cells` `(n, 4, 4, 4)`; accuracy on occupied test
    cells per attribute, all four at once, and on empty cells."""
    from tokcom.training.taichi_corpus import ATTRIBUTES

    torch.manual_seed(0)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    train_y, test_y = train_cells.reshape(len(train_x), 16, 4), test_cells.reshape(len(test_x), 16, 4)
    classes = [int(max(train_y[..., a].max(), test_y[..., a].max())) + 1 for a in range(len(ATTRIBUTES))]
    net = nn.Sequential(nn.Linear(train_x.shape[1], 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                        nn.Linear(512, 16 * sum(classes)))  # fmt: skip
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
    began = time.time()
    for _ in range(steps):
        index = torch.randint(len(train_x), (128,))
        logits = net(train_x[index]).reshape(128, 16, sum(classes)).split(classes, -1)
        loss = sum(F.cross_entropy(out.reshape(-1, count), train_y[index][..., a].reshape(-1))
                   for a, (out, count) in enumerate(zip(logits, classes)))  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = net(test_x).reshape(len(test_x), 16, sum(classes)).split(classes, -1)
    occupied = test_y[..., 0] > 0
    right = torch.stack([out.argmax(-1) == test_y[..., a] for a, out in enumerate(logits)], -1)
    result = {"input": name, "steps": steps, "seconds": round(time.time() - began)}
    result.update({attribute: round(float(right[..., a][occupied].float().mean()), 3) for a, attribute in enumerate(ATTRIBUTES)})
    result["object_all_four"] = round(float(right.all(-1)[occupied].float().mean()), 3)
    result["empty_cells_right"] = round(float(right.all(-1)[~occupied].float().mean()), 3)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="runs/unitocom_v2/image_tokenizer/model")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if not (Path(args.tokenizer) / "config.json").is_file():
        parser.error(f"--tokenizer must be an image tokenizer folder with a config.json, got {args.tokenizer!r}")
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    from tokcom.modeling.tokenization_unitocom import UniToComTokenizerModel
    from tokcom.training.shapes_reader import shapes_reader_data

    tokenizer = UniToComTokenizerModel.from_pretrained(args.tokenizer).eval()
    size = tokenizer.config.image_size  # the scenes at the tokenizer's resolution
    train, test = shapes_reader_data(4000, "train", image_size=size), shapes_reader_data(500, "test", image_size=size)

    def tokens(images):
        with torch.no_grad():
            return torch.cat([tokenizer.encode(pixel_values=images[i : i + 256].float() / 255).mean
                              for i in range(0, len(images), 256)]).flatten(1)  # fmt: skip

    results = [probe("tokens", tokens(train["images"]), tokens(test["images"]), train["cells"], test["cells"], args.steps),
               probe("pixels", train["images"].float().flatten(1), test["images"].float().flatten(1), train["cells"],
                     test["cells"], args.steps)]  # fmt: skip
    report = {"tokenizer": args.tokenizer, "results": results}
    return finish_report(report, "unitocom_token_probe.py", argv, args.output)


if __name__ == "__main__":
    raise SystemExit(main())
