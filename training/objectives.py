"""Training objectives as `nn.Module`s, so accelerate/DDP wraps whatever a stage trains.

Each objective's `forward(**batch)` returns a scalar loss. Stages (see `train_tokcom.py`):

| stage           | objective           | trains                                   | paper            |
|-----------------|---------------------|------------------------------------------|------------------|
| pretrain_vision | `VisionPretraining` | ViViT + a scene-layout head              | (our unimodal pretraining) |
| pretrain_audio  | `AudioPretraining`  | AST + a sound-layout head                | (our unimodal pretraining) |
| pretrain_text   | `TextPretraining`   | the LLM: caption + question -> answer    | (our unimodal pretraining) |
| align           | `Alignment`         | F_m, G_m                                 | Sec. III-A, eqs. (9)-(10) |
| task            | `TaskFineTuning`    | LoRA, F_m, G_m (+ encoders if set)       | Sec. III-B, eq. (12) |
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tokcom.modeling.modeling_tokcom import TokComForAVQA, left_pad, sliding_window_pool

NUM_POSITIONS = 3  # left, middle, right
NUM_INSTRUMENT_CLASSES = 7  # 6 instruments + "empty"
NUM_INTERVALS = 4  # silent, full, first half, second half
NUM_GAIN_CLASSES = 4  # silent + 3 loudness levels


class VisionPretraining(nn.Module):
    """Every pooled visual token (at a length drawn per batch) predicts the whole visible layout:
    for each third, which instrument (or none) and when it moves. Trains E_visual to keep scene facts in
    every window, so any token length s_v carries them."""

    def __init__(self, model: TokComForAVQA):
        super().__init__()
        self.encoder = model.vision_encoder
        self.pooling = model.config.pooling
        self.max_tokens = model.config.max_visual_tokens
        self.head = nn.Linear(model.config.vision_config.hidden_size, NUM_POSITIONS * (NUM_INSTRUMENT_CLASSES + NUM_INTERVALS))

    def forward(self, pixel_values_videos, instruments, intervals, num_tokens: int) -> torch.Tensor:
        hidden = self.encoder(pixel_values=pixel_values_videos).last_hidden_state[:, 1:]
        logits = self.head(sliding_window_pool(hidden, num_tokens, self.pooling))  # (batch, s, 3 * 11)
        logits = logits.view(*logits.shape[:2], NUM_POSITIONS, NUM_INSTRUMENT_CLASSES + NUM_INTERVALS)
        instrument_target = (instruments[:, :NUM_POSITIONS] + 1).unsqueeze(1).expand(-1, logits.shape[1], -1)
        interval_target = intervals[:, :NUM_POSITIONS].unsqueeze(1).expand(-1, logits.shape[1], -1)
        loss_instrument = F.cross_entropy(logits[..., :NUM_INSTRUMENT_CLASSES].flatten(0, 2), instrument_target.flatten())
        # motion is only defined where an instrument is visible
        visible = (instrument_target > 0).flatten()
        loss_interval = F.cross_entropy(
            logits[..., NUM_INSTRUMENT_CLASSES:].flatten(0, 2)[visible], interval_target.flatten()[visible]
        )
        return loss_instrument + loss_interval


class AudioPretraining(nn.Module):
    """Every pooled audio token predicts, for each instrument, when it sounds and how loud (on or off screen)."""

    def __init__(self, model: TokComForAVQA, num_instruments: int = 6):
        super().__init__()
        self.encoder = model.audio_encoder
        self.pooling = model.config.pooling
        self.num_instruments = num_instruments
        self.head = nn.Linear(model.config.audio_config.hidden_size, num_instruments * (NUM_INTERVALS + NUM_GAIN_CLASSES))

    @staticmethod
    def targets(instruments, intervals, gain_levels, num_instruments: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-instrument interval and loudness classes `(batch, num_instruments)` from 4-slot layouts."""
        batch = instruments.shape[0]
        interval_target = torch.zeros(batch, num_instruments, dtype=torch.long, device=instruments.device)
        gain_target = torch.zeros_like(interval_target)
        present = instruments >= 0
        rows = torch.arange(batch, device=instruments.device).unsqueeze(1).expand_as(instruments)
        interval_target[rows[present], instruments[present]] = intervals[present]
        sounding = present & (intervals > 0)
        gain_target[rows[sounding], instruments[sounding]] = gain_levels[sounding] + 1
        return interval_target, gain_target

    def forward(self, input_values, instruments, intervals, gain_levels, num_tokens: int) -> torch.Tensor:
        hidden = self.encoder(input_values=input_values).last_hidden_state[:, 2:]
        logits = self.head(sliding_window_pool(hidden, num_tokens, self.pooling))
        logits = logits.view(*logits.shape[:2], self.num_instruments, NUM_INTERVALS + NUM_GAIN_CLASSES)
        interval_target, gain_target = self.targets(instruments, intervals, gain_levels, self.num_instruments)
        s = logits.shape[1]
        loss_interval = F.cross_entropy(
            logits[..., :NUM_INTERVALS].flatten(0, 2), interval_target.unsqueeze(1).expand(-1, s, -1).flatten()
        )
        loss_gain = F.cross_entropy(
            logits[..., NUM_INTERVALS:].flatten(0, 2), gain_target.unsqueeze(1).expand(-1, s, -1).flatten()
        )
        return loss_interval + loss_gain


class TextPretraining(nn.Module):
    """The LLM learns the task in text: [caption tokens][question tokens] -> answer (teacher forcing).

    The caption stands where the received media tokens will stand, so the LLM learns to read scene facts
    from a prefix and the answer vocabulary before it ever sees a received token.
    """

    def __init__(self, model: TokComForAVQA):
        super().__init__()
        self.language_model = model.language_model
        self.pad_token_id = model.config.text_config.pad_token_id or 0
        # the caption takes the place of the media tokens in the model's prompt order
        self.question_first = model.config.prompt_order.index("text") == 0

    def forward(self, caption_ids, caption_mask, input_ids, attention_mask, labels) -> torch.Tensor:
        answer_logits = self.answer_logits(caption_ids, caption_mask, input_ids, attention_mask, labels)
        return F.cross_entropy(answer_logits.float().flatten(0, 1), labels.flatten())

    def answer_logits(self, caption_ids, caption_mask, input_ids, attention_mask, labels) -> torch.Tensor:
        """Teacher-forced logits `(batch, answer_len, vocab)`; position j predicts answer token j."""
        embed = self.language_model.get_input_embeddings()
        parts = [(caption_ids, caption_mask), (input_ids, attention_mask)]
        if self.question_first:
            parts.reverse()
        prompt, prompt_mask = left_pad(embed(torch.cat([p[0] for p in parts], 1)), torch.cat([p[1] for p in parts], 1))
        answer_ids = labels.masked_fill(labels < 0, self.pad_token_id)
        embeds = torch.cat([prompt, embed(answer_ids)], dim=1)
        mask = torch.cat([prompt_mask, (labels >= 0).long()], dim=1)
        position_ids = (mask.cumsum(dim=1) - 1).clamp_min(0)
        logits = self.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).logits
        # answer token j is predicted at the position before it (the prompt ends on a real token)
        start = prompt.shape[1] - 1
        return logits[:, start : start + labels.shape[1]]


class Alignment(nn.Module):
    """Stage 1 (Sec. III-A): eq. (9) + eq. (10) through `TokComForAVQA.alignment_loss`."""

    def __init__(self, model: TokComForAVQA):
        super().__init__()
        self.model = model

    def forward(self, **batch) -> torch.Tensor:
        return self.model.alignment_loss(**batch).loss


class TaskFineTuning(nn.Module):
    """Stage 2 (Sec. III-B): answer cross-entropy (eq. 12) through the whole system."""

    def __init__(self, model: TokComForAVQA):
        super().__init__()
        self.model = model

    def forward(self, **batch) -> torch.Tensor:
        return self.model(**batch).loss


__all__ = ["Alignment", "AudioPretraining", "TaskFineTuning", "TextPretraining", "VisionPretraining"]
