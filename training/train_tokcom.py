"""Former entry point of TokCom training, kept so existing commands and imports work: the loop now lives in the
family-independent engine (`tokcom.training.engine`), TokCom's stages in `tokcom.training.stages_tokcom`, and
the entry point is `python -m tokcom.training.train` (this module runs the same `main`)."""

from tokcom.training.engine import PROGRESS_FILE, close_distributed, parameter_digest, train, training_seed
from tokcom.training.stages_tokcom import TRANSCEIVERS, TokComStages, trainable_parameters
from tokcom.training.train import main

__all__ = [
    "PROGRESS_FILE",
    "TRANSCEIVERS",
    "TokComStages",
    "close_distributed",
    "main",
    "parameter_digest",
    "train",
    "trainable_parameters",
    "training_seed",
]

if __name__ == "__main__":
    raise SystemExit(main())
