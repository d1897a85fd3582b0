"""Choosing where torch code runs: a GPU when present, the CPU otherwise, and the matching precision.

Every torch-using provider and model goes through these two functions so that ``--device`` means the
same everywhere. torch is imported inside them, never when this module is imported.
"""

from __future__ import annotations

from typing import Any

from embhub.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")


def pick_device(requested: str = "auto") -> Any:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device that is absent is an error."""
    import torch

    if requested not in DEVICE_CHOICES and not requested.startswith("cuda:"):
        raise InputError(f"device '{requested}' is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{requested}' requested but no CUDA GPU is visible; use --device cpu or auto")
    if requested == "mps" and not _mps_available(torch):
        raise InputError("device 'mps' requested but Apple's MPS backend is not available here; use --device cpu or auto")
    return torch.device(requested)


def _mps_available(torch: Any) -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_dtype(device: Any, requested: str = "auto") -> Any:
    """Inference precision: ``auto`` is bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."""
    import torch

    if requested not in PRECISION_CHOICES:
        raise InputError(f"precision '{requested}' is not one of {', '.join(PRECISION_CHOICES)}")
    if requested == "fp32":
        return torch.float32
    if requested == "fp16":
        return torch.float16
    if requested == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
