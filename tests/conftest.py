"""Shared helpers: tiny, fast run configs for tests of the loop, the API and the CLI."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_config


@pytest.fixture(autouse=True)
def _one_thread():
    # The test nets are tiny: one thread beats OpenMP's fork/join, and results do not depend on
    # the host's core count.
    torch.set_num_threads(1)


TINY = {
    "model.latent_dim": 8, "model.g_hidden": [16], "model.d_hidden": [16],
    "train.batch_size": 16, "train.steps": 12, "log.every": 4, "log.sample_every": 6,
    "log.checkpoint_every": 6, "log.progress": False, "log.toy_points": 200,
    "log.n_samples": 16, "log.tensorboard": False,
}


def tiny_config(preset: str = "digits-mlp", **overrides):
    """A preset shrunk to a few steps of tiny nets; overrides use dotted keys."""
    values = dict(TINY)
    if preset == "toy-gaussian":
        values["model.latent_dim"] = 1  # the seed's scalar noise
    values.update(overrides)
    return load_config(preset, values)
