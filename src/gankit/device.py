"""Which torch device a run, a loaded model or an evaluation uses.

The training loop, `gankit.load` and `evaluate` all resolve a device name; this module lets
the evaluation do so without depending on the training loop.
"""

from __future__ import annotations

import torch

from gankit.errors import GankitError


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device for "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        # Said here, in one line, rather than by CUDA's driver error from the first tensor.
        raise GankitError(f"device {name!r}: torch finds no usable CUDA device "
                          "(torch.cuda.is_available() is False); use cpu or auto")
    return torch.device(name)
