"""Which torch device a run, a loaded model or an evaluation uses.

The training loop, `gankit.load` and `evaluate` all resolve a device name; this module lets
the evaluation do so without depending on the training loop.
"""

from __future__ import annotations

import warnings

import torch

from gankit.errors import GankitError, GankitWarning


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device for "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        # Said here, in one line, rather than by CUDA's driver error from the first tensor.
        raise GankitError(f"device {name!r}: torch finds no usable CUDA device "
                          "(torch.cuda.is_available() is False); use cpu or auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware: AVX-512 BF16 or AMX on a CPU (without them
    oneDNN emulates bf16, measured 12-20x slower than fp32), or a CUDA GPU that supports it."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported()
                                     or torch.cpu._is_amx_tile_supported())


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision a run computes in: `name`, or for "auto" bf16 where `device` computes it
    natively and fp32 elsewhere."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and device.type == "cpu" and not native_bf16(device):
        # Allowed (bf16's numbers can be studied anywhere), but not silently many times slower.
        warnings.warn(GankitWarning(
            "train.precision=bf16 on a CPU without bf16 units (AVX-512 BF16 or AMX): oneDNN "
            "emulates it, 12-20x slower than fp32; train.precision=auto picks fp32 here"),
            stacklevel=2)
    return name
