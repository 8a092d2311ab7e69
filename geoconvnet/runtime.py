"""Devices, mixed precision, seeding and data loaders: the parts every stage shares."""

from __future__ import annotations

import contextlib
import os

import torch

from .data import ImageDataset, collate_skip_broken
from .errors import ConfigError


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU."""
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


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # Decoding 1600x900 PNGs is the bottleneck even on CPU: on 2 cores, 2 workers trained the
    # demo at 25 img/s against 20.5 with 1 worker, although they share cores with the model.
    return max(1, min(16, cores or 1))


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``epoch * n + i`` keys: the order is a function of (seed, epoch), and the
    dataset seeds each sample's augmentation from its key. Results therefore do not depend
    on the number of workers, and workers can persist across epochs (``set_epoch``).

    In a DDP run each of ``world`` processes takes every ``world``-th key of the same order
    (padded by repeating the start so every rank runs the same number of steps)."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = list(range(self.n))
        if self.world > 1:
            order = (order * self.world)[:len(self) * self.world][self.rank::self.world]
        return (self.epoch * self.n + i for i in order)

    def __len__(self) -> int:
        return -(-self.n // self.world)


def make_loader(samples, transform, batch_size: int, device: torch.device, *, shuffle: bool,
                seed: int = 0, num_workers: int | None = None, max_pixels: int = 40_000_000,
                drop_last: bool = False, checksums: dict | None = None, persistent: bool = False,
                rank: int = 0, world: int = 1):
    """DataLoader over (path, label) samples; ``persistent`` keeps the workers between
    epochs (call ``loader.sampler.set_epoch(e)`` before each); ``rank``/``world`` shard it
    for DDP."""
    workers = default_workers() if num_workers is None else num_workers
    dataset = ImageDataset(samples, transform, max_pixels, checksums, seed=seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=EpochSampler(len(samples), seed, shuffle, rank, world),
        num_workers=workers, collate_fn=collate_skip_broken,
        pin_memory=device.type == "cuda", drop_last=drop_last,
        persistent_workers=persistent and workers > 0, prefetch_factor=4 if workers else None)
