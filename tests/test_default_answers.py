"""The shipped defaults keep their answers: on fixed inputs at `snr_db=inf` (and one network-mode call with the
channel off), answers, scores and transmission reports equal those recorded by `tests/record_default_answers.py`
(TokCom's before the platform refactor, in `tests/data/default_answers.json`; TaiChi's and UniToCom's when they were
installed, in `tests/data/default_answers_taichi.json` and `tests/data/default_answers_unitocom.json`)."""

import json
import math
from pathlib import Path

import pytest
from transformers import pipeline

import tokcom  # noqa: F401  registers the task
from record_default_answers import OUTPUT, TAICHI_OUTPUT, UNITOCOM_OUTPUT, run, run_taichi, run_unitocom


def _close(recorded, measured, path="") -> None:
    if isinstance(recorded, dict):
        assert set(recorded) == set(measured), path
        for key in recorded:
            _close(recorded[key], measured[key], f"{path}.{key}")
    elif isinstance(recorded, list):
        assert len(recorded) == len(measured), path
        for index, (a, b) in enumerate(zip(recorded, measured)):
            _close(a, b, f"{path}[{index}]")
    elif isinstance(recorded, float):
        assert math.isclose(recorded, measured, rel_tol=1e-5, abs_tol=1e-7), f"{path}: {recorded} != {measured}"
    else:
        assert recorded == measured, f"{path}: {recorded!r} != {measured!r}"


@pytest.mark.slow
def test_default_answers_unchanged():
    recorded = json.loads(Path(OUTPUT).read_text())
    measured = json.loads(json.dumps(run(pipeline("token-comm-vqa", device="cpu"))))
    _close(recorded, measured)


@pytest.mark.slow
def test_taichi_default_answers_unchanged():
    """`taichi-tiny`'s VQA answers (16 and 4 visual tokens, network mode), captions and sentiment labels, with their
    scores and transmission reports, as recorded when it was installed."""
    recorded = json.loads(Path(TAICHI_OUTPUT).read_text())
    _close(recorded, json.loads(json.dumps(run_taichi())))


@pytest.mark.slow
def test_unitocom_default_answers_unchanged():
    """`unitocom-tiny`'s VQA answers (all and 8 image tokens, network mode), transcripts of held-out speech and a
    digest of generated images (mean pixel), with scores and transmission reports, as recorded at install time."""
    recorded = json.loads(Path(UNITOCOM_OUTPUT).read_text())
    _close(recorded, json.loads(json.dumps(run_unitocom())))
