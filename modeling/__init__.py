"""Hub-copyable model code. Files here import only torch, transformers, peft and each other (relatively).

This `__init__` is not copied to the Hub. Its names are imported on first use (PEP 562), so importing one light
module (`tokcom.modeling.link_budget`, `tokcom.modeling.media_io`, numpy/scipy only) does not import torch or
transformers. To export a new name, add it to `_EXPORTS` under its module.
"""

from tokcom._lazy import attach

_EXPORTS = {
    "channel": ("ChannelConfig", "ChannelRealization", "TokenChannel"),
    "link_budget": (
        "channel_gain",
        "db_to_linear",
        "dbm_to_w",
        "linear_to_db",
        "noise_power_w",
        "path_loss_db",
        "received_snr",
        "received_snr_db",
        "resolve_gain",
        "shannon_rate_bps",
        "w_to_dbm",
    ),
    "configuration_tokcom": ("LINKS", "MODALITIES", "TokComConfig"),
    "links": ("Link", "resolve_links"),
    "modeling_tokcom": (
        "TokComAnswerOutput",
        "TokComForAVQA",
        "TokComModel",
        "TokComModelOutput",
        "TokComOutput",
        "TokComPreTrainedModel",
        "TokenReceiver",
        "sliding_window_pool",
    ),
    "configuration_taichi": ("TaiChiConfig",),
    "modeling_taichi": (
        "TaiChiForConditionalGeneration",
        "TaiChiGenerateOutput",
        "TaiChiOutput",
        "TaiChiPreTrainedModel",
    ),
    "lora": ("attach_lora", "zero_lora_b"),
    "decoding": ("sequence_probability",),
    # building blocks of the next families (TaiChi: KAN projector, BAN; UniToCom: diffusion head, coding-modulation)
    "kan": ("KANLinear", "KANProjector", "b_spline_bases"),
    "bilateral_attention": ("BilateralAttention", "BilateralAttentionOutput", "pool_tokens"),
    "diffusion_head": ("DiffusionHead", "diffusion_loss", "sample_tokens"),
    "channel_coding": ("AdaptiveChannelCoder", "qam_levels"),
    "configuration_unitocom": ("UniToComConfig", "UniToComTokenizerConfig"),
    "tokenization_unitocom": (
        "UniToComTokenizerModel",
        "UniToComTokenizerOutput",
        "UniToComTokenizerPreTrainedModel",
        "griffin_lim",
        "log_mel_spectrogram",
    ),
    "modeling_unitocom": ("UniToComGenerateOutput", "UniToComModel", "UniToComOutput", "UniToComPreTrainedModel"),
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
