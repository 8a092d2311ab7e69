"""Where to put the GeoGuessr pin: the point with the highest expected score under the
predicted distribution over places: a location head's geocells when the model has one
(each cell's probability spread over its training places), else its countries.

A guess d kilometres from the answer scores 5000 * exp(-d / 1492.7) on the world map.
Each country's probability is spread uniformly over its land (Natural Earth outlines, as
random samples), so the expected score of a pin is the probability-weighted mean score
over those samples. The best pin is searched among the samples of the likely countries and
their centres, then refined locally (Nelder-Mead); the naive pin, the centre of the top
country, is among the candidates, so the suggestion never scores below it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from ..data.countries import resolve
from ..data.geo import EARTH_KM, GeoCells, geoscore, haversine_km, unit_vectors
from ..data.places import Places


@dataclass
class Pin:
    lat: float
    lon: float
    expected_score: float


@dataclass
class PinAdvice:
    suggested: Pin
    naive: Pin  # the centre of the most likely country (geocell)
    source: str = "country"  # the distribution it came from: "country" or "geocell"
    country: Pin | None = None  # with a location head: the country pin, for comparison


class Land:
    """Random places of each country (cached per country name)."""

    def __init__(self, samples: int = 300, seed: int = 0):
        self.samples, self.seed, self._cache = samples, seed, {}

    def points(self, country: str) -> np.ndarray:
        if country not in self._cache:
            places = Places(resolve(country).code, random.Random(self.seed))
            self._cache[country] = np.array([places.point() for _ in range(self.samples)])
        return self._cache[country]


def expected_score(lat: float, lon: float, clouds: list[tuple[float, np.ndarray]]) -> float:
    """Expected score of a pin: sum over countries of p * mean score over its land. The
    plain definition, one pin at a time (:class:`Target` scores many at once)."""
    return float(sum(p * geoscore(haversine_km(lat, lon, pts[:, 0], pts[:, 1])).mean()
                     for p, pts in clouds))


class Target:
    """The predicted distribution as weighted land points, scoring many pins in one matrix
    product (the angle between unit vectors is the great-circle distance): about 40x faster
    than :func:`expected_score` in a loop, which kept a spread-out prediction's pin at ~40 ms."""

    def __init__(self, clouds: list[tuple[float, np.ndarray]], step: int = 1,
                 dtype=np.float64):
        """``step``: every step-th land sample only, and ``dtype``: float32, for a coarse
        and faster first pass over many candidates."""
        self.dtype = dtype
        self.vectors = unit_vectors(np.vstack([pts[::step] for _, pts in clouds])).astype(dtype)
        self.weights = np.concatenate([np.full(len(pts[::step]), p / len(pts[::step]))
                                       for p, pts in clouds]).astype(dtype)

    def expected(self, latlon: np.ndarray) -> np.ndarray:
        """Expected scores of pins [N, 2] (lat, lon)."""
        pins = unit_vectors(np.atleast_2d(latlon)).astype(self.dtype)
        cosines = np.clip(pins @ self.vectors.T, -1.0, 1.0)
        return geoscore(EARTH_KM * np.arccos(cosines)) @ self.weights


def advise(probabilities: dict[str, float], land: Land | None = None,
           min_probability: float = 0.01) -> PinAdvice:
    """The suggested and the naive pin for ``{country: probability}``: each country's
    probability spread over its land."""
    land = land or Land()
    likely = {c: p for c, p in probabilities.items() if p >= min_probability} or \
        dict([max(probabilities.items(), key=lambda kv: kv[1])])
    clouds = [(p, land.points(c)) for c, p in likely.items()]
    top = max(likely, key=likely.get)
    return best_pin(clouds, land.points(top).mean(axis=0))


def advise_model(country_probs: dict[str, float], cell_probs, cells: GeoCells | None,
                 land: Land | None = None) -> PinAdvice:
    """The pin of a model: from its location head when it has one (the country pin kept
    beside it for comparison, when the classes are countries), else from its countries."""
    top_country = max(country_probs, key=country_probs.get)
    if cells is None or (land is not None and top_country not in cells.countries):
        # No cells for the likeliest country (trained without its coordinates): the
        # location head could only pin it into another country.
        return advise(country_probs, land)
    advice = advise_cells(np.asarray(cell_probs), cells)
    if land is not None:
        advice.country = advise(country_probs, land).suggested
    return advice


def advise_cells(probabilities: np.ndarray, cells: GeoCells,
                 min_probability: float = 0.01) -> PinAdvice:
    """The pin for a location head's ``[cells]`` probabilities: each likely cell's
    probability spread over its training places; the naive pin is the likeliest cell's
    centre (one of its places)."""
    clouds = cells.cell_distribution(np.asarray(probabilities, dtype=float), min_probability)
    top = int(np.argmax(probabilities))
    advice = best_pin(clouds, np.asarray(cells.centres[top], dtype=float))
    advice.source = "geocell"
    return advice


def best_pin(clouds: list[tuple[float, np.ndarray]], naive_centre: np.ndarray) -> PinAdvice:
    """The point of highest expected score under ``clouds`` (probability, ``[k, 2]`` places
    it is spread over), and the ``naive_centre`` scored under the same distribution."""
    target = Target(clouds)
    naive_centre = np.asarray(naive_centre, dtype=float)
    naive = Pin(float(naive_centre[0]), float(naive_centre[1]),
                float(target.expected(naive_centre)[0]))
    # Candidates: every 10th place of each cloud and each cloud's centre, ranked on a sixth
    # of the places in float32; the best few are scored exactly and the best of those
    # refined. A prediction spread over 35 countries takes ~0.1 s, not ~0.6 s.
    candidates = np.vstack([pts[::10] for _, pts in clouds] +
                           [pts.mean(axis=0, keepdims=True) for _, pts in clouds] +
                           [naive_centre[None]])
    coarse = Target(clouds, step=6, dtype=np.float32).expected(candidates)
    shortlist = candidates[np.argsort(coarse)[-8:]]
    scores = target.expected(shortlist)
    start = shortlist[int(np.argmax(scores))]
    refined = minimize(lambda x: -target.expected(x)[0], start, method="Nelder-Mead",
                       options={"xatol": 0.01, "fatol": 0.01})
    best = max([(float(scores.max()), tuple(start)), (-float(refined.fun), tuple(refined.x))])
    suggested = Pin(float(best[1][0]), float(best[1][1]), best[0])
    if suggested.expected_score < naive.expected_score:
        suggested = naive
    return PinAdvice(suggested, naive)
