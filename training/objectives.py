"""Training objectives as `nn.Module`s, so accelerate/DDP wraps whatever a stage trains.

Each objective's `forward(**batch)` returns a scalar loss; which stage uses which, and what each trains, is the table
in `stages_tokcom.py`. The stage-1 loss (eqs. 9-10) is [`alignment_loss`]: a training objective, not part of the
Hub model code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dataclasses import dataclass

from transformers.utils import ModelOutput

from tokcom.modeling.configuration_tokcom import MODALITIES
from tokcom.modeling.modeling_tokcom import TokComForAVQA, left_pad, sliding_window_pool

NUM_POSITIONS = 3  # left, middle, right
NUM_INSTRUMENT_CLASSES = 7  # 6 instruments + "empty"
NUM_INTERVALS = 4  # silent, full, first half, second half
NUM_GAIN_CLASSES = 4  # silent + 3 loudness levels


@dataclass
class TokComAlignmentOutput(ModelOutput):
    r"""Output of [`alignment_loss`] (stage 1, Sec. III-A).

    Args:
        loss (`torch.Tensor` of shape `()`): `reconstruction_loss + sum_m contrastive_loss_m`.
        reconstruction_loss (`torch.Tensor` of shape `()`): eq. (9) on the received text tokens, relative to
            the sent tokens' energy.
        contrastive_loss (`torch.Tensor` of shape `(num_modalities,)`): eq. (10) per non-text modality.
        token_alignment_loss (`torch.Tensor` of shape `(num_modalities,)`, *optional*): eq. (9) applied to each
            non-text modality whose target words were given (`visual_target_ids`, `audio_target_ids`).
        visual_pooled, audio_pooled, text_pooled (`torch.Tensor` of shape `(batch, d_T)`): pooled vectors a_m.
    """

    loss: torch.Tensor | None = None
    reconstruction_loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    token_alignment_loss: torch.Tensor | None = None
    visual_pooled: torch.Tensor | None = None
    audio_pooled: torch.Tensor | None = None
    text_pooled: torch.Tensor | None = None


def word_embeddings(embedding, word_ids: torch.LongTensor) -> torch.Tensor:
    """Each slot as the sum of its words' input embeddings: word_ids `(batch, n, k)` (-1 pads a slot's unused
    words) -> `(batch, n, d)`, with `embedding` an `nn.Embedding` or any ids -> vectors callable (e.g. a model's
    scaled `embed_text`). A scene cell "small gray metal cube" becomes one vector that holds every word.

    >>> embedding = torch.nn.Embedding(4, 2, _weight=torch.eye(4, 2))
    >>> word_embeddings(embedding, torch.tensor([[[0, 1], [2, -1]]])).tolist()
    [[[1.0, 1.0], [0.0, 0.0]]]
    """
    valid = (word_ids >= 0).unsqueeze(-1)
    return (embedding(word_ids.clamp_min(0)) * valid).sum(-2)


def word_alignment_loss(tokens: torch.Tensor, target_ids: torch.LongTensor, embeddings: torch.Tensor,
                        temperature: float) -> torch.Tensor:
    """Token-level alignment (our addition to the papers' stage-1 alignment; TokCom's and TaiChi's defaults use
    it): each media token should become the input embedding of its target word, or the sum of its target words'
    embeddings (`word_embeddings`), so the LLM reads the tokens as it reads words.

    tokens `(batch, n, d)`; target_ids `(batch, n)`, or `(batch, n, k)` with -1 padding; embeddings `(vocab, d)`
    (the LLM's input embeddings; detached here, the targets do not move). Returns a scalar: eq. (9) applied to the
    tokens, `||y - E(w)||^2 / ||E(w)||^2` (normalized, so 1 means "predicts zeros"), plus the cross-entropy of each
    target word among all words with logits `cos(y, E(v)) / temperature` (the squared error alone leaves similar
    words confused), averaged over the target words.

    >>> embeddings = torch.eye(4)
    >>> exact = word_alignment_loss(embeddings[None, :3], torch.tensor([[0, 1, 2]]), embeddings, 0.1)
    >>> wrong = word_alignment_loss(embeddings[None, :3], torch.tensor([[1, 2, 0]]), embeddings, 0.1)
    >>> bool(exact < wrong)
    True
    """
    embeddings = embeddings.detach()
    target_ids = target_ids.unsqueeze(-1) if target_ids.dim() == tokens.dim() - 1 else target_ids
    valid = target_ids >= 0
    target = (embeddings[target_ids.clamp_min(0)] * valid.unsqueeze(-1)).sum(-2)
    error = (tokens - target).pow(2).sum(-1).mean() / target.pow(2).sum(-1).mean().clamp_min(1e-12)
    cosine = F.normalize(tokens, dim=-1) @ F.normalize(embeddings, dim=-1).T  # (batch, n, vocab)
    logits = (cosine / temperature).float().unsqueeze(-2).expand(*target_ids.shape, -1)
    word = F.cross_entropy(logits[valid], target_ids[valid])
    return error + word


def alignment_loss(
    model: TokComForAVQA,
    pixel_values_videos=None,
    input_values=None,
    input_ids=None,
    attention_mask=None,
    links=None,
    generator=None,
    visual_target_ids=None,
    audio_target_ids=None,
    **link_arguments,
) -> TokComAlignmentOutput:
    """Stage-1 loss of `model` (a [`TokComForAVQA`]): eq. (9) on the received text (caption) tokens plus eq. (10)
    for each non-text modality. Links as in `TokComForAVQA.forward` (`links=` or `snr_db=`, `num_<m>_tokens=`,
    `channel_type=`).

    `input_ids` hold the caption (e.g. VALOR's `desc`); the contrastive loss uses in-batch negatives.

    Token-level alignment (our addition, used by the embedded default): `visual_target_ids` /
    `audio_target_ids` `(batch, s_m)` give, for each received token of that modality, the word it should
    become, e.g. that modality's fixed-slot description repeated to `s_m` words. Their loss is eq. (9) on
    the modality, `||Y'_m - E_T(w)||^2 / ||E_T(w)||^2` (normalized, so 1 means "predicts zeros"), plus the
    cross-entropy of `w` among all words with logits `cos(Y'_m, E_T(v)) / tau` (the squared error alone leaves
    similar words, e.g. two loudness levels, confused). Added to the total, so the LLM reads the received media
    tokens as it reads words."""
    if input_ids is None:
        raise ValueError("`input_ids` (the caption tokens) are required for the alignment loss.")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    links = model.transmit_and_receive(
        pixel_values_videos, input_values, input_ids, attention_mask, links, generator, **link_arguments
    )
    mask = attention_mask.to(links["text"].dtype).unsqueeze(-1)
    # eq. (9): ||Y'_T - Y_T||^2 over the real tokens, relative to ||Y_T||^2 so that it weighs as much as eq. (10)
    # whatever the scale of the LLM's embeddings (1 means "predicts zeros")
    sent = links["text_sent"].detach()
    squared_error = ((links["text"] - sent).pow(2) * mask).sum()
    reconstruction = squared_error / (sent.pow(2) * mask).sum().clamp_min(1e-12)
    # the text side is the anchor of eq. (10): the contrastive loss moves the media transceivers, not G_T
    pooled = {"text": model.pool_vector(links["text"], attention_mask)}
    anchor = pooled["text"].detach()
    contrastive = []
    for modality in MODALITIES:
        if modality not in links:
            continue
        pooled[modality] = model.pool_vector(links[modality])
        # eq. (10): -log softmax over the batch of sim(a_m, a_T^k) / tau, positives on the diagonal
        similarity = F.normalize(pooled[modality], dim=-1) @ F.normalize(anchor, dim=-1).T
        targets = torch.arange(similarity.shape[0], device=similarity.device)
        contrastive.append(F.cross_entropy(similarity / model.config.contrastive_temperature, targets))
    contrastive = torch.stack(contrastive) if contrastive else reconstruction.new_zeros(0)
    token_alignment = []
    word_targets = {m: ids for m, ids in (("visual", visual_target_ids), ("audio", audio_target_ids)) if ids is not None}
    embeddings = model.get_input_embeddings().weight  # (vocab, d_T): the words tokens are pulled to
    for modality, target_ids in word_targets.items():
        received = links.get(f"{modality}_per_token", links.get(modality))  # before repetition combining
        if received is None or target_ids.shape != received.shape[:2]:
            shape = tuple(received.shape[:2]) if received is not None else "no such link"
            raise ValueError(
                f"`{modality}_target_ids` must have shape (batch, num_{modality}_tokens) = {shape}, "
                f"got {tuple(target_ids.shape)}."
            )
        token_alignment.append(word_alignment_loss(received, target_ids, embeddings, model.config.contrastive_temperature))
    token_alignment = torch.stack(token_alignment) if token_alignment else None
    loss = reconstruction + contrastive.sum()
    if token_alignment is not None:
        loss = loss + token_alignment.sum()
    return TokComAlignmentOutput(
        loss=loss,
        reconstruction_loss=reconstruction,
        contrastive_loss=contrastive,
        token_alignment_loss=token_alignment,
        visual_pooled=pooled.get("visual"),
        audio_pooled=pooled.get("audio"),
        text_pooled=pooled["text"],
    )



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
    """Stage 1 (Sec. III-A): eq. (9) + eq. (10) through [`alignment_loss`]."""

    def __init__(self, model: TokComForAVQA):
        super().__init__()
        self.model = model

    def forward(self, **batch) -> torch.Tensor:
        return alignment_loss(self.model, **batch).loss


class TaskFineTuning(nn.Module):
    """Stage 2 (Sec. III-B): answer cross-entropy (eq. 12) through the whole system."""

    def __init__(self, model: TokComForAVQA):
        super().__init__()
        self.model = model

    def forward(self, **batch) -> torch.Tensor:
        return self.model(**batch).loss


__all__ = [
    "Alignment",
    "AudioPretraining",
    "TaskFineTuning",
    "TextPretraining",
    "TokComAlignmentOutput",
    "word_alignment_loss",
    "word_embeddings",
    "VisionPretraining",
    "alignment_loss",
]
