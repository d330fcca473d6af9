"""Training: protocols, whole-tensor trainer, losses, device augmentation, metrics, experiment runner."""

from mer.train.metrics import compute_metrics
from mer.train.protocols import Fold, Protocol, parse_protocol
from mer.train.trainer import History, TrainConfig, fit, predict

__all__ = [
    "Fold",
    "History",
    "Protocol",
    "TrainConfig",
    "compute_metrics",
    "fit",
    "parse_protocol",
    "predict",
]
