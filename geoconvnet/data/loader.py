"""Data loaders shared by training and inference: a Dataset that never lets one bad file end
an epoch, a sampler whose order and crops depend only on (seed, epoch), and the loader."""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import torch

from ..utils.errors import DataError
from .images import load_image
from .shards import ShardEpochSampler, ShardSamples


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # Decoding 1600x900 PNGs is the bottleneck even on CPU: on 2 cores, 2 workers trained the
    # demo at 25 img/s against 20.5 with 1 worker, although they share cores with the model.
    return max(1, min(16, cores or 1))


class Failed(NamedTuple):
    """A sample that could not be read: its position and the reason (names the file)."""

    index: int
    reason: str


class Batch(NamedTuple):
    images: torch.Tensor | list[torch.Tensor] | None  # None when every sample failed
    labels: torch.Tensor
    indices: torch.Tensor
    failed: list[Failed]


class ImageDataset(torch.utils.data.Dataset):
    """(image tensor, label, index) for each ``(source, label)`` sample, where ``read(source)``
    gives the image (a path through :func:`load_image` by default; see
    ``inference.core.read_any`` for in-memory images). ``read`` must be picklable (a
    module-level function or a bound method) where workers are spawned. A source that
    fails yields :class:`Failed`."""

    def __init__(self, samples: list, transform, read: Callable = load_image,
                 seed: int | None = None):
        self.samples, self.transform, self.read = samples, transform, read
        self.seed = seed  # with a seed, each key's augmentation is reproducible

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int):
        """``key`` = epoch * len + index (see :class:`EpochSampler`); a plain index works too."""
        index = key % len(self.samples)
        source, label = self.samples[index]
        try:
            image = self.read(source)
        except DataError as exc:
            return Failed(index, str(exc))
        if self.seed is None:
            return self.transform(image), label, index
        # Seed only the CPU generator the transforms draw from (torch.manual_seed would also
        # queue CUDA seeding, recording a stack trace each time: 100x slower), and restore
        # it so the main process's stream (dropout) is untouched when loading runs there.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(self.seed * 1_000_003 + key)
        try:
            return self.transform(image), label, index
        finally:
            generator.set_state(state)


def collate(items) -> Batch:
    """Stack a batch, setting aside the samples that failed to load.

    Samples whose tensors differ in size (the ``full`` view of mixed-size images) are kept
    as a list; the model runs them one by one.
    """
    failed = [item for item in items if isinstance(item, Failed)]
    good = [item for item in items if not isinstance(item, Failed)]
    if not good:
        return Batch(None, torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long),
                     failed)
    images, labels, indices = zip(*good)
    same_shape = all(img.shape == images[0].shape for img in images)
    stacked = torch.stack(images) if same_shape else list(images)
    return Batch(stacked, torch.tensor(labels), torch.tensor(indices), failed)


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


def make_loader(samples: list, transform, batch_size: int, device: torch.device, *,
                shuffle: bool, read: Callable = load_image, seed: int = 0,
                num_workers: int | None = None, drop_last: bool = False,
                persistent: bool = False, rank: int = 0, world: int = 1):
    """DataLoader over ``(source, label)`` samples yielding :class:`Batch` es. ``seed`` fixes
    every sample's random crop (training, the ``random`` eval view); ``persistent`` keeps the workers between epochs
    (call ``loader.sampler.set_epoch(e)`` before each); ``rank``/``world`` shard it for DDP."""
    workers = default_workers() if num_workers is None else num_workers
    dataset = ImageDataset(samples, transform, read, seed=seed)
    # A sharded cache's samples are read shard by shard (each rank only its own shards).
    sampler = (ShardEpochSampler(samples, seed, shuffle, rank, world)
               if isinstance(samples, ShardSamples)
               else EpochSampler(len(samples), seed, shuffle, rank, world))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
        pin_memory=device.type == "cuda", drop_last=drop_last,
        persistent_workers=persistent and workers > 0, prefetch_factor=4 if workers else None)
