"""TaiChiForConditionalGeneration: a VLM split across a wireless link (`taichi-vlm-tokencom.txt`, Secs. III-V).

Data path of one sample (equation numbers of the paper):

    image I  -> downsample -> I' -> V_l (CLIP ViT, eqs. 1-3) -> coarse tokens V_l -+
    image I  ----------------------> V_h (ConvNeXt, eq. 4)   -> fine tokens V_h   -+-> BAN B_eps (eqs. 5-7)
        -> pool to the visual token budget -> KAN projector P_zeta (eqs. 8-10) -> Z_v (eq. 11)
    instruction + query t -> E_theta (the LLM's embeddings)                      -> E(t)
    [E(t) ; Z_v] -> token encoder S_alpha: the LLM's first K layers (eq. 12)    -> Z       (device)
    Z -> channel encoder C_beta (eq. 13) -> channel Y^ = H Y + n (eq. 14) -> channel decoder C_gamma    (link)
      -> token decoder S_delta^-1: the LLM's other layers, norm and LM head (eq. 15) -> answer o  (base station)

What crosses the channel is the channel encoder's symbols and nothing else: the receiver gets no clean hidden
state and no KV cache of the transmitter's layers. The visual and the text positions of Z are sent as two links
(`"visual"`, `"text"`), each with its own SNR and channel type, through one channel coder.

How answer tokens see the prompt (our decision; the paper does not say). An answer token is generated at the base
station, so it cannot attend to the prompt inside the transmitter's K layers (their keys and values stayed at the
device). Each answer token therefore runs through layers 1..K attending only to the answer tokens before it
(positions continuing after the prompt's), and through layers K+1..L attending to the received prompt Z^ and the
answer tokens before it. Training (teacher forcing) uses exactly these masks, by running the same two passes over
the whole answer at once, so teacher-forced logits equal step-by-step generation (tested).

Weights: the LLM lives in two standard transformers models, `token_encoder` (layers 1..K, embeddings; its final
norm is an identity, since the transmitter sends the residual stream) and `token_decoder` (layers K+1..L and the
final norm; no embeddings), plus `lm_head` (tied to the embeddings when `config.tie_word_embeddings`: the paper preset follows its LLM,
the tiny preset has its own head). `from_backbones` loads a pretrained LLM into the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, DynamicCache, PreTrainedModel
from transformers.utils import ModelOutput

from .bilateral_attention import BilateralAttention, pool_tokens
from .channel import TokenChannel
from .channel_coding import AdaptiveChannelCoder
from .configuration_taichi import LINKS, TASKS, TaiChiConfig
from .decoding import sequence_probability
from .kan import KANLinear, KANProjector
from .links import Link, resolve_links
from .lora import attach_lora, zero_lora_b
from .random_draws import multinomial

LINK_INDEX = {name: index for index, name in enumerate(LINKS)}  # position labels of the prompt; -1 = padding


@dataclass
class TaiChiOutput(ModelOutput):
    r"""Output of [`TaiChiForConditionalGeneration.forward`].

    Args:
        loss (`torch.Tensor` of shape `()`, *optional*): cross-entropy on the response only (eqs. 16-17).
        logits (`torch.Tensor` of shape `(batch, answer_tokens, vocab)`): the LM head's logits for each answer token
            (position j predicts `labels[:, j]`); `(batch, 1, vocab)` for the first answer token without `labels`.
        sent (`torch.Tensor` of shape `(batch, prompt, d)`): Z, the token encoder's output (eq. 12).
        received (`torch.Tensor` of shape `(batch, prompt, d)`): C_gamma^-1(Y^), what the token decoder reads.
        prompt_mask (`torch.LongTensor` of shape `(batch, prompt)`): 1 on real prompt positions (left-padded).
        link_index (`torch.LongTensor` of shape `(batch, prompt)`): which link sends each position (`LINKS` index,
            -1 on padding).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    sent: torch.Tensor | None = None
    received: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None
    link_index: torch.Tensor | None = None


@dataclass
class TaiChiGenerateOutput(ModelOutput):
    r"""Output of [`TaiChiForConditionalGeneration.generate`] with `return_dict_in_generate=True`.

    Args:
        sequences (`torch.LongTensor` of shape `(batch, new_tokens)`): generated ids (eos, then padding).
        scores (`tuple[torch.Tensor]`): the logits `(batch, vocab)` of each step.
        sequence_scores (`torch.Tensor` of shape `(batch,)`): each answer's probability (product over its tokens).
        num_visual_tokens (`int`): visual tokens actually sent (the pooled grid may hold fewer than the budget).
    """

    sequences: torch.LongTensor | None = None
    scores: tuple | None = None
    sequence_scores: torch.Tensor | None = None
    num_visual_tokens: int | None = None


def split_text_config(text_config, first: int, count: int):
    """A copy of the LLM config holding `count` layers starting at layer `first` (layer types sliced to match)."""
    values = text_config.to_dict()
    values["num_hidden_layers"] = count
    if values.get("layer_types") is not None:
        values["layer_types"] = values["layer_types"][first : first + count]
    if values.get("max_window_layers") is not None:
        values["max_window_layers"] = max(0, min(count, values["max_window_layers"] - first))
    return type(text_config)(**values)


def left_pad_prompt(embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor):
    """Move padding (mask 0) of `(batch, length, d)` to the left; real positions keep their order."""
    order = torch.argsort(mask, dim=1, stable=True)
    gather = order.unsqueeze(-1).expand_as(embeds)
    return embeds.gather(1, gather), mask.gather(1, order), labels.gather(1, order)


class TaiChiPreTrainedModel(PreTrainedModel):
    config_class = TaiChiConfig
    base_model_prefix = "taichi"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, KANLinear):
            module.reset_parameters()
        else:
            super()._init_weights(module)


class TaiChiForConditionalGeneration(TaiChiPreTrainedModel):
    r"""The TaiChi token communication system: device (tokenizers, BAN, projector, token encoder, channel encoder),
    channel, and base station (channel decoder, token decoder, LM head).

    Example (tiny preset, random weights):

    >>> import torch
    >>> from tokcom.modeling import Link, TaiChiConfig, TaiChiForConditionalGeneration
    >>> model = TaiChiForConditionalGeneration(TaiChiConfig.tiny()).eval()
    >>> image = torch.randn(2, 3, 64, 64)                 # (batch, channels, height, width), the HR view
    >>> prompt = torch.randint(3, 512, (2, 7))            # instruction + question ids
    >>> labels = torch.tensor([[9, 2], [11, 2]])          # answer ids + eos
    >>> links = {"visual": Link(snr_db=10.0, num_tokens=4), "text": Link(snr_db=20.0)}
    >>> out = model(input_ids=prompt, pixel_values=image, labels=labels, links=links)
    >>> out.sent.shape, out.logits.shape                  # 4 visual + 7 text positions cross the channel
    (torch.Size([2, 11, 128]), torch.Size([2, 2, 512]))
    >>> model.generate(input_ids=prompt, pixel_values=image, links=links, max_new_tokens=3).shape
    torch.Size([2, 3])
    """

    _tied_weights_keys = {"lm_head.weight": "token_encoder.embed_tokens.weight"}

    def __init__(self, config: TaiChiConfig):
        super().__init__(config)
        text, hidden = config.text_config, config.text_config.hidden_size
        lr_width = config.vision_lr_config.hidden_size
        # device: V_l (eqs. 1-3), V_h (eq. 4), BAN (eqs. 5-7), P_zeta (eqs. 8-10)
        self.vision_lr = AutoModel.from_config(config.vision_lr_config)
        self.vision_hr = AutoModel.from_config(config.vision_hr_config) if config.use_ban else None
        self.ban = None
        if config.use_ban:
            hr_width = config.vision_hr_config.hidden_sizes[config.hr_feature_stage]
            self.ban = BilateralAttention(lr_width, config.ban_num_heads, hr_width, config.ban_coarse_window)
        if config.projector_type == "kan":
            self.projector = KANProjector(
                lr_width, hidden, num_layers=config.projector_num_layers, grid_size=config.kan_grid_size,
                spline_order=config.kan_spline_order, grid_range=tuple(config.kan_grid_range), bound=config.kan_bound,
            )  # fmt: skip
        else:  # the paper's "w/o KAN": LLaVA-1.5's two-layer MLP
            self.projector = nn.Sequential(nn.Linear(lr_width, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        # the LLM split: S_alpha (layers 1..K, eq. 12) at the device, S_delta^-1 (layers K+1..L, eq. 15) at the BS
        k, layers = config.num_transmitter_layers, text.num_hidden_layers
        self.token_encoder = AutoModel.from_config(split_text_config(text, 0, k))
        self.token_encoder.norm = nn.Identity()  # the residual stream is sent; the final norm is the receiver's
        self.token_decoder = AutoModel.from_config(split_text_config(text, k, layers - k))
        self.token_decoder.embed_tokens = None  # the receiver embeds answer tokens with E_theta (shared)
        self.lm_head = nn.Linear(hidden, text.vocab_size, bias=False)
        # link: C_beta / C_gamma (eq. 13), SNR-adaptive, and the channel (eq. 14)
        self.channel_coder = AdaptiveChannelCoder(
            hidden, (config.channel_symbols_per_token,), config.channel_coder_hidden_size, config.channel_coder_layers,
            config.channel_constellation,
        )  # fmt: skip
        self.channel = TokenChannel(config.channel_config)
        if config.use_lora:
            for part in (self.token_encoder, self.token_decoder):
                if len(part.layers) == 0:  # K = 0: the transmitter sends the embeddings, nothing to adapt
                    continue
                attach_lora(part, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules)
        self.post_init()
        zero_lora_b(self)

    def get_input_embeddings(self) -> nn.Module:
        return self.token_encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.token_encoder.embed_tokens = value

    def embed_text(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """E_theta(t): `(..., )` ids -> `(..., d)` word embeddings times `config.text_embedding_multiplier` (the
        space the visual tokens Z_v live in)."""
        return self.get_input_embeddings()(input_ids) * self.config.text_embedding_multiplier

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    # ------------------------------------------------------------------ links

    def resolve_links(self, links=None, snr_db=None, channel_type=None, **num_tokens) -> dict[str, Link]:
        """`{link: Link}` with SNRs, channel types and the visual budget filled in from the config and checked."""
        resolved = resolve_links(LINKS, links, snr_db, channel_type, **num_tokens)
        maximum = self.config.max_visual_tokens
        count = resolved["visual"].num_tokens
        if count is not None and not 1 <= count <= maximum:
            raise ValueError(f"`num_visual_tokens` must be an integer in [1, {maximum}], got {count!r}.")
        channel = self.config.channel_config
        return {
            name: link.with_defaults(
                snr_db=channel.snr_db, channel_type=channel.channel_type,
                num_tokens=maximum if name == "visual" else None,
            )  # fmt: skip
            for name, link in resolved.items()
        }

    # ------------------------------------------------------------------ device side

    def _check_images(self, pixel_values: torch.Tensor, pixel_values_lr: torch.Tensor | None) -> torch.Tensor:
        hr, lr = self.config.hr_image_size, self.config.lr_image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, hr, hr):
            raise ValueError(f"`pixel_values` must have shape (batch, 3, {hr}, {hr}), got {tuple(pixel_values.shape)}.")
        if pixel_values_lr is None:  # I': the downsampled image (block average)
            return F.interpolate(pixel_values, size=(lr, lr), mode="area")
        if tuple(pixel_values_lr.shape) != (pixel_values.shape[0], 3, lr, lr):
            raise ValueError(
                f"`pixel_values_lr` must have shape ({pixel_values.shape[0]}, 3, {lr}, {lr}), "
                f"got {tuple(pixel_values_lr.shape)}."
            )
        return pixel_values_lr

    def visual_tokens(
        self, pixel_values: torch.Tensor, pixel_values_lr: torch.Tensor | None = None, num_tokens: int | None = None
    ) -> torch.Tensor:
        """Z_v of eq. (11): HR image `(batch, 3, H, H)` (and optionally the LR view) -> `(batch, n_v, d)`, with
        `n_v` at most `num_tokens` (the fused grid pooled to the budget; default `max_visual_tokens`)."""
        config = self.config
        coarse, fine = self.tokenize_image(pixel_values, pixel_values_lr)
        tokens = coarse if self.ban is None else self.ban(coarse, fine, config.coarse_grid, config.fine_grid).fused
        budget = config.max_visual_tokens if num_tokens is None else num_tokens
        tokens, _ = pool_tokens(tokens, config.coarse_grid, budget)  # V of eq. 7, pooled to the budget
        return self.projector(tokens)

    def tokenize_image(self, pixel_values: torch.Tensor, pixel_values_lr: torch.Tensor | None = None):
        """The two visual tokenizers: `(V_l (batch, H_l*W_l, d_l), V_h (batch, H_h*W_h, C) or None without BAN)`,
        raster order, V_l without the class token (eqs. 1-4)."""
        pixel_values_lr = self._check_images(pixel_values, pixel_values_lr)
        config = self.config
        lr_states = self.vision_lr(pixel_values=pixel_values_lr, output_hidden_states=True).hidden_states
        coarse = lr_states[config.vision_feature_layer][:, 1:]
        if self.vision_hr is None:
            return coarse, None
        fine = self.vision_hr(pixel_values=pixel_values, output_hidden_states=True).hidden_states[config.hr_feature_stage]
        if tuple(fine.shape[-2:]) != config.fine_grid:  # (batch, C, h, w) -> r x the coarse grid
            fine = F.interpolate(fine, size=config.fine_grid, mode="bilinear", align_corners=False)
        return coarse, fine.flatten(2).transpose(1, 2)

    def build_prompt(self, visual: torch.Tensor | None, input_ids: torch.LongTensor | None,
                     attention_mask: torch.Tensor | None):  # fmt: skip
        """Eq. (12)'s input, E(t) and Z_v in `config.prompt_order` (default [E(t) ; Z_v]), left-padded:
        `(embeds (batch, P, d), mask (batch, P), link_index (batch, P))`."""
        pieces = {}
        if visual is not None:
            ones = torch.ones(visual.shape[:2], dtype=torch.long, device=visual.device)
            pieces["visual"] = (visual, ones, ones * LINK_INDEX["visual"])
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"`input_ids` must have shape (batch, tokens), got {tuple(input_ids.shape)}.")
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device).long()
            if tuple(mask.shape) != tuple(input_ids.shape):
                raise ValueError(f"`attention_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}.")
            pieces["text"] = (self.embed_text(input_ids), mask, torch.full_like(mask, LINK_INDEX["text"]))
        parts, masks, labels = ([pieces[name][i] for name in self.config.prompt_order if name in pieces] for i in range(3))
        if not parts:
            raise ValueError("Give `pixel_values`, `input_ids` or both.")
        if len({part.shape[0] for part in parts}) > 1:
            raise ValueError(f"`pixel_values` and `input_ids` have different batch sizes {[p.shape[0] for p in parts]}.")
        mask = torch.cat(masks, dim=1)
        link_index = torch.cat(labels, dim=1).masked_fill(mask == 0, -1)
        return left_pad_prompt(torch.cat(parts, dim=1).to(self.lm_head.weight.dtype), mask, link_index)

    def encode_tokens(self, embeds: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """Z = S_alpha(E(t), Z_v) (eq. 12): the first K layers over the prompt, `(batch, P, d)`."""
        if self.config.num_transmitter_layers == 0:
            return embeds
        return self.token_encoder(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).last_hidden_state

    # ------------------------------------------------------------------ the link

    def transmit(self, sent: torch.Tensor, link_index: torch.Tensor, links: dict[str, Link],
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """C_gamma^-1(H C_beta(Z) + n) (eqs. 13-14): each link sends its own positions with its SNR and channel
        type (padding sends nothing); returns the received `(batch, P, d)` (zeros on padding).

        `channel_type="none"` is an ideal link: Z arrives as sent, without the channel coder (the VLM training
        stages before joint coding use it)."""
        received = torch.zeros_like(sent)
        for name, link in links.items():
            mask = link_index == LINK_INDEX[name]
            if not mask.any():
                continue
            if link.channel_type == "none":
                received = received + sent * mask.unsqueeze(-1).to(sent.dtype)
                continue
            out = self.channel_coder.transmit(
                sent, link.snr_db, self.config.channel_symbols_per_token, self.channel, generator=generator,
                channel_type=link.channel_type, token_mask=mask,
            )  # fmt: skip
            received = received + out
        return received

    # ------------------------------------------------------------------ base station side

    def _answer_lower(self, answer_ids, answer_mask, positions, cache=None) -> torch.Tensor:
        """Layers 1..K over answer tokens only (they cannot see the prompt there, see the module docstring)."""
        embeds = self.embed_text(answer_ids)
        if self.config.num_transmitter_layers == 0:
            return embeds
        return self.token_encoder(
            inputs_embeds=embeds, attention_mask=answer_mask, position_ids=positions, past_key_values=cache,
            use_cache=cache is not None,
        ).last_hidden_state  # fmt: skip

    def _upper(self, states, mask, positions, cache=None) -> torch.Tensor:
        """Layers K+1..L and the final norm (S_delta^-1, eq. 15) -> hidden states `(batch, n, d)`."""
        return self.token_decoder(
            inputs_embeds=states, attention_mask=mask, position_ids=positions, past_key_values=cache,
            use_cache=cache is not None,
        ).last_hidden_state  # fmt: skip

    def prompt_states(self, input_ids=None, attention_mask=None, pixel_values=None, pixel_values_lr=None,
                      links: dict[str, Link] | None = None, visual_embeds=None):  # fmt: skip
        """The device side up to the channel coder: `(Z (batch, P, d), mask, positions, link_index, n_v)` for
        resolved `links` (only their visual budget is read here). `visual_embeds` `(batch, n_v, d)`: Z_v given
        directly instead of `pixel_values` (e.g. the word embeddings of a scene description)."""
        visual = visual_embeds
        if pixel_values is not None:
            if visual_embeds is not None:
                raise ValueError("Give `pixel_values` or `visual_embeds`, not both.")
            visual = self.visual_tokens(pixel_values, pixel_values_lr, (links or {}).get("visual", Link()).num_tokens)
        elif visual is not None and (visual.dim() != 3 or visual.shape[-1] != self.config.text_config.hidden_size):
            raise ValueError(f"`visual_embeds` must have shape (batch, tokens, {self.config.text_config.hidden_size}), "
                             f"got {tuple(visual.shape)}.")
        embeds, mask, link_index = self.build_prompt(visual, input_ids, attention_mask)
        positions = (mask.cumsum(dim=1) - 1).clamp_min(0)
        sent = self.encode_tokens(embeds, mask, positions)
        return sent, mask, positions, link_index, 0 if visual is None else visual.shape[1]

    def _send(self, input_ids, attention_mask, pixel_values, pixel_values_lr, links, generator, link_arguments,
              visual_embeds=None):  # fmt: skip
        links = self.resolve_links(links, **link_arguments)
        sent, mask, positions, link_index, num_visual = self.prompt_states(
            input_ids, attention_mask, pixel_values, pixel_values_lr, links, visual_embeds
        )
        received = self.transmit(sent, link_index, links, generator)
        return sent, received, mask, positions, link_index, num_visual

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_lr: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        links: dict | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
        visual_embeds: torch.Tensor | None = None,
        **link_arguments,
    ) -> TaiChiOutput | tuple:
        r"""Send the prompt over the link and score the answer (teacher forcing).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, prompt_tokens)`, *optional*): instruction + query (the
                processor's task templates); padding on either side.
            attention_mask (`torch.Tensor` of shape `(batch, prompt_tokens)`, *optional*): 0 on padding.
            pixel_values (`torch.Tensor` of shape `(batch, 3, hr_image_size, hr_image_size)`, *optional*): the image
                I (absent for text-only tasks such as sentiment).
            pixel_values_lr (`torch.Tensor` of shape `(batch, 3, lr_image_size, lr_image_size)`, *optional*): I';
                default the block average of `pixel_values`.
            labels (`torch.LongTensor` of shape `(batch, answer_tokens)`, *optional*): answer ids ending in eos,
                right-padded with -100; the loss is the cross-entropy on them only (eqs. 16-17).
            links (`dict[str, Link]`, *optional*): `"visual"` (SNR, tokens sent, channel type) and `"text"`; or the
                per-argument form `snr_db=`, `num_visual_tokens=`, `channel_type=`.
            generator (`torch.Generator`, *optional*): noise and fading draws.
            visual_embeds (`torch.Tensor` of shape `(batch, visual_tokens, hidden_size)`, *optional*): Z_v given
                directly in place of `pixel_values` (the text pretraining sends each image's scene description
                this way; sent over the visual link like the image's tokens).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        sent, received, mask, positions, link_index, _ = self._send(
            input_ids, attention_mask, pixel_values, pixel_values_lr, links, generator, link_arguments, visual_embeds
        )
        loss = None
        if labels is None:
            hidden = self._upper(received, mask, positions)[:, -1:]
        else:
            if labels.dim() != 2 or labels.shape[0] != received.shape[0]:
                raise ValueError(f"`labels` must have shape ({received.shape[0]}, answer_tokens), got {tuple(labels.shape)}.")
            answer_mask = (labels >= 0).long()
            answer_ids = labels.masked_fill(labels < 0, self.config.text_config.pad_token_id or 0)
            answer_positions = positions[:, -1:] + 1 + torch.arange(labels.shape[1], device=labels.device)
            lower = self._answer_lower(answer_ids, answer_mask, answer_positions)
            upper = self._upper(
                torch.cat([received, lower], dim=1), torch.cat([mask, answer_mask], dim=1),
                torch.cat([positions, answer_positions], dim=1),
            )  # fmt: skip
            prompt_length = received.shape[1]
            hidden = upper[:, prompt_length - 1 : prompt_length - 1 + labels.shape[1]]
        logits = self.lm_head(hidden)
        if labels is not None:  # eqs. (16)-(17): cross-entropy on the response only
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))
        output = TaiChiOutput(loss=loss, logits=logits, sent=sent, received=received, prompt_mask=mask,
                              link_index=link_index)  # fmt: skip
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_lr: torch.Tensor | None = None,
        links: dict | None = None,
        generator: torch.Generator | None = None,
        task: str = "vqa",
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        return_dict_in_generate: bool = False,
        visual_embeds: torch.Tensor | None = None,
        **link_arguments,
    ):
        """Send the prompt once, then generate the answer at the base station, token by token with two KV caches
        (layers 1..K over the answer; layers K+1..L over the received prompt and the answer).

        Greedy by default; `do_sample=True` samples with `temperature` and `top_k` (draws from `generator`).
        `max_new_tokens` defaults to `config.max_new_tokens[task]`. Returns `(batch, new_tokens)` ids (eos, then
        padding), or a [`TaiChiGenerateOutput`] with `return_dict_in_generate=True`. (Our own loop rather than
        transformers' `generate`: two caches over two models do not fit its single-cache contract.)
        """
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        steps = self.config.max_new_tokens[task] if max_new_tokens is None else max_new_tokens
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`max_new_tokens` must be an integer >= 1, got {max_new_tokens!r}.")
        if do_sample and not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
        _, received, mask, positions, _, num_visual = self._send(
            input_ids, attention_mask, pixel_values, pixel_values_lr, links, generator, link_arguments, visual_embeds
        )
        text = self.config.text_config
        eos, pad = text.eos_token_id, text.pad_token_id or 0
        batch = received.shape[0]
        upper_cache = DynamicCache(config=self.token_decoder.config)
        lower_cache = DynamicCache(config=self.token_encoder.config) if self.config.num_transmitter_layers else None
        hidden = self._upper(received, mask, positions, upper_cache)[:, -1]
        full_mask, answer_mask = mask, mask.new_zeros(batch, 0)
        next_position = positions[:, -1:] + 1
        finished = torch.zeros(batch, dtype=torch.bool, device=received.device)
        tokens, scores = [], []
        for step in range(steps):
            logits = self.lm_head(hidden).float()
            scores.append(logits)
            if do_sample:
                scaled = logits / temperature
                if top_k is not None:
                    kth = scaled.topk(min(top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
                    scaled = scaled.masked_fill(scaled < kth, float("-inf"))
                choice = multinomial(scaled.softmax(-1), 1, generator).squeeze(1)
            else:
                choice = logits.argmax(dim=-1)
            choice = torch.where(finished, torch.full_like(choice, pad), choice)
            tokens.append(choice)
            finished = finished | (choice == eos)
            if finished.all() or step == steps - 1:
                break
            answer_mask = torch.cat([answer_mask, answer_mask.new_ones(batch, 1)], dim=1)
            full_mask = torch.cat([full_mask, full_mask.new_ones(batch, 1)], dim=1)
            lower = self._answer_lower(choice[:, None], answer_mask, next_position, lower_cache)
            hidden = self._upper(lower, full_mask, next_position, upper_cache)[:, -1]
            next_position = next_position + 1
        sequences = torch.stack(tokens, dim=1)
        if not return_dict_in_generate:
            return sequences
        return TaiChiGenerateOutput(
            sequences=sequences, scores=tuple(scores), sequence_scores=sequence_probability(sequences, scores, eos),
            num_visual_tokens=num_visual,
        )  # fmt: skip

    # ------------------------------------------------------------------ the paper's backbones

    @classmethod
    def from_backbones(cls, config: TaiChiConfig, **from_pretrained_kwargs) -> TaiChiForConditionalGeneration:
        """Build the system and load the pretrained V_l, V_h and LLM named in `config.backbones` (e.g.
        `TaiChiConfig.paper()`), locally or from the Hub cache; the LLM's layers are split at K. A pretrained LLM
        reads its embeddings as trained: `config.text_embedding_multiplier` must be 1.0 (the paper preset's)."""
        from transformers import AutoModelForCausalLM

        if not config.backbones:
            raise ValueError("`config.backbones` must name the pretrained 'vision_lr', 'vision_hr' and 'text' models.")
        if config.text_embedding_multiplier != 1.0:
            raise ValueError("`config.text_embedding_multiplier` must be 1.0 with a pretrained LLM (it was trained on "
                             f"unscaled embeddings), got {config.text_embedding_multiplier!r}.")
        model = cls(config)
        # CLIPVisionModel reads the vision tower out of a full CLIP checkpoint
        lr = type(model.vision_lr).from_pretrained(config.backbones["vision_lr"], **from_pretrained_kwargs)
        _load(model.vision_lr, lr.state_dict())
        if model.vision_hr is not None:
            hr = type(model.vision_hr).from_pretrained(config.backbones["vision_hr"], **from_pretrained_kwargs)
            _load(model.vision_hr, hr.state_dict())
        llm = AutoModelForCausalLM.from_pretrained(config.backbones["text"], **from_pretrained_kwargs).state_dict()
        k = config.num_transmitter_layers
        encoder, decoder = {}, {}
        for key, value in llm.items():
            if key.startswith("model.layers."):
                index, rest = key[len("model.layers."):].split(".", 1)
                target, offset = (encoder, 0) if int(index) < k else (decoder, k)
                target[f"layers.{int(index) - offset}.{rest}"] = value
            elif key == "model.embed_tokens.weight":
                encoder["embed_tokens.weight"] = value
            elif key.startswith("model.norm."):
                decoder[key[len("model."):]] = value
            elif key == "lm_head.weight":
                model.lm_head.weight.data.copy_(value)
        _load(model.token_encoder, encoder)
        _load(model.token_decoder, decoder)
        return model


def _load(target: nn.Module, state: dict) -> None:
    """Load `state` into `target`; the LoRA matrices (absent from pretrained checkpoints) keep their init, and a
    LoRA-wrapped layer's pretrained weight goes to its `base_layer`."""
    own = set(target.state_dict())
    renamed = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        wrapped = f"{module}.base_layer.{leaf}"
        renamed[wrapped if key not in own and wrapped in own else key] = value
    missing, unexpected = target.load_state_dict(renamed, strict=False)
    missing = [key for key in missing if "lora_" not in key]
    if missing or unexpected:
        raise ValueError(
            f"Pretrained weights do not match {type(target).__name__}: missing={missing[:5]} unexpected={unexpected[:5]}"
        )


__all__ = [
    "TaiChiForConditionalGeneration",
    "TaiChiGenerateOutput",
    "TaiChiOutput",
    "TaiChiPreTrainedModel",
    "split_text_config",
]
