"""TokenCommVQAPipeline: audio-visual question answering over simulated wireless links (task `"token-comm-vqa"`).

One call sends a clip's video tokens, audio tokens and question tokens from their devices over their own links
(TokCom letter, Sec. II, eqs. 4-6) and answers at the base station with [`TokComForAVQA`]. Each link's SNR and
each modality's token length come either from the caller (`snr_db=...`) or from the resource allocator
(`network=...`, problem 16 solved by `tokcom.pipelines.allocation.allocate`).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np
from transformers import AutoFeatureExtractor, AutoTokenizer

from tokcom.modeling.media_io import check_duration, check_waveform, load_frames, pcm_to_float, read_wav
from tokcom.modeling.processing_tokcom import TokComProcessor

from .link_planner import TEXT_LINK_DEFAULT_DISTANCE_KM, LinkPlan
from .token_comm_base import (
    MAX_QUESTION_CHARS,
    TokenCommPipeline,
    UnknownWordsWarning,
    check_prompt_tokens,
    check_text,
    refuse_preprocessors,
)

TASK = "token-comm-vqa"
INPUT_KEYS = ("video", "audio", "sampling_rate", "question")
AUDIO_DICT_KEYS = ("array", "sampling_rate", "path")


class TokenCommVQAPipeline(TokenCommPipeline):
    r"""Answer a question about a video clip and its audio after sending all three over wireless links.

    Build it with `pipeline("token-comm-vqa", model=PATH)` after `import tokcom` (no `model`: the embedded default
    checkpoint, `tokcom.defaults.default_model_path()`). The processor is loaded from the model's folder
    (`TokComProcessor.from_pretrained(model.name_or_path)`) unless `processor=` (or `tokenizer=` /
    `feature_extractor=`, replacing that part of it) is given.

    Inputs: a dict, or a list of dicts, with
        - `video`: uint8 frames `(frames, height, width, 3)`, or a folder of `*.png`/`*.jpg` frames (read in sorted
          file-name order: name them with zero-padded numbers);
        - `audio`: a float waveform `(samples,)` with its rate, either `{"array": ..., "sampling_rate": 16000}` or
          `audio=array, sampling_rate=16000` in the input dict; the rate must be the processor's (16 kHz for the
          tiny preset). Or a path to a `.wav` file (read with scipy, mixed down to mono, resampled when needed);
        - `question`: a string.

    Parameters (at construction or per call):
        snr_db (`float` or `dict`, *optional*): SNR [dB] of every link, in `(-inf, inf]`, or a dict per link
            `{"visual", "audio", "text"}` (missing links use the config's default). Without `snr_db` and `network`,
            every link uses `model.config.channel_config.snr_db`.
        num_visual_tokens, num_audio_tokens (`int`, *optional*): token lengths s_m in `[1, max]` with `snr_db`
            (default: the config's `max_visual_tokens` / `max_audio_tokens`).
        network (`dict`, *optional*): the uplink as a problem dict of `tokcom.pipelines.allocation.allocate`
            (`bandwidth_hz`, `power_dbm` or `power_w`, `weight`, optional `noise_dbm_per_hz` and `bits_per_token`,
            `devices` named `"visual"` and `"audio"` with `distance_km` | `gain_db` | `gain`), without `phi` and
            `tokens_max`, which come from `model.config.performance_model` and `max_visual_tokens`/
            `max_audio_tokens`; `bits_per_token` defaults to `model.config.bits_per_token`. The allocator chooses
            each device's bandwidth, power and integer token length; each link's SNR is the allocator's received SNR
            `h p / (N0 B)` (eq. 13). The question goes over its own dedicated link (paper Sec. V), set by
            `network["text"] = {"bandwidth_hz", "power_dbm" | "power_w", "distance_km" | "gain_db" | "gain"}`
            (defaults: 0.5 MHz, 15 dBm, 0.4 km); its latency is `question tokens * q / rate` (eq. 14).
        method (`str`, *optional*, defaults to `"proposed"`): the allocator's method, with `network`.
        channel_type (`str`, *optional*): `"awgn"`, `"rayleigh"` or `"none"` for this call (default: the config's);
            with `"none"` the links are noiseless and the reported `snr_db` is only what the plan assumed.
        seed (`int`, *optional*): seeds the channel noise; every model call (one batch) draws from
            `torch.Generator(device).manual_seed(seed)`, so results repeat for the same inputs and `batch_size`
            (a sample's noise depends on the other samples of its batch).
        max_new_tokens (`int`, *optional*): answer length budget (default: `config.answer_max_new_tokens`).

    Returns:
        One dict per input: `{"answer": str, "score": float (probability of the greedy answer), "transmission":
        {"visual": {"tokens", "bandwidth_hz", "power_w", "snr_db", "latency_s"}, "audio": {...}, "text": {...},
        "latency_s": the slowest link (links are parallel), "channel_uses": complex symbols sent
        (tokens * ceil(d_T / 2) summed over links), "method": the allocator's method or None}}`. With `snr_db`
        (or no mode) the bandwidth, power and latency fields are `None`: they are not known.

    Example (runs when the embedded default is installed; any checkpoint folder works as `model=`):

    >>> import numpy as np
    >>> import tokcom  # registers "token-comm-vqa"
    >>> from transformers import pipeline
    >>> vqa = pipeline("token-comm-vqa", device="cpu")
    >>> clip = {"video": np.zeros((8, 32, 32, 3), np.uint8), "question": "how many instruments are sounding?",
    ...         "audio": {"array": np.zeros(16000, np.float32), "sampling_rate": 16000}}
    >>> out = vqa(clip, snr_db=10.0, seed=0)
    >>> sorted(out["transmission"])
    ['audio', 'channel_uses', 'latency_s', 'method', 'text', 'visual']
    >>> network = {"bandwidth_hz": 3e6, "power_dbm": 23.0, "weight": 0.6,
    ...            "devices": [{"name": "visual", "distance_km": 0.35}, {"name": "audio", "distance_km": 0.45}]}
    >>> out = vqa(clip, network=network, seed=0)
    >>> out["transmission"]["method"], out["transmission"]["text"]["bandwidth_hz"]
    ('proposed', 500000.0)
    """

    # The only preprocessing class is the TokComProcessor, loaded in `__init__` (the base class keeps `pipeline()`
    # from guessing tokenizers, feature extractors or processors from the model folder).
    task_name = TASK

    def __new__(cls, model=None, *args, **kwargs):
        """TaiChi and UniToCom models answer questions about an image: `pipeline("token-comm-vqa", model=TAICHI)`
        builds `TaiChiVQAPipeline`, `model=UNITOCOM` builds `UniToComVQAPipeline` (inputs `{"image", "question"}`)."""
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if cls is TokenCommVQAPipeline and model_type == "taichi":
            from .token_comm_taichi import TaiChiVQAPipeline

            return TaiChiVQAPipeline(model, *args, **kwargs)
        if cls is TokenCommVQAPipeline and model_type == "unitocom":
            from .token_comm_unitocom import UniToComVQAPipeline

            return UniToComVQAPipeline(model, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        model,
        tokenizer=None,
        feature_extractor=None,
        image_processor=None,
        video_processor=None,
        processor=None,
        **kwargs,
    ):
        refuse_preprocessors(TASK, image_processor=image_processor, video_processor=video_processor)
        if not (hasattr(model, "answer") and hasattr(getattr(model, "config", None), "max_tokens")):
            raise ValueError(f"`model` must be a TokComForAVQA, got {type(model).__name__}.")
        processor = _resolve_processor(model, processor, tokenizer, feature_extractor)
        super().__init__(
            model,
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            processor=processor,
            **kwargs,
        )
        self._plan_at_construction()

    def read_input(self, inputs) -> dict:
        """One input dict, checked -> `{"video": uint8 (frames, H, W, 3), "audio": float32 (samples,) at the
        processor's rate, "question": str}` (files read, nothing featurized yet)."""
        if not isinstance(inputs, dict):
            raise ValueError(
                f"Each input must be a dict with 'video', 'audio' and 'question', got {type(inputs).__name__}."
            )
        unknown = sorted(set(inputs) - set(INPUT_KEYS))
        if unknown:
            raise ValueError(f"Unknown input key(s) {unknown}; allowed: {list(INPUT_KEYS)}.")
        for key in ("video", "audio", "question"):
            if inputs.get(key) is None:
                raise ValueError(f"`{key}` is missing from the input; give 'video', 'audio' and 'question'.")
        question = check_text(inputs["question"], "question", MAX_QUESTION_CHARS)
        video = _load_video(inputs["video"])
        audio = self._load_audio(inputs["audio"], inputs.get("sampling_rate"))
        return {"video": video, "audio": audio, "question": question}

    def featurize(self, items: list) -> dict:
        """`read_input` results -> the model's inputs for them as one batch (the processor's tensors and each
        question's token count); questions over the model's context are refused, unknown words warned about."""
        questions = [item["question"] for item in items]
        rate = self.processor.feature_extractor.sampling_rate
        batch = self.processor(
            text=questions, videos=[item["video"] for item in items], audio=[item["audio"] for item in items],
            sampling_rate=rate,
        )  # fmt: skip
        question_tokens = check_prompt_tokens(self.processor.tokenizer, questions, batch["input_ids"],
                                              batch["attention_mask"], max_question_tokens(self.model.config))  # fmt: skip
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "pixel_values_videos": batch["pixel_values_videos"].to(self.dtype),
            "input_values": batch["input_values"].to(self.dtype),
            "question_tokens": question_tokens,
        }

    def _forward(
        self,
        model_inputs,
        links=None,
        channel_type=None,
        seed=None,
        max_new_tokens=None,
    ) -> dict:
        generator = self.generator(seed)
        output = self.model.answer(
            input_ids=model_inputs["input_ids"],
            attention_mask=model_inputs["attention_mask"],
            pixel_values_videos=model_inputs["pixel_values_videos"],
            input_values=model_inputs["input_values"],
            links=links,
            generator=generator,
            channel_type=channel_type,
            max_new_tokens=max_new_tokens,
        )
        # the question's length rides along: the text link's report needs it
        return {
            "sequences": output.sequences,
            "scores": output.scores,
            "question_tokens": model_inputs["question_tokens"],
        }

    def postprocess(self, model_outputs, plan: LinkPlan) -> dict:
        # the question's length is known only now: its tokens and, with a network, its latency (eq. 14)
        question_tokens = int(model_outputs["question_tokens"].reshape(-1)[0])
        symbols_per_token = math.ceil(self.model.config.text_config.hidden_size / 2)  # d_T reals -> complex (eq. 4)
        return {
            "answer": self.processor.batch_decode(model_outputs["sequences"])[0],
            "score": float(model_outputs["scores"].reshape(-1)[0]),
            "transmission": plan.report({"text": question_tokens}, symbols_per_token),
        }

    # ------------------------------------------------------------------ inputs

    def _load_audio(self, audio, sampling_rate) -> np.ndarray:
        """The input's waveform as float32 mono at the processor's rate; a .wav path is resampled, an array is not."""
        expected = int(self.processor.feature_extractor.sampling_rate)
        if isinstance(audio, dict):
            unknown = sorted(set(audio) - set(AUDIO_DICT_KEYS))
            if unknown:
                raise ValueError(f"Unknown key(s) {unknown} in `audio`; allowed: {list(AUDIO_DICT_KEYS)}.")
            if audio.get("array") is not None:
                inner = audio.get("sampling_rate")
                if inner is not None and sampling_rate is not None and inner != sampling_rate:
                    raise ValueError(
                        f"`sampling_rate` ({sampling_rate}) and `audio['sampling_rate']` ({inner}) disagree."
                    )
                sampling_rate = inner if inner is not None else sampling_rate
                audio = audio["array"]
            elif audio.get("path") is not None:
                audio = audio["path"]
            else:
                raise ValueError("`audio` as a dict needs 'array' and 'sampling_rate' (or 'path' to a .wav file).")
        if isinstance(audio, (str, os.PathLike)):
            if sampling_rate is not None:
                raise ValueError("`sampling_rate` is read from the .wav file; do not give it with an `audio` path.")
            return _read_wav(audio, expected)
        if sampling_rate is None:
            raise ValueError(
                f"`sampling_rate` is missing: give the waveform's rate ({expected} Hz), e.g. "
                f"`{{'array': wave, 'sampling_rate': {expected}}}`."
            )
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real) or sampling_rate != expected:
            raise ValueError(
                f"`sampling_rate` must be {expected} Hz for an in-memory waveform, got {sampling_rate!r}; resample it "
                "first (a .wav path is resampled for you)."
            )
        wave = np.asarray(audio)
        if wave.ndim != 1:
            raise ValueError(f"`audio` must be a mono waveform of shape (samples,), got shape {wave.shape}.")
        check_duration(wave.shape[0], expected, "audio")
        return _check_wave(_pcm_to_float(wave), "audio")


# ---------------------------------------------------------------------------------------------
# Helpers (plain functions: inputs and parameters -> validated values)
# ---------------------------------------------------------------------------------------------


def _resolve_processor(model, processor, tokenizer, feature_extractor) -> TokComProcessor:
    """The given processor, or `TokComProcessor.from_pretrained(model.name_or_path)`; `tokenizer`/`feature_extractor`
    (objects or paths) replace its parts."""
    if isinstance(tokenizer, TokComProcessor) and processor is None:  # a processor passed as `tokenizer`
        processor, tokenizer = tokenizer, None
    if processor is None:
        source = getattr(model, "name_or_path", None) or ""
        try:
            processor = TokComProcessor.from_pretrained(source)
        except (OSError, ValueError) as error:
            if isinstance(error, ValueError) and os.path.isdir(source):
                raise  # a damaged file in the model's folder: the processor's own message names it
            raise ValueError(
                f"No TokComProcessor found at the model's `name_or_path` ({source!r}); pass `processor=`."
            ) from error
    elif isinstance(processor, (str, os.PathLike)):
        processor = TokComProcessor.from_pretrained(processor)
    for attribute in ("tokenizer", "feature_extractor", "process_videos", "process_audio", "batch_decode"):
        if not hasattr(processor, attribute):
            raise ValueError(f"`processor` must be a TokComProcessor, got {type(processor).__name__}.")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    if isinstance(feature_extractor, (str, os.PathLike)):
        feature_extractor = AutoFeatureExtractor.from_pretrained(feature_extractor)
    if tokenizer is not None or feature_extractor is not None:
        processor = TokComProcessor(
            feature_extractor if feature_extractor is not None else processor.feature_extractor,
            tokenizer if tokenizer is not None else processor.tokenizer,
            num_frames=processor.num_frames,
            frame_size=processor.frame_size,
            video_mean=processor.video_mean,
            video_std=processor.video_std,
        )
    audio_config = getattr(model.config, "audio_config", None)
    for field in ("num_mel_bins", "max_length"):  # features of another shape would be answered, wrongly
        expected, got = getattr(audio_config, field, None), getattr(processor.feature_extractor, field, None)
        if expected is not None and got is not None and expected != got:
            raise ValueError(
                f"The processor's feature extractor has {field}={got} but the model's audio encoder takes {expected}: "
                "its processor_config.json does not belong to this model."
            )
    vocab_size = model.config.text_config.vocab_size
    if len(processor.tokenizer) > vocab_size:
        raise ValueError(
            f"The tokenizer has {len(processor.tokenizer)} tokens but the model's vocabulary only {vocab_size}: "
            "they do not belong together."
        )
    return processor


def max_question_tokens(config) -> int | None:
    """Question tokens the model can use: its LLM's positions (`text_config.max_position_embeddings`) less the
    largest visual and audio prompts and the answer budget (`answer_max_new_tokens`); None when the config does not
    say (no bound is applied then)."""
    positions = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
    if not isinstance(positions, numbers.Integral):
        return None
    used = sum(int(getattr(config, key, 0) or 0) for key in ("max_visual_tokens", "max_audio_tokens", "answer_max_new_tokens"))
    return max(1, int(positions) - used)


def _load_video(video) -> np.ndarray:
    """uint8 frames `(frames, height, width, 3)` from an array or a folder of frame images (`media_io`)."""
    return load_frames(video, name="video")


def _pcm_to_float(wave: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1] by `media_io`'s one scaling rule; floats are cast to float32."""
    return pcm_to_float(wave, name="audio")


def _check_wave(wave: np.ndarray, field: str) -> np.ndarray:
    return check_waveform(wave, name=field)


def _read_wav(path, sampling_rate: int) -> np.ndarray:
    """A .wav file -> float32 mono at `sampling_rate` (channels averaged, polyphase resampling; `media_io`)."""
    return read_wav(path, sampling_rate=sampling_rate, name="audio").waveform


__all__ = ["TASK", "TEXT_LINK_DEFAULT_DISTANCE_KM", "TokenCommVQAPipeline", "UnknownWordsWarning", "max_question_tokens"]
