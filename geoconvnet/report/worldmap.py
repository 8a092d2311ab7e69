"""Class names -> shapes on a world map: the outlines of :mod:`geoconvnet.data.countries`,
and a dot for countries too small for them."""

from __future__ import annotations

import math

from ..data.countries import SMALL_COUNTRIES, iso3, world_shapes


def map_names(names: list[str]) -> tuple[dict[str, str], list[str]]:
    """({class name: ISO-3}, [unmapped names])."""
    mapped, unmapped = {}, []
    for name in names:
        code = iso3(name)
        if code is None:
            unmapped.append(name)
        else:
            mapped[name] = code
    return mapped, unmapped


def dot_ring(lon: float, lat: float, radius: float = 1.2, points: int = 16) -> list:
    return [[lon + radius * math.cos(2 * math.pi * i / points),
             lat + radius * math.sin(2 * math.pi * i / points)] for i in range(points)]


def shapes_for_map() -> dict[str, list]:
    """Outlines for every country, plus dots for the small ones missing at 1:110m."""
    shapes = dict(world_shapes())
    for code, (lon, lat) in SMALL_COUNTRIES.items():
        shapes.setdefault(code, [dot_ring(lon, lat)])
    return shapes
