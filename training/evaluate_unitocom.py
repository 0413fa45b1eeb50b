"""Held-out evaluation of a UniToComModel checkpoint, one task at a time, on the evaluation engine.

| task            | pipeline task               | metrics                                                    | baselines beside |
|-----------------|-----------------------------|------------------------------------------------------------|------------------|
| `vqa`           | token-comm-vqa              | exact-match accuracy, per question family                  | question-only (family and question priors); the ideal link |
| `asr`           | token-comm-asr              | word error rate (`jiwer`)                                  | the ideal link; the most frequent training transcript |
| `text_to_image` | token-comm-text-to-image    | attribute accuracy (a shapes-world reader), FID (`torchmetrics`, the reader's features) | real images with their own / other scenes' captions, the image tokenizer's reconstructions, two halves of the real images (FID) |

    tokcom evaluate --model PATH --task asr --snr-db -10 0 20 --channel-type awgn rayleigh --output OUT.json

Held-out data: the test split of the checkpoint's recipe (`UniToComCorpus.build(..., split="test")`: other
scenes, and speech with other sentences and speakers). Text-to-image: the prompt is each test image's first
caption; the caption crosses the ideal text link, so its result does not depend on the SNR (the pipelines say
the same). FID here is *not* Inception FID: Inception weights cannot be downloaded on this machine, so the
features are those of a small attribute reader trained on the shapes world (`tokcom.training.shapes_reader`),
and the numbers are comparable only with each other.

>>> word_error_rate(["there is a red cube"], ["there is a red sphere"])["wer"]
0.2
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tokcom.modeling.modeling_unitocom import UniToComModel
from tokcom.modeling.processing_unitocom import UniToComProcessor
from tokcom.training.evaluation import Evaluator, check_checkpoint_arguments, checkpoint_recipe, register_metric

TASKS = ("vqa", "asr", "text_to_image")
PIPELINE_TASKS = {"vqa": "token-comm-vqa", "asr": "token-comm-asr", "text_to_image": "token-comm-text-to-image"}
READER_FOLDER = "shapes_reader"  # the attribute reader shipped beside a UniToCom checkpoint's weights


def word_error_rate(predictions: list[str], references: list[str], groups=None) -> dict:
    """`{"wer"}`: corpus word error rate of the transcripts (`jiwer`: word edits over reference words)."""
    import jiwer

    if len(predictions) != len(references) or not references:
        raise ValueError(f"Need as many predictions as references (> 0), got {len(predictions)} and {len(references)}.")
    return {"wer": float(jiwer.wer(list(references), [p if p.strip() else "<empty>" for p in predictions]))}


def text_to_image_metrics(predictions: list, references: list[dict], groups=None) -> dict:
    """`{"attribute_accuracy", "image_accuracy", "fid"}` of generated images `predictions` (uint8 `(3, S, S)` each)
    against `references` (`{"caption", "image", "reader"}`: the prompt, the real test image, the reader's folder)."""
    from tokcom.training.shapes_reader import attribute_accuracy, frechet_distance

    if len(predictions) != len(references) or not references:
        raise ValueError(f"Need as many predictions as references (> 0), got {len(predictions)} and {len(references)}.")
    reader = load_reader(references[0]["reader"])
    fake = torch.stack([torch.as_tensor(p) for p in predictions]).float() / 255.0
    real = torch.stack([torch.as_tensor(r["image"]) for r in references]).float() / 255.0
    scores = attribute_accuracy(reader, fake, [r["caption"] for r in references])
    return {"attribute_accuracy": scores["attribute_accuracy"], "image_accuracy": scores["image_accuracy"],
            "fid": float(frechet_distance(reader, real, fake))}  # fmt: skip


register_metric("wer", word_error_rate, "wer", "wer")
register_metric("text_to_image", text_to_image_metrics, "attribute_accuracy", "accuracy")

_READERS: dict = {}


def load_reader(folder):
    """The shapes-world attribute reader saved in `folder` (cached per folder)."""
    from tokcom.training.shapes_reader import ShapesAttributeReader

    key = str(Path(folder).resolve())
    if key not in _READERS:
        _READERS[key] = ShapesAttributeReader.from_pretrained(folder).eval()
    return _READERS[key]


def model_recipe(model_path) -> dict:
    """The recipe a checkpoint was trained with (its data seeds define the held-out split), else `unitocom_tiny`."""
    return checkpoint_recipe(model_path, "unitocom_tiny")


class UniToComEvaluator(Evaluator):
    """One UniToCom task on the held-out split of the checkpoint's recipe, answered by the model's own generation
    (`generate_text`, `generate_image`) with the uplink (`send`) at each channel condition. `reader`: the folder of
    the shapes-world attribute reader for `text_to_image` (default: the checkpoint's `shapes_reader/`)."""

    def __init__(self, model, processor, recipe, corpus, task, count, model_path, batch_size=64, reader=None,
                 num_inference_steps=None, num_tokens=None, split="test"):  # fmt: skip
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        self.model, self.processor, self.recipe, self.corpus = model, processor, recipe, corpus
        self.task, self.count, self.model_path, self.batch_size = task, count, model_path, batch_size
        self.num_inference_steps, self.split = num_inference_steps, split
        self.num_tokens = num_tokens  # tokens sent per image / audio window (the rest: 0, the prior mean); None: all
        self.metrics = {"vqa": ("accuracy",), "asr": ("wer",), "text_to_image": ("text_to_image",)}[task]
        self.groups = None
        if task == "vqa":
            rows = corpus.questions[:count]
            self.references, self.groups = [row["answer"] for row in rows], [row["family"] for row in rows]
        elif task == "asr":
            self.references = corpus.transcripts[:count]
        else:
            from tokcom.training.shapes_reader import CONFIG_FILE

            if reader is None or not Path(reader, CONFIG_FILE).is_file():
                raise FileNotFoundError(f"text_to_image needs the shapes-world attribute reader; none at {reader} "
                                        "(train one with `tokcom.training.shapes_reader.train_attribute_reader`).")  # fmt: skip
            self.reader = str(reader)
            self.references = [{"caption": corpus.captions[i][0], "image": corpus.images[i], "reader": self.reader}
                               for i in range(count)]  # fmt: skip

    @classmethod
    def from_checkpoint(cls, model_path, num_samples=None, split="test", task="vqa", batch_size=64, reader=None,
                        num_inference_steps=None, num_visual_tokens=None, num_audio_tokens=None):  # fmt: skip
        from tokcom.training.stages_unitocom import UniToComCorpus

        check_checkpoint_arguments(model_path, num_samples)
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        model = UniToComModel.from_pretrained(model_path).eval()
        processor = UniToComProcessor.from_pretrained(model_path, model_config=model.config)
        recipe = model_recipe(model_path)
        data = dict(recipe.get("data", {}))
        if task == "asr" and num_samples is not None:  # as many utterances as asked (some are too long to fit)
            data["asr_utterances"] = num_samples + num_samples // 2
        corpus = UniToComCorpus.build(data, model.config, int(recipe.get("seed", 0)), {task}, split)
        available = {"vqa": len(corpus.questions), "asr": len(corpus.transcripts), "text_to_image": len(corpus.images)}
        count = available[task] if num_samples is None else min(num_samples, available[task])
        reader = Path(model_path) / READER_FOLDER if reader is None else reader
        num_tokens = {"vqa": num_visual_tokens, "asr": num_audio_tokens}.get(task)
        if num_tokens is not None:
            maximum = model.tokenizer("image" if task == "vqa" else "audio").config.num_tokens
            if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or not 1 <= num_tokens <= maximum:
                name = "num_visual_tokens" if task == "vqa" else "num_audio_tokens"
                raise ValueError(f"`{name}` must be an integer in [1, {maximum}], got {num_tokens!r}.")
        return cls(model, processor, recipe, corpus, task, count, model_path, batch_size, reader, num_inference_steps,
                   num_tokens, split)  # fmt: skip

    # ------------------------------------------------------------------ one batch of each task

    def _vqa(self, rows, link, generator):
        from tokcom.training.stages_unitocom import pack

        questions = [row["question"] for row in rows]
        images = self.corpus.images[[row["image_index"] for row in rows]]  # uint8 (batch, 3, S, S)
        batch = self.processor("vqa", images=list(images.permute(0, 2, 3, 1).numpy()), text=questions)
        tokens = self.model.receive("image", batch["pixel_values"], num_tokens=self.num_tokens, generator=generator, **link)
        out = self.model.generate_text(batch["input_ids"], batch["attention_mask"], image_tokens=tokens,
                                       return_dict_in_generate=True)  # fmt: skip
        train = pack(self.processor.tokenizer, self.model.config.image_token_id, tokens.shape[1], questions,
                     [row["answer"] for row in rows])  # fmt: skip
        loss = self.model(**train, image_tokens=tokens).loss
        return self.processor.batch_decode(out.sequences), out.sequence_scores, loss

    def _asr(self, indices, link, generator):
        from tokcom.training.stages_unitocom import pack

        speech = torch.stack([self.corpus.speech[i] for i in indices])  # (batch, windows, frames, mel)
        batch_size = speech.shape[0]
        snr = torch.full((batch_size,), link["snr_db"])
        tokens = self.model.receive("audio", speech, snr, link["channel_type"], self.num_tokens, generator=generator)
        width = tokens.shape[1]
        batch = self.processor.pack([[self.processor.audio_token_id] * width] * batch_size)
        out = self.model.generate_text(**batch, audio_tokens=tokens, return_dict_in_generate=True)
        train = pack(self.processor.tokenizer, self.model.config.audio_token_id, width, [None] * batch_size,
                     [self.corpus.transcripts[i] for i in indices])  # fmt: skip
        loss = self.model(**train, audio_tokens=tokens).loss
        return self.processor.batch_decode(out.sequences), out.sequence_scores, loss

    def _text_to_image(self, indices, generator):
        batch = self.processor("text_to_image", text=[self.corpus.captions[i][0] for i in indices])
        images = self.model.generate_image(batch["input_ids"], batch["attention_mask"],
                                           num_inference_steps=self.num_inference_steps, generator=generator)  # fmt: skip
        return list((images.clamp(0, 1) * 255).round().to(torch.uint8))

    @torch.no_grad()
    def predict(self, snr_db: float, channel_type: str, seed: int, progress: bool) -> dict:
        generator = torch.Generator().manual_seed(seed)
        link = {"snr_db": float(snr_db), "channel_type": channel_type}
        predictions, scores, losses = [], [], []
        for start in tqdm(range(0, self.count, self.batch_size), disable=not progress,
                          desc=f"{self.task} {snr_db:g} dB {channel_type}"):  # fmt: skip
            stop = min(start + self.batch_size, self.count)
            if self.task == "text_to_image":  # the caption crosses the ideal text link: no SNR enters
                predictions += self._text_to_image(range(start, stop), generator)
                continue
            if self.task == "vqa":
                texts, score, loss = self._vqa(self.corpus.questions[start:stop], link, generator)
            else:
                texts, score, loss = self._asr(range(start, stop), link, generator)
            predictions += texts
            scores.append(score.numpy())
            losses.append(loss.item() * (stop - start))
        if self.task == "text_to_image":
            return {"predictions": predictions}
        return {"predictions": predictions, "loss": float(np.sum(losses) / self.count),
                "mean_score": float(np.concatenate(scores).mean())}  # fmt: skip

    def header(self) -> dict:
        return {"model": str(self.model_path), "split": self.split, "num_samples": self.count, "unitocom_task": self.task,
                "num_image_tokens": self.model.config.image_tokenizer_config.num_tokens,
                "num_audio_tokens_per_window": self.model.config.audio_tokenizer_config.num_tokens,
                "num_tokens_sent": self.num_tokens or "all",
                "text_link": "ideal"}  # fmt: skip

    def baselines(self) -> dict:
        """Reference points: the ideal link (the model without channel noise) and references that use no model."""
        from tokcom.training.stages_unitocom import UniToComCorpus

        out = {}
        if self.task != "text_to_image":
            ideal = self.predict(float("inf"), "none", seed=0, progress=False)["predictions"]
            metric = "accuracy" if self.task == "vqa" else "wer"
            from tokcom.training.evaluation import METRICS

            out[f"ideal_link_{metric}"] = METRICS[self.metrics[0]][0](ideal, self.references, self.groups)[metric]
        seed = int(self.recipe.get("seed", 0))
        if self.task == "vqa":
            from tokcom.training.data.shapes_questions import question_only_accuracy

            train = UniToComCorpus.build(self.recipe.get("data", {}), self.model.config, seed, {"vqa"}, "train")
            priors = question_only_accuracy(train.questions, self.corpus.questions[: self.count])
            out.update(question_only_baseline=priors["question_prior"], family_prior_baseline=priors["family_prior"])
        elif self.task == "asr":  # the most frequent training transcript, said to every utterance
            train = UniToComCorpus.build(self.recipe.get("data", {}), self.model.config, seed, {"asr"}, "train")
            guess = Counter(train.transcripts).most_common(1)[0][0]
            out["constant_transcript_wer"] = word_error_rate([guess] * self.count, self.references)["wer"]
        else:
            out.update(self.image_baselines())
        return out

    @torch.no_grad()
    def image_baselines(self) -> dict:
        """What the metrics give without the MLLM: real test images with their own captions (the reader's ceiling)
        and with other scenes' captions (its floor), FID between two halves of the real images (the noise floor at
        this sample size), and the image tokenizer's reconstructions (F_v^{-1}(F_v(x)), ideal link: the
        de-tokenizer's ceiling for generated images)."""
        from tokcom.training.shapes_reader import reader_baselines

        real = self.corpus.images[: self.count]
        captions = [r["caption"] for r in self.references]
        out = reader_baselines(load_reader(self.reader), real.float() / 255.0, captions, seed=0)
        reconstructed = []
        for start in range(0, self.count, self.batch_size):
            x = real[start : start + self.batch_size].float() / 255.0
            y = self.model.image_tokenizer.decode(self.model.send("image", x, channel_type="none"))
            reconstructed += list((y.clamp(0, 1) * 255).round().to(torch.uint8))
        scores = text_to_image_metrics(reconstructed, self.references)
        out["tokenizer_reconstruction"] = scores
        return {"image_baselines": out}


def fit_performance_models(model_path, num_samples: int = 300, snr_db: float = 20.0, budgets=(1, 2, 4, 8, 16, 32)) -> dict:
    """phi_m(s) = (alpha/s)^beta + gamma (eq. 15 of the TokCom letter) of UniToCom's image and audio links, for the
    pipelines' `network=` mode: the held-out answer loss (validation split, `snr_db` AWGN) of VQA at each image
    token budget and of ASR at each audio budget per window, fitted with the allocator's `fit_performance_model`.

    Returns `{"snr_db", "measurements": {link: [{"tokens", "loss"}]}, "performance_model": {link: phi}}`; the caller
    writes `performance_model` into the config."""
    from tokcom.pipelines.allocation import fit_performance_model

    measurements, phi = {}, {}
    for link, task in (("image", "vqa"), ("audio", "asr")):
        evaluator = UniToComEvaluator.from_checkpoint(model_path, num_samples=num_samples, split="validation", task=task)
        maximum = evaluator.model.tokenizer(link).config.num_tokens
        rows = []
        for budget in sorted({int(b) for b in budgets if 1 <= int(b) <= maximum}):
            evaluator.num_tokens = budget
            rows.append({"tokens": budget, "loss": evaluator.predict(snr_db, "awgn", seed=0, progress=False)["loss"]})
        measurements[link] = rows
        phi[link] = fit_performance_model([r["tokens"] for r in rows], [r["loss"] for r in rows])
    return {"snr_db": snr_db, "measurements": measurements, "performance_model": phi}


__all__ = ["PIPELINE_TASKS", "fit_performance_models", "READER_FOLDER", "TASKS", "UniToComEvaluator", "text_to_image_metrics", "word_error_rate"]
