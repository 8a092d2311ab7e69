"""Countries: the reference's 85 class names, names -> ISO 3166 codes (pycountry), and
their outlines (Natural Earth 1:110m, shipped in ``resources/world_110m.json``; see
``scripts/make_world_shapes.py``). Used by the report's world map and by ``collect``, which
samples places inside a country."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pycountry

from ..utils.errors import ConfigError

# The class names (folder names) of the reference dataset.
REFERENCE_COUNTRIES = (
    "Albania Argentina Australia Austria Bangladesh Belgium Bhutan Bolivia Botswana Brazil "
    "Bulgaria Cambodia Canada Chile Colombia Croatia Denmark DominicanRepublic Ecuador Estonia "
    "Eswatini Finland France Germany Ghana Greece Guatemala Hungary Iceland India Indonesia "
    "Ireland Israel Italy Japan Jordan Kazakhstan Kenya SouthKorea Kyrgyzstan Laos Latvia Lebanon "
    "Lesotho Lithuania Luxembourg Madagascar Malaysia Malta Mexico Mongolia Montenegro Netherlands "
    "NewZealand Nigeria NorthMacedonia Norway Oman Panama Peru Philippines Poland Portugal Qatar "
    "Romania Russia Rwanda Senegal Serbia Singapore Slovakia Slovenia SouthAfrica Spain Sweden "
    "Switzerland Thailand Tunisia Turkey Uganda Ukraine UnitedArabEmirates UnitedKingdom USA Uruguay"
).split()

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


@dataclass(frozen=True)
class Country:
    folder: str  # the class folder (CamelCase, ASCII)
    code: str  # ISO 3166 alpha-3


def resolve(name: str) -> Country:
    """A country as a user writes it (``"south korea"``, ``KOR``, ``SouthKorea``,
    ``"Côte d'Ivoire"``): its folder is the reference's name where it has one, else
    pycountry's name in ASCII CamelCase. A ConfigError names what could not be found."""
    code = iso3(name.replace(" ", "")) or iso3(name) or _fuzzy(name)
    for reference in REFERENCE_COUNTRIES:
        if iso3(reference) == code:
            return Country(reference, code)
    country = pycountry.countries.get(alpha_3=code)
    plain = unicodedata.normalize("NFKD", getattr(country, "common_name", country.name))
    words = re.findall(r"[A-Za-z]+", plain.encode("ascii", "ignore").decode())
    return Country("".join(w[0].upper() + w[1:] for w in words), code)


def _fuzzy(name: str) -> str:
    """The one country a loose spelling can mean; an error names the candidates otherwise."""
    try:
        found = pycountry.countries.search_fuzzy(name)
    except LookupError:
        found = []
    if len(found) == 1:
        return found[0].alpha_3
    hint = (f"it could be {', '.join(c.name for c in found[:5])}" if found else
            "use an ISO 3166 name or code, e.g. 'Norway', 'NOR' or 'South Korea'")
    raise ConfigError(f"unknown country {name!r}; {hint}")


@lru_cache(maxsize=1)
def world_shapes() -> dict[str, list]:
    """{ISO-3: [ring, ...]}, each ring a list of [lon, lat] points."""
    text = resources.files("geoconvnet.resources").joinpath("world_110m.json").read_text()
    return json.loads(text)


def outline(code: str) -> list:
    """The rings of a country's outline (ISO-3 code); a small country (no 1:110m outline)
    gets a square of about 0.2 degrees around its centre."""
    if code in world_shapes():
        return world_shapes()[code]
    if code in SMALL_COUNTRIES:
        lon, lat = SMALL_COUNTRIES[code]
        return [[[lon - 0.1, lat - 0.1], [lon + 0.1, lat - 0.1], [lon + 0.1, lat + 0.1],
                 [lon - 0.1, lat + 0.1]]]
    raise ConfigError(f"no outline for ISO {code} in the shipped Natural Earth shapes; "
                      "choose another country")


def dot_ring(lon: float, lat: float, radius: float = 1.2, points: int = 16) -> list:
    """A small circle of (lon, lat) points: how a map shows a country too small to see."""
    return [[lon + radius * math.cos(2 * math.pi * i / points),
             lat + radius * math.sin(2 * math.pi * i / points)] for i in range(points)]


def shapes_for_map() -> dict[str, list]:
    """Outlines for every country, plus dots for the small ones missing at 1:110m (the
    report's world map and the app's)."""
    shapes = dict(world_shapes())
    for code, (lon, lat) in SMALL_COUNTRIES.items():
        shapes.setdefault(code, [dot_ring(lon, lat)])
    return shapes
