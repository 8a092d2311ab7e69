"""Class names (CamelCase country folders) -> ISO 3166 codes -> shapes on a world map.

Names are looked up with pycountry (ISO 3166 names, common names and codes); the few
folder names that differ from every ISO spelling are listed in :data:`EXCEPTIONS`. Shapes
are Natural Earth 1:110m outlines shipped in ``resources/world_110m.json`` (see
``scripts/make_world_shapes.py``); countries too small for that scale get a dot.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

import pycountry

# Folder names whose ISO name differs (e.g. pycountry says "Korea, Republic of", "Türkiye").
EXCEPTIONS = {"SouthKorea": "KOR", "NorthKorea": "PRK", "Russia": "RUS", "Laos": "LAO",
              "Turkey": "TUR", "UnitedKingdom": "GBR", "UK": "GBR", "USA": "USA",
              "Vietnam": "VNM", "Iran": "IRN", "Syria": "SYR", "Tanzania": "TZA",
              "Venezuela": "VEN", "Bolivia": "BOL", "Moldova": "MDA", "Taiwan": "TWN",
              "CzechRepublic": "CZE", "Czechia": "CZE", "Eswatini": "SWZ", "Kyrgyzstan": "KGZ",
              "Palestine": "PSE", "Kosovo": "XKX", "UAE": "ARE"}
# (lon, lat) of countries too small for the 1:110m outlines.
SMALL_COUNTRIES = {"SGP": (103.8, 1.35), "MLT": (14.4, 35.9), "BHR": (50.55, 26.07),
                   "AND": (1.6, 42.55), "LIE": (9.55, 47.15), "MCO": (7.42, 43.74),
                   "SMR": (12.45, 43.94), "HKG": (114.17, 22.3), "MUS": (57.55, -20.3)}


def split_camel(name: str) -> str:
    """``DominicanRepublic`` -> ``Dominican Republic``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ")


def iso3(name: str) -> str | None:
    """ISO 3166 alpha-3 code of a class name, or None when it is not a known country."""
    if name in EXCEPTIONS:
        return EXCEPTIONS[name]
    try:
        return pycountry.countries.lookup(split_camel(name)).alpha_3
    except LookupError:
        return None


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


@lru_cache(maxsize=1)
def world_shapes() -> dict[str, list]:
    text = resources.files("geoconvnet.resources").joinpath("world_110m.json").read_text()
    return json.loads(text)


def dot_ring(lon: float, lat: float, radius: float = 1.2, points: int = 16) -> list:
    import math

    return [[lon + radius * math.cos(2 * math.pi * i / points),
             lat + radius * math.sin(2 * math.pi * i / points)] for i in range(points)]


def shapes_for_map() -> dict[str, list]:
    """Outlines for every country, plus dots for the small ones missing at 1:110m."""
    shapes = dict(world_shapes())
    for code, (lon, lat) in SMALL_COUNTRIES.items():
        shapes.setdefault(code, [dot_ring(lon, lat)])
    return shapes
