"""Where, measured the field's way: how far the pins land from the true places.

For a split with coordinates, every image gets the location head's pin (the point of highest
expected GeoGuessr score under its cell distribution, :func:`.pin.advise_cells`) and today's
country pin of the same model (the country probabilities spread over the countries' land,
:func:`.pin.advise`), so the gain of the location head shows on one run. Each is summed up
as median and mean km, GeoScore (mean of 5000·exp(-d/1492.7)) and the share within
1/25/200/750/2500 km (Im2GPS, OSV-5M).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.countries import resolve
from ..data.geo import distance_summary, haversine_km
from ..models.checkpoint import LoadedModel
from ..models.heads import GEOCELL
from ..utils.errors import GeoconvnetError
from ..utils.progress import add_task, progress_bar
from .core import Inference
from .pin import Land, advise, advise_cells

PIN, KNN_PIN, COUNTRY_PIN, CELL = "pin", "pin_knn", "country_pin", "cell"


@dataclass
class GeoResult:
    """Per-image places (NaN where unknown or not computed) and their summaries."""

    truth: np.ndarray  # [n, 2]
    pins: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> [n, 2]

    def distances(self, kind: str) -> np.ndarray:
        pin = self.pins[kind]
        return haversine_km(self.truth[:, 0], self.truth[:, 1], pin[:, 0], pin[:, 1])

    def summary(self) -> dict:
        """``{"pin": M, "country_pin": M}`` (the kinds computed), M as distance_summary."""
        return {kind: distance_summary(self.distances(kind)) for kind in self.pins
                if kind != CELL}


def countries_known(class_names: list[str]) -> bool:
    """Whether every class is a country (a country pin needs their land)."""
    try:
        for name in class_names:
            resolve(name)
    except GeoconvnetError:
        return False
    return True


def locate(model: LoadedModel, run: Inference, truth: np.ndarray, pins: bool = True,
           land: Land | None = None, progress: bool = True, refiner=None,
           vectors: np.ndarray | None = None) -> GeoResult:
    """Pins for the images of ``run`` whose true place ``truth`` ([n, 2], NaN where
    unknown) is known. Without ``pins`` only the likeliest cell's centre (cheap: what the
    training loop's validation reports). ``refiner`` (:class:`.refine.KnnRefiner`) and the
    images' embeddings ``vectors``: also the kNN-refined pin."""
    result = GeoResult(truth)
    known = np.flatnonzero(np.isfinite(truth).all(axis=1))
    cells = model.geocells
    if cells is not None:
        cell_probs = run.head_probs(GEOCELL).numpy()
        centre = np.full_like(truth, np.nan)
        centre[known] = cells.centres[cell_probs[known].argmax(axis=1)]
        result.pins[CELL] = centre
    if not pins:
        return result
    kinds = ([PIN] if cells is not None else []) + \
        ([KNN_PIN] if refiner is not None else []) + \
        ([COUNTRY_PIN] if countries_known(model.class_names) else [])
    for kind in kinds:
        result.pins[kind] = np.full_like(truth, np.nan)
    land = land or Land()
    country_probs = run.probs.numpy()
    with progress_bar(transient=True, enabled=progress) as bar:
        task = add_task(bar, "Placing pins", len(known))
        for i in known.tolist():
            if PIN in kinds:
                advice = advise_cells(cell_probs[i], cells)
                result.pins[PIN][i] = (advice.suggested.lat, advice.suggested.lon)
            if KNN_PIN in kinds:
                advice = refiner.advise(vectors[i], cell_probs[i])
                result.pins[KNN_PIN][i] = (advice.suggested.lat, advice.suggested.lon)
            if COUNTRY_PIN in kinds:
                advice = advise(dict(zip(model.class_names, country_probs[i].tolist())), land)
                result.pins[COUNTRY_PIN][i] = (advice.suggested.lat, advice.suggested.lon)
            bar.advance(task)
    return result
