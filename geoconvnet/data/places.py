"""Random places inside a country's outline (Natural Earth 1:110m), uniform over its area."""

from __future__ import annotations

import random

import numpy as np
from matplotlib.path import Path as Polygon

from .countries import outline


class Places:
    def __init__(self, code: str, rng: random.Random):
        self.rng = rng
        rings = [np.asarray(ring, dtype=float) for ring in outline(code)]
        self.polygons = [Polygon(ring) for ring in rings]
        self.areas = [_area(ring) for ring in rings]

    def contains(self, lat: float, lon: float) -> bool:
        return any(p.contains_point((lon, lat)) for p in self.polygons)

    def point(self) -> tuple[float, float]:
        """(lat, lon) uniform over the country: a ring chosen by area, then rejection
        sampling in its bounding box."""
        polygon = self.rng.choices(self.polygons, weights=self.areas)[0]
        (x0, y0), (x1, y1) = polygon.get_extents().get_points()
        while True:
            lon, lat = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
            if polygon.contains_point((lon, lat)):
                return lat, lon


def _area(ring: np.ndarray) -> float:
    """Shoelace area in square degrees (enough to weigh the rings of one country)."""
    x, y = ring[:, 0], ring[:, 1]
    return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2 or 1e-6
