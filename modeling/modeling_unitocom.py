r"""UniToComModel: the unified token communication system of `unitocom-genib.txt` (Fig. 1, Secs. II-IV).

Data path (equation numbers of the paper):

    device:        x_m -> tokenizer F_m (sigma-GenIB, Sec. III) -> t_m -> T, adaptive coding-modulation (eq. 1) -> z_m
    channel:       z^_m = h_m z_m + n_m (eq. 2)
    base station:  R (demodulation-decoding) -> received tokens t^_m -> latent MLLM M_m (Sec. IV) -> F_m^{-1} (eq. 3)

The latent MLLM packs the received discrete tokens t^d (text ids, embedded) and continuous tokens t^c (image or
audio tokens, each projected to the hidden size D by a linear map) into T^0 = [t^d, t^c] `(batch, N + M, D)`, runs
L causal Transformer layers (a transformers `Qwen2Model`) and its final norm, `[h_1, ..., h_{N+M}] = Norm(T^L)`, and
decodes
- discrete tokens with the LM head, `P_d(d_i | d_<i) = softmax(h W_v)` (eq. 15), trained with L_LM (eq. 16);
- continuous tokens with the per-token diffusion head, `c_i = Diffusion(h)` (eq. 17), trained with L_Diff (eqs.
  18-19) and sampled by a few DPM-Solver++ steps per token; each generated token is projected and fed back as the
  next input with the KV cache (next-token diffusion).
`h` here is the hidden state of the position before the token it predicts (causal next-token prediction).

Where continuous tokens sit in the sequence is marked in `input_ids` by placeholder ids (`config.image_token_id`,
`config.audio_token_id`), one per token, so one call can mix layouts; the processor (next increment) writes them.

The three tasks (Fig. 1). The device is the user that holds the data; the base station runs the MLLM.
- VQA: the device holds the image and the question. Image tokens (F_v, its adaptive link) and the question's text
  tokens cross the channel; the base station generates the answer text (`generate_text`).
- Text-to-image: the device holds the caption. Its text tokens cross the channel; the base station generates image
  tokens by next-token diffusion (`generate_tokens`) and decodes them with the image de-tokenizer F_v^{-1} into the
  image (`generate_image`, eq. 3).
- ASR: the device holds the speech. Audio tokens (F_a, its adaptive link) cross the channel; the base station
  generates the transcript (`generate_text`).

Where the channel sits (our choice, following the tokenizer model): the adaptive coding-modulation T/R of each
continuous modality belongs to its tokenizer model (`UniToComTokenizerModel.link`, trained with Algorithm 1's link
stage), and this model holds the two tokenizer models as submodules (`image_tokenizer`, `audio_tokenizer`):
`send(...)` runs F_m, T, the channel and R of one modality and returns the received tokens the MLLM reads. The MLLM
itself adds no second coder. The text link is not modelled yet: `input_ids` are taken as received (an ideal
digital text link); a text link over the channel is a later increment.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, DynamicCache, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_unitocom import UniToComConfig
from .decoding import sequence_probability
from .diffusion_head import DiffusionHead, diffusion_loss, sample_tokens
from .tokenization_unitocom import UniToComTokenizerModel

CONTINUOUS_MODALITIES = ("image", "audio")


@dataclass
class UniToComOutput(ModelOutput):
    r"""Output of [`UniToComModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `lm_loss + diffusion_loss_weight * diffusion_loss`
            (the terms that were computed).
        lm_loss (`torch.FloatTensor` of shape `()`, *optional*): L_LM (eq. 16), the cross-entropy of the next
            discrete token, averaged over the target tokens (`labels` not -100).
        diffusion_loss (`torch.FloatTensor` of shape `()`, *optional*): L_Diff (eq. 19) over the image tokens marked
            in `diffusion_mask`, averaged over tokens, noise draws and dimensions.
        logits (`torch.FloatTensor` of shape `(batch, sequence, vocab)`): `h_i W_v` (eq. 15); position i scores
            the token at i + 1.
        last_hidden_state (`torch.FloatTensor` of shape `(batch, sequence, hidden)`): `Norm(T^L)`, the h_i that
            condition both heads.
    """

    loss: torch.FloatTensor | None = None
    lm_loss: torch.FloatTensor | None = None
    diffusion_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


@dataclass
class UniToComGenerateOutput(ModelOutput):
    r"""Output of [`UniToComModel.generate_text`] with `return_dict_in_generate=True`.

    Args:
        sequences (`torch.LongTensor` of shape `(batch, new_tokens)`): generated ids (eos, then padding).
        scores (`tuple[torch.FloatTensor]`): the logits `(batch, vocab)` of each step.
        sequence_scores (`torch.FloatTensor` of shape `(batch,)`): each answer's probability (product over tokens).
    """

    sequences: torch.LongTensor | None = None
    scores: tuple | None = None
    sequence_scores: torch.FloatTensor | None = None


def _shape(value) -> tuple | str:
    """A tensor's shape, or the type name of anything else (for error messages)."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _positive_int(name: str, value, high: int | None = None) -> int:
    """`value` as an int in [1, `high`] (numpy integers too); `ValueError` naming `name` and the range otherwise."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integer or value < 1 or (high is not None and value > high):
        raise ValueError(f"`{name}` must be an integer in [1, {'inf' if high is None else high}], got {value!r}.")
    return int(value)


class UniToComPreTrainedModel(PreTrainedModel):
    config_class = UniToComConfig
    base_model_prefix = "unitocom"  # not "model": transformers 5.23 renames `model.language_model.model` keys
    main_input_name = "input_ids"
    input_modalities = ("image", "audio", "text")
    supports_gradient_checkpointing = False
    _supports_sdpa = True


class UniToComModel(UniToComPreTrainedModel):
    r"""The UniToCom system: the image and audio tokenizers with their adaptive links (device side and receiver R),
    and the latent MLLM with an LM head (eqs. 15-16) and a per-token diffusion head (eqs. 17-19) at the base station.

    Sub-modules: `image_tokenizer`, `audio_tokenizer` ([`UniToComTokenizerModel`]), `backbone` (a `Qwen2Model`:
    embeddings, L causal layers, final norm), `token_projections` (one linear map per continuous modality,
    `token_dim -> hidden`), `lm_head` (W_v, tied to the embeddings), `diffusion_head` ([`DiffusionHead`] for image
    tokens). The noise schedulers are built from the config (`noise_schedulers`); they hold no weights.

    Example (tiny preset, random weights):

    >>> import torch
    >>> from tokcom.modeling import UniToComConfig, UniToComModel
    >>> config = UniToComConfig.tiny(image_tokenizer_config={"num_tokens": 4})
    >>> model = UniToComModel(config).eval()
    >>> IMG = config.image_token_id
    >>> # VQA: received image tokens + question ids -> answer (4 image placeholders, then 3 question words)
    >>> images = model.send("image", torch.rand(2, 3, 32, 32), snr_db=10.0, channel_type="rayleigh")
    >>> images.shape                                        # (batch, image tokens, token_dim)
    torch.Size([2, 4, 8])
    >>> ids = torch.tensor([[IMG] * 4 + [5, 6, 7]] * 2)
    >>> out = model(input_ids=ids, image_tokens=images)
    >>> out.logits.shape                                    # (batch, sequence, vocab)
    torch.Size([2, 7, 512])
    >>> model.generate_text(input_ids=ids, image_tokens=images, max_new_tokens=3).shape
    torch.Size([2, 3])
    >>> # text-to-image: caption ids -> 4 image tokens by next-token diffusion -> de-tokenizer -> image
    >>> caption = torch.tensor([[5, 6, 7], [8, 9, 10]])
    >>> g = torch.Generator().manual_seed(0)
    >>> model.generate_tokens(input_ids=caption, num_inference_steps=2, generator=g).shape
    torch.Size([2, 4, 8])
    >>> model.generate_image(input_ids=caption, num_inference_steps=2, generator=g).shape
    torch.Size([2, 3, 32, 32])
    """

    _tied_weights_keys = {"lm_head.weight": "backbone.embed_tokens.weight"}

    def __init__(self, config: UniToComConfig):
        super().__init__(config)
        hidden = config.text_config.hidden_size
        # device side and R: F_m, F_m^{-1} and the adaptive link of each continuous modality (Sec. III, eqs. 1-2)
        self.image_tokenizer = UniToComTokenizerModel(config.image_tokenizer_config)
        self.audio_tokenizer = UniToComTokenizerModel(config.audio_tokenizer_config)
        # base station: the latent MLLM (Sec. IV)
        self.backbone = AutoModel.from_config(config.text_config)
        self.token_projections = nn.ModuleDict({
            modality: nn.Linear(self.tokenizer(modality).config.token_dim, hidden) for modality in CONTINUOUS_MODALITIES
        })  # fmt: skip
        self.lm_head = nn.Linear(hidden, config.text_config.vocab_size, bias=False)  # W_v, eq. (15)
        self.diffusion_head = DiffusionHead(  # epsilon_psi, eq. (19)
            config.image_tokenizer_config.token_dim, hidden, config.diffusion_hidden_size, config.diffusion_num_layers,
            config.diffusion_mlp_ratio,
        )  # fmt: skip
        for module in self.diffusion_head.modules():  # keep its own init (adaLN-Zero), not the generic normal init
            module._is_hf_initialized = True
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def tokenizer(self, modality: str) -> UniToComTokenizerModel:
        """The tokenizer model (F_m, F_m^{-1}, T/R) of `"image"` or `"audio"`."""
        if modality not in CONTINUOUS_MODALITIES:
            raise ValueError(f"`modality` must be one of {CONTINUOUS_MODALITIES}, got {modality!r}.")
        return self.image_tokenizer if modality == "image" else self.audio_tokenizer

    def noise_schedulers(self):
        """`(DDPMScheduler, DPMSolverMultistepScheduler)` from `config.scheduler_config`: the forward process of eq.
        (18) for training and a fresh DPM-Solver++ sampler (`config.timestep_spacing`). diffusers is imported here
        only: the heads themselves run on torch alone."""
        from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

        train = DDPMScheduler(**self.config.scheduler_config)
        sampler = DPMSolverMultistepScheduler.from_config(train.config, timestep_spacing=self.config.timestep_spacing)
        return train, sampler

    # ------------------------------------------------------------------ device side and the link

    def send(self, modality: str, inputs: torch.Tensor, snr_db=None, channel_type: str | None = None,
             num_symbols_per_token: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Device to base station for one continuous modality: `R(h T(F_m(x)) + n)` (eqs. 1-2).

        Args:
            modality (`str`): `"image"` (`inputs` `(batch, 3, image_size, image_size)` in [0, 1]) or `"audio"`
                (`inputs` log-mel [dB] `(batch, num_frames, num_mel_bins)`).
            snr_db (`float` or `torch.Tensor` of shape `(batch,)`, *optional*): SNR [dB]; default
                `config.channel_config.snr_db`.
            channel_type (`str`, *optional*): `"awgn"`, `"rayleigh"` or `"none"` (ideal link: the tokenizer's
                means arrive as sent, without T/R); default `config.channel_config.channel_type`.
            num_symbols_per_token (`int`, *optional*): channel uses per token, among the tokenizer's
                `link_symbols_per_token_choices` (default the largest).
            generator (`torch.Generator`, *optional*): fading and noise draws.

        Returns:
            `torch.FloatTensor` of shape `(batch, S_m, token_dim)`: the received tokens t^_m.
        """
        tokenizer = self.tokenizer(modality)
        mean = tokenizer.encode(**{tokenizer.main_input_name: inputs}).mean  # F_m: the deterministic tokens mu
        channel = self.config.channel_config
        channel_type = channel.channel_type if channel_type is None else channel_type
        if channel_type == "none":
            return mean
        snr_db = channel.snr_db if snr_db is None else snr_db
        return tokenizer.transmit(mean, snr_db, num_symbols_per_token, channel_type, generator=generator)

    def receive(self, modality: str, inputs: torch.Tensor, snr_db=None, channel_type: str | None = None,
                num_tokens: int | None = None, num_symbols_per_token: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """What the base station reads of one continuous modality: [`send`] of each image or audio window, the
        tokens beyond `num_tokens` replaced by 0 (not sent: the sigma-GenIB prior mean), an utterance's windows
        concatenated.

        Args:
            inputs: images `(batch, 3, S, S)`, one window of log-mels `(batch, num_frames, num_mel_bins)`, or an
                utterance's windows `(batch, windows, num_frames, num_mel_bins)` (audio only).
            snr_db: as in `send`; a per-sample tensor `(batch,)` is repeated for each window.
            num_tokens: tokens sent per image / window (default all S_m).

        Returns:
            `torch.FloatTensor` of shape `(batch, tokens, token_dim)`.
        """
        if num_tokens is not None:  # checked before the link: -1 or 0 would silently zero the wrong tokens
            _positive_int("num_tokens", num_tokens, self.tokenizer(modality).config.num_tokens)
        batch = inputs.shape[0]
        if modality == "audio" and inputs.dim() == 4:  # every window crosses the link
            windows = inputs.shape[1]
            inputs = inputs.flatten(0, 1)
            if isinstance(snr_db, torch.Tensor) and snr_db.dim() > 0:
                snr_db = snr_db.repeat_interleave(windows)
        tokens = self.send(modality, inputs, snr_db, channel_type, num_symbols_per_token, generator)
        if num_tokens is not None and num_tokens < tokens.shape[1]:
            tokens[:, num_tokens:] = 0.0
        return tokens.reshape(batch, -1, tokens.shape[-1])

    # ------------------------------------------------------------------ packing T^0

    def _check_ids(self, input_ids, attention_mask) -> torch.Tensor:
        vocab = self.config.text_config.vocab_size
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ValueError(f"`input_ids` must be an integer tensor of shape (batch, sequence), got {_shape(input_ids)}.")
        if input_ids.shape[0] < 1 or input_ids.shape[1] < 1:
            raise ValueError(f"`input_ids` must be non-empty, got shape {tuple(input_ids.shape)}.")
        if input_ids.min() < 0 or input_ids.max() >= vocab:
            raise ValueError(f"`input_ids` must be in [0, {vocab - 1}] (the vocabulary), got values in "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}].")  # fmt: skip
        if attention_mask is None:
            return torch.ones_like(input_ids)
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}, got {_shape(attention_mask)}."
            )
        if not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("`attention_mask` must hold only 0 (padding) and 1.")
        return attention_mask.long()

    def _check_continuous(self, modality: str, tokens, placeholders: torch.Tensor) -> None:
        name, token_id = f"{modality}_tokens", getattr(self.config, f"{modality}_token_id")
        counts = placeholders.sum(dim=1)
        if tokens is None:
            if counts.any():
                raise ValueError(f"`input_ids` holds {modality} placeholders ({token_id}) but `{name}` is None.")
            return
        dim = self.tokenizer(modality).config.token_dim
        batch = placeholders.shape[0]
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or (tokens.shape[0], tokens.shape[2]) != (batch, dim):
            raise ValueError(f"`{name}` must be a tensor of shape ({batch}, tokens, {dim}), got {_shape(tokens)}.")
        if not tokens.is_floating_point() or not torch.isfinite(tokens).all():
            raise ValueError(f"`{name}` must be a finite floating-point tensor.")
        if (counts != tokens.shape[1]).any():
            raise ValueError(
                f"`{name}` holds {tokens.shape[1]} tokens per sample, but the rows of `input_ids` hold "
                f"{counts.tolist()} {modality} placeholders ({token_id}); they must match."
            )

    def embed_inputs(self, input_ids: torch.LongTensor, image_tokens: torch.Tensor | None = None,
                     audio_tokens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """T^0: text ids embedded, continuous tokens projected to the hidden size and placed at their placeholders.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, sequence)`): text ids with one placeholder id per
                continuous token (`config.image_token_id`, `config.audio_token_id`).
            image_tokens (`torch.FloatTensor` of shape `(batch, M_v, image token_dim)`, *optional*).
            audio_tokens (`torch.FloatTensor` of shape `(batch, M_a, audio token_dim)`, *optional*).

        Returns:
            `torch.FloatTensor` of shape `(batch, sequence, hidden)`.
        """
        self._check_ids(input_ids, None)
        embeddings = self.get_input_embeddings()
        placeholders = {m: input_ids == getattr(self.config, f"{m}_token_id") for m in CONTINUOUS_MODALITIES}
        text_ids = input_ids.masked_fill(placeholders["image"] | placeholders["audio"], 0)
        embeds = embeddings(text_ids)
        for modality, tokens in (("image", image_tokens), ("audio", audio_tokens)):
            self._check_continuous(modality, tokens, placeholders[modality])
            if tokens is not None and tokens.shape[1]:
                projected = self.token_projections[modality](tokens.to(embeds.dtype))
                embeds = embeds.masked_scatter(placeholders[modality].unsqueeze(-1), projected)  # row-major order
        return embeds

    def _transformer(self, embeds, mask, positions, cache=None) -> torch.Tensor:
        """L causal layers and the final norm: `Norm(T^L)` `(batch, n, hidden)` (Sec. IV-A)."""
        return self.backbone(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache,
            use_cache=cache is not None,
        ).last_hidden_state  # fmt: skip

    # ------------------------------------------------------------------ training: eqs. (15)-(19)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        image_tokens: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        diffusion_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
    ) -> UniToComOutput | tuple:
        r"""Run the MLLM over T^0 (teacher forcing) and compute L_LM (eq. 16) and L_Diff (eq. 19).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, sequence)`): received text ids with a placeholder id
                per continuous token (see `embed_inputs`); padding on either side.
            attention_mask (`torch.Tensor` of shape `(batch, sequence)`, *optional*): 0 on padding.
            image_tokens, audio_tokens (`torch.FloatTensor` of shape `(batch, M, token_dim)`, *optional*): the
                received (or, as generation targets, the clean) continuous tokens at their placeholders.
            labels (`torch.LongTensor` of shape `(batch, sequence)`, *optional*): text targets aligned with
                `input_ids` (shifted inside: position i's logits score `labels[:, i + 1]`), -100 where no loss;
                placeholder and padding positions never count.
            diffusion_mask (`torch.BoolTensor` of shape `(batch, M_v)`, *optional*): image tokens to be generated
                (text-to-image samples); each is a target of L_Diff conditioned on the hidden state before it.
            generator (`torch.Generator`, *optional*): diffusion timesteps and noise.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        mask = self._check_ids(input_ids, attention_mask)
        embeds = self.embed_inputs(input_ids, image_tokens, audio_tokens)
        positions = (mask.cumsum(dim=1) - 1).clamp_min(0)
        # 1. [h_1, ..., h_{N+M}] = Norm(T^L), causal layers over T^0
        hidden = self._transformer(embeds, mask, positions)
        # 2. LM head, eq. (15)
        logits = self.lm_head(hidden)
        continuous = (input_ids == self.config.image_token_id) | (input_ids == self.config.audio_token_id)
        lm_loss = diff_loss = None
        if labels is not None:  # 3. L_LM, eq. (16) (a mean over the targets rather than a sum)
            if not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape:
                raise ValueError(
                    f"`labels` must have the shape of `input_ids` {tuple(input_ids.shape)}, got {_shape(labels)}."
                )
            targets = labels.masked_fill(continuous | (mask == 0), -100)[:, 1:]
            if (targets != -100).any():
                lm_loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if diffusion_mask is not None:  # 4. L_Diff, eqs. (18)-(19), on the image tokens to be generated
            diff_loss = self._diffusion_loss(input_ids, mask, hidden, image_tokens, diffusion_mask, generator)
        terms = [t for t in (lm_loss, None if diff_loss is None else self.config.diffusion_loss_weight * diff_loss)
                 if t is not None]  # fmt: skip
        loss = sum(terms) if terms else None
        output = UniToComOutput(loss=loss, lm_loss=lm_loss, diffusion_loss=diff_loss, logits=logits,
                                last_hidden_state=hidden)  # fmt: skip
        return output if return_dict else output.to_tuple()

    def _diffusion_loss(self, input_ids, mask, hidden, image_tokens, diffusion_mask, generator):
        if image_tokens is None:
            raise ValueError("`diffusion_mask` needs `image_tokens` (the clean image tokens to be generated).")
        if not isinstance(diffusion_mask, torch.Tensor) or diffusion_mask.shape != image_tokens.shape[:2]:
            raise ValueError(f"`diffusion_mask` must have shape {tuple(image_tokens.shape[:2])} (batch, image tokens), "
                             f"got {_shape(diffusion_mask)}.")  # fmt: skip
        rows, cols = (input_ids == self.config.image_token_id).nonzero(as_tuple=True)  # row-major: token order
        # token c_i at position p is predicted from h_{p-1} (eq. 17); the position before must be a real one
        keep = diffusion_mask.reshape(-1).bool() & (cols >= 1) & (mask[rows, (cols - 1).clamp_min(0)] == 1)
        if not keep.any():
            return None
        conditions = hidden[rows[keep], cols[keep] - 1]  # (N, hidden)
        targets = image_tokens.reshape(-1, image_tokens.shape[-1])[keep].to(conditions.dtype)  # (N, token_dim)
        train_scheduler, _ = self.noise_schedulers()
        return diffusion_loss(self.diffusion_head, train_scheduler, targets, conditions,
                              self.config.num_noise_draws, generator)  # fmt: skip

    # ------------------------------------------------------------------ generation at the base station

    def _prefill(self, input_ids, attention_mask, image_tokens, audio_tokens, new_tokens: int, name: str):
        """Run the prompt with a fresh KV cache, after checking that the prompt and the `new_tokens` generated after
        it (all but the last are fed back) fit the language model's positions (`ValueError` naming `name`)."""
        mask = self._check_ids(input_ids, attention_mask)
        if (mask[:, -1] == 0).any():
            raise ValueError("`attention_mask` must be left-padded for generation (its last column all ones).")
        context, prompt = self.config.text_config.max_position_embeddings, int(mask.sum(dim=1).max())
        if prompt > context:
            raise ValueError(f"`input_ids` holds {prompt} tokens in a row (padding excluded); at most {context} are "
                             f"accepted (the language model's positions).")  # fmt: skip
        if prompt + new_tokens - 1 > context:
            raise ValueError(f"`{name}` must be in [1, {context - prompt + 1}] for this {prompt}-token prompt (the "
                             f"language model has {context} positions), got {new_tokens}.")  # fmt: skip
        embeds = self.embed_inputs(input_ids, image_tokens, audio_tokens)
        positions = (mask.cumsum(dim=1) - 1).clamp_min(0)
        cache = DynamicCache(config=self.backbone.config)
        hidden = self._transformer(embeds, mask, positions, cache)[:, -1]
        return hidden, mask, positions[:, -1:] + 1, cache

    def _step(self, embeds, mask, position, cache):
        """Feed one new input `(batch, 1, hidden)` at `position` with the cache: `(last h, mask, next position)`."""
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        return self._transformer(embeds, mask, position, cache)[:, -1], mask, position + 1

    @torch.no_grad()
    def generate_text(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        image_tokens: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        max_new_tokens: int | None = None,
        return_dict_in_generate: bool = False,
    ):
        """Greedy next-token prediction (eq. 15 with Sample = argmax) with the KV cache: the VQA answer or the ASR
        transcript. Inputs as in `forward` (left-padded). Returns `(batch, new_tokens)` ids (eos, then padding) or
        a [`UniToComGenerateOutput`]; stops when every row has produced eos or after `max_new_tokens` (default
        `config.max_new_tokens`)."""
        steps = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        steps = _positive_int("max_new_tokens", steps)
        hidden, mask, position, cache = self._prefill(input_ids, attention_mask, image_tokens, audio_tokens, steps,
                                                      "max_new_tokens")  # fmt: skip
        text = self.config.text_config
        eos, pad = text.eos_token_id, text.pad_token_id or 0
        finished = torch.zeros(hidden.shape[0], dtype=torch.bool, device=hidden.device)
        tokens, scores = [], []
        for step in range(steps):
            logits = self.lm_head(hidden).float()
            scores.append(logits)
            choice = torch.where(finished, torch.full_like(finished, pad, dtype=torch.long), logits.argmax(dim=-1))
            tokens.append(choice)
            finished = finished | (choice == eos)
            if finished.all() or step == steps - 1:
                break
            hidden, mask, position = self._step(self.get_input_embeddings()(choice[:, None]), mask, position, cache)
        sequences = torch.stack(tokens, dim=1)
        if not return_dict_in_generate:
            return sequences
        return UniToComGenerateOutput(sequences=sequences, scores=tuple(scores),
                                      sequence_scores=sequence_probability(sequences, scores, eos))  # fmt: skip

    @torch.no_grad()
    def generate_tokens(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        image_tokens: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        num_tokens: int | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Next-token diffusion (eq. 17): image tokens after the prompt, one at a time.

        1. Run the prompt (left-padded `input_ids` and any continuous tokens) with a fresh KV cache.
        2. For each token: sample `c_i = Diffusion(h)` from the last hidden state with `num_inference_steps`
           DPM-Solver++ steps (default `config.num_inference_steps`); project it and feed it back with the cache.

        Returns:
            `torch.FloatTensor` of shape `(batch, num_tokens, image token_dim)`; `num_tokens` defaults to the image
            tokenizer's S_v.
        """
        count = self.config.image_tokenizer_config.num_tokens if num_tokens is None else num_tokens
        count = _positive_int("num_tokens", count)
        steps = self.config.num_inference_steps if num_inference_steps is None else num_inference_steps
        steps = _positive_int("num_inference_steps", steps, self.config.num_train_timesteps)
        _, sampler = self.noise_schedulers()
        # 1. the prompt
        hidden, mask, position, cache = self._prefill(input_ids, attention_mask, image_tokens, audio_tokens, count,
                                                      "num_tokens")  # fmt: skip
        generated = []
        for index in range(count):
            # 2. c_i = Diffusion(h), eq. (17), then fed back as the next input
            token = sample_tokens(self.diffusion_head, sampler, hidden, steps, generator)  # (batch, token_dim)
            generated.append(token)
            if index < count - 1:
                embeds = self.token_projections["image"](token)[:, None]  # (batch, 1, hidden)
                hidden, mask, position = self._step(embeds, mask, position, cache)
        return torch.stack(generated, dim=1)

    @torch.no_grad()
    def generate_image(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                       num_inference_steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Text-to-image at the base station: `generate_tokens` (S_v tokens), then the de-tokenizer F_v^{-1} (eq. 3).
        Returns images `(batch, 3, image_size, image_size)` in [0, 1]."""
        tokens = self.generate_tokens(input_ids, attention_mask, num_inference_steps=num_inference_steps,
                                      generator=generator)  # fmt: skip
        return self.image_tokenizer.decode(tokens)


__all__ = [
    "CONTINUOUS_MODALITIES",
    "UniToComGenerateOutput",
    "UniToComModel",
    "UniToComOutput",
    "UniToComPreTrainedModel",
]
