"""Predict the country of screenshots with a trained checkpoint, batched through the loader."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.countries import resolve
from ..data.layout import image_files
from ..models.checkpoint import LoadedModel
from ..models.heads import GEOCELL
from ..models.load import load_model
from ..utils.device import resolve_device
from .core import describe_source, infer, read_any
from .explain import write_overlays
from .geoeval import countries_known
from .pin import Land, PinAdvice, advise_model


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)  # (country, probability)
    error: str | None = None
    pin: PinAdvice | None = None  # with pin=True: where to click on the GeoGuessr map
    heat_maps: list[str] = field(default_factory=list)  # with explain_dir: overlay files

    def to_dict(self) -> dict:
        out = {"path": self.path, "error": self.error,
               "top": [{"country": c, "probability": round(p, 6)} for c, p in self.top]}
        if self.heat_maps:
            out["heat_maps"] = self.heat_maps
        if self.pin is not None:
            pins = [("suggested", self.pin.suggested), ("naive", self.pin.naive)]
            pins += [("country", self.pin.country)] if self.pin.country is not None else []
            out["pin"] = {kind: {"lat": round(p.lat, 5), "lon": round(p.lon, 5),
                                 "expected_score": round(p.expected_score, 1)}
                          for kind, p in pins}
            out["pin"]["source"] = self.pin.source
        return out


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
            num_workers: int | None = None, pin: bool = False,
            explain_dir: str | Path | None = None) -> Predictions:
    """Top-k countries with probabilities for each input: paths, folders, globs or PIL
    images. Failures are recorded per image (``Prediction.error``) and never stop the
    others. ``pin``: also the GeoGuessr pin with the highest expected score
    (:mod:`.pin`), which needs class names that are countries. ``explain_dir``: write
    Grad-CAM overlays for the top guesses (at most 3) of each image there (:mod:`.explain`)."""
    device = resolve_device(device)
    model = checkpoint if isinstance(checkpoint, LoadedModel) else load_model(checkpoint, device)
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    sources = [s for item in inputs
               for s in (expand_paths([str(item)]) if isinstance(item, (str, Path)) else [item])]
    run = infer(model, sources, view=eval_view, batch_size=batch_size, device=device,
                num_workers=num_workers)
    k = max(1, min(top_k, len(model.class_names)))
    values, classes = run.probs.topk(k, dim=1)
    found = dict(zip(run.indices.tolist(), zip(values.tolist(), classes.tolist())))
    pins = _pins(model, run) if pin else {}
    items = []
    for i, source in enumerate(sources):
        name = describe_source(source)
        if i in run.failed:
            items.append(Prediction(name, error=run.failed[i]))
        else:
            probs, indices = found[i]
            items.append(Prediction(name, [(model.class_names[c], p)
                                           for c, p in zip(indices, probs)], pin=pins.get(i)))
            if explain_dir is not None:
                items[-1].heat_maps = [str(p) for p in write_overlays(
                    model, read_any(source), indices[:3], Path(explain_dir),
                    f"{i:04d}-{Path(name).stem}")]
    return Predictions(items, run.seconds)


def _pins(model: LoadedModel, run) -> dict[int, PinAdvice]:
    """The pin of every image: from the location head when the model has one."""
    cells, class_names = model.geocells, model.class_names
    if cells is None:
        for name in class_names:
            resolve(name)  # a ConfigError naming a class that is not a country
    land = Land() if countries_known(class_names) else None
    cell_probs = run.head_probs(GEOCELL)
    return {i: advise_model(dict(zip(class_names, row)),
                            cell_probs[n].numpy() if cell_probs is not None else None, cells, land)
            for n, (i, row) in enumerate(zip(run.indices.tolist(), run.probs.tolist()))}
