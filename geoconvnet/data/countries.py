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
# (lon, lat), roughly the centre, of the countries and territories too small for the 1:110m
# outlines: every ISO 3166 country has a place on the map and in the pin's land.
SMALL_COUNTRIES = {
    "SGP": (103.8, 1.35), "MLT": (14.4, 35.9), "BHR": (50.55, 26.07), "AND": (1.6, 42.55),
    "LIE": (9.55, 47.15), "MCO": (7.42, 43.74), "SMR": (12.45, 43.94), "HKG": (114.17, 22.3),
    "MUS": (57.55, -20.3), "FRO": (-6.9, 62.0), "GUM": (144.79, 13.44), "IMN": (-4.55, 54.23),
    "GIB": (-5.35, 36.14), "ALA": (19.95, 60.2), "CUW": (-68.95, 12.17), "MNP": (145.75, 15.19),
    "ASM": (-170.7, -14.3), "CXR": (105.63, -10.49), "SJM": (15.6, 78.2), "BMU": (-64.78, 32.3),
    "JEY": (-2.13, 49.21), "GGY": (-2.58, 49.45), "VIR": (-64.83, 18.34), "REU": (55.53, -21.12),
    "MAC": (113.55, 22.17), "PYF": (-149.43, -17.65), "MTQ": (-61.02, 14.64),
    "GLP": (-61.55, 16.25), "GUF": (-53.1, 3.93), "SPM": (-56.3, 46.9), "ABW": (-69.97, 12.52),
    "BRB": (-59.55, 13.17), "CPV": (-23.6, 15.1), "MDV": (73.5, 4.2), "PLW": (134.58, 7.5),
    "WSM": (-172.1, -13.75), "TON": (-175.2, -21.2), "SYC": (55.45, -4.62),
    "MYT": (45.15, -12.82), "STP": (6.6, 0.25), "KIR": (172.98, 1.87), "MHL": (171.18, 7.1),
    "FSM": (158.2, 6.9), "COM": (43.35, -11.65), "LCA": (-60.98, 13.9), "GRD": (-61.68, 12.12),
    "VCT": (-61.2, 13.25), "DMA": (-61.37, 15.42), "KNA": (-62.75, 17.3), "ATG": (-61.8, 17.08),
    "CYM": (-81.25, 19.3), "TCA": (-71.8, 21.8), "VGB": (-64.62, 18.43), "AIA": (-63.05, 18.22),
    "MSR": (-62.19, 16.74), "SXM": (-63.05, 18.04), "MAF": (-63.08, 18.07),
    "BLM": (-62.83, 17.9), "BES": (-68.26, 12.18), "COK": (-159.78, -21.24),
    "NIU": (-169.87, -19.05), "NRU": (166.93, -0.52), "TUV": (179.2, -8.52),
    "TKL": (-171.85, -9.2), "WLF": (-176.2, -13.28), "NFK": (167.95, -29.04),
    "PCN": (-130.1, -25.07), "SHN": (-5.7, -15.95), "CCK": (96.87, -12.17), "VAT": (12.45, 41.9),
    "IOT": (72.42, -7.32), "SGS": (-36.5, -54.4), "HMD": (73.5, -53.1), "BVT": (3.4, -54.42),
    "UMI": (-177.38, 28.2),
}


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
