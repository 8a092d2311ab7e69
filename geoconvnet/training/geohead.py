"""The location head's training side: geocells built from the training coordinates, each
training image's cell, and the loss (cross-entropy over cells against haversine-smoothed
targets, PIGEON's recipe) added to the country loss with ``--geo-weight``.

Images without coordinates train the country head only; a root without any coordinates
trains exactly as before (``--geo auto``, the default). Both heads read the same backbone
features, so the location head adds one matrix product per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.geo import GeoCells
from ..data.index import DatasetIndex
from ..data.shards import ShardSamples
from ..models.heads import GEOCELL
from ..utils.errors import ConfigError
from ..utils.progress import log


def sources_of(samples) -> list:
    """The sources (paths, or a sharded cache's ids) of ``(source, label)`` samples."""
    if isinstance(samples, ShardSamples):
        return samples.ids
    return [source for source, _ in samples]


def labels_of(samples) -> np.ndarray:
    if isinstance(samples, ShardSamples):
        return np.asarray(samples.labels)
    return np.array([label for _, label in samples], dtype=np.int64)


@dataclass
class GeoTargets:
    """What the training loop needs for the location head."""

    cells: GeoCells
    latlon: torch.Tensor  # [n_train, 2] degrees, NaN where unknown
    cell: torch.Tensor  # [n_train] each training image's cell, -1 where unknown
    weight: float

    @property
    def head(self) -> dict:
        """The checkpoint's entry for this head (:mod:`geoconvnet.models.heads`)."""
        return {"name": GEOCELL, "size": len(self.cells), "cells": self.cells.to_dict()}

    def loss(self, logits: torch.Tensor, indices: torch.Tensor) -> torch.Tensor | None:
        """Soft cross-entropy of the geocell ``logits`` of the training images at
        ``indices`` (positions in the training split), over those with coordinates; None
        when the batch has none."""
        # The lookups stay on the CPU, where the batch's indices are: no GPU sync per step.
        indices = indices.cpu()
        cell = self.cell[indices]
        known = cell >= 0
        if not bool(known.any()):
            return None
        device = logits.device
        targets = self.cells.smooth_targets(
            self.latlon[indices][known].to(device, non_blocking=True),
            cell[known].to(device, non_blocking=True))
        rows = known.nonzero()[:, 0].to(device, non_blocking=True)
        log_probs = logits.float()[rows].log_softmax(dim=1)
        return -(targets * log_probs).sum(dim=1).mean()


def plan_geo(mode: str, index: DatasetIndex, *, cells: int, min_size: int, tau_km: float,
             weight: float, seed: int, resumed: dict | None = None) -> GeoTargets | None:
    """Geocells of the training split's coordinates, or None: with ``mode`` ``off``, or
    ``auto`` on a root without coordinates (``on`` there is an error). ``resumed``: the
    heads' entry of the run being resumed (its ``last.safetensors``): its cells, if any,
    are kept (coordinates added or edited since cannot change the head the weights were
    trained for), and a run that had none stays without."""
    if resumed is not None:
        return _resumed(index, resumed, weight)
    if mode == "off":
        return None
    latlon = index.data.coordinates(sources_of(index.train))
    known = np.isfinite(latlon).all(axis=1)
    if not known.any():
        if mode == "on":
            raise ConfigError(f"--geo on: {index.data.location} gives no coordinates for its "
                              "training images (a collect-manifest.jsonl with lat/lon, or a "
                              "coordinates.csv of file,lat,lon); use --geo auto or off")
        return None
    countries = [index.classes[c] for c in labels_of(index.train)[known]]
    geocells, assigned = GeoCells.build(latlon[known], countries, cells=cells,
                                        min_size=min_size, tau_km=tau_km, seed=seed)
    cell = np.full(len(latlon), -1, dtype=np.int64)
    cell[known] = assigned
    log(f"Location head: {len(geocells)} geocells from {int(known.sum())} of {len(latlon)} "
        f"training images with coordinates (the others train the country head only)")
    without = sorted(set(index.classes) - set(geocells.countries))
    if without:  # their images still get the country pin (see inference.pin.advise_model)
        log(f"[yellow]No coordinates, so no geocells, for {len(without)} countries[/]: "
            f"{', '.join(without[:10])}{' ...' if len(without) > 10 else ''}")
    return GeoTargets(geocells, torch.from_numpy(latlon).float(), torch.from_numpy(cell), weight)


def _resumed(index: DatasetIndex, entry: dict, weight: float) -> GeoTargets | None:
    if entry is None or "cells" not in entry:
        return None
    geocells = GeoCells.from_dict(entry["cells"])
    latlon = index.data.coordinates(sources_of(index.train))
    countries = [index.classes[c] for c in labels_of(index.train)]
    cell = geocells.assign(latlon, countries)  # a training place lands in its build cell
    return GeoTargets(geocells, torch.from_numpy(latlon).float(), torch.from_numpy(cell), weight)
