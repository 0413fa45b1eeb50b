"""UniToComModel on the training engine: the latent MLLM (Sec. IV of `unitocom-genib.txt`) trained on its three tasks
over the tokenizers' adaptive links.

| stage | objective     | trains                                                        | what |
|-------|---------------|---------------------------------------------------------------|------|
| mllm  | `UniToComLoss` | the MLLM: `backbone`, `token_projections`, `lm_head` (tied), `diffusion_head` | L_LM (eq. 16) on VQA answers and ASR transcripts, L_Diff (eq. 19) on text-to-image tokens |

The tokenizers and their links (F_m, F_m^{-1}, T/R) are trained first by the tokenizer family's recipes
(`stages_unitocom_tokenizer`, Algorithm 1) and loaded here from `model.image_tokenizer_path` /
`model.audio_tokenizer_path`; this stage keeps them frozen, as the paper uses its tokenizers and adaptive coder
pretrained (Sec. V).

Each step trains one task, drawn by the stage's `tasks` weights:
- `vqa`: `[image placeholders] question answer <eos>`; the image crosses its link (SNR per sample, channel type per
  batch from the recipe's `channel` section) and the loss is L_LM on the answer and eos;
- `text_to_image`: `caption [image placeholders]`; the targets are the image tokenizer's clean tokens (what
  F_v^{-1} decodes at the base station) and the loss is L_Diff on every image token;
- `asr`: `[audio placeholders] transcript <eos>`; the utterance is cut into `asr_windows` windows of the audio
  tokenizer's `num_frames` (padded with silence), each window's tokens cross the audio link, and the loss is L_LM
  on the transcript and eos.
`ideal_link: true` sends over an ideal link (`channel_type="none"`) instead. Data: shapes-world images, questions
and captions (`TaiChiCorpus`, rendered at twice the image tokenizer's size and block-averaged, as its training did)
and espeak-ng utterances (`spoken_log_mels`). Batches come from `step_rng(stage, step)` (exact resume).

    tokcom train --recipe RECIPE --output-dir DIR        (a recipe with "family": "unitocom")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokcom.modeling.configuration_unitocom import UniToComConfig
from tokcom.modeling.decoding import answer_labels
from tokcom.modeling.modeling_unitocom import UniToComModel
from tokcom.modeling.tokenization_unitocom import MEL_FLOOR_DB, UniToComTokenizerModel
from tokcom.training.engine import FamilyStages
from tokcom.training.stages_unitocom_tokenizer import spoken_log_mels

STAGES = ("mllm",)
TASKS = ("vqa", "text_to_image", "asr")
MLLM_PREFIXES = ("backbone.", "token_projections.", "lm_head", "diffusion_head.")
TOKENIZER_PATH_KEYS = ("image_tokenizer_path", "audio_tokenizer_path")  # recipe `model` keys beside the config's
DATA_DEFAULTS = {"train_scenes": 2000, "validation_scenes": 200, "test_scenes": 500, "questions_per_scene": 10,
                 "max_objects": 3, "asr_utterances": 1000, "num_speakers": 4, "asr_windows": 4}  # fmt: skip
DEFAULT_TASKS = {"vqa": 1.0, "text_to_image": 1.0, "asr": 1.0}
SPEECH_SPLIT_OFFSET = {"train": 0, "validation": 1_000_003, "test": 2_000_003}  # held-out speech: other data seeds


@dataclass
class UniToComCorpus:
    """One split's data. images: uint8 `(scenes, 3, S, S)` at the image tokenizer's size; questions: dicts with
    image_index, question, answer, family; captions: strings per image; speech: log-mels [dB] `(windows, num_frames, mel)`
    per utterance; transcripts: their texts."""

    images: torch.Tensor
    questions: list
    captions: list
    speech: list
    transcripts: list
    graphs: list  # per image, the scene graph (`objects`: size, color, material, shape)

    @classmethod
    def build(cls, data: dict, config: UniToComConfig, seed: int, tasks, split: str = "train") -> UniToComCorpus:
        """The recipe's `data` section (`DATA_DEFAULTS` fill gaps) for `split` ("train", "validation", "test"):
        shapes-world scenes of that split (`TaiChiCorpus`; held-out sizes `validation_scenes` / `test_scenes`) and,
        when `tasks` has `asr`, `asr_utterances` utterances by other sentences and speakers per split (data seed
        `seed + SPEECH_SPLIT_OFFSET[split]`; the templates are few, so some held-out sentences also occur in
        training, with other voices)."""
        from tokcom.training.data.spoken import spoken_sentences
        from tokcom.training.data.world import child_seeds
        from tokcom.training.taichi_corpus import SPLIT_SIZE_KEYS, TaiChiCorpus

        if split not in SPLIT_SIZE_KEYS:
            raise ValueError(f"`split` must be one of {tuple(SPLIT_SIZE_KEYS)}, got {split!r}.")
        data = {**DATA_DEFAULTS, **data}
        size = config.image_tokenizer_config.image_size
        world = TaiChiCorpus.build({**{k: data[k] for k in SPLIT_SIZE_KEYS.values()},
                                    "questions_per_scene": data["questions_per_scene"], "max_objects": data["max_objects"],
                                    "image_size": 2 * size, "sentiment_sentences": 2, "seed": seed}, split)  # fmt: skip
        images = torch.from_numpy(np.ascontiguousarray(world.images.transpose(0, 3, 1, 2))).float()
        images = F.avg_pool2d(images, 2).round().to(torch.uint8)  # rendered at 2x, block-averaged
        speech, transcripts = [], []
        if "asr" in tasks:
            audio = config.audio_tokenizer_config
            count = int(data["asr_utterances"])
            speech_seed = seed + SPEECH_SPLIT_OFFSET[split]
            mels = spoken_log_mels(audio, count, int(data["num_speakers"]), speech_seed)
            texts = spoken_sentences(count, child_seeds(speech_seed, 2)[1])  # the texts `spoken_log_mels` spoke, in order
            frames = int(data["asr_windows"]) * audio.num_frames
            for mel, text in zip(mels, texts):
                if mel.shape[0] <= frames:  # utterances longer than the windows are left out (not cut mid-word)
                    mel = F.pad(mel, (0, 0, 0, frames - mel.shape[0]), value=MEL_FLOOR_DB)
                    speech.append(mel.reshape(int(data["asr_windows"]), audio.num_frames, audio.num_mel_bins))
                    transcripts.append(text)
            if not speech:
                raise ValueError(f"No utterance fits `data.asr_windows` = {data['asr_windows']} windows; raise it.")
        return cls(images, world.questions, world.captions, speech, transcripts, world.graphs)

    def texts(self) -> list[str]:
        """Every string (for the word tokenizer's vocabulary)."""
        return ([q["question"] for q in self.questions] + [q["answer"] for q in self.questions]
                + [c for group in self.captions for c in group] + self.transcripts)  # fmt: skip


def pack(tokenizer, placeholder_id: int, num_placeholders: int, prefix_texts, answers=None) -> dict:
    """Sequences for the MLLM, right-padded: `[placeholders] prefix answer <eos>` with `labels` on the answer and eos
    (understanding: VQA, ASR), or with `answers=None` `prefix [placeholders]` (text-to-image).

    Returns `input_ids`, `attention_mask` `(batch, sequence)` and, with answers, `labels` (-100 off the answer).
    """
    marks = [placeholder_id] * num_placeholders
    prefixes = [tokenizer(text, add_special_tokens=False)["input_ids"] if text else [] for text in prefix_texts]
    if answers is None:
        rows, label_rows = [p + marks for p in prefixes], None
    else:
        targets = answer_labels(tokenizer, answers).tolist()  # ids + eos, -100 padded
        targets = [[t for t in row if t != -100] for row in targets]
        rows = [marks + p + t for p, t in zip(prefixes, targets)]
        label_rows = [[-100] * (num_placeholders + len(p)) + t for p, t in zip(prefixes, targets)]
    width, pad = max(len(row) for row in rows), tokenizer.pad_token_id
    batch = {"input_ids": torch.tensor([row + [pad] * (width - len(row)) for row in rows]),
             "attention_mask": torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])}  # fmt: skip
    if label_rows is not None:
        batch["labels"] = torch.tensor([row + [-100] * (width - len(row)) for row in label_rows])
    return batch


class UniToComLoss(nn.Module):
    """One task's batch -> `UniToComModel(...).loss`. Images / audio windows go through the frozen tokenizers and
    their links first (`model.send`); text-to-image targets are the image tokenizer's clean tokens."""

    def __init__(self, model: UniToComModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels=None, images=None, speech=None, snr_db=None,
                channel_type="none", generator=None) -> torch.Tensor:  # fmt: skip
        model, image_tokens, audio_tokens, diffusion_mask = self.model, None, None, None
        with torch.no_grad():
            if images is not None and labels is None:  # text-to-image: clean targets
                image_tokens = model.send("image", images, channel_type="none")
                diffusion_mask = torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=image_tokens.device)
            elif images is not None:  # VQA: the received image tokens
                image_tokens = model.send("image", images, snr_db, channel_type, generator=generator)
            if speech is not None:  # ASR: every window over the audio link, tokens concatenated
                snr = None if snr_db is None else torch.as_tensor(snr_db)
                audio_tokens = model.receive("audio", speech, snr, channel_type, generator=generator)
        return model(input_ids=input_ids, attention_mask=attention_mask, image_tokens=image_tokens,
                     audio_tokens=audio_tokens, labels=labels, diffusion_mask=diffusion_mask, generator=generator).loss


class UniToComStages(FamilyStages):
    """UniToCom's MLLM stage on the shapes world and espeak-ng speech (`UniToComCorpus`).

    >>> UniToComStages.stages
    ('mllm',)
    """

    stages = STAGES
    stage_keys = ("tasks", "ideal_link")
    data_keys = tuple(DATA_DEFAULTS)
    find_unused_parameters = True  # a text-to-image step leaves the LM head without a gradient, VQA / ASR the diffusion head

    @classmethod
    def model_keys(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(UniToComConfig)) + TOKENIZER_PATH_KEYS

    @classmethod
    def setup(cls, recipe: dict, start_from: str | Path | None, output_dir: Path) -> UniToComStages:
        from transformers import PreTrainedTokenizerFast

        from tokcom.training.tokenization import build_word_tokenizer

        settings = dict(recipe.get("model", {}))
        paths = {key: settings.pop(key, None) for key in TOKENIZER_PATH_KEYS}
        tasks = {task for stage in recipe["stages"].values() for task, w in (stage.get("tasks") or DEFAULT_TASKS).items()
                 if w > 0}  # fmt: skip
        if start_from:
            model = UniToComModel.from_pretrained(start_from)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(start_from)
        else:
            for key in ("image", "audio"):  # the tokenizers' configs come with their checkpoints
                if paths[f"{key}_tokenizer_path"]:
                    settings[f"{key}_tokenizer_config"] = UniToComTokenizerModel.from_pretrained(
                        paths[f"{key}_tokenizer_path"]).config.to_dict()  # fmt: skip
            model = UniToComModel(UniToComConfig.tiny(**settings))
            for key in ("image", "audio"):
                if paths[f"{key}_tokenizer_path"]:
                    loaded = UniToComTokenizerModel.from_pretrained(paths[f"{key}_tokenizer_path"])
                    model.tokenizer(key).load_state_dict(loaded.state_dict())
        seed = int(recipe.get("seed", 0))
        corpus = UniToComCorpus.build(recipe.get("data", {}), model.config, seed, tasks)
        if not start_from:  # the placeholder ids (the vocabulary's last two) stay out of the words
            tokenizer = build_word_tokenizer(corpus.texts(), max_vocab_size=model.config.text_config.vocab_size - 2)
        return cls(recipe, model, tokenizer, corpus, output_dir)

    def objective(self, stage: str) -> nn.Module:
        return UniToComLoss(self.model)

    def trainable_parameters(self, stage: str, stage_recipe: dict) -> list[str]:
        return [name for name, _ in self.model.named_parameters() if name.startswith(MLLM_PREFIXES)]

    def batch(self, stage: str, step: int, stage_recipe: dict, rank: int, world: int) -> dict:
        """`step`'s task and global batch from `step_rng`, this rank's slice of it, and its link settings."""
        rng = self.step_rng(stage, step)
        per_rank = int(stage_recipe["batch_size"])
        total = per_rank * world
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        weights = stage_recipe.get("tasks") or DEFAULT_TASKS
        task = self.draw_task(rng, weights)
        batch = {key: value[mine] for key, value in self.task_batch(task, rng, total).items()}
        if task != "text_to_image" and not stage_recipe.get("ideal_link", False):
            batch["snr_db"] = self.draw_snr_db(rng, ("link",), total)["link"][mine]
            batch["channel_type"] = self.draw_channel_type(rng)
        batch["generator"] = torch.Generator().manual_seed(int(rng.integers(2**31)) + rank)
        return batch

    def task_batch(self, task: str, rng: np.random.Generator, size: int) -> dict:
        """`size` random examples of `task` as `UniToComLoss` inputs."""
        corpus, config, tokenizer = self.data, self.model.config, self.processor
        if task == "vqa":
            rows = [corpus.questions[i] for i in rng.choice(len(corpus.questions), size)]
            batch = pack(tokenizer, config.image_token_id, config.image_tokenizer_config.num_tokens,
                         [row["question"] for row in rows], [row["answer"] for row in rows])  # fmt: skip
            batch["images"] = corpus.images[[row["image_index"] for row in rows]].float() / 255.0
        elif task == "text_to_image":
            picks = rng.choice(len(corpus.images), size)
            captions = [corpus.captions[i][int(rng.integers(len(corpus.captions[i])))] for i in picks]
            batch = pack(tokenizer, config.image_token_id, config.image_tokenizer_config.num_tokens, captions)
            batch["images"] = corpus.images[torch.from_numpy(picks)].float() / 255.0
        else:  # asr
            picks = rng.choice(len(corpus.speech), size)
            windows = corpus.speech[0].shape[0]
            batch = pack(tokenizer, config.audio_token_id, windows * config.audio_tokenizer_config.num_tokens,
                         [None] * size, [corpus.transcripts[i] for i in picks])  # fmt: skip
            batch["speech"] = torch.stack([corpus.speech[i] for i in picks])
        return batch

    @staticmethod
    def validate_stage(stage: str, settings: dict) -> None:
        FamilyStages.check_task_weights(stage, settings.get("tasks"), TASKS)
        if "ideal_link" in settings and not isinstance(settings["ideal_link"], bool):
            raise ValueError(f"Recipe field `stages.{stage}.ideal_link` must be true or false, got {settings['ideal_link']!r}.")

    @staticmethod
    def validate_data(data: dict) -> None:
        for key in DATA_DEFAULTS:
            value = data.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Recipe field `data.{key}` must be an integer >= 1, got {value!r}.")
        if data.get("max_objects", 1) > 6:
            raise ValueError(f"Recipe field `data.max_objects` must be in [1, 6], got {data['max_objects']!r}.")

    def save_checkpoint(self, folder: Path) -> None:
        """The model and its `UniToComProcessor` (the word tokenizer and the recipe's `asr_windows`), Hub format."""
        from tokcom.modeling.processing_unitocom import UniToComProcessor

        self.model.save_pretrained(folder)
        windows = int({**DATA_DEFAULTS, **self.recipe.get("data", {})}["asr_windows"])
        UniToComProcessor.from_model_config(self.model.config, self.processor, num_audio_windows=windows).save_pretrained(folder)


__all__ = ["STAGES", "TASKS", "UniToComCorpus", "UniToComLoss", "UniToComStages", "pack"]
