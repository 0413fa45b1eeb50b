"""In-memory tensors of an audio-visual QA corpus, shared by every training stage and the evaluator.

Media are stored once per scene (video as uint8, audio as AST filterbanks) and questions point at
their scene, so a corpus of 20,000 scenes with 5 questions each holds 20,000 videos, not 100,000.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from tokcom.modeling.processing_tokcom import TokComProcessor


@dataclass
class AVQATensors:
    """Scenes and questions ready to batch.

    Attributes:
        video (`torch.Tensor` uint8 of shape `(scenes, frames, H, W, 3)`).
        input_values (`torch.Tensor` of shape `(scenes, filterbank_frames, mel_bins)`): AST features.
        caption_ids, caption_mask (`torch.Tensor` of shape `(scenes, caption_tokens)`), or `None`.
        scene_index (`torch.LongTensor` of shape `(questions,)`): the scene each question is about.
        question_ids, question_mask (`torch.Tensor` of shape `(questions, question_tokens)`).
        labels (`torch.LongTensor` of shape `(questions, answer_tokens)`): answer ids + eos, -100 padding.
        answers, types (`list[str]`): ground-truth answer words and MUSIC-AVQA type strings per question.
        scene_targets (`dict[str, torch.Tensor]`, optional): synthetic-world layout for encoder pretraining:
            `instruments`, `intervals`, `gain_levels`, each `(scenes, 4)`.
        modal_caption_ids (`dict[str, torch.Tensor]`, optional): per modality (`"visual"`, `"audio"`) the word ids
            of what that sensor alone can describe, `(scenes, words)` (fixed-slot, so every scene has the same
            number of words). When present, the text stage reads these in place of the media and the alignment
            stage aligns each received media token to one of their words (`modal_captions`).
    """

    video: torch.Tensor
    input_values: torch.Tensor
    scene_index: torch.Tensor
    question_ids: torch.Tensor
    question_mask: torch.Tensor
    labels: torch.Tensor
    answers: list
    types: list
    caption_ids: torch.Tensor | None = None
    caption_mask: torch.Tensor | None = None
    scene_targets: dict | None = None
    modal_caption_ids: dict | None = None

    @property
    def num_scenes(self) -> int:
        return self.video.shape[0]

    @property
    def num_questions(self) -> int:
        return self.scene_index.shape[0]

    @classmethod
    def build(
        cls,
        processor: TokComProcessor,
        video: np.ndarray,
        audio: np.ndarray,
        sampling_rate: int,
        questions: list[dict],
        captions: list[str] | None = None,
        scene_targets: dict | None = None,
        batch_size: int = 1024,
    ) -> AVQATensors:
        """`video` `(scenes, T, H, W, 3)` uint8, `audio` `(scenes, samples)`, `questions` rows with `scene_index`,
        `question`, `anser`, `type` (MUSIC-AVQA keys) -> tensors. Filterbanks are computed in chunks."""
        if len(video) != len(audio):
            raise ValueError(f"`video` and `audio` must hold the same scenes, got {len(video)} and {len(audio)}.")
        features = [
            processor.process_audio(list(audio[start : start + batch_size]), sampling_rate)
            for start in range(0, len(audio), batch_size)
        ]
        question_batch = processor(text=[row["question"] for row in questions], answers=[row["anser"] for row in questions])
        caption_ids = caption_mask = None
        if captions is not None:
            encoded = processor.tokenizer(list(captions), padding=True, return_tensors="pt")
            caption_ids, caption_mask = encoded["input_ids"], encoded["attention_mask"]
        return cls(
            video=torch.from_numpy(np.ascontiguousarray(video)),
            input_values=torch.cat(features),
            scene_index=torch.tensor([row["scene_index"] for row in questions], dtype=torch.long),
            question_ids=question_batch["input_ids"],
            question_mask=question_batch["attention_mask"],
            labels=question_batch["labels"],
            answers=[row["anser"] for row in questions],
            types=[row["type"] if isinstance(row["type"], str) else json.dumps(row["type"]) for row in questions],
            caption_ids=caption_ids,
            caption_mask=caption_mask,
            scene_targets={k: torch.as_tensor(np.asarray(v), dtype=torch.long) for k, v in (scene_targets or {}).items()}
            or None,
        )

    @classmethod
    def from_dataset(cls, processor: TokComProcessor, dataset, captions_column: str | None = None) -> AVQATensors:
        """A per-question `datasets.Dataset` (synthetic generator or `load_music_avqa` schema) -> tensors.

        Rows that share a `video_id` share one copy of the media.
        """
        video_ids = dataset["video_id"]
        first_row = {}
        for row_index, video_id in enumerate(video_ids):
            first_row.setdefault(video_id, row_index)
        scene_of = {video_id: scene for scene, video_id in enumerate(first_row)}
        media = dataset.select(list(first_row.values())).with_format("numpy", dtype=None)
        rates = set(np.asarray(media["sampling_rate"]).tolist())
        if len(rates) != 1:
            raise ValueError(f"All clips must share one `sampling_rate`, got {sorted(rates)}.")
        questions = [
            {"scene_index": scene_of[v], "question": q, "anser": a, "type": t}
            for v, q, a, t in zip(video_ids, dataset["question"], dataset["anser"], dataset["type"])
        ]
        captions = list(media[captions_column]) if captions_column else None
        return cls.build(processor, np.asarray(media["video"]), np.asarray(media["audio"]), rates.pop(), questions, captions)

    # ------------------------------------------------------------------ batching

    def video_batch(self, processor: TokComProcessor, scenes: torch.Tensor) -> torch.Tensor:
        """uint8 frames of `scenes` -> normalized `(batch, T, 3, H, W)` floats."""
        frames = self.video[scenes].permute(0, 1, 4, 2, 3).float() / 255.0
        return (frames - processor.video_mean) / processor.video_std

    @staticmethod
    def _trimmed(ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`rows` of right-padded `(n, width)` ids and mask, cut to the longest real row: `(batch, width')` each."""
        mask = mask[rows]
        width = int(mask.sum(dim=1).max())
        return ids[rows, :width], mask[:, :width]

    def _scene_captions(self, scenes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Caption ids and mask of `scenes` `(batch,)`, trimmed; `ValueError` if the corpus has no captions."""
        if self.caption_ids is None:
            raise ValueError("This corpus has no captions; build it with `captions=`.")
        return self._trimmed(self.caption_ids, self.caption_mask, scenes)

    def question_batch(self, processor: TokComProcessor, questions: torch.Tensor, media: bool = True) -> dict:
        """Model inputs for `questions` `(batch,)`: media of their scenes, question ids/mask trimmed, labels."""
        input_ids, attention_mask = self._trimmed(self.question_ids, self.question_mask, questions)
        labels = self.labels[questions]
        label_width = int((labels >= 0).sum(dim=1).max())
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels[:, :label_width]}
        if media:
            scenes = self.scene_index[questions]
            batch["pixel_values_videos"] = self.video_batch(processor, scenes)
            batch["input_values"] = self.input_values[scenes]
        return batch

    def modal_captions(self, scenes: torch.Tensor, num_tokens: dict[str, int]) -> dict[str, torch.Tensor]:
        """Each modality's description of `scenes` `(batch,)`, repeated (or cut) to `num_tokens[m]` words:
        `{m: (batch, num_tokens[m])}`. Word `i` of modality `m` is the target of its received token `i`, so a
        longer frame repeats the description (redundancy against noise) and a shorter one drops its tail."""
        if self.modal_caption_ids is None:
            raise ValueError("This corpus has no per-modality captions; build it with `data.caption_style='modal'`.")
        out = {}
        for modality, count in num_tokens.items():
            ids = self.modal_caption_ids[modality][scenes]
            out[modality] = ids[:, torch.arange(count) % ids.shape[1]]
        return out

    def text_stage_batch(self, processor: TokComProcessor, questions: torch.Tensor, num_tokens: dict[str, int] | None = None) -> dict:
        """Text-pretraining inputs for `questions` `(batch,)`: each question's scene caption (ids/mask trimmed, in
        place of the media) and the question batch without media.

        With per-modality captions, the caption is `modal_captions(scenes, num_tokens)` concatenated in the order
        of `num_tokens` (give it in the model's prompt order), exactly the words the aligned media tokens become.
        """
        scenes = self.scene_index[questions]
        if self.modal_caption_ids is not None:
            if num_tokens is None:
                raise ValueError("`num_tokens` (words per modality) is required with per-modality captions.")
            caption_ids = torch.cat(list(self.modal_captions(scenes, num_tokens).values()), dim=1)
            caption_mask = torch.ones_like(caption_ids)
        else:
            caption_ids, caption_mask = self._scene_captions(scenes)
        return {
            "caption_ids": caption_ids,
            "caption_mask": caption_mask,
            **self.question_batch(processor, questions, media=False),
        }

    def caption_batch(self, processor: TokComProcessor, scenes: torch.Tensor, questions: torch.Tensor | None = None) -> dict:
        """Alignment-stage inputs for `scenes` `(batch,)`: media and their caption tokens.

        With `questions` `(batch,)` (one about each scene), the text is the caption followed by the question, so
        the text receiver also learns to rebuild the words it will carry at inference (eq. 9).
        """
        ids, mask = self._scene_captions(scenes)
        if questions is not None:
            question_ids, question_mask = self._trimmed(self.question_ids, self.question_mask, questions)
            ids, mask = torch.cat([ids, question_ids], dim=1), torch.cat([mask, question_mask], dim=1)
        return {
            "pixel_values_videos": self.video_batch(processor, scenes),
            "input_values": self.input_values[scenes],
            "input_ids": ids,
            "attention_mask": mask,
        }


__all__ = ["AVQATensors"]
