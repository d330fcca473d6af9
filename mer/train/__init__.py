"""Training: protocols, whole-tensor trainer, losses, device augmentation, metrics, experiment runner.

Import from the modules (``mer.train.trainer``, ``mer.train.experiment``, …): this package re-exports nothing, so
that reading a run's files (``mer.train.results``, used by reports and the CLI) does not load PyTorch.
"""
