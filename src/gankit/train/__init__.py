"""The training loop (Algorithm 1), its checkpoints, pictures and report."""

from gankit.train.loop import Trainer

__all__ = ["Trainer"]
