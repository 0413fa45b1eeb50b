"""UniToCom tokenizers on the training engine: Algorithm 1 of `unitocom-genib.txt` as stages.

| stage     | objective        | trains                 | what                                                          |
|-----------|------------------|------------------------|---------------------------------------------------------------|
| tokenizer | `TokenizerLoss`  | F_alpha, F_beta        | eq. (13) with eq. (14) on clean tokens (steps 4-6, 9-12)       |
| link      | `LinkLoss`       | T, R                   | token NMSE through the channel over SNRs, rates, constellations (the pretrained module of step 7) |
| joint     | `TokenizerLoss`  | F_alpha, F_beta (+T, R with `train_link`) | eq. (13) through T, the channel and R: all of Algorithm 1 |

Data (`data` section): images are shapes-world renders (`generate_shapes_scenes`, rendered at twice `image_size`
and block-averaged to `image_size`); audio is espeak-ng speech (`SpeechCache`, cached on disk) as log-mel
windows of `num_frames` frames. Every step's batch, crop offsets, SNRs [dB], rates, constellations, channel type
and noise come from `step_rng(stage, step)`, so a resumed run continues exactly.

    tokcom train --recipe training/recipes/unitocom_tokenizer_tiny.json --output-dir DIR
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tokcom.modeling.channel_coding import CONSTELLATIONS
from tokcom.modeling.configuration_unitocom import UniToComTokenizerConfig
from tokcom.modeling.tokenization_unitocom import MEL_FLOOR_DB, UniToComTokenizerModel, log_mel_spectrogram
from tokcom.training.engine import FamilyStages

STAGES = ("tokenizer", "link", "joint")
TOKENIZER_PREFIXES = ("encoder.", "decoder.")  # F_alpha, F_beta
LINK_PREFIXES = ("link.",)  # T, R


_RENDERED: dict[tuple, torch.Tensor] = {}  # (image_size, count, seed) -> images: one render per process


def shapes_images(config: UniToComTokenizerConfig, count: int, seed=0) -> torch.Tensor:
    """`count` shapes-world images `(count, 3, image_size, image_size)` uint8, rendered at 2x and block-averaged
    (remembered per process: several tokenizers trained in one run share one render)."""
    from tokcom.training.data.shapes_render import ShapesWorldConfig, generate_shapes_scenes

    key = (config.image_size, int(count), int(seed))
    if key not in _RENDERED:
        world = ShapesWorldConfig(image_size=2 * config.image_size, low_res_size=config.image_size)
        scenes = generate_shapes_scenes(count, seed, world)
        _RENDERED[key] = torch.from_numpy(np.ascontiguousarray(scenes.low_res().transpose(0, 3, 1, 2)))
    return _RENDERED[key]


def spoken_log_mels(config: UniToComTokenizerConfig, count: int, num_speakers: int = 4, seed=0,
                    cache_dir=None) -> list[torch.Tensor]:  # fmt: skip
    """`count` espeak-ng utterances by `num_speakers` speakers as log-mels [dB] `(frames, num_mel_bins)`, each at
    least `num_frames` long (short ones padded with the `MEL_FLOOR_DB` floor)."""
    import soundfile

    from tokcom.training.data.spoken import SAMPLING_RATE, SpeechCache, speakers, spoken_sentences
    from tokcom.training.data.world import child_seeds

    if config.sampling_rate != SAMPLING_RATE:
        raise ValueError(f"The spoken data is {SAMPLING_RATE} Hz; the config's `sampling_rate` is {config.sampling_rate}.")
    speaker_seed, text_seed = child_seeds(seed, 2)
    voices, texts = speakers(num_speakers, speaker_seed), spoken_sentences(count, text_seed)
    cache = SpeechCache(cache_dir)
    mels = []
    for index, text in enumerate(texts):
        wave, _ = soundfile.read(cache.flac(text, voices[index % num_speakers]), dtype="float32")
        mel = log_mel_spectrogram(wave, config)[0]
        if mel.shape[0] < config.num_frames:
            mel = nn.functional.pad(mel, (0, 0, 0, config.num_frames - mel.shape[0]), value=MEL_FLOOR_DB)
        mels.append(mel)
    return mels


def crop_log_mels(mels: list[torch.Tensor], picks, rng: np.random.Generator, num_frames: int) -> torch.Tensor:
    """One `num_frames` window of each picked log-mel (offsets drawn from `rng`): `(len(picks), num_frames, mel)`."""
    crops = []
    for index in picks:
        mel = mels[int(index)]
        start = int(rng.integers(0, mel.shape[0] - num_frames + 1))
        crops.append(mel[start : start + num_frames])
    return torch.stack(crops)


class TokenizerLoss(nn.Module):
    """eq. (13): `model(...).loss`, through T, the channel and R when `snr_db` is given (Algorithm 1, steps 4-11)."""

    def __init__(self, model: UniToComTokenizerModel):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, generator=None, **link) -> torch.Tensor:
        key = "pixel_values" if self.model.config.modality == "image" else "input_features"
        return self.model(**{key: inputs}, generator=generator, **link).loss


class LinkLoss(nn.Module):
    """T and R on the frozen tokenizer's mean tokens: `||R(h T(mu) + n) - mu||^2 / ||mu||^2` (token NMSE)."""

    def __init__(self, model: UniToComTokenizerModel):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, snr_db, channel_type=None, num_symbols_per_token=None,
                constellation=None, generator=None) -> torch.Tensor:  # fmt: skip
        key = "pixel_values" if self.model.config.modality == "image" else "input_features"
        with torch.no_grad():
            mean = self.model.encode(**{key: inputs}).mean
        received = self.model.transmit(mean, snr_db, num_symbols_per_token, channel_type, constellation, generator)
        return (received - mean).pow(2).mean() / mean.pow(2).mean().clamp_min(1e-8)


class UniToComTokenizerStages(FamilyStages):
    """The UniToCom tokenizer family's stages (one modality and bottleneck per recipe: the `model` section).

    >>> UniToComTokenizerStages.stages
    ('tokenizer', 'link', 'joint')
    """

    stages = STAGES
    stage_keys = ("symbols_per_token", "constellations", "train_link")
    data_keys = ("train_examples", "num_speakers")
    find_unused_parameters = True  # a step sends at one rate: the coder's other rate heads get no gradient (DDP)

    @classmethod
    def model_keys(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(UniToComTokenizerConfig))

    @classmethod
    def setup(cls, recipe: dict, start_from: str | Path | None, output_dir: Path) -> UniToComTokenizerStages:
        if start_from:
            model = UniToComTokenizerModel.from_pretrained(start_from)
        else:
            model = UniToComTokenizerModel(UniToComTokenizerConfig.tiny(**recipe.get("model", {})))
        data = recipe.get("data", {})
        count, seed = int(data.get("train_examples", 2000)), int(recipe.get("seed", 0))
        config = model.config
        if config.modality == "image":
            examples = shapes_images(config, count, seed)
        else:
            examples = spoken_log_mels(config, count, int(data.get("num_speakers", 4)), seed)
        return cls(recipe, model, None, examples, output_dir)

    def objective(self, stage: str) -> nn.Module:
        return LinkLoss(self.model) if stage == "link" else TokenizerLoss(self.model)

    def trainable_parameters(self, stage: str, stage_recipe: dict) -> list[str]:
        if stage == "tokenizer":
            prefixes = TOKENIZER_PREFIXES
        elif stage == "link":
            prefixes = LINK_PREFIXES
        else:
            prefixes = TOKENIZER_PREFIXES + (LINK_PREFIXES if stage_recipe.get("train_link", False) else ())
        return [name for name, _ in self.model.named_parameters() if name.startswith(prefixes)]

    def batch(self, stage: str, step: int, stage_recipe: dict, rank: int, world: int) -> dict:
        """`step`'s global batch drawn from `step_rng`, this rank's slice of it, and its link settings."""
        rng = self.step_rng(stage, step)
        per_rank = int(stage_recipe["batch_size"])
        total = per_rank * world
        picks = rng.choice(len(self.data), total, replace=len(self.data) < total)
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        config = self.model.config
        if config.modality == "image":
            inputs = self.data[torch.from_numpy(picks[mine])].float() / 255.0
        else:
            inputs = crop_log_mels(self.data, picks, rng, config.num_frames)[mine]  # offsets: every rank draws all
        batch = {"inputs": inputs}
        if stage != "tokenizer":  # SNR per sample, rate / constellation / channel type per batch
            batch["snr_db"] = self.draw_snr_db(rng, ("link",), total)["link"][mine]
            batch["channel_type"] = self.draw_channel_type(rng)
            rates = stage_recipe.get("symbols_per_token", config.link_symbols_per_token_choices)
            batch["num_symbols_per_token"] = int(rates[int(rng.integers(len(rates)))])
            constellations = stage_recipe.get("constellations", [config.link_constellation])
            batch["constellation"] = constellations[int(rng.integers(len(constellations)))]
        batch["generator"] = torch.Generator().manual_seed(int(rng.integers(2**31)) + rank)
        return batch

    def save_checkpoint(self, folder: Path) -> None:
        self.model.save_pretrained(folder)

    @staticmethod
    def validate_stage(stage: str, settings: dict) -> None:
        rates = settings.get("symbols_per_token")
        if rates is not None and (not isinstance(rates, list) or not rates or any(
                isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in rates)):  # fmt: skip
            raise ValueError(f"Recipe field `stages.{stage}.symbols_per_token` must be a non-empty list of ints >= 1, got {rates!r}.")
        constellations = settings.get("constellations")
        if constellations is not None and (not isinstance(constellations, list) or not constellations
                                           or any(c not in CONSTELLATIONS for c in constellations)):  # fmt: skip
            raise ValueError(
                f"Recipe field `stages.{stage}.constellations` must be a non-empty list among {CONSTELLATIONS}, got {constellations!r}."
            )
        if "train_link" in settings and not isinstance(settings["train_link"], bool):
            raise ValueError(f"Recipe field `stages.{stage}.train_link` must be true or false, got {settings['train_link']!r}.")

    @staticmethod
    def validate_data(data: dict) -> None:
        for key in ("train_examples", "num_speakers"):
            value = data.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Recipe field `data.{key}` must be an integer >= 1, got {value!r}.")


__all__ = ["LinkLoss", "STAGES", "TokenizerLoss", "UniToComTokenizerStages", "crop_log_mels", "shapes_images",
           "spoken_log_mels"]  # fmt: skip
