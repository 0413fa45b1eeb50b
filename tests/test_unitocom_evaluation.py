"""UniToCom on the evaluation engine: held-out VQA, ASR and text-to-image sweeps with their baselines, the
`tokcom evaluate` command, the default's build (evaluation, card, install layout) on a micro-trained model."""

from __future__ import annotations

import json

import pytest
import torch

from tokcom.training.evaluation import sweep

MICRO_RECIPE = {
    "name": "unitocom_eval_test", "family": "unitocom", "seed": 0, "num_threads": 1,
    "data": {"train_scenes": 12, "validation_scenes": 4, "test_scenes": 6, "questions_per_scene": 2,
             "asr_utterances": 6, "asr_windows": 6},
    "model": {"image_tokenizer_config": {"modality": "image", "num_tokens": 8},
              "audio_tokenizer_config": {"modality": "audio", "num_tokens": 4}, "num_inference_steps": 2},
    "channel": {"snr_db_range": [0.0, 20.0], "channel_types": ["awgn", "rayleigh"]},
    "stages": {"mllm": {"steps": 4, "batch_size": 4, "learning_rate": 0.002}},
}  # fmt: skip


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """A UniToCom checkpoint after a few steps of the `mllm` stage, in the build's layout (`<work>/mllm/model`)."""
    import os

    from tokcom.training.engine import train

    work = tmp_path_factory.mktemp("unitocom_work")
    previous = os.environ.get("TOKCOM_CACHE")
    os.environ["TOKCOM_CACHE"] = str(work / "cache")  # espeak-ng speech for the ASR task
    try:
        torch.manual_seed(0)
        final = train(MICRO_RECIPE, work / "mllm")
    finally:
        if previous is None:
            os.environ.pop("TOKCOM_CACHE")
        else:
            os.environ["TOKCOM_CACHE"] = previous
    return work, final


def test_word_error_rate_is_jiwers_and_refuses_mismatched_lists():
    from tokcom.training.evaluate_unitocom import word_error_rate

    assert word_error_rate(["there is a red cube", ""], ["there is a red sphere", "a b"])["wer"] == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="as many predictions"):
        word_error_rate(["a"], ["a", "b"])


def test_vqa_sweep_reports_accuracy_per_family_with_the_question_only_and_ideal_link_baselines(micro_run):
    from tokcom.training.evaluate_unitocom import UniToComEvaluator

    _, final = micro_run
    evaluator = UniToComEvaluator.from_checkpoint(final, num_samples=8, task="vqa", batch_size=3)
    assert evaluator.count == 8 and len(set(evaluator.groups)) > 1
    report = sweep(evaluator, (0.0, 20.0), ("awgn", "rayleigh"), progress=False)
    assert [(r["channel_type"], r["snr_db"]) for r in report["results"]] == [
        ("awgn", 0.0), ("awgn", 20.0), ("rayleigh", 0.0), ("rayleigh", 20.0)]  # fmt: skip
    for row in report["results"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0 and row["per_type"]
    assert 0.0 <= report["ideal_link_accuracy"] <= 1.0
    assert 0.0 <= report["question_only_baseline"]["overall"] <= 1.0
    assert report["unitocom_task"] == "vqa" and report["num_samples"] == 8


def test_asr_sweep_reports_wer_on_held_out_speakers_and_sentences(micro_run):
    from tokcom.training.evaluate_unitocom import UniToComEvaluator
    from tokcom.training.stages_unitocom import UniToComCorpus

    _, final = micro_run
    evaluator = UniToComEvaluator.from_checkpoint(final, num_samples=3, task="asr")
    train = UniToComCorpus.build(MICRO_RECIPE["data"], evaluator.model.config, 0, {"asr"}, "train")
    assert evaluator.corpus.transcripts != train.transcripts[: len(evaluator.corpus.transcripts)]  # other sentences
    report = sweep(evaluator, (10.0,), ("awgn",), progress=False)
    assert report["metrics"] == ["wer"] and report["results"][0]["wer"] >= 0.0
    assert report["constant_transcript_wer"] > 0.0 and "ideal_link_wer" in report


def test_evaluator_refuses_unknown_tasks_and_a_missing_reader(micro_run, tmp_path):
    from tokcom.training.evaluate_unitocom import UniToComEvaluator

    _, final = micro_run
    with pytest.raises(ValueError, match="`task` must be one of"):
        UniToComEvaluator.from_checkpoint(final, num_samples=2, task="caption")
    with pytest.raises(FileNotFoundError, match="attribute reader"):
        UniToComEvaluator.from_checkpoint(final, num_samples=2, task="text_to_image", reader=tmp_path / "none")


def test_tokcom_evaluate_runs_a_unitocom_task(micro_run, tmp_path):
    from tokcom.cli import main

    _, final = micro_run
    out = tmp_path / "asr.json"
    code = main(["evaluate", "--model", str(final), "--task", "asr", "--snr-db", "20", "--num-samples", "2",
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    assert json.loads(out.read_text())["results"][0]["wer"] >= 0.0


def test_build_default_evaluates_every_task_fits_phi_and_writes_the_card(micro_run, tmp_path):
    """`build_default_unitocom --skip-training` on a micro-trained model: the three sweeps, the fitted phi of the
    image and audio links in the config (then the pipelines' network mode runs the allocator), the results file,
    the reader beside the weights, and a card whose tables come from the summary."""
    import numpy as np
    from huggingface_hub import ModelCard
    from transformers import pipeline

    from tokcom.modeling import UniToComModel
    from tokcom.training.build_default_unitocom import EVAL_SNRS_DB, build_default
    from tokcom.training.shapes_reader import ShapesAttributeReader

    work, final = micro_run
    torch.manual_seed(0)
    ShapesAttributeReader().save_pretrained(work / "shapes_reader")
    summary = build_default("unitocom_tiny", work, tmp_path / "results", install=False, skip_training=True, num_samples=8)
    assert set(summary["tasks"]) == {"vqa", "asr", "text_to_image"}
    assert len(summary["tasks"]["vqa"]["results"]) == 2 * len(EVAL_SNRS_DB)  # AWGN, Rayleigh
    assert summary["tasks"]["asr"]["results"][0]["wer"] >= 0.0
    image_row = summary["tasks"]["text_to_image"]["results"][0]
    assert 0.0 <= image_row["attribute_accuracy"] <= 1.0 and np.isfinite(image_row["fid"])
    assert "tokenizer_reconstruction" in summary["tasks"]["text_to_image"]["image_baselines"]
    saved = json.loads((tmp_path / "results" / "evaluation.json").read_text())
    assert saved["tasks"]["asr"]["results"][0]["wer"] == summary["tasks"]["asr"]["results"][0]["wer"]
    assert (final / "shapes_reader" / "model.safetensors").is_file()
    fit = summary["performance_model_fit"]
    assert [row["tokens"] for row in fit["measurements"]["image"]] == [1, 2, 4, 8]
    assert UniToComModel.from_pretrained(final).config.performance_model == fit["performance_model"]
    card = ModelCard.load(final / "README.md")
    assert "build_default_unitocom" in card.text and "tiny embedded default" in card.text
    assert "not Inception FID" in card.text and "constant transcript wer" in card.text
    assert {r.task_type for r in card.data.eval_results} == {"visual-question-answering", "automatic-speech-recognition",
                                                             "text-to-image"}  # fmt: skip
    vqa = pipeline("token-comm-vqa", model=str(final))
    network = {"bandwidth_hz": 1e6, "power_dbm": 20.0, "weight": 0.5, "devices": [{"name": "image", "distance_km": 0.3}]}
    out = vqa({"image": np.zeros((32, 32, 3), np.uint8), "question": "is there a cube"}, network=network, seed=0,
              max_new_tokens=2)  # fmt: skip
    assert out["transmission"]["method"] == "proposed" and 1 <= out["transmission"]["image"]["tokens"] <= 8


def test_tokcom_evaluate_prints_text_to_image_without_a_loss_and_refuses_a_unitocom_phi_fit(micro_run, tmp_path, capsys):
    """Text-to-image reports have no loss (the CLI's table leaves the column out); `--fit-performance-model` fits
    TokCom's phi only and names UniToCom's build command instead (exit 2, nothing written)."""
    from tokcom.cli import main
    from tokcom.training.evaluate_unitocom import READER_FOLDER
    from tokcom.training.shapes_reader import ShapesAttributeReader

    _, final = micro_run
    if not (final / READER_FOLDER).is_dir():
        ShapesAttributeReader().save_pretrained(final / READER_FOLDER)
    assert main(["evaluate", "--model", str(final), "--task", "text_to_image", "--snr-db", "20", "--num-samples", "4"]) == 0
    header = [line for line in capsys.readouterr().out.splitlines() if "SNR [dB]" in line][0]
    assert "attribute_accuracy" in header and "loss" not in header
    code = main(["evaluate", "--model", str(final), "--fit-performance-model", "--fit-output", str(tmp_path / "fit")])
    assert code == 2 and "build_default_unitocom" in capsys.readouterr().err
    assert not (tmp_path / "fit").exists()
