"""Where "Which instrument sounds first?" (Audio Temporal) is lost: a diagnostic for issue 3.

Two measurements on checkpoints that `python -m tokcom.training.build_default` leaves in `runs/default`:
  1. encoder: a linear probe trained on the *frozen* audio encoder's pooled tokens (s_a = max) predicts each
     instrument's timing class (silent / throughout / beginning / end); accuracy on train and test scenes;
  2. per checkpoint (default: the stage-1 snapshot and the final model): on held-out Audio Temporal questions at
     20 dB AWGN, how often each received audio token is nearest (cosine) to the word it should carry, for the
     timing and loudness words of the per-sensor audio description.

    python benchmarks/audio_timing_probe.py [--runs runs/default] [--output results/audio_timing_probe.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tokcom.modeling import TokComForAVQA
from tokcom.modeling.modeling_tokcom import sliding_window_pool
from tokcom.modeling.processing_tokcom import TokComProcessor
from tokcom.training.evaluate_tokcom import model_recipe
from tokcom.training.objectives import NUM_INTERVALS, AudioPretraining
from tokcom.training.data.synthetic_avqa import INSTRUMENTS
from tokcom.training.synthetic_corpus import build_synthetic_corpus

ROOT = Path(__file__).resolve().parent.parent
AUDIO_TEMPORAL = '["Audio", "Temporal"]'


def encoder_probe(model_path: Path, train_scenes: int = 2000, test_scenes: int = 400, steps: int = 600) -> dict:
    """Timing accuracy of a linear head on the frozen audio encoder's pooled tokens."""
    model = TokComForAVQA.from_pretrained(model_path).eval()
    processor = TokComProcessor.from_pretrained(model_path)
    num_tokens, num_instruments = model.config.max_audio_tokens, len(INSTRUMENTS)

    def features(split: str, count: int):
        corpus, _ = build_synthetic_corpus(model_recipe(model_path), split=split, processor=processor, num_scenes=count)
        with torch.no_grad():
            pooled = [
                sliding_window_pool(model.audio_encoder(input_values=corpus.input_values[start : start + 100]).last_hidden_state[:, 2:], num_tokens, model.config.pooling)
                for start in range(0, corpus.num_scenes, 100)
            ]  # fmt: skip
        layout = corpus.scene_targets
        timing, _ = AudioPretraining.targets(layout["instruments"], layout["intervals"], layout["gain_levels"], num_instruments)
        return torch.cat(pooled), timing

    train_x, train_y = features("train", train_scenes)
    test_x, test_y = features("test", test_scenes)
    torch.manual_seed(0)
    head = torch.nn.Linear(train_x.shape[-1], num_instruments * NUM_INTERVALS)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)

    def logits(x):
        return head(x).view(x.shape[0], num_tokens, num_instruments, NUM_INTERVALS)

    for _ in range(steps):
        loss = F.cross_entropy(logits(train_x).flatten(0, 2), train_y.unsqueeze(1).expand(-1, num_tokens, -1).flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    report = {"tokens": num_tokens, "train_scenes": train_scenes, "test_scenes": test_scenes}
    with torch.no_grad():
        for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            right = (logits(x).argmax(-1) == y.unsqueeze(1)).float()
            partial = (y >= 2).unsqueeze(1).expand_as(right)  # beginning / end: what "first / last" needs
            report[name] = {"timing_accuracy": right.mean().item(), "beginning_or_end_accuracy": right[partial].mean().item()}
    return report


def received_word_accuracy(model_path: Path, scenes: int = 400, snr_db: float = 20.0) -> dict:
    """Nearest-word accuracy of the received audio tokens on held-out Audio Temporal questions."""
    model = TokComForAVQA.from_pretrained(model_path).eval()
    processor = TokComProcessor.from_pretrained(model_path)
    corpus, _ = build_synthetic_corpus(model_recipe(model_path), split="test", processor=processor, num_scenes=scenes)
    questions = torch.tensor([i for i, kind in enumerate(corpus.types) if kind == AUDIO_TEMPORAL])
    batch = corpus.question_batch(processor, questions)
    period = model.received_length("audio")
    with torch.no_grad():
        links = model.transmit_and_receive(
            pixel_values_videos=batch["pixel_values_videos"], input_values=batch["input_values"], snr_db=snr_db,
            generator=torch.Generator().manual_seed(0), channel_type="awgn",
        )  # fmt: skip
        directions = F.normalize(model.get_input_embeddings().weight, dim=-1)
        nearest = (F.normalize(links["audio"], dim=-1) @ directions.T).argmax(-1)
    target = corpus.modal_captions(corpus.scene_index[questions], {"audio": period})["audio"]
    right = nearest == target
    # the audio description is `instrument loudness timing .` per instrument: offsets 1 and 2 of every 4 words
    return {
        "questions": len(questions),
        "snr_db": snr_db,
        "loudness_word_accuracy": right[:, 1::4].float().mean().item(),
        "timing_word_accuracy": right[:, 2::4].float().mean().item(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs/default", help="a build_default work folder (its stages/ snapshots)")
    parser.add_argument("--output", default=str(ROOT / "results" / "audio_timing_probe.json"))
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    checkpoints = {"after stage 1 (align)": runs / "stages" / "align", "final (after stage 2)": runs / "model"}
    missing = [str(path) for path in checkpoints.values() if not (path / "config.json").exists()]
    if missing:
        raise SystemExit(f"--runs {runs}: no checkpoint in {missing}; run `python -m tokcom.training.build_default` first.")
    began = time.time()
    result = {
        "command": f"python benchmarks/audio_timing_probe.py --runs {runs}",
        "encoder_probe": encoder_probe(runs / "stages" / "align"),
        "received_audio_words": {name: received_word_accuracy(path) for name, path in checkpoints.items()},
    }
    result["seconds"] = time.time() - began
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
