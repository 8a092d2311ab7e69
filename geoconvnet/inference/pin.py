"""Where to put the GeoGuessr pin: the point with the highest expected score under the
predicted distribution over countries.

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
from ..data.places import Places

EARTH_KM = 6371.0
SCALE_KM = 1492.7  # GeoGuessr's world-map decay


@dataclass
class Pin:
    lat: float
    lon: float
    expected_score: float


@dataclass
class PinAdvice:
    suggested: Pin
    naive: Pin  # the centre of the most likely country


def score(distance_km: np.ndarray) -> np.ndarray:
    return 5000.0 * np.exp(-distance_km / SCALE_KM)


def distance_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Great-circle distances from one point to many (haversine)."""
    lat1, lon1, lat2, lon2 = map(np.radians, (lat, lon, lats, lons))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


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
    """Expected score of a pin: sum over countries of p * mean score over its land."""
    return float(sum(p * score(distance_km(lat, lon, pts[:, 0], pts[:, 1])).mean()
                     for p, pts in clouds))


def advise(probabilities: dict[str, float], land: Land | None = None,
           min_probability: float = 0.01) -> PinAdvice:
    """The suggested and the naive pin for ``{country: probability}``."""
    land = land or Land()
    likely = {c: p for c, p in probabilities.items() if p >= min_probability} or \
        dict([max(probabilities.items(), key=lambda kv: kv[1])])
    clouds = [(p, land.points(c)) for c, p in likely.items()]
    top = max(likely, key=likely.get)
    centre = land.points(top).mean(axis=0)
    naive = Pin(float(centre[0]), float(centre[1]), expected_score(*centre, clouds))
    # Candidates: every 10th land sample of each likely country and each country's centre.
    candidates = np.vstack([pts[::10] for _, pts in clouds] +
                           [pts.mean(axis=0, keepdims=True) for _, pts in clouds])
    scores = [expected_score(lat, lon, clouds) for lat, lon in candidates]
    start = candidates[int(np.argmax(scores))]
    refined = minimize(lambda x: -expected_score(x[0], x[1], clouds), start,
                       method="Nelder-Mead", options={"xatol": 0.01, "fatol": 0.01})
    best = max([(float(max(scores)), tuple(start)), (-float(refined.fun), tuple(refined.x))])
    suggested = Pin(float(best[1][0]), float(best[1][1]), best[0])
    if suggested.expected_score < naive.expected_score:
        suggested = naive
    return PinAdvice(suggested, naive)
