"""Held-out evaluation of a TaiChiForConditionalGeneration checkpoint, one task at a time, on the evaluation engine.

| task      | pipeline task                    | metrics                                   | baselines beside |
|-----------|----------------------------------|-------------------------------------------|------------------|
| vqa       | token-comm-vqa                   | exact-match accuracy, per question family | question-only (family and question priors) |
| caption   | token-comm-image-to-text         | BLEU-4 (torchmetrics), attribute recall   | the references' own attribute recall (leave one out) |
| sentiment | token-comm-text-classification   | accuracy                                  | bag-of-words logistic regression |

    tokcom evaluate --model PATH --task caption --snr-db -10 0 20 --channel-type awgn rayleigh --output OUT.json

Attribute recall: the share of scene objects that the caption mentions with correct attributes: a caption's noun
phrases ("a small yellow metallic sphere") are read as (stated attributes, shape); an object counts when some
phrase names its shape and every attribute the phrase states is the object's.

>>> objects = [{"size": "small", "color": "yellow", "material": "metal", "shape": "sphere"},
...            {"size": "large", "color": "red", "material": "rubber", "shape": "cube"}]
>>> attribute_recall("A small shiny sphere and a blue cube.", objects)
0.5
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tokcom.modeling import TaiChiForConditionalGeneration
from tokcom.modeling.configuration_taichi import TASKS
from tokcom.modeling.decoding import answer_labels
from tokcom.modeling.processing_taichi import IMAGE_TASKS, TaiChiProcessor
from tokcom.training.data.shapes_render import COLORS, SHAPES, SIZES
from tokcom.training.evaluation import Evaluator, check_checkpoint_arguments, checkpoint_recipe, register_metric
from tokcom.training.taichi_corpus import SENTIMENT_ANSWERS, TaiChiCorpus

PIPELINE_TASKS = {"vqa": "token-comm-vqa", "caption": "token-comm-image-to-text",
                  "sentiment": "token-comm-text-classification"}  # fmt: skip
_MATERIAL = {"metal": "metal", "shiny": "metal", "metallic": "metal", "rubber": "rubber", "matte": "rubber"}
_WORD_ATTRIBUTE = {**{w: ("size", w) for w in SIZES}, **{w: ("color", w) for w in COLORS},
                   **{w: ("material", m) for w, m in _MATERIAL.items()}}  # fmt: skip
_SHAPE_WORDS = {**{s: s for s in SHAPES}, **{s + "s": s for s in SHAPES}}


def caption_phrases(caption: str) -> list[tuple[dict, str]]:
    """`[(stated attributes, shape), ...]`: each shape noun with the attribute words right before it."""
    phrases, stated = [], {}
    for word in re.findall(r"[a-z]+", caption.lower()):
        if word in _SHAPE_WORDS:
            phrases.append((stated, _SHAPE_WORDS[word]))
            stated = {}
        elif word in _WORD_ATTRIBUTE:
            name, value = _WORD_ATTRIBUTE[word]
            stated[name] = value
        else:
            stated = {}
    return phrases


def attribute_recall(caption: str, objects: list[dict]) -> float:
    """Share of `objects` (scene-graph dicts) that some phrase of `caption` names with correct attributes."""
    phrases = caption_phrases(caption)
    hits = [any(shape == o["shape"] and all(o[k] == v for k, v in stated.items()) for stated, shape in phrases)
            for o in objects]  # fmt: skip
    return float(np.mean(hits)) if hits else 1.0


def caption_metrics(predictions: list[str], references: list[dict], groups=None) -> dict:
    """`{"bleu4", "attribute_recall"}`: corpus BLEU-4 against each image's reference captions (torchmetrics,
    smoothed) and the mean attribute recall against its scene. `references[i]`: `{"captions", "objects"}`."""
    from torchmetrics.text import BLEUScore

    if len(predictions) != len(references) or not references:
        raise ValueError(f"Need as many predictions as references (> 0), got {len(predictions)} and {len(references)}.")
    bleu = BLEUScore(n_gram=4, smooth=True)
    score = bleu([p.lower() for p in predictions], [[c.lower() for c in r["captions"]] for r in references])
    recall = [attribute_recall(p, r["objects"]) for p, r in zip(predictions, references)]
    return {"bleu4": float(score), "attribute_recall": float(np.mean(recall))}


register_metric("caption", caption_metrics, "bleu4", "bleu")


def model_recipe(model_path) -> dict:
    """The recipe a checkpoint was trained with (its data seeds define the held-out split), else `taichi_tiny`."""
    return checkpoint_recipe(model_path, "taichi_tiny")


class TaiChiEvaluator(Evaluator):
    """One TaiChi task on the held-out split that the checkpoint's recipe defines, answered with `generate` at each
    channel condition: the same SNR on the visual and the text link, or, with `text_snr_db` set, the swept SNR on the
    visual link only and `text_snr_db` on the text link (`float("inf")`: the question arrives intact, so the sweep
    shows what the image's tokens carry; at -30 dB VQA should fall to the question-only baseline)."""

    def __init__(self, model, processor, recipe, corpus, task, count, model_path, split, num_visual_tokens,
                 batch_size=64, text_snr_db=None):  # fmt: skip
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        self.model, self.processor, self.recipe, self.corpus = model, processor, recipe, corpus
        self.task_name, self.task, self.count = task, PIPELINE_TASKS[task], count
        self.model_path, self.split, self.num_visual_tokens, self.batch_size = model_path, split, num_visual_tokens, batch_size
        if text_snr_db is not None and not (isinstance(text_snr_db, (int, float)) and not isinstance(text_snr_db, bool)
                                            and (text_snr_db == float("inf") or -100.0 <= text_snr_db <= 100.0)):
            raise ValueError(f"`text_snr_db` must be a number in [-100, 100] dB or inf, got {text_snr_db!r}.")
        self.text_snr_db = None if text_snr_db is None else float(text_snr_db)
        self.metrics = ("caption",) if task == "caption" else ("accuracy",)
        if task == "vqa":
            rows = corpus.questions[:count]
            self.inputs = [(row["image_index"], row["question"], row["answer"]) for row in rows]
            self.references, self.groups = [row["answer"] for row in rows], [row["family"] for row in rows]
        elif task == "sentiment":
            labels = [SENTIMENT_ANSWERS[y] for y in corpus.sentiment_labels[:count]]
            self.inputs = [(None, text, label) for text, label in zip(corpus.sentences[:count], labels)]
            self.references, self.groups = labels, None
        else:
            graphs = corpus.graphs
            self.inputs = [(i, None, corpus.captions[i][0]) for i in range(count)]
            self.references = [{"captions": corpus.captions[i], "objects": graphs[i]["objects"]} for i in range(count)]
            self.groups = None

    @classmethod
    def from_checkpoint(cls, model_path, num_samples=None, split="test", task="vqa", num_visual_tokens=None,
                        batch_size=64, text_snr_db=None):  # fmt: skip
        check_checkpoint_arguments(model_path, num_samples)
        model = TaiChiForConditionalGeneration.from_pretrained(model_path).eval()
        processor = TaiChiProcessor.from_pretrained(model_path)
        recipe = model_recipe(model_path)
        corpus = TaiChiCorpus.build({**recipe.get("data", {}), "seed": recipe.get("seed", 0)}, split)
        available = {"vqa": len(corpus.questions), "caption": len(corpus.images), "sentiment": len(corpus.sentences)}
        if task not in available:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        count = available[task] if num_samples is None else min(num_samples, available[task])
        return cls(model, processor, recipe, corpus, task, count, model_path, split, num_visual_tokens, batch_size,
                   text_snr_db)  # fmt: skip

    def batch(self, rows) -> tuple[dict, torch.Tensor]:
        """Model inputs and labels for `rows` of `(image index or None, text or None, reference answer)`."""
        corpus, processor = self.corpus, self.processor
        text = None if rows[0][1] is None else [row[1] for row in rows]
        prompts = processor.prompts(self.task_name) * len(rows) if text is None else processor.prompts(self.task_name, text)
        batch = dict(processor.tokenizer(prompts, padding=True, return_tensors="pt"))
        if self.task_name in IMAGE_TASKS:
            images = torch.from_numpy(corpus.images[[row[0] for row in rows]])
            batch["pixel_values"], batch["pixel_values_lr"] = processor.image_tensors(images)
        return batch, answer_labels(processor.tokenizer, [row[2] for row in rows])

    @torch.no_grad()
    def predict(self, snr_db: float, channel_type: str, seed: int, progress: bool) -> dict:
        generator = torch.Generator().manual_seed(seed)
        predictions, scores, losses = [], [], []
        snr = float(snr_db) if self.text_snr_db is None else {"visual": float(snr_db), "text": self.text_snr_db}
        link = dict(snr_db=snr, channel_type=channel_type, num_visual_tokens=self.num_visual_tokens)
        for start in tqdm(range(0, self.count, self.batch_size), disable=not progress,
                          desc=f"{self.task_name} {snr_db:g} dB {channel_type}"):  # fmt: skip
            batch, labels = self.batch(self.inputs[start : start + self.batch_size])
            out = self.model.generate(**batch, **link, task=self.task_name, generator=generator,
                                      return_dict_in_generate=True)  # fmt: skip
            predictions += self.processor.batch_decode(out.sequences)
            scores.append(out.sequence_scores.numpy())
            losses.append(self.model(**batch, labels=labels, **link, generator=generator).loss.item() * len(labels))
        return {"predictions": predictions, "loss": float(np.sum(losses) / self.count),
                "mean_score": float(np.concatenate(scores).mean())}  # fmt: skip

    def header(self) -> dict:
        return {"model": str(self.model_path), "split": self.split, "num_samples": self.count,
                "taichi_task": self.task_name,
                "num_visual_tokens": self.num_visual_tokens or self.model.config.max_visual_tokens,
                "text_snr_db": "same as visual" if self.text_snr_db is None else self.text_snr_db}  # fmt: skip

    def baselines(self) -> dict:
        """Reference points that never use the channel (fitted on the recipe's training split)."""
        if self.task_name == "caption":
            leave_one_out = [np.mean([attribute_recall(c, r["objects"]) for c in r["captions"]]) for r in self.references]
            return {"reference_attribute_recall": float(np.mean(leave_one_out))}
        train = TaiChiCorpus.build({**self.recipe.get("data", {}), "seed": self.recipe.get("seed", 0)}, "train")
        if self.task_name == "vqa":
            from tokcom.training.data.shapes_questions import question_only_accuracy

            priors = question_only_accuracy(train.questions, self.corpus.questions[: self.count])
            return {"question_only_baseline": priors["question_prior"], "family_prior_baseline": priors["family_prior"]}
        from tokcom.training.data.sentiment import bag_of_words_accuracy

        labels = self.corpus.sentiment_labels[: self.count]
        accuracy = bag_of_words_accuracy(train.sentences, train.sentiment_labels, self.corpus.sentences[: self.count], labels)
        return {"bag_of_words_baseline": accuracy}


class TextCeilingEvaluator(TaiChiEvaluator):
    """VQA with each image given as its exact scene description instead of its pixels: every coarse cell's scene
    words, summed, in the visual tokens' place (`visual_embeds`, as the text pretraining reads them). Run on the
    text-pretrained LLM (`stages/pretrain_text`) over an ideal link, it is the *text ceiling* of the tables: what
    the LLM answers from perfect perception.

    >>> TextCeilingEvaluator.__mro__[1].__name__
    'TaiChiEvaluator'
    """

    def batch(self, rows) -> tuple[dict, torch.Tensor]:
        if self.task_name != "vqa":
            raise ValueError(f"The text ceiling is a VQA measure, got task {self.task_name!r}.")
        from tokcom.training.objectives import word_embeddings

        batch, labels = super().batch(rows)
        del batch["pixel_values"], batch["pixel_values_lr"]
        ids = self.corpus.scene_word_ids([row[0] for row in rows], self.processor.tokenizer)
        batch["visual_embeds"] = word_embeddings(self.model.embed_text, ids)
        return batch, labels


def fit_visual_performance_model(model_path, num_samples: int = 500, snr_db: float = 20.0,
                                 budgets=(1, 2, 4, 9, 16)) -> dict:  # fmt: skip
    """phi_visual(s) = (alpha/s)^beta + gamma (eq. 15 of the TokCom letter) for TaiChi's visual link: the held-out
    VQA answer loss (validation split, `snr_db` AWGN) at each visual token budget, fitted with the allocator's
    `fit_performance_model`. Budgets above the model's maximum are dropped (at least 3 must remain).

    Returns `{"snr_db", "num_samples", "measurements": [{"tokens", "loss"}], "performance_model": {"visual": phi}}`;
    the caller writes `performance_model` into the config (then `network=` works in the pipelines)."""
    from tokcom.pipelines.allocation import fit_performance_model

    evaluator = TaiChiEvaluator.from_checkpoint(model_path, num_samples=num_samples, split="validation", task="vqa")
    maximum = evaluator.model.config.max_visual_tokens
    budgets = sorted({int(b) for b in budgets if 1 <= int(b) <= maximum})
    rows = []
    for budget in budgets:
        evaluator.num_visual_tokens = budget
        rows.append({"tokens": budget, "loss": evaluator.predict(snr_db, "awgn", seed=0, progress=False)["loss"]})
    phi = fit_performance_model([r["tokens"] for r in rows], [r["loss"] for r in rows])
    return {"snr_db": snr_db, "num_samples": evaluator.count, "measurements": rows, "performance_model": {"visual": phi}}


__all__ = ["PIPELINE_TASKS", "TaiChiEvaluator", "TextCeilingEvaluator", "attribute_recall", "caption_metrics", "caption_phrases",
           "fit_visual_performance_model"]  # fmt: skip
