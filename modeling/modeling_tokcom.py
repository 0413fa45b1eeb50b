"""TokComForAVQA: task-oriented multimodal token transmission (the TokCom letter, Sections II-III).

Data path for one sample (eq. numbers of `tokcom-avqa-letter.txt`):

    video  -> E_visual (ViViT) -> S_visual (sliding-window pooling to s_v) -> F_visual -> link -> G_visual -+
    audio  -> E_audio  (AST)   -> S_audio  (sliding-window pooling to s_a) -> F_audio  -> link -> G_audio  -+-> U -> W + LoRA
    question -> E_T (the LLM's input embeddings, eq. 1)                    ->            link -> G_text   -+     -> answer

Each link is a `TokenChannel` with its own SNR (eqs. 4-6); G_m are two linear layers with a ReLU (eq. 7); U
concatenates (eq. 8); W is the foundation LLM with a LoRA adapter (eq. 11). The answer is generated over the
LLM's vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .channel import TokenChannel
from .configuration_tokcom import MODALITIES, TokComConfig

LINKS = ("visual", "audio", "text")


@dataclass
class TokComOutput(ModelOutput):
    r"""Output of [`TokComForAVQA.forward`].

    Args:
        loss (`torch.Tensor` of shape `()`, *optional*): answer cross-entropy (eq. 12) when `labels` are given.
        logits (`torch.Tensor` of shape `(batch, sequence, vocab)`): LLM logits over the whole input sequence.
        visual_tokens, audio_tokens, text_tokens (`torch.Tensor` of shape `(batch, s_m, d_T)`): received tokens Y'_m
            as the LLM reads them (`(batch, min(s_m, L_m), d_T)` with `config.receiver_token_period`).
        visual_pooled, audio_pooled, text_pooled (`torch.Tensor` of shape `(batch, d_T)`): pooled vectors a_m.
        answer_start (`int`): index in `logits` of the first prompt position after which the answer begins.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    visual_tokens: torch.Tensor | None = None
    audio_tokens: torch.Tensor | None = None
    text_tokens: torch.Tensor | None = None
    visual_pooled: torch.Tensor | None = None
    audio_pooled: torch.Tensor | None = None
    text_pooled: torch.Tensor | None = None
    answer_start: int | None = None


@dataclass
class TokComAlignmentOutput(ModelOutput):
    r"""Output of [`TokComForAVQA.alignment_loss`] (stage 1, Sec. III-A).

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


@dataclass
class TokComAnswerOutput(ModelOutput):
    r"""Output of [`TokComForAVQA.answer`].

    Args:
        sequences (`torch.LongTensor` of shape `(batch, new_tokens)`): generated answer ids (eos then padding).
        scores (`torch.Tensor` of shape `(batch,)`): probability of each generated answer (product over tokens).
    """

    sequences: torch.LongTensor | None = None
    scores: torch.Tensor | None = None


def sliding_window_pool(tokens: torch.Tensor, num_tokens: int, mode: str = "avg") -> torch.Tensor:
    """S_m of eq. (3): split `(batch, s_hat, d)` into `num_tokens` consecutive windows and pool each -> `(batch, s, d)`."""
    pooled = tokens.transpose(1, 2)
    pooled = F.adaptive_avg_pool1d(pooled, num_tokens) if mode == "avg" else F.adaptive_max_pool1d(pooled, num_tokens)
    return pooled.transpose(1, 2)


def combine_repeats(tokens: torch.Tensor, period: int) -> torch.Tensor:
    """Average the tokens that repeat the same word: `(batch, s, d)` -> `(batch, min(s, period), d)`, output `j`
    the mean of inputs `j, j + period, j + 2 period, ...` (the receiver's repetition combining).

    >>> combine_repeats(torch.arange(5.0).view(1, 5, 1), period=2).flatten().tolist()
    [2.0, 2.0]
    """
    count = tokens.shape[1]
    if count <= period:
        return tokens
    slots = torch.arange(count, device=tokens.device) % period
    summed = tokens.new_zeros(tokens.shape[0], period, tokens.shape[2]).index_add_(1, slots, tokens)
    return summed / torch.bincount(slots, minlength=period).to(tokens.dtype).view(1, period, 1)


def left_pad(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move padded positions (mask 0) of `(batch, length, dim)` to the left, keeping the real tokens in order."""
    order = torch.argsort(mask, dim=1, stable=True)
    return embeds.gather(1, order.unsqueeze(-1).expand_as(embeds)), mask.gather(1, order)


class TokenReceiver(nn.Module):
    """G_m of eq. (7): two fully connected layers with a ReLU in between, `(batch, s, d_T) -> (batch, s, d_T)`.

    With `max_tokens`, a learned embedding of each token's index (0..s-1) in its frame is added first, so that
    G_m can decode tokens that carry the same content into different outputs.

    >>> receiver = TokenReceiver(hidden_size=8, receiver_hidden_size=16, max_tokens=4)
    >>> receiver(torch.zeros(2, 3, 8)).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, hidden_size: int, receiver_hidden_size: int, max_tokens: int | None = None):
        super().__init__()
        self.position_embeddings = nn.Embedding(max_tokens, hidden_size) if max_tokens else None
        self.fc1 = nn.Linear(hidden_size, receiver_hidden_size)
        self.fc2 = nn.Linear(receiver_hidden_size, hidden_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.position_embeddings is not None:
            tokens = tokens + self.position_embeddings.weight[: tokens.shape[1]]
        return self.fc2(F.relu(self.fc1(tokens)))


def encoder_sequence_length(config, modality: str) -> int:
    """Number of patch tokens the (ViViT or AST) encoder emits, special tokens excluded: s_hat_m of eq. (2)."""
    if modality == "visual":
        t, h, w = config.tubelet_size
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        return (config.num_frames // t) * (size // h) * (size // w)
    patch = config.patch_size if isinstance(config.patch_size, int) else config.patch_size[0]
    frequency_out = (config.num_mel_bins - patch) // config.frequency_stride + 1
    time_out = (config.max_length - patch) // config.time_stride + 1
    return frequency_out * time_out


class TokComPreTrainedModel(PreTrainedModel):
    config_class = TokComConfig
    # not "model": transformers 5.x renames `model.language_model.model.*` checkpoint keys
    base_model_prefix = "tokcom"
    main_input_name = "input_ids"
    input_modalities = ("video", "audio", "text")
    supports_gradient_checkpointing = False
    _supports_sdpa = True

class TokComForAVQA(TokComPreTrainedModel):
    r"""The TokCom system for audio-visual question answering, transmitters, links, receivers and LLM in one module.

    Example (tiny preset, random weights):

    >>> import torch
    >>> from tokcom.modeling import TokComConfig, TokComForAVQA
    >>> model = TokComForAVQA(TokComConfig.tiny()).eval()
    >>> video = torch.randn(2, 8, 3, 32, 32)          # (batch, frames, channels, height, width)
    >>> audio = torch.randn(2, 98, 64)                # (batch, filterbank frames, mel bins)
    >>> question = torch.randint(3, 256, (2, 6))      # (batch, question tokens)
    >>> out = model(pixel_values_videos=video, input_values=audio, input_ids=question,
    ...             snr_db={"visual": 10.0, "audio": 5.0, "text": 20.0}, num_visual_tokens=32, num_audio_tokens=16)
    >>> out.visual_tokens.shape, out.audio_tokens.shape
    (torch.Size([2, 32, 128]), torch.Size([2, 16, 128]))
    >>> model.config.max_visual_tokens, model.config.max_audio_tokens  # tiny preset: half of Table I
    (64, 32)
    """

    def __init__(self, config: TokComConfig):
        super().__init__(config)
        hidden_size = config.text_config.hidden_size
        for modality, encoder_config in (("visual", config.vision_config), ("audio", config.audio_config)):
            available = encoder_sequence_length(encoder_config, modality)
            if config.max_tokens(modality) > available:
                raise ValueError(
                    f"`max_{modality}_tokens` ({config.max_tokens(modality)}) exceeds the {available} tokens "
                    f"that the {modality} encoder emits; allowed range is 1..{available}."
                )
        # transmitters: E_m (eq. 2) and F_m (eq. 3)
        self.vision_encoder = AutoModel.from_config(config.vision_config, add_pooling_layer=False)
        self.audio_encoder = AutoModel.from_config(config.audio_config)
        self._reset_encoder_position_embeddings()
        self.visual_projector = nn.Linear(config.vision_config.hidden_size, hidden_size)
        self.audio_projector = nn.Linear(config.audio_config.hidden_size, hidden_size)
        # links (eqs. 4-6): one channel module, called once per modality with that link's SNR
        self.channel = TokenChannel(config.channel_config)
        # receivers G_m (eq. 7)
        indexed = config.receiver_position_embeddings
        self.receivers = nn.ModuleDict(
            {
                link: TokenReceiver(
                    hidden_size, config.receiver_hidden_size, config.max_tokens(link) if indexed and link != "text" else None
                )
                for link in LINKS
            }
        )
        # foundation model W (eq. 8) with a LoRA adapter (eq. 11)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        if config.use_lora:
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=list(config.lora_target_modules),
            )
            inject_adapter_in_model(lora, self.language_model)
        self.post_init()
        self._zero_lora_b()

    @torch.no_grad()
    def _zero_lora_b(self) -> None:
        # peft starts every adapter as the identity (lora_B = 0, eq. 11), but the LLM's own Linear init in
        # `post_init` redraws lora_B at random; `init.zeros_` leaves weights loaded from a checkpoint untouched.
        for module in self.language_model.modules():
            if isinstance(module, LoraLayer):
                for adapter in module.lora_B.values():
                    init.zeros_(adapter.weight)

    # ------------------------------------------------------------------ building blocks

    @torch.no_grad()
    def _reset_encoder_position_embeddings(self) -> None:
        # ViViT/AST built from a config start with all-zero position embeddings and special tokens (their own
        # `_init_weights`), which leaves the encoders unable to tell patches apart: use a truncated-normal start.
        # Weights loaded by `from_pretrained` overwrite these.
        for encoder, names in (
            (self.vision_encoder, ("position_embeddings", "cls_token")),
            (self.audio_encoder, ("position_embeddings", "cls_token", "distillation_token")),
        ):
            for name in names:
                nn.init.trunc_normal_(getattr(encoder.embeddings, name), std=encoder.config.initializer_range)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def _check_length(self, modality: str, num_tokens: int | None) -> int:
        maximum = self.config.max_tokens(modality)
        if num_tokens is None:
            return maximum
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or not 1 <= num_tokens <= maximum:
            raise ValueError(f"`num_{modality}_tokens` must be an integer in [1, {maximum}], got {num_tokens!r}.")
        return num_tokens

    @staticmethod
    def _link_snr(snr_db, link: str):
        if isinstance(snr_db, dict):
            unknown = set(snr_db) - set(LINKS)
            if unknown:
                raise ValueError(f"`snr_db` keys must be among {LINKS}, got {sorted(unknown)}.")
            return snr_db.get(link)
        return snr_db

    def transmit_visual(self, pixel_values_videos: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
        """Device side of the visual link: `(batch, frames, 3, H, W)` -> Y_visual `(batch, s_v, d_T)` (eqs. 2-3)."""
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                f"`pixel_values_videos` must have shape (batch, frames, channels, height, width), "
                f"got {tuple(pixel_values_videos.shape)}."
            )
        num_tokens = self._check_length("visual", num_tokens)
        hidden = self.vision_encoder(pixel_values=pixel_values_videos).last_hidden_state[:, 1:]  # drop [CLS]
        return self.visual_projector(sliding_window_pool(hidden, num_tokens, self.config.pooling))

    def transmit_audio(self, input_values: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
        """Device side of the audio link: filterbank `(batch, frames, mel)` -> Y_audio `(batch, s_a, d_T)` (eqs. 2-3)."""
        if input_values.dim() != 3:
            raise ValueError(f"`input_values` must have shape (batch, frames, mel_bins), got {tuple(input_values.shape)}.")
        num_tokens = self._check_length("audio", num_tokens)
        hidden = self.audio_encoder(input_values=input_values).last_hidden_state[:, 2:]  # drop [CLS], [DIST]
        return self.audio_projector(sliding_window_pool(hidden, num_tokens, self.config.pooling))

    def transmit_text(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Device side of the text link: Y_T = E_T(X_T), the LLM's input embeddings (eq. 1), `(batch, s_T, d_T)`."""
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, tokens), got {tuple(input_ids.shape)}.")
        return self.get_input_embeddings()(input_ids)

    def receive(self, link: str, tokens: torch.Tensor, snr_db=None, token_mask=None, **channel_kwargs) -> torch.Tensor:
        """Channel then receiver head: Y'_m = G_m(C_m^-1(h sqrt(p) C_m(Y_m) + n)) (eqs. 4-7), one output per token."""
        received = self.channel(tokens, snr_db=snr_db, token_mask=token_mask, **channel_kwargs)
        return self.receivers[link](received)

    def received_length(self, modality: str, num_tokens: int | None = None) -> int:
        """How many tokens of `modality` the LLM reads when `num_tokens` are sent: min(s_m, L_m) with
        `config.receiver_token_period`, else s_m."""
        num_tokens = self._check_length(modality, num_tokens)
        period = (self.config.receiver_token_period or {}).get(modality)
        return min(num_tokens, period) if period else num_tokens

    def transmit_and_receive(
        self,
        pixel_values_videos=None,
        input_values=None,
        input_ids=None,
        attention_mask=None,
        snr_db=None,
        num_visual_tokens=None,
        num_audio_tokens=None,
        generator=None,
        channel_type=None,
    ) -> dict[str, torch.Tensor]:
        """Run every present link: returns `{"visual": Y'_v, "audio": Y'_a, "text": Y'_T, "text_sent": Y_T}`, and with
        `config.receiver_token_period` also `"<modality>_per_token"`: G_m's output for every sent token before the
        repeats are combined."""
        channel_kwargs = {"generator": generator, "channel_type": channel_type}
        received = {}
        periods = self.config.receiver_token_period or {}
        for modality, transmit, media, num_tokens in (
            ("visual", self.transmit_visual, pixel_values_videos, num_visual_tokens),
            ("audio", self.transmit_audio, input_values, num_audio_tokens),
        ):
            if media is None:
                continue
            per_token = self.receive(modality, transmit(media, num_tokens), self._link_snr(snr_db, modality), **channel_kwargs)
            received[modality] = per_token
            if modality in periods:
                received[f"{modality}_per_token"] = per_token
                received[modality] = combine_repeats(per_token, periods[modality])
        if input_ids is not None:
            sent = self.transmit_text(input_ids)
            received["text_sent"] = sent
            received["text"] = self.receive(
                "text", sent, self._link_snr(snr_db, "text"), token_mask=attention_mask, **channel_kwargs
            )
        return received

    @staticmethod
    def pool_vector(tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """a_m: the masked mean of `(batch, s, d)` tokens -> `(batch, d)` (Sec. III-A)."""
        if mask is None:
            return tokens.mean(dim=1)
        weights = mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    # ------------------------------------------------------------------ stage 1: cross-modal alignment

    def alignment_loss(
        self,
        pixel_values_videos=None,
        input_values=None,
        input_ids=None,
        attention_mask=None,
        snr_db=None,
        num_visual_tokens=None,
        num_audio_tokens=None,
        generator=None,
        channel_type=None,
        visual_target_ids=None,
        audio_target_ids=None,
    ) -> TokComAlignmentOutput:
        """Stage-1 loss: eq. (9) on the received text (caption) tokens plus eq. (10) for each non-text modality.

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
        links = self.transmit_and_receive(
            pixel_values_videos, input_values, input_ids, attention_mask, snr_db,
            num_visual_tokens, num_audio_tokens, generator, channel_type,
        )  # fmt: skip
        mask = attention_mask.to(links["text"].dtype).unsqueeze(-1)
        # eq. (9): ||Y'_T - Y_T||^2 over the real tokens, relative to ||Y_T||^2 so that it weighs as much as eq. (10)
        # whatever the scale of the LLM's embeddings (1 means "predicts zeros")
        sent = links["text_sent"].detach()
        squared_error = ((links["text"] - sent).pow(2) * mask).sum()
        reconstruction = squared_error / (sent.pow(2) * mask).sum().clamp_min(1e-12)
        # the text side is the anchor of eq. (10): the contrastive loss moves the media transceivers, not G_T
        pooled = {"text": self.pool_vector(links["text"], attention_mask)}
        anchor = pooled["text"].detach()
        contrastive = []
        for modality in MODALITIES:
            if modality not in links:
                continue
            pooled[modality] = self.pool_vector(links[modality])
            # eq. (10): -log softmax over the batch of sim(a_m, a_T^k) / tau, positives on the diagonal
            similarity = F.normalize(pooled[modality], dim=-1) @ F.normalize(anchor, dim=-1).T
            targets = torch.arange(similarity.shape[0], device=similarity.device)
            contrastive.append(F.cross_entropy(similarity / self.config.contrastive_temperature, targets))
        contrastive = torch.stack(contrastive) if contrastive else reconstruction.new_zeros(0)
        token_alignment = []
        word_targets = {m: ids for m, ids in (("visual", visual_target_ids), ("audio", audio_target_ids)) if ids is not None}
        if word_targets:
            embeddings = self.get_input_embeddings().weight.detach()  # (vocab, d_T): the words tokens are pulled to
            directions = F.normalize(embeddings, dim=-1)  # once per call, shared by both modalities
        for modality, target_ids in word_targets.items():
            received = links.get(f"{modality}_per_token", links.get(modality))  # before repetition combining
            if received is None or target_ids.shape != received.shape[:2]:
                shape = tuple(received.shape[:2]) if received is not None else "no such link"
                raise ValueError(
                    f"`{modality}_target_ids` must have shape (batch, num_{modality}_tokens) = {shape}, "
                    f"got {tuple(target_ids.shape)}."
                )
            target = embeddings[target_ids]
            error = (received - target).pow(2).sum(-1).mean() / target.pow(2).sum(-1).mean().clamp_min(1e-12)
            # and the word must be the nearest in direction among all the vocabulary's (cosine / tau, as eq. (10))
            cosine = F.normalize(received, dim=-1) @ directions.T
            word = F.cross_entropy((cosine / self.config.contrastive_temperature).flatten(0, 1).float(), target_ids.flatten())
            token_alignment.append(error + word)
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

    # ------------------------------------------------------------------ stage 2 and inference

    def _send_and_concatenate(
        self, pixel_values_videos, input_values, input_ids, attention_mask, snr_db,
        num_visual_tokens, num_audio_tokens, generator, channel_type,
    ) -> tuple[dict, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Every link, then U (eq. 8): returns the received links, the prompt `(batch, length, d_T)` and its mask."""
        links = self.transmit_and_receive(
            pixel_values_videos, input_values, input_ids, attention_mask, snr_db,
            num_visual_tokens, num_audio_tokens, generator, channel_type,
        )  # fmt: skip
        if not links:
            raise ValueError("Give at least one of `pixel_values_videos`, `input_values`, `input_ids`.")
        first = next(iter(links.values()))
        prompt, mask = self._prompt(links, attention_mask, first.shape[0], first.device)
        return links, prompt, mask

    def _prompt(self, links: dict, attention_mask: torch.Tensor | None, batch: int, device) -> tuple:
        """U of eq. (8): concatenate the received tokens in `config.prompt_order` (paper: visual, audio, text) and
        build the matching attention mask. Padding is moved to the left so that the prompt always ends on a real
        token, whatever the tokenizer's padding side (a stable sort keeps the order of the real tokens)."""
        parts, masks = [], []
        for link in self.config.prompt_order:
            if link not in links:
                continue
            parts.append(links[link])
            if link == "text" and attention_mask is not None:
                masks.append(attention_mask.to(device=device, dtype=torch.long))
            else:
                masks.append(torch.ones(batch, links[link].shape[1], dtype=torch.long, device=device))
        if not parts:
            raise ValueError("Give at least one of `pixel_values_videos`, `input_values`, `input_ids`.")
        return left_pad(torch.cat(parts, dim=1), torch.cat(masks, dim=1))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        snr_db=None,
        num_visual_tokens: int | None = None,
        num_audio_tokens: int | None = None,
        generator: torch.Generator | None = None,
        channel_type: str | None = None,
        return_dict: bool | None = None,
    ) -> TokComOutput:
        r"""Send every modality over its link and run the LLM on the received tokens.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, question_tokens)`): the question, sent over the text link.
            attention_mask (`torch.Tensor` of shape `(batch, question_tokens)`, *optional*): 0 on question padding.
            pixel_values_videos (`torch.Tensor` of shape `(batch, frames, 3, height, width)`, *optional*).
            input_values (`torch.Tensor` of shape `(batch, filterbank_frames, mel_bins)`, *optional*): AST features.
            labels (`torch.LongTensor` of shape `(batch, answer_tokens)`, *optional*): answer ids ending in eos,
                right-padded with -100. They are appended after the prompt (teacher forcing) and scored (eq. 12).
            snr_db (`float`, `torch.Tensor` of shape `(batch,)`, or a dict `{"visual", "audio", "text"}` of those):
                SNR [dB] per link; `None` uses the channel config's default.
            num_visual_tokens, num_audio_tokens (`int`, *optional*): s_m in `[1, max]`; defaults to the maximum.
            generator (`torch.Generator`, *optional*): noise and fading draws.
            channel_type (`str`, *optional*): `"awgn"`, `"rayleigh"` or `"none"` for this call.
        """
        links, prompt, prompt_mask = self._send_and_concatenate(
            pixel_values_videos, input_values, input_ids, attention_mask, snr_db,
            num_visual_tokens, num_audio_tokens, generator, channel_type,
        )  # fmt: skip
        batch = prompt.shape[0]
        embeds, mask = prompt, prompt_mask
        if labels is not None:
            if labels.dim() != 2 or labels.shape[0] != batch:
                raise ValueError(f"`labels` must have shape ({batch}, answer_tokens), got {tuple(labels.shape)}.")
            answer_ids = labels.masked_fill(labels < 0, self.config.text_config.pad_token_id or 0)
            embeds = torch.cat([prompt, self.get_input_embeddings()(answer_ids)], dim=1)
            mask = torch.cat([prompt_mask, (labels >= 0).long()], dim=1)
        position_ids = (mask.cumsum(dim=1) - 1).clamp_min(0)
        logits = self.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).logits
        loss = None
        answer_start = prompt.shape[1] - 1
        if labels is not None:
            # eq. (12): cross-entropy of each answer token given the received tokens and the previous answer tokens
            answer_logits = logits[:, answer_start : answer_start + labels.shape[1]]
            loss = F.cross_entropy(answer_logits.float().reshape(-1, answer_logits.shape[-1]), labels.reshape(-1))
        return TokComOutput(
            loss=loss,
            logits=logits,
            visual_tokens=links.get("visual"),
            audio_tokens=links.get("audio"),
            text_tokens=links.get("text"),
            visual_pooled=self.pool_vector(links["visual"]) if "visual" in links else None,
            audio_pooled=self.pool_vector(links["audio"]) if "audio" in links else None,
            text_pooled=self.pool_vector(links["text"], attention_mask) if "text" in links else None,
            answer_start=answer_start,
        )

    @torch.no_grad()
    def answer(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        snr_db=None,
        num_visual_tokens: int | None = None,
        num_audio_tokens: int | None = None,
        generator: torch.Generator | None = None,
        channel_type: str | None = None,
        max_new_tokens: int | None = None,
    ) -> TokComAnswerOutput:
        """Greedy answer over the LLM vocabulary from the received tokens; stops at eos.

        Takes the same inputs as `forward` (without `labels`); returns answer ids and their probabilities.
        """
        max_new_tokens = max_new_tokens or self.config.answer_max_new_tokens
        eos_token_id = self.config.text_config.eos_token_id
        pad_token_id = self.config.text_config.pad_token_id or 0
        _, embeds, mask = self._send_and_concatenate(
            pixel_values_videos, input_values, input_ids, attention_mask, snr_db,
            num_visual_tokens, num_audio_tokens, generator, channel_type,
        )  # fmt: skip
        batch, device = embeds.shape[0], embeds.device
        position_ids = (mask.cumsum(dim=1) - 1).clamp_min(0)
        out = self.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, use_cache=True)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        log_score = torch.zeros(batch, device=device)
        sequences = []
        for _ in range(max_new_tokens):
            log_probs = out.logits[:, -1].float().log_softmax(dim=-1)
            best_log_prob, next_ids = log_probs.max(dim=-1)
            log_score = log_score + torch.where(finished, torch.zeros_like(best_log_prob), best_log_prob)
            next_ids = torch.where(finished, torch.full_like(next_ids, pad_token_id), next_ids)
            sequences.append(next_ids)
            finished = finished | (next_ids == eos_token_id)
            if finished.all():
                break
            mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=device)], dim=1)
            position_ids = position_ids[:, -1:] + 1
            out = self.language_model(
                inputs_embeds=self.get_input_embeddings()(next_ids[:, None]),
                attention_mask=mask,
                position_ids=position_ids,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        return TokComAnswerOutput(sequences=torch.stack(sequences, dim=1), scores=log_score.exp())

    # ------------------------------------------------------------------ loading the paper's backbones

    @classmethod
    def from_backbones(cls, config: TokComConfig, **from_pretrained_kwargs) -> TokComForAVQA:
        """Build the system and load pretrained encoders and LLM named in `config.backbones`
        (`{"text": ..., "audio": ..., "vision": ...}`, e.g. `TokComConfig.paper()`), locally or from the Hub cache.
        """
        if not config.backbones:
            raise ValueError("`config.backbones` must name the pretrained 'text', 'audio' and 'vision' models.")
        model = cls(config)
        pretrained = {
            "vision_encoder": AutoModel.from_pretrained(
                config.backbones["vision"], add_pooling_layer=False, **from_pretrained_kwargs
            ),
            "audio_encoder": AutoModel.from_pretrained(config.backbones["audio"], **from_pretrained_kwargs),
            "language_model": AutoModelForCausalLM.from_pretrained(config.backbones["text"], **from_pretrained_kwargs),
        }
        for attribute, source in pretrained.items():
            # strict=False: the LLM's LoRA matrices are not in the pretrained checkpoint and keep their init
            missing, unexpected = getattr(model, attribute).load_state_dict(source.state_dict(), strict=False)
            missing = [key for key in missing if "lora_" not in key]
            if missing or unexpected:
                raise ValueError(f"Pretrained {attribute} does not match the config: missing={missing[:5]} unexpected={unexpected[:5]}")
        return model


__all__ = [
    "TokComAlignmentOutput",
    "TokComAnswerOutput",
    "TokComForAVQA",
    "TokComOutput",
    "TokComPreTrainedModel",
    "TokenReceiver",
    "combine_repeats",
    "left_pad",
    "sliding_window_pool",
]
