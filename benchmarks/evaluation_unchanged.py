"""Does the evaluation engine give the embedded default the results stored before it existed?

Evaluates the installed default at a few (channel, SNR) points with `tokcom evaluate`'s engine and compares each row
with the same row of `results/tokcom_avqa_default/evaluation.json` (written by the pre-engine code):

    python benchmarks/evaluation_unchanged.py --snr-db 20 -5 --channel-type awgn rayleigh \
        --output results/evaluation_unchanged.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

STORED = Path(__file__).resolve().parent.parent / "results" / "tokcom_avqa_default" / "evaluation.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snr-db", type=float, nargs="+", default=[20.0, -5.0])
    parser.add_argument("--channel-type", nargs="+", default=["awgn", "rayleigh"])
    parser.add_argument("--num-samples", type=int, default=2000, help="must equal the stored run's (2000)")
    parser.add_argument("--output", default="results/evaluation_unchanged.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tokcom.defaults import default_model_path
    from tokcom.training.evaluation import evaluate_checkpoint

    stored = json.loads(STORED.read_text())["evaluation"]
    report = evaluate_checkpoint(default_model_path(), args.snr_db, args.channel_type, num_samples=args.num_samples, progress=False)
    rows = []
    for row in report["results"]:
        reference = next(r for r in stored[row["channel_type"]]["results"] if r["snr_db"] == row["snr_db"])
        rows.append({
            "channel_type": row["channel_type"], "snr_db": row["snr_db"], "accuracy": row["accuracy"],
            "stored_accuracy": reference["accuracy"], "per_type_identical": row["per_type"] == reference["per_type"],
            "loss_relative_difference": abs(row["loss"] - reference["loss"]) / reference["loss"],
            "mean_score_relative_difference": abs(row["mean_score"] - reference["mean_score"]) / reference["mean_score"],
        })  # fmt: skip
    result = {
        "command": "python benchmarks/evaluation_unchanged.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "num_samples": args.num_samples,
        "accuracy_identical": all(r["accuracy"] == r["stored_accuracy"] and r["per_type_identical"] for r in rows),
        "rows": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
