"""Record the embedded defaults' answers, scores and transmission reports on fixed inputs (the references that
`tests/test_default_answers.py` compares against). Run once before a change that must not alter them:

    .venv/bin/python tests/record_default_answers.py            # -> tests/data/default_answers.json (TokCom)
    .venv/bin/python tests/record_default_answers.py taichi     # -> tests/data/default_answers_taichi.json
    .venv/bin/python tests/record_default_answers.py unitocom   # -> tests/data/default_answers_unitocom.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUTPUT = Path(__file__).parent / "data" / "default_answers.json"
TAICHI_OUTPUT = Path(__file__).parent / "data" / "default_answers_taichi.json"
UNITOCOM_OUTPUT = Path(__file__).parent / "data" / "default_answers_unitocom.json"
UNITOCOM_NETWORK = {"bandwidth_hz": 1e6, "power_dbm": 20.0, "weight": 0.5, "devices": [{"name": "image", "distance_km": 0.3}]}
TAICHI_NETWORK = {"bandwidth_hz": 1e6, "power_dbm": 20.0, "weight": 0.5, "devices": [{"name": "visual", "distance_km": 0.3}]}
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


def taichi_inputs():
    """Held-out shapes-world images, questions and sentences of the TaiChi default's recipe (sizes cut for speed)."""
    from tokcom import defaults
    from tokcom.training.evaluate_taichi import model_recipe
    from tokcom.training.taichi_corpus import TaiChiCorpus

    recipe = model_recipe(defaults.CHECKPOINTS_DIR / "taichi-tiny")
    data = {**recipe["data"], "train_scenes": 4, "test_scenes": 6, "sentiment_sentences": 64, "seed": recipe["seed"]}
    return TaiChiCorpus.build(data, "test")


def run_taichi() -> dict:
    """The TaiChi default through its three pipelines at `snr_db=inf` (links simulated, no noise)."""
    from transformers import pipeline

    from tokcom import defaults

    folder = str(defaults.CHECKPOINTS_DIR / "taichi-tiny")
    test = taichi_inputs()
    questions = [{"image": test.images[q["image_index"]], "question": q["question"]} for q in test.questions[:12]]
    vqa = pipeline("token-comm-vqa", model=folder, device="cpu")
    caption = pipeline("token-comm-image-to-text", model=folder, device="cpu")
    classify = pipeline("token-comm-text-classification", model=folder, device="cpu")
    inf = float("inf")
    return {
        "vqa_inf": vqa(questions, snr_db=inf, batch_size=6),
        "vqa_4_tokens": vqa(questions, snr_db=inf, num_visual_tokens=4, batch_size=6),
        "vqa_network_none": vqa(questions[:2], network=TAICHI_NETWORK, channel_type="none", batch_size=2),
        "captions": caption(list(test.images[:4]), snr_db=inf, batch_size=4),
        "sentiment": classify(test.sentences[:8], snr_db=inf, batch_size=8),
    }


def run_unitocom() -> dict:
    """The UniToCom default through its three pipelines at `snr_db=inf` (links simulated, no noise): VQA with all
    and with 8 image tokens and in network mode, transcripts of held-out speech, and a digest of generated images
    (their mean pixel values: the images themselves are too large to keep)."""
    import numpy as np
    from transformers import pipeline

    from tokcom import defaults
    from tokcom.training.evaluate_unitocom import model_recipe
    from tokcom.training.stages_unitocom import UniToComCorpus

    folder = defaults.CHECKPOINTS_DIR / "unitocom-tiny"
    recipe = model_recipe(folder)
    vqa = pipeline("token-comm-vqa", model=str(folder), device="cpu")
    asr = pipeline("token-comm-asr", model=str(folder), device="cpu")
    draw = pipeline("token-comm-text-to-image", model=str(folder), device="cpu")
    data = {**recipe["data"], "train_scenes": 4, "test_scenes": 6, "asr_utterances": 8}
    test = UniToComCorpus.build(data, vqa.model.config, recipe["seed"], {"vqa", "asr"}, "test")
    images = [image.permute(1, 2, 0).numpy() for image in test.images]
    questions = [{"image": images[q["image_index"]], "question": q["question"]} for q in test.questions[:12]]
    import soundfile

    from tokcom.training.data.spoken import SAMPLING_RATE, SpeechCache, speakers

    voices = speakers(4, 2024)  # held-out sentences said by fixed espeak-ng voices
    waves = [soundfile.read(SpeechCache(None).flac(text, voices[i]), dtype="float32")[0]
             for i, text in enumerate(test.transcripts[:4])]  # fmt: skip
    inf = float("inf")
    drawn = draw([test.captions[i][0] for i in range(3)], seed=0, batch_size=3)
    return {
        "vqa_inf": vqa(questions, snr_db=inf, batch_size=6),
        "vqa_8_tokens": vqa(questions, snr_db=inf, num_image_tokens=8, batch_size=6),
        "vqa_network_none": vqa(questions[:2], network=UNITOCOM_NETWORK, channel_type="none", batch_size=2),
        "asr": asr([{"array": w, "sampling_rate": SAMPLING_RATE} for w in waves], snr_db=inf, batch_size=4),
        "images": [{"mean_pixel": float(np.asarray(out["image"], dtype=np.float64).mean()),
                    "transmission": out["transmission"]} for out in drawn],  # fmt: skip
    }


if __name__ == "__main__":
    import sys

    import tokcom  # noqa: F401
    from transformers import pipeline

    if sys.argv[1:] == ["unitocom"]:
        UNITOCOM_OUTPUT.write_text(json.dumps(run_unitocom(), indent=1) + "\n")
        print(f"wrote {UNITOCOM_OUTPUT}")
    elif sys.argv[1:] == ["taichi"]:
        TAICHI_OUTPUT.write_text(json.dumps(run_taichi(), indent=1) + "\n")
        print(f"wrote {TAICHI_OUTPUT}")
    else:
        OUTPUT.write_text(json.dumps(run(pipeline("token-comm-vqa", device="cpu")), indent=1) + "\n")
        print(f"wrote {OUTPUT}")
