"""What every tokcom pipeline shares: the link parameters (`snr_db` | `network`, token budgets, channel type, seed)
planned by the one link planner, batching that reads each input alone and featurizes each batch at once, the
processor saved with the pipeline, and the question checks (length bound, unknown words).

A family's pipeline subclasses [`TokenCommPipeline`] and implements `read_input` (one input, checked, files read),
`featurize` (a list of read inputs -> one model batch), `_forward` and `postprocess`.
"""

from __future__ import annotations

import collections.abc
import numbers
import warnings

import torch
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from tokcom.modeling.links import LINK_CHANNEL_TYPES as CHANNEL_TYPES

from .link_planner import plan_links

MAX_QUESTION_CHARS = 1000  # a question, not a document (a million characters took 433 s and answered '')


class UnknownWordsWarning(UserWarning):
    """A question holds words the model's vocabulary does not have: they reach the model as the unknown token, so
    the answer does not depend on them (and is unreliable)."""


class TokenCommPipeline(Pipeline):
    """Base of the tokcom pipelines (see the module docstring). Parameters at construction or per call: `snr_db`
    (number or dict per link), `network` and `method` (the allocator), `num_<link>_tokens` for each link whose
    length the config's `max_tokens_per_link` lets the caller choose, `channel_type`, `seed`, `max_new_tokens`."""

    task_name = ""
    family_parameters: tuple[str, ...] = ()  # a family's own call parameters, checked by `check_family_parameters`
    # the processor comes from the model's folder in `__init__`: `pipeline()` must not guess preprocessing classes
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        check_loader_parameters(kwargs.get("batch_size"), kwargs.get("num_workers"))
        super().__init__(*args, **kwargs)

    def __call__(self, inputs, **kwargs):
        """One input or a list of them; an empty list is refused, and so are a `batch_size` / `num_workers` that
        are not integers >= 1 / >= 0 (checked here, since a single input never reaches the DataLoader)."""
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError("`inputs` is an empty list: give one input or a non-empty list of them.")
        check_loader_parameters(kwargs.get("batch_size"), kwargs.get("num_workers"))
        return super().__call__(inputs, **kwargs)

    def _plan_at_construction(self) -> None:
        if "plan" not in self._postprocess_params:  # no link parameters at construction: the config's SNR
            forward, self._postprocess_params["plan"] = self._link_plan()
            self._forward_params.update(forward)

    def save_pretrained(self, save_directory, **kwargs):
        """`Pipeline.save_pretrained` plus the whole processor (`processor_config.json`)."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    # ------------------------------------------------------------------ parameters

    def link_config(self):
        """What the link planner reads (`link_names`, `max_tokens_per_link`, `performance_model`, `bits_per_token`,
        `channel_config`): the model's config. A family whose links depend on the task overrides it."""
        return self.model.config

    def _token_parameters(self) -> tuple[str, ...]:
        return tuple(f"num_{link}_tokens" for link in self.link_config().max_tokens_per_link)

    def _sanitize_parameters(self, snr_db=None, network=None, method=None, channel_type=None, seed=None,
                             max_new_tokens=None, local_files_only=None, **rest):  # fmt: skip
        token_keys = self._token_parameters()
        unknown = sorted(set(rest) - set(token_keys) - set(self.family_parameters))
        if unknown:
            allowed = ["snr_db", "network", "method", *token_keys, "channel_type", "seed", "max_new_tokens",
                       *self.family_parameters, "batch_size", "num_workers"]  # fmt: skip
            raise ValueError(f"Unknown argument(s) {unknown} for the {self.task_name!r} pipeline; allowed: {allowed}.")
        forward_params, postprocess_params = self.check_family_parameters(
            {key: rest[key] for key in self.family_parameters if rest.get(key) is not None})
        num_tokens = {key[len("num_"): -len("_tokens")]: rest.get(key) for key in token_keys}
        # the link parameters form one group: given together at a call, they replace the construction's plan whole
        if any(value is not None for value in (snr_db, network, method, *num_tokens.values())):
            forward, postprocess_params["plan"] = self._link_plan(snr_db, network, method, num_tokens)
            forward_params.update(forward)
        if channel_type is not None:
            if channel_type not in CHANNEL_TYPES:
                raise ValueError(f"`channel_type` must be one of {CHANNEL_TYPES}, got {channel_type!r}.")
            forward_params["channel_type"] = channel_type
        if seed is not None:
            forward_params["seed"] = check_integer(seed, "seed", low=0)
        if max_new_tokens is not None:
            forward_params["max_new_tokens"] = check_integer(max_new_tokens, "max_new_tokens", 1,
                                                             self.max_new_tokens_limit())  # fmt: skip
        return {}, forward_params, postprocess_params

    def max_new_tokens_limit(self) -> int:
        """Largest `max_new_tokens` a call may ask for: the language model's positions
        (`text_config.max_position_embeddings`), since an answer cannot outgrow the context; a model that never
        emits eos would otherwise decode (and grow its cache) for as long as asked."""
        text_config = getattr(self.model.config, "text_config", None)
        limit = getattr(text_config, "max_position_embeddings", None)
        return int(limit) if isinstance(limit, int) and limit >= 1 else 2**63 - 1

    def check_family_parameters(self, values: dict) -> tuple[dict, dict]:
        """The given `family_parameters` (not None), checked -> `(forward_params, postprocess_params)`."""
        return {}, {}

    def _link_plan(self, snr_db=None, network=None, method=None, num_tokens: dict | None = None):
        """The links of this call (`tokcom.pipelines.link_planner`): the model's `links=` and the plan for reports."""
        plan = plan_links(self.link_config(), snr_db, network, method, num_tokens or {})
        return {"links": plan.links}, plan

    # ------------------------------------------------------------------ batching

    def preprocess(self, inputs) -> dict:
        """One input -> the model's inputs (a batch of one): `read_input`, then `featurize`."""
        return self.featurize([self.read_input(inputs)])

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """With `batch_size > 1`: each input is checked and read on its own (`read_input`), and each batch is
        featurized at once (`featurize` as the DataLoader's `collate_fn`), instead of the base class's per-input
        preprocessing and padding collation. The answers are the same as one input at a time."""
        if batch_size == 1:
            return super().get_iterator(
                inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params
            )
        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.read_input, preprocess_params)
        else:
            dataset, num_workers = PipelineIterator(inputs, self.read_input, preprocess_params), min(num_workers, 1)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=self.featurize)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def read_input(self, inputs) -> dict:
        raise NotImplementedError

    def input_fields(self, inputs, keys: tuple, optional: tuple = ()) -> dict:
        """One input as `{key: value}` over `keys` (a bare value is the first key's): unknown keys and missing
        required ones (all but `optional`) raise a `ValueError` naming them and the allowed keys."""
        if not isinstance(inputs, dict):
            inputs = {keys[0]: inputs}
        unknown = sorted(set(inputs) - set(keys))
        if unknown:
            raise ValueError(f"Unknown input key(s) {unknown}; allowed: {list(keys)}.")
        for key in keys:
            if key not in optional and inputs.get(key) is None:
                raise ValueError(f"`{key}` is missing from the input; give {list(keys)}.")
        return inputs

    def featurize(self, items: list) -> dict:
        raise NotImplementedError

    def generator(self, seed: int | None) -> torch.Generator | None:
        """The channel's noise source for one model call (None: unseeded)."""
        return None if seed is None else torch.Generator(device=self.device).manual_seed(seed)


class FamilyProcessorPipeline(TokenCommPipeline):
    """Base of a family whose processor does all the preprocessing and comes whole from `processor=` or the model's
    folder (TaiChi, UniToCom): checks the model's `model_type`, refuses separate preprocessing objects, resolves the
    processor with the family's `resolve_processor(model, processor, tokenizer)` and plans the links."""

    model_type = ""  # the config's model_type this family serves
    model_class_name = ""  # named in the error for another model

    @staticmethod
    def resolve_processor(model, processor, tokenizer):
        raise NotImplementedError

    def __init__(self, model, tokenizer=None, feature_extractor=None, image_processor=None, video_processor=None,
                 processor=None, **kwargs):  # fmt: skip
        if getattr(getattr(model, "config", None), "model_type", None) != self.model_type:
            raise ValueError(f"`model` must be a {self.model_class_name}, got {type(model).__name__}.")
        refuse_preprocessors(self.task_name, feature_extractor=feature_extractor, image_processor=image_processor,
                             video_processor=video_processor)  # fmt: skip
        processor = self.resolve_processor(model, processor, tokenizer)
        super().__init__(model, tokenizer=processor.tokenizer, processor=processor, **kwargs)
        self._plan_at_construction()


def refuse_preprocessors(task_name: str, **given) -> None:
    """`ValueError` for a preprocessing object (`feature_extractor=`, `image_processor=` ...) given to a pipeline
    whose family processor (`processor=`) does all the preprocessing."""
    for name, value in given.items():
        if value is not None:
            raise ValueError(f"`{name}` is not used by the {task_name!r} pipeline; pass `processor=` instead.")


def check_integer(value, field: str, low: int, high: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ValueError(f"`{field}` must be an integer in [{low}, {high}], got {value!r}.")
    return int(value)


def check_loader_parameters(batch_size=None, num_workers=None) -> None:
    """`ValueError` for a given (not None) `batch_size` that is not an integer >= 1 or `num_workers` that is not an
    integer >= 0 (a bool or 2.5 included), at construction or per call, before transformers' batching sees them."""
    if batch_size is not None:
        check_integer(batch_size, "batch_size", low=1)
    if num_workers is not None:
        check_integer(num_workers, "num_workers", low=0)


def check_text(text, field: str = "question", max_chars: int = MAX_QUESTION_CHARS) -> str:
    """A non-empty string of at most `max_chars` characters; `ValueError` naming `field` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`{field}` must be a non-empty string, got {text!r}.")
    if len(text) > max_chars:
        raise ValueError(f"`{field}` has {len(text):,} characters; at most {max_chars} are accepted.")
    return text


def check_prompt_tokens(tokenizer, texts: list, input_ids, attention_mask, limit: int | None, field: str = "question",
                        counted=None) -> torch.Tensor:  # fmt: skip
    """Token counts of each row; refuses a row over `limit` (what fits in the model's context) or with no tokens,
    and warns (`UnknownWordsWarning`) when words are unknown to the vocabulary. `counted` `(batch,)`: the tokens
    of the user's text in each row when the prompt holds more (an instruction); default the attention mask's sum."""
    counts = attention_mask.sum(dim=1) if counted is None else counted
    for row, text in enumerate(texts):
        count = int(counts[row])
        if count == 0:
            raise ValueError(f"`{field}` gives no tokens, got {text!r}.")
        if limit is not None and count > limit:
            raise ValueError(f"`{field}` gives {count} tokens; at most {limit} fit in the model's context beside the "
                             "media and answer tokens: shorten it.")  # fmt: skip
        warn_unknown_words(tokenizer, text, input_ids[row], attention_mask[row], field)
    return counts


def warn_unknown_words(tokenizer, text: str, input_ids=None, attention_mask=None, field: str = "question") -> None:
    """`UnknownWordsWarning` naming the share and a few of the text's words that encode to the unknown token (the
    text is encoded alone, so an instruction around it does not dilute the share). `input_ids`/`attention_mask`
    (the row as sent), when given, skip the encoding for rows without an unknown token."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return
    if input_ids is not None and not bool(((input_ids == unk) & attention_mask.bool()).any()):
        return
    try:  # the words themselves, from the fast tokenizer's offsets
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
    except (NotImplementedError, KeyError, TypeError, ValueError):
        encoded, offsets = tokenizer(text, add_special_tokens=False), None
    ids = encoded["input_ids"]
    unknown = sum(token == unk for token in ids)
    if unknown == 0:
        return
    words = [text[a:b] for token, (a, b) in zip(ids, offsets) if token == unk] if offsets is not None else []
    examples = f" (e.g. {', '.join(repr(w) for w in dict.fromkeys(words[:5]))})" if words else ""
    warnings.warn(
        f"{unknown} of {len(ids)} words of the {field} are not in the model's vocabulary{examples} "
        f"({unknown / len(ids):.0%}); they reach the model as {tokenizer.unk_token!r}, so the answer cannot depend "
        "on them.",
        UnknownWordsWarning,
        stacklevel=2,
    )


__all__ = ["MAX_QUESTION_CHARS", "TokenCommPipeline", "UnknownWordsWarning", "check_integer", "check_loader_parameters",
           "check_prompt_tokens", "check_text", "refuse_preprocessors", "warn_unknown_words"]  # fmt: skip
