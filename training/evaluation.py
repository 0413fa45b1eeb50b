"""One evaluation engine for every family: an SNR x channel sweep over a model with pluggable task metrics, one
JSON schema, and the model-index entries of the cards.

A family contributes an [`Evaluator`] (its held-out samples, how it predicts at one channel condition, its
baselines); `sweep` runs it over SNRs and channel types and scores each point with the task's metrics
(`METRICS`: exact-match accuracy now; caption, WER and image metrics register here as their families land).

    tokcom evaluate [--model PATH] --snr-db 0 10 20 --channel-type awgn rayleigh [--num-samples N] --output OUT.json

The report (`SCHEMA`):

    {"schema", "task", "model", "split", "num_samples", "channel_type" (the first), "channel_types", "metrics",
     ...the evaluator's header (e.g. token counts)...,
     "results": [{"snr_db", "channel_type", <metric fields, e.g. "accuracy", "per_type">, "loss", "mean_score"}],
     ...the evaluator's baselines (e.g. "question_only_baseline")...}

>>> exact_match(["yes", "no"], ["yes", "yes"], ["A", "B"])["per_type"]["B"]
{'accuracy': 0.0, 'count': 1}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

SCHEMA = "tokcom-evaluation/1"


def exact_match(predictions: list, references: list, groups: list | None = None) -> dict:
    """`{"accuracy", "per_type": {group: {"accuracy", "count"}}}`: share of predictions equal to the reference
    (e.g. the answer word), overall and per group (e.g. question type)."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"Need as many predictions as references (> 0), got {len(predictions)} and {len(references)}.")
    correct = [p == t for p, t in zip(predictions, references)]
    per_type = defaultdict(list)
    for ok, group in zip(correct, groups if groups is not None else ["all"] * len(correct)):
        per_type[group].append(ok)
    return {
        "accuracy": float(np.mean(correct)),
        "per_type": {k: {"accuracy": float(np.mean(v)), "count": len(v)} for k, v in sorted(per_type.items())},
    }


# name -> (function(predictions, references, groups) -> dict of fields, the field the card reports, its Hub type)
METRICS: dict[str, tuple[Callable, str, str]] = {"accuracy": (exact_match, "accuracy", "accuracy")}


def register_metric(name: str, function: Callable, headline_field: str, metric_type: str) -> None:
    """Add a task metric: `function(predictions, references, groups)` returns the fields it adds to each result
    row; `headline_field` is the scalar one the card's model-index reports, with the Hub's `metric_type`."""
    METRICS[name] = (function, headline_field, metric_type)


class Evaluator:
    """A family's held-out task. Subclasses set `task`, `metrics`, `references` and `groups`, and implement
    `predict`; `header` and `baselines` add fields to the report."""

    task: str = ""
    metrics: tuple[str, ...] = ("accuracy",)
    references: list = []
    groups: list | None = None

    def predict(self, snr_db: float, channel_type: str, seed: int, progress: bool) -> dict:
        """`{"predictions": [...], "loss": float or None, "mean_score": float or None}` for every sample at one
        channel condition (SNR [dB] on every link, channel type)."""
        raise NotImplementedError

    def header(self) -> dict:
        """Report fields that describe the run (model, split, num_samples, link settings)."""
        return {}

    def baselines(self) -> dict:
        """Report fields with reference points measured without the channel (e.g. a question-only baseline)."""
        return {}


def checkpoint_recipe(model_path, default_recipe: str) -> dict:
    """The recipe a checkpoint was trained with (its `tokcom_recipe.json`: its data seeds define the held-out
    split), else the family's `default_recipe` by name."""
    import json
    from pathlib import Path

    from tokcom.training.engine import RECIPE_FILE
    from tokcom.training.recipe import load_recipe

    path = Path(model_path) / RECIPE_FILE
    return json.loads(path.read_text()) if path.is_file() else load_recipe(default_recipe)


def check_checkpoint_arguments(model_path, num_samples) -> None:
    """`ValueError` unless `num_samples` is None or an integer >= 1; `FileNotFoundError` without a checkpoint
    (`config.json`) at `model_path`. What every evaluator's `from_checkpoint` checks first."""
    from pathlib import Path

    if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1):
        raise ValueError(f"`num_samples` must be an integer >= 1, got {num_samples!r}.")
    if not Path(model_path, "config.json").is_file():
        raise FileNotFoundError(f"No checkpoint at {model_path} (config.json missing).")


def check_snr_list(snr_db) -> list[float]:
    """`snr_db` as a non-empty list of numbers in (-inf, inf] [dB]; `ValueError` naming it otherwise."""
    from tokcom.modeling.link_budget import check_snr_db

    try:
        values = list([snr_db] if isinstance(snr_db, (int, float)) else snr_db)
    except TypeError:
        raise ValueError(f"`snr_db` must be one or more numbers [dB], got {snr_db!r}.") from None
    if not values:
        raise ValueError("`snr_db` must be one or more numbers [dB], got none.")
    return [check_snr_db(value, "snr_db") for value in values]


def sweep(
    evaluator: Evaluator,
    snr_db,
    channel_types=("awgn",),
    seed: int = 0,
    progress: bool = True,
    with_baselines: bool = True,
) -> dict:
    """Evaluate at every (channel type, SNR) pair, channel types outermost; the report follows `SCHEMA`."""
    from tokcom.modeling.links import LINK_CHANNEL_TYPES

    snr_db = check_snr_list(snr_db)
    channel_types = [channel_types] if isinstance(channel_types, str) else list(channel_types)
    if not channel_types or any(c not in LINK_CHANNEL_TYPES for c in channel_types):
        raise ValueError(f"`channel_type` must be among {LINK_CHANNEL_TYPES}, got {channel_types!r}.")
    unknown = [m for m in evaluator.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; registered: {sorted(METRICS)}.")
    results = []
    for channel_type in channel_types:
        for snr in snr_db:
            prediction = evaluator.predict(snr, channel_type, seed, progress)
            row = {"snr_db": snr, "channel_type": channel_type}
            if prediction.get("loss") is not None:
                row["loss"] = prediction["loss"]
            if prediction.get("mean_score") is not None:
                row["mean_score"] = prediction["mean_score"]
            for name in evaluator.metrics:
                row.update(METRICS[name][0](prediction["predictions"], evaluator.references, evaluator.groups))
            results.append(row)
    report = {
        "schema": SCHEMA,
        "task": evaluator.task,
        **evaluator.header(),
        "channel_type": channel_types[0],
        "channel_types": channel_types,
        "metrics": list(evaluator.metrics),
        "results": results,
    }
    if with_baselines:
        report.update(evaluator.baselines())
    return report


def channel_reports(evaluation: dict) -> dict[str, dict]:
    """`{channel_type: report}` from a sweep report (split by channel type) or a summary holding an `evaluation`
    dict of reports (e.g. `build_default`'s)."""
    if "results" in evaluation:
        channels = evaluation.get("channel_types") or [evaluation["channel_type"]]
        return {
            channel: {
                **evaluation,
                "channel_type": channel,
                "channel_types": [channel],
                "results": [r for r in evaluation["results"] if r.get("channel_type", channel) == channel],
            }
            for channel in channels
        }
    reports = evaluation.get("evaluation")
    if not isinstance(reports, dict) or not all("results" in r for r in reports.values()):
        raise ValueError("`evaluation` must be an `evaluate()` report or a summary with an `evaluation` dict of reports.")
    return reports


def model_index_results(evaluation: dict) -> list[dict]:
    """The cards' model-index entries: one per (channel, SNR, metric) of a report or summary, as
    `{"metric_type", "metric_name", "metric_value", "channel_type", "snr_db"}`."""
    entries = []
    for channel, report in channel_reports(evaluation).items():
        for name in report.get("metrics", ["accuracy"]):
            _, field, metric_type = METRICS[name]
            for row in report["results"]:
                entries.append({
                    "metric_type": metric_type,
                    "metric_name": f"{field} at {row['snr_db']:g} dB {channel}",
                    "metric_value": round(row[field], 4),
                    "channel_type": channel,
                    "snr_db": row["snr_db"],
                })  # fmt: skip
    return entries


def evaluate_checkpoint(model_path, snr_db=(0.0, 10.0, 20.0), channel_types=("awgn",), **options) -> dict:
    """Evaluate any family's checkpoint: the registry maps its config's `model_type` to the family's evaluator
    (`Evaluator.from_checkpoint(model_path, **options)`), which `sweep` runs. Options are the evaluator's
    (e.g. `num_samples`, `split`, token lengths) plus `seed`, `progress`, `with_baselines`."""
    from pathlib import Path

    from transformers import AutoConfig

    from tokcom.registry import family_for_model_type, import_object

    if not Path(model_path, "config.json").is_file():
        raise FileNotFoundError(f"No checkpoint at {model_path} (config.json missing).")
    family = family_for_model_type(AutoConfig.from_pretrained(model_path).model_type)
    sweep_options = {key: options.pop(key) for key in ("seed", "progress", "with_baselines") if key in options}
    evaluator_class = import_object(family.evaluator_class)
    import inspect

    accepted = inspect.signature(evaluator_class.from_checkpoint).parameters
    unknown = sorted(key for key in options if key not in accepted)
    if unknown:
        raise ValueError(f"The {family.name} family's evaluation takes no {unknown} option(s); it takes "
                         f"{sorted(k for k in accepted if k != 'model_path')}.")
    evaluator = evaluator_class.from_checkpoint(model_path, **options)
    return sweep(evaluator, snr_db, channel_types, **sweep_options)


__all__ = [
    "Evaluator",
    "METRICS",
    "check_checkpoint_arguments",
    "checkpoint_recipe",
    "SCHEMA",
    "channel_reports",
    "check_snr_list",
    "evaluate_checkpoint",
    "exact_match",
    "model_index_results",
    "register_metric",
    "sweep",
]
