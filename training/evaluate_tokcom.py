"""Held-out accuracy of a TokComForAVQA checkpoint, overall and per MUSIC-AVQA question type, per SNR.

    tokcom evaluate --model PATH --snr-db 0 10 20 --num-samples 2000 --output results.json
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tokcom.modeling import TokComForAVQA
from tokcom.modeling.processing_tokcom import TokComProcessor
from tokcom.training.avqa_tensors import AVQATensors
from tokcom.training.engine import RECIPE_FILE  # re-exported
from tokcom.training.evaluation import Evaluator, check_checkpoint_arguments, check_snr_list, checkpoint_recipe, exact_match, sweep
from tokcom.training.synthetic_corpus import build_synthetic_corpus



def type_name(type_json: str) -> str:
    """'["Audio-Visual", "Counting"]' -> 'Audio-Visual/Counting'."""
    return "/".join(json.loads(type_json))


def model_recipe(model_path: str | Path) -> dict:
    """The recipe a checkpoint was trained with (its data seeds define the held-out split), else `tokcom_avqa_tiny`."""
    return checkpoint_recipe(model_path, "tokcom_avqa_tiny")


@torch.no_grad()
def predict(
    model: TokComForAVQA,
    processor: TokComProcessor,
    corpus: AVQATensors,
    questions: torch.Tensor,
    snr_db: float,
    channel_type: str | None = None,
    num_visual_tokens: int | None = None,
    num_audio_tokens: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> tuple[list[str], np.ndarray, float]:
    """Answers, their probabilities and the mean answer cross-entropy for `questions` (indices into `corpus`)."""
    model.eval()
    answers, scores, losses = [], [], []
    generator = torch.Generator().manual_seed(seed)
    for start in tqdm(range(0, len(questions), batch_size), disable=not progress, desc=f"snr {snr_db:g} dB"):
        batch = corpus.question_batch(processor, questions[start : start + batch_size])
        labels = batch.pop("labels")
        common = dict(
            snr_db=float(snr_db), channel_type=channel_type, generator=generator,
            num_visual_tokens=num_visual_tokens, num_audio_tokens=num_audio_tokens,
        )  # fmt: skip
        out = model.answer(**batch, **common)
        answers += processor.batch_decode(out.sequences)
        scores.append(out.scores.numpy())
        losses.append(model(**batch, labels=labels, **common).loss.item() * len(labels))
    return answers, np.concatenate(scores), float(np.sum(losses) / len(questions))


def accuracy_report(predictions: list[str], truths: list[str], types: list[str]) -> dict:
    """{"accuracy", "per_type": {type: {"accuracy", "count"}}}, exact match of the answer word."""
    return exact_match(predictions, truths, [type_name(kind) for kind in types])


def question_only_baseline(
    train_questions: list[str], train_answers: list[str], test_questions: list[str], test_answers: list[str], test_types: list[str]
) -> dict:
    """Best a model that never sees the media can do: the majority training answer for the same question text."""
    by_question = defaultdict(Counter)
    for question, answer in zip(train_questions, train_answers):
        by_question[question][answer] += 1
    overall = Counter(train_answers).most_common(1)[0][0]
    predictions = [by_question[q].most_common(1)[0][0] if q in by_question else overall for q in test_questions]
    return accuracy_report(predictions, test_answers, test_types)


class TokComAVQAEvaluator(Evaluator):
    """TokCom AVQA's held-out task for the evaluation engine: the synthetic split the checkpoint's recipe defines,
    answered with `model.answer` at each channel condition; exact-match accuracy per MUSIC-AVQA question type."""

    task = "token-comm-vqa"
    metrics = ("accuracy",)

    def __init__(self, model, processor, recipe, corpus, count, model_path, split, num_visual_tokens, num_audio_tokens):
        self.model, self.processor, self.recipe, self.corpus = model, processor, recipe, corpus
        self.count, self.model_path, self.split = count, model_path, split
        self.num_visual_tokens, self.num_audio_tokens = num_visual_tokens, num_audio_tokens
        self.questions = torch.arange(count)
        self.references = corpus.answers[:count]
        self.groups = [type_name(kind) for kind in corpus.types[:count]]

    @classmethod
    def from_checkpoint(cls, model_path, num_samples=None, split="test", num_visual_tokens=None, num_audio_tokens=None):
        check_checkpoint_arguments(model_path, num_samples)
        model = TokComForAVQA.from_pretrained(model_path).eval()
        processor = TokComProcessor.from_pretrained(model_path)
        recipe = model_recipe(model_path)
        corpus, _ = build_synthetic_corpus(recipe, split=split, processor=processor)
        count = corpus.num_questions if num_samples is None else min(num_samples, corpus.num_questions)
        return cls(model, processor, recipe, corpus, count, model_path, split, num_visual_tokens, num_audio_tokens)

    def predict(self, snr_db: float, channel_type: str, seed: int, progress: bool) -> dict:
        predictions, scores, loss = predict(
            self.model, self.processor, self.corpus, self.questions, snr_db, channel_type,
            self.num_visual_tokens, self.num_audio_tokens, seed=seed, progress=progress,
        )  # fmt: skip
        return {"predictions": predictions, "loss": loss, "mean_score": float(scores.mean())}

    def header(self) -> dict:
        config = self.model.config
        return {
            "model": str(self.model_path),
            "split": self.split,
            "num_samples": self.count,
            "num_visual_tokens": self.num_visual_tokens or config.max_tokens("visual"),
            "num_audio_tokens": self.num_audio_tokens or config.max_tokens("audio"),
        }

    def baselines(self) -> dict:
        from tokcom.training.data.synthetic_avqa import generate_split

        data, processor, count = self.recipe.get("data", {}), self.processor, self.count
        counts = [int(data.get(f"{n}_scenes", d)) for n, d in zip(("train", "validation", "test"), (12000, 500, 1000))]
        _, train_rows = generate_split("train", *counts, seed=int(self.recipe.get("seed", 0)), questions_only=True)
        test_texts = processor.tokenizer.batch_decode(self.corpus.question_ids[:count], skip_special_tokens=True)
        train_texts = [processor.tokenizer.decode(processor.tokenizer(r["question"])["input_ids"]) for r in train_rows]
        baseline = question_only_baseline(
            train_texts, [r["anser"] for r in train_rows], test_texts, self.references, self.corpus.types[:count]
        )
        return {"question_only_baseline": baseline}


def evaluate(
    model_path: str | Path,
    snr_db=(0.0, 10.0, 20.0),
    num_samples: int | None = None,
    channel_type="awgn",
    num_visual_tokens: int | None = None,
    num_audio_tokens: int | None = None,
    split: str = "test",
    seed: int = 0,
    progress: bool = True,
    with_baseline: bool = True,
) -> dict:
    """Accuracy per SNR (and per channel type, when `channel_type` is a list) on the held-out synthetic split the
    checkpoint's recipe defines, through the evaluation engine (`tokcom.training.evaluation.sweep`)."""
    check_snr_list(snr_db)
    evaluator = TokComAVQAEvaluator.from_checkpoint(model_path, num_samples, split, num_visual_tokens, num_audio_tokens)
    return sweep(evaluator, snr_db, channel_type, seed=seed, progress=progress, with_baselines=with_baseline)


@torch.no_grad()
def text_ceiling(model_path: str | Path, num_samples: int | None = None, split: str = "test", batch_size: int = 256) -> dict:
    """Accuracy of the checkpoint's LLM when the scene's *caption* stands where the received media tokens stand
    (the `pretrain_text` task): an upper bound for what the media path can deliver to this LLM.

    Returns `accuracy_report(...)` plus `num_samples`; an answer counts when every answer token is the argmax
    under teacher forcing (the same as greedy decoding getting the whole answer right).
    """
    from tokcom.training.objectives import TextPretraining

    check_checkpoint_arguments(model_path, num_samples)
    model = TokComForAVQA.from_pretrained(model_path).eval()
    processor = TokComProcessor.from_pretrained(model_path)
    corpus, _ = build_synthetic_corpus(model_recipe(model_path), split=split, processor=processor)
    count = corpus.num_questions if num_samples is None else min(num_samples, corpus.num_questions)
    reader = TextPretraining(model)
    # per-modality captions stand at the maximum token lengths, as the media do in `evaluate`
    lengths = {m: model.received_length(m) for m in model.config.prompt_order if m != "text"}
    correct = []
    for start in range(0, count, batch_size):
        batch = corpus.text_stage_batch(processor, torch.arange(start, min(start + batch_size, count)), lengths)
        logits = reader.answer_logits(**batch)
        labels = batch["labels"]
        correct += ((logits.argmax(-1) == labels) | (labels < 0)).all(dim=1).tolist()
    truths = corpus.answers[:count]
    report = accuracy_report([t if ok else None for t, ok in zip(truths, correct)], truths, corpus.types[:count])
    return {"split": split, "num_samples": count, **report}


__all__ = ["RECIPE_FILE", "TokComAVQAEvaluator", "accuracy_report", "evaluate", "fit_performance_models", "model_recipe", "predict", "question_only_baseline", "text_ceiling", "type_name"]


def fit_performance_models(
    model_path: str | Path,
    token_lengths: dict | None = None,
    snr_db: float = 20.0,
    num_samples: int = 1000,
    split: str = "validation",
    write_config: bool = True,
    seed: int = 0,
    output_dir: str | Path | None = None,
) -> dict:
    """Measure the validation loss against each modality's token length (the other at its maximum) and fit
    phi_m(s) = (alpha/s)^beta + gamma (eq. 15) per modality; optionally write the fits into the checkpoint's
    `config.json` (`performance_model`) so the allocator and pipeline use them.

    With `output_dir`, the checkpoint is copied there with the fits in its config instead (the source is left
    as it is). The embedded default inside the installed package is never written: `ValueError`.

    Returns `{"snr_db", "num_samples", "measurements": {m: [{"tokens", "loss"}]}, "performance_model": {m: phi}}`.
    """
    from tokcom.pipelines.allocation import fit_performance_model

    if write_config and output_dir is None:
        _refuse_installed_checkpoint(model_path)  # before any work
    model = TokComForAVQA.from_pretrained(model_path).eval()
    processor = TokComProcessor.from_pretrained(model_path)
    corpus, _ = build_synthetic_corpus(model_recipe(model_path), split=split, processor=processor)
    questions = torch.arange(min(num_samples, corpus.num_questions))
    maxima = {"visual": model.config.max_visual_tokens, "audio": model.config.max_audio_tokens}
    if token_lengths is None:
        token_lengths = {m: sorted({max(1, round(top * f)) for f in (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)}) for m, top in maxima.items()}
    measurements, fits = {}, {}
    for modality, lengths in token_lengths.items():
        rows = []
        for length in lengths:
            lengths_kw = {"num_visual_tokens": None, "num_audio_tokens": None, f"num_{modality}_tokens": int(length)}
            _, _, loss = predict(model, processor, corpus, questions, snr_db, seed=seed, **lengths_kw)
            rows.append({"tokens": int(length), "loss": loss})
        measurements[modality] = rows
        fits[modality] = fit_performance_model([r["tokens"] for r in rows], [r["loss"] for r in rows])
    if output_dir is not None:  # a copy of the checkpoint with the fitted phi, written whole or not at all
        from tokcom.files import staged_directory

        with staged_directory(output_dir, argument="--fit-output") as staging:
            for path in Path(model_path).iterdir():
                if path.is_file():
                    shutil.copy2(path, staging / path.name)
            model.config.performance_model = fits
            model.config.save_pretrained(staging)
    elif write_config:
        model.config.performance_model = fits
        model.config.save_pretrained(model_path)
    return {"snr_db": snr_db, "num_samples": len(questions), "split": split, "measurements": measurements, "performance_model": fits}


def _refuse_installed_checkpoint(model_path) -> None:
    """`ValueError` when `model_path` lies inside the installed package's checkpoints (never write there)."""
    from tokcom.defaults import CHECKPOINTS_DIR

    target = Path(model_path).resolve()
    if target == CHECKPOINTS_DIR.resolve() or CHECKPOINTS_DIR.resolve() in target.parents:
        raise ValueError(
            f"Refusing to write into the installed package ({target}); give an output folder for the fitted "
            "checkpoint (`--fit-output DIR`, or `output_dir=`)."
        )
