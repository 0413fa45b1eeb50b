"""Configuration of TokComForAVQA, the task-oriented multimodal token transmission system.

Paper: `tokcom-avqa-letter.txt` (Zhang, Ni, Wang, Wang), Sections II-IV and Table I.
"""

from __future__ import annotations

from typing import Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .channel import ChannelConfig

MODALITIES = ("visual", "audio")  # non-text modalities M' in the paper's notation; text is "text"
LINKS = (*MODALITIES, "text")  # every link, in the paper's prompt order (eq. 8)

# Tiny backbones: built from configs in tests and for the embedded default (no download).
TINY_TEXT_CONFIG = {
    "vocab_size": 256,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "bos_token_id": None,
    "eos_token_id": 2,
}
TINY_AUDIO_CONFIG = {  # 1 s of 16 kHz audio -> 98 x 64 filterbank -> 4 x 11 = 44 patches
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "patch_size": 16,
    "frequency_stride": 16,
    "time_stride": 8,
    "max_length": 98,
    "num_mel_bins": 64,
}
TINY_VISION_CONFIG = {  # 8 frames of 32x32 RGB -> 4 x 4 x 4 = 64 tubelets
    "image_size": 32,
    "num_frames": 8,
    "tubelet_size": [2, 8, 8],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "hidden_act": "gelu",
}

# The paper's backbones (Sec. V), loaded with `from_pretrained` by `TokComForAVQA.from_backbones`.
PAPER_BACKBONES = {
    "text": "Qwen/Qwen2.5-1.5B",
    "audio": "MIT/ast-finetuned-audioset-10-10-0.4593",
    "vision": "google/vivit-b-16x2",
}


class TokComConfig(PreTrainedConfig):
    r"""Configuration of [`TokComForAVQA`].

    Args:
        text_config (`dict` or `PreTrainedConfig`): the foundation LLM W (Qwen2 architecture by default).
        audio_config (`dict` or `PreTrainedConfig`): the audio encoder E_audio (AST).
        vision_config (`dict` or `PreTrainedConfig`): the video encoder E_visual (ViViT).
        channel_config (`dict` or `ChannelConfig`): the wireless links (one per modality, eqs. 4-6).
        max_tokens_per_link (`dict`, *optional*): S_m^max by link name, `{"visual": 64, "audio": 32}` by default
            (the paper preset uses Table I's 128 and 64). The text link sends the question's own length.
        max_visual_tokens, max_audio_tokens (`int`): the same maxima as single fields (older configs); when
            `max_tokens_per_link` is given it wins and these mirror it.
        pooling (`str`, defaults to `"avg"`): sliding-window pooling S_m, `"avg"` or `"max"` (eq. 3).
        receiver_hidden_size (`int`, defaults to 256): hidden width of each receiver head G_m (eq. 7).
        receiver_position_embeddings (`bool`, defaults to `False`): the visual and audio receivers add a learned
            embedding of each token's index in its frame before G_m, so that tokens carrying the same scene can be
            decoded into different words (token-level alignment, see `TokComForAVQA.alignment_loss`). The
            receiver knows each token's index from its place in the frame; nothing extra is transmitted.
        receiver_token_period (`dict`, *optional*): `{"visual": L_v, "audio": L_a}`. When set, the transmitter's
            tokens repeat a description of L_m words (token i carries word i mod L_m, see token-level alignment),
            and the receiver *combines* the repeats: the decoded tokens i, i + L_m, i + 2 L_m, ... are averaged
            into one, so the LLM reads min(s_m, L_m) tokens of modality m and extra tokens buy noise averaging.
        contrastive_temperature (`float`, defaults to 0.07): tau of eq. (10).
        use_lora (`bool`, defaults to `True`): attach a LoRA adapter to the LLM (eq. 11).
        lora_r (`int`, defaults to 4), lora_alpha (`int`, defaults to 8), lora_dropout (`float`, defaults to 0.0),
        lora_target_modules (`list[str]`): the adapter's settings (paper: r = 4).
        bits_per_token_element (`int`, defaults to 16): bits per transmitted element; a token vector carries
            `q = bits_per_token_element * text_config.hidden_size` bits (eq. 14).
        performance_model (`dict`, *optional*): fitted phi_m of eq. (15) per modality,
            `{"visual": {"alpha": .., "beta": .., "gamma": ..}, "audio": {...}}`.
        answer_max_new_tokens (`int`, defaults to 4): decoding budget for the one-word answer.
        prompt_order (`list[str]`, defaults to `["visual", "audio", "text"]`): the order in which U (eq. 8)
            concatenates the received tokens; the paper puts the text last.

    Example:

    >>> config = TokComConfig.tiny()
    >>> config.max_visual_tokens, config.max_audio_tokens, config.text_config.hidden_size
    (64, 32, 128)
    >>> config.bits_per_token
    2048
    """

    model_type = "tokcom"

    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2", init_kwargs=TINY_TEXT_CONFIG),
        "audio_config": SubConfigSpec(
            config_class=AutoConfig, model_type="audio-spectrogram-transformer", init_kwargs=TINY_AUDIO_CONFIG
        ),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="vivit", init_kwargs=TINY_VISION_CONFIG),
        "channel_config": SubConfigSpec(config_class=ChannelConfig),
    }

    text_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    channel_config: dict | PreTrainedConfig | None = None
    max_tokens_per_link: dict | None = None
    max_visual_tokens: int = 64
    max_audio_tokens: int = 32
    pooling: Literal["avg", "max"] = "avg"
    receiver_hidden_size: int = 256
    receiver_position_embeddings: bool = False
    receiver_token_period: dict | None = None
    contrastive_temperature: float = 0.07
    use_lora: bool = True
    lora_r: int = 4
    lora_alpha: int = 8
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None
    bits_per_token_element: int = 16
    performance_model: dict | None = None
    answer_max_new_tokens: int = 4
    prompt_order: list[str] | None = None
    backbones: dict | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.prompt_order is None:
            self.prompt_order = ["visual", "audio", "text"]
        if sorted(self.prompt_order) != ["audio", "text", "visual"]:
            raise ValueError(f"`prompt_order` must order 'visual', 'audio' and 'text' once each, got {self.prompt_order!r}.")
        if self.lora_target_modules is None:
            self.lora_target_modules = ["q_proj", "v_proj"]
        if self.max_tokens_per_link is None:
            self.max_tokens_per_link = {"visual": self.max_visual_tokens, "audio": self.max_audio_tokens}
        if not isinstance(self.max_tokens_per_link, dict) or sorted(self.max_tokens_per_link) != sorted(MODALITIES):
            raise ValueError(
                f"`max_tokens_per_link` must map exactly {MODALITIES} to token maxima, got {self.max_tokens_per_link!r}."
            )
        self.max_tokens_per_link = {m: self.max_tokens_per_link[m] for m in MODALITIES}
        self.max_visual_tokens = self.max_tokens_per_link["visual"]
        self.max_audio_tokens = self.max_tokens_per_link["audio"]
        for name in ("max_visual_tokens", "max_audio_tokens", "receiver_hidden_size", "lora_r", "answer_max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        if self.receiver_token_period is not None:
            for modality, period in self.receiver_token_period.items():
                maximum = self.max_tokens(modality) if modality in MODALITIES else None
                if maximum is None or isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= maximum:
                    raise ValueError(
                        f"`receiver_token_period` must map 'visual'/'audio' to an integer in [1, max_<modality>_tokens], "
                        f"got {modality!r}: {period!r}."
                    )
        if self.pooling not in ("avg", "max"):
            raise ValueError(f"`pooling` must be 'avg' or 'max', got {self.pooling!r}.")
        if not self.contrastive_temperature > 0:
            raise ValueError(f"`contrastive_temperature` must be > 0, got {self.contrastive_temperature!r}.")
        if self.bits_per_token_element < 1:
            raise ValueError(f"`bits_per_token_element` must be >= 1, got {self.bits_per_token_element!r}.")
        if self.performance_model is not None:
            for modality, phi in self.performance_model.items():
                if modality not in MODALITIES or not {"alpha", "beta", "gamma"} <= set(phi):
                    raise ValueError(
                        f"`performance_model` must map {MODALITIES} to {{'alpha', 'beta', 'gamma'}}, got {modality!r}: {phi!r}."
                    )

    @property
    def link_names(self) -> tuple[str, ...]:
        """Every link of the system: the media links (token length chosen per call) and the question's."""
        return LINKS

    @property
    def bits_per_token(self) -> int:
        """q of eq. (14): bits carried by one token vector of the text dimension d_T."""
        return self.bits_per_token_element * self.text_config.hidden_size

    def max_tokens(self, modality: str) -> int:
        """S_m^max for `modality` in `("visual", "audio")`."""
        if modality not in MODALITIES:
            raise ValueError(f"`modality` must be one of {MODALITIES}, got {modality!r}.")
        return self.max_tokens_per_link[modality]

    @classmethod
    def tiny(cls, **kwargs) -> TokComConfig:
        """The preset used by tests and the embedded default: ~0.7 M parameters, token budgets 64 (visual) and 32
        (audio), half of Table I's, so that training fits a 2-core CPU; the 2:1 ratio is kept.

        Sub-config dicts are merged into the tiny defaults: `TokComConfig.tiny(text_config={"num_hidden_layers": 4})`.
        """
        for key, defaults in (("text_config", TINY_TEXT_CONFIG), ("audio_config", TINY_AUDIO_CONFIG), ("vision_config", TINY_VISION_CONFIG)):
            if isinstance(kwargs.get(key), dict):
                kwargs[key] = {**defaults, **kwargs[key]}
        return cls(**kwargs)

    @classmethod
    def paper(cls, **kwargs) -> TokComConfig:
        """The paper's system (Sec. V): Qwen2.5-1.5B + AST + ViViT-B, LoRA r = 4, Table I token budgets.

        Builds the architectures from their published configs when they are available locally (`AutoConfig`
        with the Hub offline uses the local cache); weights load with `TokComForAVQA.from_backbones`.
        """
        text = AutoConfig.from_pretrained(PAPER_BACKBONES["text"])
        audio = AutoConfig.from_pretrained(PAPER_BACKBONES["audio"])
        vision = AutoConfig.from_pretrained(PAPER_BACKBONES["vision"])
        defaults = {
            "text_config": text,
            "audio_config": audio,
            "vision_config": vision,
            "receiver_hidden_size": text.hidden_size,
            "max_tokens_per_link": {"visual": 128, "audio": 64},
            "backbones": dict(PAPER_BACKBONES),
        }
        defaults.update(kwargs)
        return cls(**defaults)


__all__ = ["LINKS", "MODALITIES", "PAPER_BACKBONES", "TokComConfig"]
