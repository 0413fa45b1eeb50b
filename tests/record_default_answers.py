"""Record the embedded default's answers, scores and transmission reports on fixed inputs (the reference that
`tests/test_default_answers.py` compares against). Run once before a change that must not alter them:

    .venv/bin/python tests/record_default_answers.py   # -> tests/data/default_answers.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUTPUT = Path(__file__).parent / "data" / "default_answers.json"
NETWORK = {
    "bandwidth_hz": 3e6,
    "power_dbm": 23.0,
    "weight": 0.6,
    "devices": [{"name": "visual", "distance_km": 0.35}, {"name": "audio", "distance_km": 0.45}],
}


def fixed_clips(count: int = 24, seed: int = 1234) -> list[dict]:
    """`count` synthetic clips and questions (every question type appears), deterministic by `seed`."""
    from tokcom.training.data.synthetic_avqa import generate_avqa

    rows = generate_avqa(count // 4, seed=seed).with_format("numpy", dtype=None)
    return [
        {"video": row["video"], "audio": {"array": row["audio"], "sampling_rate": 16000}, "question": row["question"]}
        for row in rows
    ][:count]


def run(vqa) -> dict:
    clips = fixed_clips()
    at_inf = vqa(clips, snr_db=float("inf"), batch_size=8)
    short = vqa(clips, snr_db=float("inf"), num_visual_tokens=5, num_audio_tokens=3, batch_size=8)
    network = vqa(clips[:2], network=NETWORK, channel_type="none", batch_size=2)
    return {
        "inf": [{"answer": out["answer"], "score": out["score"]} for out in at_inf],
        "inf_short": [{"answer": out["answer"], "score": out["score"]} for out in short],
        "network_none": [out for out in network],
    }


if __name__ == "__main__":
    import tokcom  # noqa: F401
    from transformers import pipeline

    OUTPUT.write_text(json.dumps(run(pipeline("token-comm-vqa", device="cpu")), indent=1) + "\n")
    print(f"wrote {OUTPUT}")
