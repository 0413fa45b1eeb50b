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
