"""tokcom: token communication models for the Hugging Face ecosystem.

Importing `tokcom` makes its sub-packages available:

>>> import tokcom
>>> from tokcom.modeling import TokenChannel, ChannelConfig
"""

from . import modeling  # noqa: F401

__version__ = "0.1.0.dev0"

__all__ = ["modeling", "__version__"]
