"""Training of a method's trainable parts (:mod:`.trainer`) and of the segment-boundary trigger (:mod:`.trigger`)."""

# The names latentreason 0.1's ``latentreason.training`` module had.
from latentreason.training.trainer import Trainer, TrainResult, gold_targets, supervised_loss, teacher_forced

__all__ = ["TrainResult", "Trainer", "gold_targets", "supervised_loss", "teacher_forced"]
