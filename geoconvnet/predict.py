"""Predict the country of screenshots with a trained checkpoint."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import LoadedModel, load_checkpoint
from .data import is_image_file, load_image
from .errors import GeoconvnetError
from .evaluate import forward_views
from .models import check_input_size
from .runtime import resolve_device
from .transforms import eval_transform


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)  # (country, probability)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error,
                "top": [{"country": c, "probability": round(p, 6)} for c, p in self.top]}


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given, image files under folders (recursively) and glob matches, in order.
    A name that matches nothing is kept, so it is reported as an error."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_file(p)))
        elif not path.exists() and glob.has_magic(raw):
            out.extend(sorted(glob.glob(raw, recursive=True)) or [raw])
        else:
            out.append(raw)
    return out


@torch.no_grad()
def predict(checkpoint, paths: list[str] | str, top_k: int = 5, eval_view: str | None = None,
            device: str | None = None) -> list[Prediction]:
    """Top-k countries with probabilities for each image; failures are recorded per image
    (``Prediction.error``) and never stop the others."""
    device = resolve_device(device)
    model = checkpoint if isinstance(checkpoint, LoadedModel) else load_checkpoint(checkpoint, device)
    pp = model.preprocessing
    check_input_size(model.net, model.meta["arch"], pp.image_size, eval_view or pp.eval_view)
    transform = eval_transform(pp, eval_view)
    top_k = max(1, min(top_k, len(model.class_names)))
    results = []
    for path in expand_paths([paths] if isinstance(paths, str) else list(paths)):
        try:
            views = transform(load_image(path))
        except GeoconvnetError as exc:
            results.append(Prediction(path, error=str(exc)))
            continue
        logits = forward_views(model.net, views[None], device, pp)[0]
        probs = (logits / model.temperature).softmax(dim=0)
        values, indices = probs.topk(top_k)
        results.append(Prediction(path, [(model.class_names[i], v) for i, v in
                                         zip(indices.tolist(), values.tolist())]))
    return results
