"""Devices and mixed precision, shared by training and inference."""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; a ``torch.device`` is returned as is."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps asked for, but MPS is not available; use --device cpu")
    return device


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (no loss scaling needed); full precision elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(images: torch.Tensor, device: torch.device, enabled: bool = True) -> torch.Tensor:
    """NHWC layout on CUDA, where cuDNN's convolutions run faster in it."""
    if enabled and device.type == "cuda":
        return images.contiguous(memory_format=torch.channels_last)
    return images
