"""Predict the country of screenshots with a trained checkpoint, batched through the loader."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.layout import image_files
from ..models.checkpoint import LoadedModel, load_checkpoint
from ..utils.device import resolve_device
from .core import describe_source, infer


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)  # (country, probability)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error,
                "top": [{"country": c, "probability": round(p, 6)} for c, p in self.top]}


@dataclass
class Predictions:
    """One :class:`Prediction` per input, in input order, and how fast they were made."""

    items: list[Prediction]
    seconds: float

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prediction:
        return self.items[index]

    @property
    def images_per_s(self) -> float:
        done = sum(1 for p in self.items if p.error is None)
        return done / max(self.seconds, 1e-9)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given, image files under folders (recursively) and glob matches, in order.
    A name that matches nothing is kept, so it is reported as an error."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(image_files(path))
        elif not path.exists() and glob.has_magic(raw):
            out.extend(sorted(glob.glob(raw, recursive=True)) or [raw])
        else:
            out.append(raw)
    return out


def predict(checkpoint, inputs, top_k: int = 5, eval_view: str | None = None,
            device: str | torch.device | None = None, batch_size: int | None = None,
            num_workers: int | None = None) -> Predictions:
    """Top-k countries with probabilities for each input: paths, folders, globs or PIL
    images. Failures are recorded per image (``Prediction.error``) and never stop the
    others."""
    device = resolve_device(device)
    model = checkpoint if isinstance(checkpoint, LoadedModel) else load_checkpoint(checkpoint, device)
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    sources = [s for item in inputs
               for s in (expand_paths([str(item)]) if isinstance(item, (str, Path)) else [item])]
    run = infer(model, sources, view=eval_view, batch_size=batch_size, device=device,
                num_workers=num_workers)
    k = max(1, min(top_k, len(model.class_names)))
    values, classes = run.probs.topk(k, dim=1)
    found = dict(zip(run.indices.tolist(), zip(values.tolist(), classes.tolist())))
    items = []
    for i, source in enumerate(sources):
        name = describe_source(source)
        if i in run.failed:
            items.append(Prediction(name, error=run.failed[i]))
        else:
            probs, indices = found[i]
            items.append(Prediction(name, [(model.class_names[c], p)
                                           for c, p in zip(indices, probs)]))
    return Predictions(items, run.seconds)
