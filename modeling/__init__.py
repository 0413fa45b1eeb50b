"""Hub-copyable model code. Files here import only torch, transformers, peft and each other (relatively)."""

from .channel import (
    ChannelConfig,
    ChannelRealization,
    TokenChannel,
    channel_gain,
    db_to_linear,
    dbm_to_w,
    linear_to_db,
    noise_power_w,
    path_loss_db,
    received_snr,
    received_snr_db,
    resolve_gain,
    shannon_rate_bps,
    w_to_dbm,
)

__all__ = [
    "ChannelConfig",
    "ChannelRealization",
    "TokenChannel",
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
]

from .configuration_tokcom import MODALITIES, TokComConfig  # noqa: E402
from .modeling_tokcom import (  # noqa: E402
    TokComAlignmentOutput,
    TokComAnswerOutput,
    TokComForAVQA,
    TokComOutput,
    TokComPreTrainedModel,
    TokenReceiver,
    sliding_window_pool,
)

__all__ += [
    "MODALITIES",
    "TokComAlignmentOutput",
    "TokComAnswerOutput",
    "TokComConfig",
    "TokComForAVQA",
    "TokComOutput",
    "TokComPreTrainedModel",
    "TokenReceiver",
    "sliding_window_pool",
]
