"""Does the family-independent training engine train TokCom exactly as the loop it replaced?

Trains one recipe (every stage) twice, with the same seeds: once with this checkout's engine
(`tokcom.training.engine.train`), once with an older checkout's `tokcom.training.train_tokcom.train`, run by another
interpreter whose `tokcom` is that checkout (`--old-python`, `--old-pythonpath`). Loads both final checkpoints with
this checkout's `TokComForAVQA` (older checkpoints load through its legacy key mapping) and compares every tensor.
The two trainings run one after the other on a shared machine: their wall times are recorded, not compared.

    python benchmarks/engine_equivalence.py --old-python /tmp/oldvenv/bin/python --old-pythonpath /tmp/oldpkg \
        --output results/engine_equivalence.json

The older checkout (cff9a6a, the last commit before the engine) as an importable `tokcom`, sharing this venv's
libraries:

    git worktree add /tmp/old_tokcom cff9a6a
    mkdir -p /tmp/oldpkg && cp -r /tmp/old_tokcom/tokcom /tmp/oldpkg/tokcom
    for d in modeling pipelines training spaces; do ln -s /tmp/old_tokcom/$d /tmp/oldpkg/tokcom/$d; done
    python3 -m venv /tmp/oldvenv && echo "$PWD/.venv/lib/python3.11/site-packages" > \
        "$(/tmp/oldvenv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/main.pth"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = {
    "seed": 5,
    "num_threads": 2,
    "data": {"train_scenes": 200, "validation_scenes": 8, "test_scenes": 48, "questions_per_scene": 4, "caption_style": "modal"},
    "model": {"receiver_position_embeddings": True, "receiver_token_period": {"visual": 12, "audio": 24}},
    "channel": {"snr_db_range": [-5.0, 25.0], "channel_types": ["awgn", "rayleigh"]},
    "stages": {
        "pretrain_vision": {"steps": 20, "batch_size": 8, "learning_rate": 0.002},
        "pretrain_audio": {"steps": 20, "batch_size": 8, "learning_rate": 0.002},
        "pretrain_text": {"steps": 30, "batch_size": 8, "learning_rate": 0.001},
        "align": {"steps": 30, "batch_size": 8, "learning_rate": 0.002, "random_token_lengths": True},
        "task": {"steps": 40, "batch_size": 8, "learning_rate": 0.001, "random_token_lengths": True,
                 "full_length_fraction": 0.5, "transceiver_learning_rate": 0.0001, "checkpoint_every": 15},
    },
}
OLD_TRAIN = "import json, sys; from tokcom.training.train_tokcom import train; train(json.loads(sys.argv[1]), sys.argv[2])"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-python", required=True, help="interpreter whose `tokcom` is the older checkout")
    parser.add_argument("--old-pythonpath", default="", help="PYTHONPATH for it")
    parser.add_argument("--output", default="results/engine_equivalence.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from tokcom.modeling import TokComForAVQA
    from tokcom.training.engine import parameter_digest, train

    work = Path(tempfile.mkdtemp(prefix="engine-equivalence-"))
    began = time.time()
    new_final = train(RECIPE, work / "engine")
    new_seconds = time.time() - began
    env = {**os.environ, "PYTHONPATH": args.old_pythonpath}
    began = time.time()
    subprocess.run([args.old_python, "-c", OLD_TRAIN, json.dumps(RECIPE), str(work / "old")], env=env, check=True, cwd=work)
    old_seconds = time.time() - began
    new, old = TokComForAVQA.from_pretrained(new_final), TokComForAVQA.from_pretrained(work / "old" / "model")
    new_state, old_state = new.state_dict(), old.state_dict()
    differing = sorted(name for name in new_state if not torch.equal(new_state[name], old_state[name]))
    largest = max(((new_state[n] - old_state[n]).abs().max().item() for n in differing), default=0.0)
    report = {
        "command": "python benchmarks/engine_equivalence.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "recipe": RECIPE,
        "tensors": len(new_state),
        "differing_tensors": len(differing),
        "largest_abs_difference": largest,
        "identical": not differing and parameter_digest(new) == parameter_digest(old),
        "engine_seconds": new_seconds,
        "old_loop_seconds": old_seconds,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "recipe"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
