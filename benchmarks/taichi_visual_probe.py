"""Which scene attributes reach TaiChi's visual tokens? A diagnostic for issue 14 (VQA below target).

Two probes on the held-out (test) split of the recipe's shapes world:

- `tokens` (default): the 16 visual tokens Z_v the LLM receives, each decoded per attribute by its nearest word
  embedding (the geometry the word alignment trains), against its cell's scene words; accuracy on occupied cells.
- `--towers`: linear probes (as in `pretrain_vision`) on the frozen V_l (coarse 4x4) and V_h (fine 8x8) tokens,
  trained on 1500 training images, accuracy on occupied test cells.

    python benchmarks/taichi_visual_probe.py --model PATH [--towers [--window 3]] [--output results/taichi_visual_probe/NAME.json]

What it showed (`results/taichi_visual_probe/`): on the default built in session 11, the visual tokens carry size
0.95, colour 0.90 and material 0.93, and shape 0.355 (chance 0.33), which explains `query_shape` at chance. The towers
themselves do not encode shape either: a linear probe gets 0.31 (coarse) and 0.15 (fine) on shape. 3000
`pretrain_vision` steps instead of 600 give 0.39 / 0.33, and deeper towers (ConvNeXt depths [2, 3] widths [48, 96],
a 4-layer ViT) give 0.43 / 0.44 (0.40 / 0.45 from each cell's 3x3 neighbourhood, `--window 3`), while colour, size and material reach 0.86-0.90.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from unitocom_common import finish_report  # noqa: E402


def _load(path: str):
    from tokcom.modeling import TaiChiForConditionalGeneration
    from tokcom.modeling.processing_taichi import TaiChiProcessor

    return TaiChiForConditionalGeneration.from_pretrained(path).eval(), TaiChiProcessor.from_pretrained(path)


def _corpus(split: str, **data):
    from tokcom.training.recipe import load_recipe
    from tokcom.training.taichi_corpus import TaiChiCorpus

    recipe = load_recipe("taichi_tiny")
    return TaiChiCorpus.build({**recipe["data"], "seed": recipe["seed"], **data}, split)


def token_words(path: str, num_images: int = 500) -> dict:
    """Per attribute, the share of occupied cells whose visual token's nearest word is the cell's word."""
    from tokcom.training.taichi_corpus import ATTRIBUTE_VALUES, EMPTY_CELL, SCENE_WORD_ORDER

    model, processor = _load(path)
    corpus = _corpus("test")
    tokenizer, n = processor.tokenizer, min(num_images, len(corpus.images))
    with torch.no_grad():
        high, low = processor.image_tensors(torch.from_numpy(corpus.images[:n]))
        tokens = model.visual_tokens(high, low, model.config.max_visual_tokens)  # (n, 16, d)
        embeddings = model.get_input_embeddings().weight * model.config.text_embedding_multiplier
    ids = corpus.scene_word_ids(range(n), tokenizer)  # (n, 16, 4), SCENE_WORD_ORDER
    occupied = ids[..., 0] != tokenizer.convert_tokens_to_ids(EMPTY_CELL)
    out = {"probe": "tokens", "model": path, "images": n, "occupied_cells": int(occupied.sum())}
    for column, name in enumerate(SCENE_WORD_ORDER):
        candidates = torch.tensor(tokenizer.convert_tokens_to_ids(list(ATTRIBUTE_VALUES[name])))
        nearest = candidates[(tokens @ embeddings[candidates].T).argmax(-1)]
        out[name] = round(float((nearest == ids[..., column])[occupied].float().mean()), 3)
    return out


def _window(tokens: torch.Tensor, side: int) -> torch.Tensor:
    """`(n, cells, d)` grid tokens -> `(n, cells, d * side**2)`: each cell with its `side x side` neighbourhood
    (zero-padded at the border)."""
    n, cells, d = tokens.shape
    grid = int(round(cells**0.5))
    maps = tokens.reshape(n, grid, grid, d).permute(0, 3, 1, 2)
    return F.unfold(maps, side, padding=side // 2).transpose(1, 2)


def tower_probes(path: str, train_images: int = 1500, test_images: int = 500, steps: int = 400, window: int = 1) -> dict:
    """Linear probes per attribute on the frozen towers' coarse and fine tokens (each with its `window x window`
    neighbourhood when `window` > 1); accuracy on occupied test cells."""
    from tokcom.training.taichi_corpus import ATTRIBUTES

    model, processor = _load(path)

    def features(split, count):
        corpus = _corpus(split, train_scenes=max(train_images, 1))
        count = min(count, len(corpus.images))
        with torch.no_grad():
            high, low = processor.image_tensors(torch.from_numpy(corpus.images[:count]))
            coarse, fine = model.tokenize_image(high, low)
        return {"coarse": (coarse, corpus.cell_targets(corpus.coarse_side, range(count))),
                "fine": (fine, corpus.cell_targets(corpus.fine_side, range(count)))}  # fmt: skip

    train, test = features("train", train_images), features("test", test_images)
    out = {"probe": "towers", "model": path, "train_images": train_images, "test_images": test_images, "window": window}
    torch.manual_seed(0)
    for grid in ("coarse", "fine"):
        (x, y), (x_test, y_test) = train[grid], test[grid]
        mean, std = x.mean((0, 1)), x.std((0, 1)) + 1e-6
        x, x_test = (x - mean) / std, (x_test - mean) / std
        if window > 1:
            x, x_test = _window(x, window), _window(x_test, window)
        occupied = y_test[..., 0] > 0
        for column, name in enumerate(ATTRIBUTES):
            classes = int(max(y[..., column].max(), y_test[..., column].max())) + 1
            head = torch.nn.Linear(x.shape[-1], classes)
            optimizer = torch.optim.Adam(head.parameters(), 1e-2)
            for _ in range(steps):  # full batch
                loss = F.cross_entropy(head(x).reshape(-1, classes), y[..., column].reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                predicted = head(x_test).argmax(-1)
            out[f"{grid}_{name}"] = round(float((predicted == y_test[..., column])[occupied].float().mean()), 3)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a TaiChi checkpoint folder")
    parser.add_argument("--towers", action="store_true", help="probe the vision towers instead of Z_v")
    parser.add_argument("--window", type=int, default=1, help="--towers: probe each cell with its window x window "
                        "neighbourhood (odd)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model must be a TaiChi checkpoint folder with a config.json, got {args.model!r}")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.window < 1 or args.window % 2 == 0:
        parser.error(f"--window must be an odd integer >= 1, got {args.window}")
    torch.set_num_threads(args.threads)
    result = tower_probes(args.model, window=args.window) if args.towers else token_words(args.model)
    return finish_report(result, "taichi_visual_probe.py", argv, args.output)


if __name__ == "__main__":
    raise SystemExit(main())
