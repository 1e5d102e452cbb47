"""The one training loop every plugin uses.

A plugin hands :func:`train` a :class:`TrainingJob` — a model whose trainable parameters
are the adapter's, the examples, a collate function and a loss — and gets back a
:class:`TrainingResult`. The loop owns everything else: device and precision, gradient
accumulation, the learning-rate schedule, evaluation during training, checkpoints and
``--resume``, the progress bar and the loss log.

Importing this package imports torch; plugin entry modules import it inside hooks only.
"""

from polyadapt.training.trainer import TrainingJob, TrainingResult, train

__all__ = ["TrainingJob", "TrainingResult", "train"]
