"""TokComForAVQA: task-oriented multimodal token transmission (the TokCom letter, Sections II-III).

Data path for one sample (eq. numbers of `tokcom-avqa-letter.txt`):

    video  -> E_visual (ViViT) -> S_visual (sliding-window pooling to s_v) -> F_visual -> link -> G_visual -+
    audio  -> E_audio  (AST)   -> S_audio  (sliding-window pooling to s_a) -> F_audio  -> link -> G_audio  -+-> U -> W + LoRA
    question -> E_T (the LLM's input embeddings, eq. 1)                    ->            link -> G_text   -+     -> answer

Each link is a `TokenChannel` with its own SNR (eqs. 4-6); G_m are two linear layers with a ReLU (eq. 7); U
concatenates (eq. 8); W is the foundation LLM with a LoRA adapter (eq. 11). The answer is generated over the
LLM's vocabulary.

Split as LLaVA splits `LlavaModel` / `LlavaForConditionalGeneration`: [`TokComModel`] holds the transmitters, the
links and the receivers and returns the prompt U; [`TokComForAVQA`] adds the LLM, the answer loss (eq. 12) and
generation (transformers' `generate` with its KV cache). Each call's links are [`Link`] objects keyed by name.
The stage-1 alignment loss (eqs. 9-10) is a training objective: `tokcom.training.objectives.alignment_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .channel import TokenChannel
from .configuration_tokcom import LINKS, MODALITIES, TokComConfig
from .decoding import sequence_probability
from .links import Link, resolve_links
from .lora import attach_lora, zero_lora_b

# checkpoints written before the TokComModel / TokComForAVQA split kept the links' modules at the top level
LEGACY_KEY_MAPPING = {
    r"^(vision_encoder|audio_encoder|visual_projector|audio_projector|receivers)\.": r"tokcom.\1.",
}


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
class TokComModelOutput(ModelOutput):
    r"""Output of [`TokComModel.forward`]: what the base station's LLM reads.

    Args:
        prompt_embeds (`torch.Tensor` of shape `(batch, prompt_length, d_T)`): U of eq. (8), left-padded.
        prompt_mask (`torch.LongTensor` of shape `(batch, prompt_length)`): 1 on real tokens.
        received (`dict[str, torch.Tensor]`): per link, the received tokens Y'_m `(batch, s_m, d_T)` (see
            [`TokComModel.transmit_and_receive`] for the extra entries).
    """

    prompt_embeds: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None
    received: dict | None = None


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


class TokComModel(TokComPreTrainedModel):
    r"""The TokCom links without the LLM: transmitters (E_m, S_m, F_m), the wireless links and the receivers G_m,
    producing the prompt U (eq. 8) that the foundation model reads.

    The text transmitter E_T is the LLM's input embedding table (eq. 1), which belongs to the LLM: the owner of
    the LLM hands it over with `set_text_embeddings` ([`TokComForAVQA`] does), and it is not part of this module's
    parameters.

    Example (tiny preset, random weights):

    >>> import torch
    >>> from tokcom.modeling import Link, TokComConfig, TokComModel
    >>> model = TokComModel(TokComConfig.tiny()).eval()
    >>> out = model(pixel_values_videos=torch.randn(2, 8, 3, 32, 32), input_values=torch.randn(2, 98, 64),
    ...             links={"visual": Link(snr_db=10.0, num_tokens=32), "audio": Link(snr_db=5.0, num_tokens=16)})
    >>> out.prompt_embeds.shape, out.received["visual"].shape
    (torch.Size([2, 48, 128]), torch.Size([2, 32, 128]))
    """

    def __init__(self, config: TokComConfig, initialize: bool = True):
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
        # links (eqs. 4-6): one channel module, called once per link with that link's settings
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
        self._text_embeddings = None  # E_T, owned by the LLM (kept out of this module's parameters)
        if initialize:  # `False` inside TokComForAVQA, whose own `post_init` initializes every module in one pass
            self.post_init()

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

    def set_text_embeddings(self, embeddings: nn.Module) -> None:
        """Use `embeddings` (the LLM's input embedding table) as the text transmitter E_T (eq. 1)."""
        object.__setattr__(self, "_text_embeddings", embeddings)  # a reference, not a submodule

    def get_input_embeddings(self) -> nn.Module:
        if self._text_embeddings is None:
            raise ValueError(
                "This TokComModel has no text transmitter: its E_T is the LLM's input embedding table. Use "
                "TokComForAVQA, or call `set_text_embeddings(llm.get_input_embeddings())` first."
            )
        return self._text_embeddings

    # ------------------------------------------------------------------ links

    def resolve_links(self, links=None, snr_db=None, channel_type=None, **num_tokens) -> dict[str, Link]:
        """`{link: Link}` for this model's links from `links=` or the per-argument form, token lengths checked."""
        resolved = resolve_links(LINKS, links, snr_db, channel_type, **num_tokens)
        for modality in MODALITIES:
            self._check_length(modality, resolved[modality].num_tokens)
        return resolved

    def _check_length(self, modality: str, num_tokens: int | None) -> int:
        maximum = self.config.max_tokens(modality)
        if num_tokens is None:
            return maximum
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or not 1 <= num_tokens <= maximum:
            raise ValueError(f"`num_{modality}_tokens` must be an integer in [1, {maximum}], got {num_tokens!r}.")
        return num_tokens

    def received_length(self, modality: str, num_tokens: int | None = None) -> int:
        """How many tokens of `modality` the LLM reads when `num_tokens` are sent: min(s_m, L_m) with
        `config.receiver_token_period`, else s_m."""
        num_tokens = self._check_length(modality, num_tokens)
        period = (self.config.receiver_token_period or {}).get(modality)
        return min(num_tokens, period) if period else num_tokens

    # ------------------------------------------------------------------ transmitters and receivers

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

    def receive(self, link: str, tokens: torch.Tensor, settings: Link, token_mask=None, generator=None) -> torch.Tensor:
        """Channel then receiver head: Y'_m = G_m(C_m^-1(h sqrt(p) C_m(Y_m) + n)) (eqs. 4-7), one output per token."""
        received = self.channel(
            tokens, snr_db=settings.snr_db, token_mask=token_mask, generator=generator, channel_type=settings.channel_type
        )
        return self.receivers[link](received)

    def transmit_and_receive(
        self,
        pixel_values_videos=None,
        input_values=None,
        input_ids=None,
        attention_mask=None,
        links=None,
        generator=None,
        **link_arguments,
    ) -> dict[str, torch.Tensor]:
        """Run every present link: returns `{"visual": Y'_v, "audio": Y'_a, "text": Y'_T, "text_sent": Y_T}`, and with
        `config.receiver_token_period` also `"<modality>_per_token"`: G_m's output for every sent token before the
        repeats are combined. Links are set by `links` (or the per-argument form `snr_db=`, `num_<m>_tokens=`,
        `channel_type=`, see [`resolve_links`])."""
        links = self.resolve_links(links, **link_arguments)
        received = {}
        periods = self.config.receiver_token_period or {}
        for modality, transmit, media in (
            ("visual", self.transmit_visual, pixel_values_videos),
            ("audio", self.transmit_audio, input_values),
        ):
            if media is None:
                continue
            settings = links[modality]
            per_token = self.receive(modality, transmit(media, settings.num_tokens), settings, generator=generator)
            received[modality] = per_token
            if modality in periods:
                received[f"{modality}_per_token"] = per_token
                received[modality] = combine_repeats(per_token, periods[modality])
        if input_ids is not None:
            sent = self.transmit_text(input_ids)
            received["text_sent"] = sent
            received["text"] = self.receive("text", sent, links["text"], token_mask=attention_mask, generator=generator)
        return received

    @staticmethod
    def pool_vector(tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """a_m: the masked mean of `(batch, s, d)` tokens -> `(batch, d)` (Sec. III-A)."""
        if mask is None:
            return tokens.mean(dim=1)
        weights = mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def _prompt(self, received: dict, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """U of eq. (8): concatenate the received tokens in `config.prompt_order` (paper: visual, audio, text) and
        build the matching attention mask. Padding is moved to the left so that the prompt always ends on a real
        token, whatever the tokenizer's padding side (a stable sort keeps the order of the real tokens)."""
        parts, masks = [], []
        for link in self.config.prompt_order:
            if link not in received:
                continue
            tokens = received[link]
            parts.append(tokens)
            if link == "text" and attention_mask is not None:
                masks.append(attention_mask.to(device=tokens.device, dtype=torch.long))
            else:
                masks.append(torch.ones(tokens.shape[0], tokens.shape[1], dtype=torch.long, device=tokens.device))
        if not parts:
            raise ValueError("Give at least one of `pixel_values_videos`, `input_values`, `input_ids`.")
        return left_pad(torch.cat(parts, dim=1), torch.cat(masks, dim=1))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        links: dict | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
        **link_arguments,
    ) -> TokComModelOutput | tuple:
        r"""Send every given input over its link and build the LLM's prompt (eqs. 1-8).

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, question_tokens)`, *optional*): the question (text link).
            attention_mask (`torch.Tensor` of shape `(batch, question_tokens)`, *optional*): 0 on question padding.
            pixel_values_videos (`torch.Tensor` of shape `(batch, frames, 3, height, width)`, *optional*).
            input_values (`torch.Tensor` of shape `(batch, filterbank_frames, mel_bins)`, *optional*): AST features.
            links (`dict[str, Link]`, *optional*): per-link SNR, token count and channel type; or the older
                per-argument form `snr_db=`, `num_visual_tokens=`, `num_audio_tokens=`, `channel_type=`.
            generator (`torch.Generator`, *optional*): noise and fading draws.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        received = self.transmit_and_receive(
            pixel_values_videos, input_values, input_ids, attention_mask, links, generator, **link_arguments
        )
        prompt, prompt_mask = self._prompt(received, attention_mask)
        output = TokComModelOutput(prompt_embeds=prompt, prompt_mask=prompt_mask, received=received)
        return output if return_dict else output.to_tuple()


class TokComForAVQA(TokComPreTrainedModel):
    r"""The TokCom system for audio-visual question answering: [`TokComModel`] (transmitters, links, receivers) and
    the foundation LLM W with its LoRA adapter (eq. 11), the answer loss (eq. 12) and generation.

    Example (tiny preset, random weights):

    >>> import torch
    >>> from tokcom.modeling import Link, TokComConfig, TokComForAVQA
    >>> model = TokComForAVQA(TokComConfig.tiny()).eval()
    >>> video = torch.randn(2, 8, 3, 32, 32)          # (batch, frames, channels, height, width)
    >>> audio = torch.randn(2, 98, 64)                # (batch, filterbank frames, mel bins)
    >>> question = torch.randint(3, 256, (2, 6))      # (batch, question tokens)
    >>> links = {"visual": Link(snr_db=10.0, num_tokens=32), "audio": Link(snr_db=5.0, num_tokens=16),
    ...          "text": Link(snr_db=20.0)}
    >>> out = model(pixel_values_videos=video, input_values=audio, input_ids=question, links=links)
    >>> out.visual_tokens.shape, out.audio_tokens.shape
    (torch.Size([2, 32, 128]), torch.Size([2, 16, 128]))
    >>> model.generate(pixel_values_videos=video, input_values=audio, input_ids=question, links=links).shape[0]
    2
    >>> model.config.max_tokens_per_link  # tiny preset: half of Table I
    {'visual': 64, 'audio': 32}
    """

    def __init__(self, config: TokComConfig):
        super().__init__(config)
        # one `post_init` for the whole system (below), in module order, as before the split: a recipe still
        # reproduces its checkpoint bit for bit
        self.tokcom = TokComModel(config, initialize=False)
        # foundation model W (eq. 8) with a LoRA adapter (eq. 11)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        if config.use_lora:
            attach_lora(self.language_model, config.lora_r, config.lora_alpha, config.lora_dropout,
                        config.lora_target_modules)  # fmt: skip
        self.tokcom.set_text_embeddings(self.language_model.get_input_embeddings())
        self.post_init()
        self._zero_lora_b()
        self.language_model.generation_config = self._answer_generation_config()

    def _answer_generation_config(self) -> GenerationConfig:
        """Greedy decoding of the short answer: eos and pad of the LLM, `answer_max_new_tokens` new tokens."""
        text = self.config.text_config
        return GenerationConfig(
            max_new_tokens=self.config.answer_max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=text.eos_token_id,
            pad_token_id=text.pad_token_id if text.pad_token_id is not None else 0,
            bos_token_id=text.bos_token_id,
        )

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`; checkpoints written before the [`TokComModel`] split (keys without
        the `tokcom.` prefix) load unchanged."""
        kwargs.setdefault("key_mapping", LEGACY_KEY_MAPPING)
        try:
            return super().from_pretrained(*args, **kwargs)
        except Exception as error:  # a damaged weights file: say which file, not the deserializer's internals
            if type(error).__name__ != "SafetensorError":
                raise
            source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
            raise ValueError(
                f"The weights of {source} (model.safetensors) are damaged or truncated ({error}); re-download or "
                "re-export the checkpoint."
            ) from None

    @torch.no_grad()
    def _zero_lora_b(self) -> None:
        zero_lora_b(self.language_model)  # every adapter starts as the identity (eq. 11)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    @property
    def generation_config(self) -> GenerationConfig:
        """Decoding defaults of [`generate`] (the LLM's generation config)."""
        return self.language_model.generation_config

    @generation_config.setter
    def generation_config(self, value) -> None:
        if "language_model" in self._modules:  # `PreTrainedModel.__init__` sets it before the LLM exists
            self.language_model.generation_config = value

    # the transmitters, links and receivers, reachable as before the split
    vision_encoder = property(lambda self: self.tokcom.vision_encoder)
    audio_encoder = property(lambda self: self.tokcom.audio_encoder)
    visual_projector = property(lambda self: self.tokcom.visual_projector)
    audio_projector = property(lambda self: self.tokcom.audio_projector)
    receivers = property(lambda self: self.tokcom.receivers)
    channel = property(lambda self: self.tokcom.channel)

    def transmit_and_receive(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """[`TokComModel.transmit_and_receive`]."""
        return self.tokcom.transmit_and_receive(*args, **kwargs)

    def received_length(self, modality: str, num_tokens: int | None = None) -> int:
        """[`TokComModel.received_length`]."""
        return self.tokcom.received_length(modality, num_tokens)

    pool_vector = staticmethod(TokComModel.pool_vector)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        links: dict | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
        **link_arguments,
    ) -> TokComOutput | tuple:
        r"""Send every modality over its link and run the LLM on the received tokens.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, question_tokens)`): the question, sent over the text link.
            attention_mask (`torch.Tensor` of shape `(batch, question_tokens)`, *optional*): 0 on question padding.
            pixel_values_videos (`torch.Tensor` of shape `(batch, frames, 3, height, width)`, *optional*).
            input_values (`torch.Tensor` of shape `(batch, filterbank_frames, mel_bins)`, *optional*): AST features.
            labels (`torch.LongTensor` of shape `(batch, answer_tokens)`, *optional*): answer ids ending in eos,
                right-padded with -100. They are appended after the prompt (teacher forcing) and scored (eq. 12).
            links (`dict[str, Link]`, *optional*): per-link settings (SNR [dB], tokens sent, channel type). The older
                per-argument form still works: `snr_db` (`float`, `torch.Tensor` of shape `(batch,)`, or a dict per
                link; `None` uses the channel config's default), `num_visual_tokens`, `num_audio_tokens` (s_m in
                `[1, max]`; default the maximum), `channel_type` (`"awgn"`, `"rayleigh"` or `"none"`).
            generator (`torch.Generator`, *optional*): noise and fading draws.
            return_dict (`bool`, *optional*): a [`TokComOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        sent = self.tokcom(
            input_ids, attention_mask, pixel_values_videos, input_values, links, generator, return_dict=True,
            **link_arguments,
        )  # fmt: skip
        prompt, prompt_mask, received = sent.prompt_embeds, sent.prompt_mask, sent.received
        embeds, mask = prompt, prompt_mask
        if labels is not None:
            batch = prompt.shape[0]
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
        output = TokComOutput(
            loss=loss,
            logits=logits,
            visual_tokens=received.get("visual"),
            audio_tokens=received.get("audio"),
            text_tokens=received.get("text"),
            visual_pooled=self.pool_vector(received["visual"]) if "visual" in received else None,
            audio_pooled=self.pool_vector(received["audio"]) if "audio" in received else None,
            text_pooled=self.pool_vector(received["text"], attention_mask) if "text" in received else None,
            answer_start=answer_start,
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        links: dict | None = None,
        generator: torch.Generator | None = None,
        snr_db=None,
        num_visual_tokens: int | None = None,
        num_audio_tokens: int | None = None,
        channel_type: str | None = None,
        **generate_kwargs,
    ):
        """Send the inputs over their links once, then decode the answer with transformers' `generate` on the
        received prompt (KV cache, greedy by default; sampling, beams and streamers as `generate_kwargs`, over
        `self.generation_config`). Returns what `generate` returns: the new token ids `(batch, new_tokens)`, or
        a `GenerateOutput` with `return_dict_in_generate=True`."""
        link_arguments = dict(snr_db=snr_db, num_visual_tokens=num_visual_tokens, num_audio_tokens=num_audio_tokens)
        sent = self.tokcom(
            input_ids, attention_mask, pixel_values_videos, input_values, links, generator, return_dict=True,
            channel_type=channel_type, **link_arguments,
        )  # fmt: skip
        return self.language_model.generate(
            inputs_embeds=sent.prompt_embeds, attention_mask=sent.prompt_mask, **generate_kwargs
        )

    @torch.no_grad()
    def answer(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        links: dict | None = None,
        generator: torch.Generator | None = None,
        max_new_tokens: int | None = None,
        **link_arguments,
    ) -> TokComAnswerOutput:
        """Greedy answer over the LLM vocabulary from the received tokens, through [`generate`]; stops at eos.

        Takes the same inputs as `forward` (without `labels`); returns answer ids and their probabilities (the
        product of each chosen token's probability, finished rows' padding excluded).
        """
        out = self.generate(
            input_ids, attention_mask, pixel_values_videos, input_values, links, generator,
            max_new_tokens=max_new_tokens or self.config.answer_max_new_tokens,
            do_sample=False, num_beams=1, output_scores=True, return_dict_in_generate=True, **link_arguments,
        )  # fmt: skip
        scores = sequence_probability(out.sequences, out.scores, self.config.text_config.eos_token_id)
        return TokComAnswerOutput(sequences=out.sequences, scores=scores)

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
            model.tokcom.vision_encoder: AutoModel.from_pretrained(
                config.backbones["vision"], add_pooling_layer=False, **from_pretrained_kwargs
            ),
            model.tokcom.audio_encoder: AutoModel.from_pretrained(config.backbones["audio"], **from_pretrained_kwargs),
            model.language_model: AutoModelForCausalLM.from_pretrained(config.backbones["text"], **from_pretrained_kwargs),
        }
        for target, source in pretrained.items():
            # strict=False: the LLM's LoRA matrices are not in the pretrained checkpoint and keep their init
            missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
            missing = [key for key in missing if "lora_" not in key]
            if missing or unexpected:
                raise ValueError(
                    f"Pretrained {type(target).__name__} does not match the config: missing={missing[:5]} "
                    f"unexpected={unexpected[:5]}"
                )
        return model


__all__ = [
    "LEGACY_KEY_MAPPING",
    "TokComAnswerOutput",
    "TokComForAVQA",
    "TokComModel",
    "TokComModelOutput",
    "TokComOutput",
    "TokComPreTrainedModel",
    "TokenReceiver",
    "combine_repeats",
    "left_pad",
    "sliding_window_pool",
]
