"""Configuration of TaiChiForConditionalGeneration, the VLM-driven token communication system.

Paper: `taichi-vlm-tokencom.txt`, Sections III-V (dual visual tokenizers, BAN, KAN projector, LLM split into a
token encoder and a token decoder across the link, joint VLM-channel coding).
"""

from __future__ import annotations

from typing import Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .channel import ChannelConfig

LINKS = ("visual", "text")  # the visual tokens Z_v and the instruction + query E(t), each over its own link
TASKS = ("vqa", "caption", "sentiment")

# Tiny backbones (tests and the embedded default; built from configs, nothing downloaded).
TINY_TEXT_CONFIG = {
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "bos_token_id": None,
    "eos_token_id": 2,
}
TINY_VISION_LR_CONFIG = {  # 32x32 LR view, 8x8 patches -> a 4x4 coarse grid (V_l, eqs. 1-3)
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
# V_h of the tiny preset is a small ResNet (transformers' `ResNetModel`, basic blocks): 64x64 image, 7x7/2 stem +
# 3x3/2 max-pool (16x16), a stage at 16x16 and one at 8x8 -> the 8x8 fine grid. A ConvNeXt this small (patchify
# stem, depthwise blocks) does not learn the objects' shapes at 64 px: after 1200 `pretrain_vision` steps its fine
# tokens read shape at 0.40 (4-px stem, stages [32, 64] x 1, the preset before) or 0.55 (2-px stem, three stages of
# depth 3: 2.7x the parameters, 6x the time), chance being 0.33, while this ResNet reads 0.87 in the time of the
# first (`benchmarks/taichi_tower_variants.py`, results/taichi_visual_probe/). The paper's preset keeps its
# ConvNeXt-L; `hidden_sizes` and `(batch, C, h, w)` stage maps are what both expose.
TINY_VISION_HR_CONFIG = {
    "model_type": "resnet",
    "image_size": 64,  # not a ResNet field: kept on the config as the side of I (`hr_image_size`'s default)
    "num_channels": 3,
    "embedding_size": 32,
    "hidden_sizes": [32, 64],
    "depths": [1, 1],
    "layer_type": "basic",
    "downsample_in_first_stage": False,
}

# The paper's backbones (Sec. VI): CLIP ViT-L/14 at 336 px for V_l, CLIP-ConvNeXt-L at 320 px for V_h, and the
# LLM (Gemma-2B-instruct or Qwen2.5-14B-instruct; Qwen2 architecture here). The CLIP-ConvNeXt of the paper is an
# open_clip/timm checkpoint ("timm/convnext_large_mlp.clip_laion2b_ft_320"); transformers' own ConvNeXt with the
# same ConvNeXt-L sizes is "facebook/convnext-large-224", which `from_backbones` loads.
PAPER_BACKBONES = {
    "vision_lr": "openai/clip-vit-large-patch14-336",
    "vision_hr": "facebook/convnext-large-224",
    "text": "Qwen/Qwen2.5-14B-Instruct",
}


def _int_at_least(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


class TaiChiConfig(PreTrainedConfig):
    r"""Configuration of [`TaiChiForConditionalGeneration`].

    Args:
        vision_lr_config (`dict` or `PreTrainedConfig`): V_l, the CLIP ViT on the downsampled image I' (eqs. 1-3).
        vision_hr_config (`dict` or `PreTrainedConfig`): V_h, the CNN on the full image I (eq. 4): the paper's
            ConvNeXt (`paper()`); a small ResNet in `tiny()` (see `TINY_VISION_HR_CONFIG` for why). Any transformers
            vision backbone whose config has `hidden_sizes` and whose `hidden_states` are `(batch, C, h, w)` maps.
        text_config (`dict` or `PreTrainedConfig`): the LLM (Qwen2 architecture), split into S_alpha (the first
            `num_transmitter_layers` layers, at the device) and S_delta^-1 (the rest and the LM head, at the base
            station).
        channel_config (`dict` or `ChannelConfig`): the wireless link (eq. 14).
        lr_image_size, hr_image_size (`int`): sides of I' and I [pixels]; default the vision configs' `image_size`
            (required when a vision config has none, as ResNet's).
        vision_feature_layer (`int`, defaults to -1): which CLIP hidden state gives V_l (LLaVA uses -2).
        hr_feature_stage (`int`, defaults to -1): which of V_h's stage maps (`hidden_states`) gives V_h.
        use_ban (`bool`, defaults to `True`): fuse V_l and V_h with the BAN (eqs. 5-7); `False` sends the LR tokens
            only (the paper's "w/o BAN").
        ban_num_heads (`int`, defaults to 4), ban_coarse_window (`int`, defaults to 3): see [`BilateralAttention`].
        ban_fine_ratio (`int`, defaults to 2): r, the fine grid is r x the coarse grid; a V_h map of another size is
            resized to it (bilinear), e.g. the paper's 320 px ConvNeXt map against CLIP's 24 x 24 grid.
        projector_type (`str`, defaults to `"kan"`): P_zeta, `"kan"` (eqs. 8-10) or `"mlp"` (the paper's "w/o KAN").
        projector_num_layers (`int`, defaults to 2), kan_grid_size (`int`, defaults to 5), kan_spline_order (`int`,
            defaults to 3), kan_grid_range (`list[float]`, defaults to `[-1, 1]`), kan_bound (`str`, defaults to
            `"layernorm"`): the KAN projector's settings (see [`KANProjector`]).
        num_transmitter_layers (`int`, defaults to 2): K, LLM layers at the transmitter (token encoder, eq. 12),
            in `[0, num_hidden_layers - 1]`; 0 sends the embeddings themselves.
        channel_symbols_per_token (`int`, defaults to 32): complex channel uses per token of C_beta (eq. 13); a
            token of d reals sent uncoded takes d / 2.
        channel_coder_hidden_size (`int`, defaults to 256), channel_coder_layers (`int`, defaults to 2),
        channel_constellation (`str`, defaults to `"analog"`): the SNR-adaptive coder C_beta / C_gamma
            ([`AdaptiveChannelCoder`]; `"qam4"`/`"qam16"`/`"qam64"` for a digital constellation).
        max_visual_tokens (`int`, *optional*): S_v^max, visual tokens sent at most; default the coarse grid's size.
            Fewer are sent by pooling the fused grid (`num_visual_tokens=` per call).
        text_embedding_multiplier (`float`, defaults to 1.0): word embeddings enter the LLM times this (Gemma's
            sqrt(hidden) normalizer); 1.0 for a pretrained LLM, sqrt(hidden_size) in the tiny preset, whose LLM is
            trained from scratch: with its small initial embeddings the words would be drowned in the residual
            stream. Visual tokens Z_v live in the scaled space.
        prompt_order (`list[str]`, defaults to `["text", "visual"]`): the order of E(t) and Z_v in the token
            encoder's input. Eq. (12) writes S_alpha(E(t), Z_v), and Sec. IV-B has the instruction act as "a
            high-level control signal" that guides what the encoder extracts from the image: with the text first,
            the causal encoder computes each visual token with the instruction and query in view.
        use_lora (`bool`, defaults to `True`), lora_r (`int`, defaults to 8), lora_alpha (`int`, defaults to 16),
        lora_dropout (`float`, defaults to 0.0), lora_target_modules (`list[str]`): LoRA on the LLM (Sec. V-B).
        bits_per_token_element (`int`, defaults to 16): bits per transmitted element (transmission report, eq. 14
            of the TokCom letter: q = bits x d).
        max_new_tokens (`dict`, *optional*): answer budget per task, `{"vqa": 4, "caption": 24, "sentiment": 3}`.
        performance_model (`dict`, *optional*): fitted phi of the visual link (network mode of the link planner).
        tie_word_embeddings (`bool`, defaults to `True`): the LM head shares the word embeddings; `tiny()` sets
            `False` (its own head), `paper()` follows its LLM (Qwen2.5-14B-instruct has its own head).

    Example:

    >>> config = TaiChiConfig.tiny()
    >>> config.coarse_grid, config.fine_grid, config.max_visual_tokens
    ((4, 4), (8, 8), 16)
    >>> config.link_names, config.max_tokens_per_link
    (('visual', 'text'), {'visual': 16})
    """

    model_type = "taichi"

    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2", init_kwargs=TINY_TEXT_CONFIG),
        "vision_lr_config": SubConfigSpec(
            config_class=AutoConfig, model_type="clip_vision_model", init_kwargs=TINY_VISION_LR_CONFIG
        ),
        "vision_hr_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet", init_kwargs=TINY_VISION_HR_CONFIG),
        "channel_config": SubConfigSpec(config_class=ChannelConfig),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_lr_config: dict | PreTrainedConfig | None = None
    vision_hr_config: dict | PreTrainedConfig | None = None
    channel_config: dict | PreTrainedConfig | None = None
    lr_image_size: int | None = None
    hr_image_size: int | None = None
    vision_feature_layer: int = -1
    hr_feature_stage: int = -1
    use_ban: bool = True
    ban_num_heads: int = 4
    ban_coarse_window: int = 3
    ban_fine_ratio: int = 2
    projector_type: Literal["kan", "mlp"] = "kan"
    projector_num_layers: int = 2
    kan_grid_size: int = 5
    kan_spline_order: int = 3
    kan_grid_range: list[float] | None = None
    kan_bound: Literal["tanh", "layernorm"] = "layernorm"
    num_transmitter_layers: int = 2
    channel_symbols_per_token: int = 32
    channel_coder_hidden_size: int = 256
    channel_coder_layers: int = 2
    channel_constellation: str = "analog"
    max_visual_tokens: int | None = None
    prompt_order: list[str] | None = None
    text_embedding_multiplier: float = 1.0
    use_lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None
    bits_per_token_element: int = 16
    max_new_tokens: dict | None = None
    performance_model: dict | None = None
    backbones: dict | None = None
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.lr_image_size is None:
            self.lr_image_size = self.vision_lr_config.image_size
        if self.hr_image_size is None:
            self.hr_image_size = getattr(self.vision_hr_config, "image_size", None)
            if self.hr_image_size is None:
                raise ValueError(
                    f"`hr_image_size` is required: the V_h config ({self.vision_hr_config.model_type}) has no `image_size`."
                )
        if self.kan_grid_range is None:
            self.kan_grid_range = [-1.0, 1.0]
        if self.lora_target_modules is None:
            self.lora_target_modules = ["q_proj", "v_proj"]
        if self.max_new_tokens is None:
            self.max_new_tokens = {"vqa": 4, "caption": 24, "sentiment": 3}
        if not 0 < float(self.text_embedding_multiplier) < float("inf"):
            raise ValueError(f"`text_embedding_multiplier` must be a finite number > 0, got {self.text_embedding_multiplier!r}.")
        if self.prompt_order is None:
            self.prompt_order = ["text", "visual"]
        if sorted(self.prompt_order) != ["text", "visual"]:
            raise ValueError(f"`prompt_order` must order 'text' and 'visual', got {self.prompt_order!r}.")
        for name, minimum in (("lr_image_size", 1), ("hr_image_size", 1), ("ban_num_heads", 1), ("ban_fine_ratio", 1),
                              ("projector_num_layers", 1), ("kan_grid_size", 1), ("kan_spline_order", 0),
                              ("num_transmitter_layers", 0), ("channel_symbols_per_token", 1),
                              ("channel_coder_hidden_size", 1), ("channel_coder_layers", 1), ("lora_r", 1),
                              ("bits_per_token_element", 1)):  # fmt: skip
            _int_at_least(name, getattr(self, name), minimum)
        if self.ban_coarse_window < 1 or self.ban_coarse_window % 2 == 0:
            raise ValueError(f"`ban_coarse_window` must be an odd integer >= 1, got {self.ban_coarse_window!r}.")
        if self.projector_type not in ("kan", "mlp"):
            raise ValueError(f"`projector_type` must be 'kan' or 'mlp', got {self.projector_type!r}.")
        if self.kan_bound not in ("tanh", "layernorm"):
            raise ValueError(f"`kan_bound` must be 'tanh' or 'layernorm', got {self.kan_bound!r}.")
        layers = self.text_config.num_hidden_layers
        if self.num_transmitter_layers >= layers:
            raise ValueError(
                f"`num_transmitter_layers` must be in [0, {layers - 1}] (the receiver keeps at least one of the LLM's "
                f"{layers} layers), got {self.num_transmitter_layers}."
            )
        patch = self.vision_lr_config.patch_size
        if self.lr_image_size % patch:
            raise ValueError(f"`lr_image_size` ({self.lr_image_size}) must be a multiple of the ViT patch size {patch}.")
        coarse = self.coarse_grid[0] * self.coarse_grid[1]
        if self.max_visual_tokens is None:
            self.max_visual_tokens = coarse
        if not 1 <= _int_at_least("max_visual_tokens", self.max_visual_tokens, 1) <= coarse:
            raise ValueError(f"`max_visual_tokens` must be in [1, {coarse}] (the coarse grid), got {self.max_visual_tokens}.")
        unknown = sorted(set(self.max_new_tokens) - set(TASKS))
        if unknown:
            raise ValueError(f"`max_new_tokens` keys must be among {TASKS}, got {unknown}.")
        for task, count in self.max_new_tokens.items():
            _int_at_least(f"max_new_tokens[{task!r}]", count, 1)

    # ------------------------------------------------------------------ what the link planner reads

    @property
    def link_names(self) -> tuple[str, ...]:
        """The links in prompt order: the visual tokens (length chosen per call) and the text (its own length)."""
        return LINKS

    @property
    def max_tokens_per_link(self) -> dict[str, int]:
        """S^max of the links whose token length is chosen per call (the visual one)."""
        return {"visual": self.max_visual_tokens}

    @property
    def bits_per_token(self) -> int:
        """q: bits of one transmitted token vector of the LLM width (uncoded reference for the report)."""
        return self.bits_per_token_element * self.text_config.hidden_size

    # ------------------------------------------------------------------ grids

    @property
    def coarse_grid(self) -> tuple[int, int]:
        """(H_l, W_l): the LR ViT's patch grid."""
        side = self.lr_image_size // self.vision_lr_config.patch_size
        return side, side

    @property
    def fine_grid(self) -> tuple[int, int]:
        """(H_h, W_h) = r x the coarse grid: the grid the BAN reads V_h on."""
        rows, cols = self.coarse_grid
        return rows * self.ban_fine_ratio, cols * self.ban_fine_ratio

    # ------------------------------------------------------------------ presets

    @classmethod
    def tiny(cls, **kwargs) -> TaiChiConfig:
        """The preset of tests and the embedded default (~1 M parameters; 64/32 px views, 16 visual tokens, a
        4-layer LLM split 2 + 2). Sub-config dicts merge into the tiny defaults of the same architecture.

        >>> TaiChiConfig.tiny(vision_hr_config={"model_type": "convnext", "image_size": 64}).vision_hr_config.model_type
        'convnext'
        """
        for key, defaults in (("text_config", TINY_TEXT_CONFIG), ("vision_lr_config", TINY_VISION_LR_CONFIG),
                              ("vision_hr_config", TINY_VISION_HR_CONFIG)):  # fmt: skip
            given = kwargs.get(key)
            if isinstance(given, dict) and given.get("model_type", defaults.get("model_type")) == defaults.get("model_type"):
                kwargs[key] = {**defaults, **given}  # another architecture (e.g. a ConvNeXt V_h) starts from its own
        text = kwargs.get("text_config")
        hidden = text["hidden_size"] if isinstance(text, dict) else getattr(text, "hidden_size", TINY_TEXT_CONFIG["hidden_size"])
        kwargs.setdefault("text_embedding_multiplier", float(hidden) ** 0.5)
        # A separate LM head: a visual token aligned to the sum of its cell's words (size + colour + material +
        # shape) and copied to the answer position scores all four words under a tied head, and the LLM must then
        # learn to cancel three; untied, query questions learn in 1000 steps instead of staying at chance
        # (`benchmarks/taichi_llm_learnability.py --untie`, results/taichi_llm_learnability/).
        kwargs.setdefault("tie_word_embeddings", False)
        return cls(**kwargs)

    @classmethod
    def paper(cls, **kwargs) -> TaiChiConfig:
        """The paper's system: CLIP ViT-L/14-336 (penultimate layer, 24 x 24 tokens) + ConvNeXt-L at 320 px (its
        stride-16 map resized to 48 x 48) + Qwen2.5-14B-instruct; architectures read with `AutoConfig` (local files
        or the Hub cache); weights load with `TaiChiForConditionalGeneration.from_backbones`."""
        text = AutoConfig.from_pretrained(PAPER_BACKBONES["text"])
        lr = AutoConfig.from_pretrained(PAPER_BACKBONES["vision_lr"])
        lr = getattr(lr, "vision_config", lr)
        hr = AutoConfig.from_pretrained(PAPER_BACKBONES["vision_hr"])
        defaults = {
            "text_config": text,
            "vision_lr_config": lr,
            "vision_hr_config": hr,
            "lr_image_size": 336,
            "hr_image_size": 320,
            "vision_feature_layer": -2,
            "hr_feature_stage": -2,
            "ban_num_heads": 16,
            "num_transmitter_layers": 4,
            "channel_symbols_per_token": text.hidden_size // 4,
            "channel_coder_hidden_size": 1024,
            "backbones": dict(PAPER_BACKBONES),
            "tie_word_embeddings": bool(getattr(text, "tie_word_embeddings", False)),  # Qwen2.5-14B: its own head
        }
        defaults.update(kwargs)
        return cls(**defaults)


__all__ = ["LINKS", "PAPER_BACKBONES", "TASKS", "TaiChiConfig"]
