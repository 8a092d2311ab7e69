"""The one inference core: a loaded model + images -> probabilities, batched, on any device.

``predict``, ``evaluate``, the training loop's validation, ``calibrate`` and the app all
call :func:`infer`, so every one of them sees the same eval transform (built from the
checkpoint's preprocessing), the same batching and the same handling of unreadable files.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..data.images import load_image
from ..data.loader import default_workers, make_loader
from ..data.preprocessing import Preprocessing
from ..data.root import DataRoot
from ..data.shards import ShardSamples
from ..data.transforms import eval_transform, normalize
from ..models.checkpoint import LoadedModel
from ..models.heads import COUNTRY, heads_of, output_size, split_logits
from ..models.registry import check_input_size
from ..utils.device import autocast, channels_last, resolve_device
from ..utils.errors import ConfigError, DataError
from ..utils.progress import add_task, progress_bar
from . import default_batch_size

UNLABELLED = -1


@dataclass
class Inference:
    """What :func:`infer` returns: one row per input that could be read."""

    logits: torch.Tensor  # [n, classes]: the country head, before temperature
    labels: torch.Tensor  # [n]; UNLABELLED for inputs given without a label
    indices: torch.Tensor  # [n]: each row's position in the inputs
    failed: dict[int, str]  # input position -> why it could not be read (names the file)
    temperature: float
    view: str
    seconds: float
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # every head's logits

    @property
    def probs(self) -> torch.Tensor:
        """Calibrated probabilities (the checkpoint's temperature applied)."""
        return (self.logits / self.temperature).softmax(dim=1)

    def head_probs(self, name: str) -> torch.Tensor | None:
        """``[n, size]`` probabilities of head ``name`` (the country head calibrated), or
        None when the model has no such head."""
        if name == COUNTRY:
            return self.probs
        return self.outputs[name].softmax(dim=1) if name in self.outputs else None

    @property
    def images_per_s(self) -> float:
        return len(self.indices) / max(self.seconds, 1e-9)


def forward_views(net: torch.nn.Module, images, device: torch.device, pp: Preprocessing,
                  use_channels_last: bool = True) -> torch.Tensor:
    """Logits for a batch of uint8 ``[B, V, C, H, W]`` views (or a list of ``[V, C, H, W]`` of
    mixed sizes): the model combines the V views of each image with its view pool."""
    if isinstance(images, list):
        return torch.cat([forward_views(net, img[None], device, pp, use_channels_last)
                          for img in images])
    b, v = images.shape[:2]
    flat = normalize(images.flatten(0, 1).to(device, non_blocking=True), pp)
    flat = channels_last(flat, device, use_channels_last)
    with autocast(device):
        logits = net(flat.view(b, v, *flat.shape[1:]))
    return logits.float()


def read_any(source) -> Image.Image:
    """A loader ``read`` for inputs that are paths or in-memory PIL images."""
    if isinstance(source, Image.Image):
        return source if source.mode == "RGB" else source.convert("RGB")
    return load_image(source)


def as_samples(inputs) -> list[tuple]:
    """Paths, PIL images or ``(path, label)`` samples -> ``(source, label)`` samples (a
    sharded split stays as it is: its loader reads shard by shard)."""
    if isinstance(inputs, ShardSamples):
        return inputs
    return [item if isinstance(item, tuple) else (item, UNLABELLED) for item in inputs]


@torch.no_grad()
def infer(model: LoadedModel, inputs, *, view: str | None = None, data: DataRoot | None = None,
          batch_size: int | None = None, device: str | torch.device | None = None,
          num_workers: int | None = None, description: str = "Predicting",
          progress: bool = True) -> Inference:
    """Run ``model`` on ``inputs``: image paths, PIL images, or ``(path, label)`` samples.

    ``data``: the root the paths belong to (a cache's files are read with their checksums and
    its scale). ``view``: an eval view (default: the checkpoint's). ``batch_size``: default
    :func:`~geoconvnet.inference.default_batch_size` for the device. Inputs are decoded in
    loader workers (none for a single batch: starting workers would cost more), and
    unreadable ones are listed in ``failed`` instead of stopping the others. ``progress``:
    False for callers that predict one image at a time (the app), where a bar is noise."""
    device = resolve_device(device)
    batch_size = default_batch_size(device.type) if batch_size is None else batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    pp = model.preprocessing
    view = view or pp.eval_view
    check_input_size(model.net, model.meta["arch"], pp.image_size, view)
    samples = as_samples(inputs)
    transform = eval_transform(pp, view, data.scale if data is not None else 1.0)
    if num_workers is None:
        num_workers = default_workers() if len(samples) > batch_size else 0
    loader = make_loader(samples, transform, batch_size, device, shuffle=False,
                         read=data.read if data is not None else read_any,
                         num_workers=num_workers)
    start = time.perf_counter()
    with _eval_mode(model.net, device), progress_bar(transient=True, enabled=progress) as bar:
        task = add_task(bar, description, len(samples))
        logits, labels, indices, failed = [], [], [], {}
        for batch in loader:
            failed.update((f.index, f.reason) for f in batch.failed)
            if batch.images is not None:
                logits.append(forward_views(model.net, batch.images, device, pp).cpu())
                labels.append(batch.labels)
                indices.append(batch.indices)
            bar.advance(task, len(batch.labels) + len(batch.failed))
    outputs = split_logits(_cat(logits, (0, output_size(model.meta))), heads_of(model.meta))
    return Inference(outputs[COUNTRY], _cat(labels, (0,), torch.long),
                     _cat(indices, (0,), torch.long), failed, model.temperature, view,
                     time.perf_counter() - start, outputs)


@contextlib.contextmanager
def _eval_mode(net: torch.nn.Module, device: torch.device):
    """``net`` on ``device`` in eval mode, put back in training mode afterwards if it was
    (the training loop validates its own model). Moving or switching a model walks all its
    modules (about 4 ms for a ResNet-50, most of the overhead of predicting one image), so
    each happens only when needed."""
    if next(net.parameters()).device != device:
        net.to(device)
    was_training = net.training
    if was_training:
        net.eval()
    try:
        yield net
    finally:
        if was_training:
            net.train()


def _cat(parts: list[torch.Tensor], empty_shape: tuple, dtype=torch.float32) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.empty(empty_shape, dtype=dtype)


def require_some(result: Inference, what: str, inputs_count: int) -> Inference:
    """``result``, or a DataError when none of the inputs could be read."""
    if len(result.indices) == 0:
        example = next(iter(result.failed.values()), "no input given")
        raise DataError(f"none of the {inputs_count} images of {what} could be read "
                        f"(first problem: {example})")
    return result


def describe_source(source) -> str:
    """How an input is named in results: its path, or ``<image>`` for an in-memory one."""
    return str(source) if isinstance(source, (str, Path)) else "<image>"
