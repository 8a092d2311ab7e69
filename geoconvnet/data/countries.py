"""Countries: the reference's 85 class names, the names people write -> ISO 3166 codes, and
their outlines (Natural Earth 1:110m, shipped in ``resources/world_110m.json``; see
``scripts/make_world_shapes.py``). Used by ``data import`` (folder names, OSV-5M's codes),
by ``collect --countries``, by the report's world map and by the pin.

A name is never guessed. It maps to a country only when it is one of that country's
names: pycountry's ISO 3166 codes (alpha-2, alpha-3), names, official and common names,
the names of historic countries (ISO 3166-3) that became one country today, and the
explicit table :data:`VARIANTS` of real-world spellings (Street View's, endonyms,
abbreviations). Case, accents, separators (``_``, ``-``, spaces, CamelCase), dots, a
leading "the", "&"/"and" and the word order ("Korea, Republic of" = "Republic of Korea")
do not matter. A name of several countries ("Korea", "Congo") is ambiguous, one of none
is unknown: :func:`resolve` raises a ConfigError for both (naming the candidates), and
``data import`` lists such folders as unmapped. pycountry's subdivisions are not countries
(a folder "Georgia" is the country) and its fuzzy search is never used: it took "XX" for
Malta and "Republic of Korea" for North Korea (2026-11, pycountry 26.2.16).

Deliberate decisions (tested in ``tests/data/test_countries.py``): England, Scotland,
Wales, Northern Ireland, (Great) Britain -> the United Kingdom (they are parts of it, so
their images are in its class); Holland -> the Netherlands; Macedonia -> North Macedonia
(its name until 2019; the Greek region is not a country); Guinea -> Guinea (its own name;
the other Guineas have theirs); "Korea", "Congo", "Virgin Islands", "Republic of China",
and countries that split (Czechoslovakia, Yugoslavia, the USSR, Serbia and Montenegro, the
Netherlands Antilles) are ambiguous; "America", "EU", "XX", "ZZ" are not countries."""

from __future__ import annotations

import difflib
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

# Countries pycountry does not list: Kosovo's codes are the ones the EU, Mapillary and
# OSV-5M use (user-assigned in ISO 3166).
EXTRA_COUNTRIES = {"XKX": ("XK", "Kosovo")}

# Real-world spellings pycountry does not know, each -> ISO alpha-3. Two or three letters
# count as a code (only an exact code ever matches one).
VARIANTS = {
    # abbreviations
    "UK": "GBR", "UAE": "ARE", "ROK": "KOR", "DPRK": "PRK", "DPR Korea": "PRK",
    "DRC": "COD", "DR Congo": "COD", "PRC": "CHN", "RSA": "ZAF", "KSA": "SAU",
    "BiH": "BIH", "FYROM": "MKD",
    # English names, old and new, and the ones Street View / Google Maps writes (CLDR)
    "Russia": "RUS", "Turkey": "TUR", "Laos": "LAO", "Syria": "SYR", "Brunei": "BRN",
    "Czech Republic": "CZE", "Ivory Coast": "CIV", "Swaziland": "SWZ", "Macedonia": "MKD",
    "Former Yugoslav Republic of Macedonia": "MKD", "Cape Verde": "CPV",
    "Myanmar (Burma)": "MMR", "Vatican": "VAT", "Vatican City": "VAT", "Bosnia": "BIH",
    "Congo-Kinshasa": "COD", "Congo-Brazzaville": "COG", "Falklands": "FLK",
    "Faeroe Islands": "FRO", "Pitcairn Islands": "PCN", "Svalbard": "SJM", "Macau": "MAC",
    "Hong Kong SAR China": "HKG", "Macao SAR China": "MAC", "Palestinian Territories": "PSE",
    "Caribbean Netherlands": "BES", "Heard & McDonald Islands": "HMD",
    "US Outlying Islands": "UMI", "Republic of Ireland": "IRL", "Eire": "IRL",
    "Mainland China": "CHN",
    # parts of a country -> the country (their images are in its class)
    "England": "GBR", "Scotland": "GBR", "Wales": "GBR", "Northern Ireland": "GBR",
    "Great Britain": "GBR", "Britain": "GBR", "Holland": "NLD",
    # endonyms and names in other languages
    "Deutschland": "DEU", "Allemagne": "DEU", "Alemania": "DEU", "España": "ESP",
    "Espagne": "ESP", "Spanien": "ESP", "Italia": "ITA", "Italien": "ITA",
    "Frankreich": "FRA", "Nederland": "NLD", "Niederlande": "NLD", "Pays-Bas": "NLD",
    "Países Bajos": "NLD", "Belgique": "BEL", "België": "BEL", "Belgien": "BEL",
    "Lëtzebuerg": "LUX", "Luxemburg": "LUX", "Schweiz": "CHE", "Suisse": "CHE",
    "Svizzera": "CHE", "Svizra": "CHE", "Helvetia": "CHE", "Österreich": "AUT",
    "Oesterreich": "AUT",
    "Autriche": "AUT", "Sverige": "SWE", "Schweden": "SWE", "Suède": "SWE", "Norge": "NOR",
    "Noreg": "NOR", "Norwegen": "NOR", "Norvège": "NOR", "Danmark": "DNK", "Dänemark": "DNK",
    "Suomi": "FIN", "Finnland": "FIN", "Éire": "IRL",
    "Irland": "IRL", "Irlande": "IRL", "Eesti": "EST", "Latvija": "LVA", "Lietuva": "LTU",
    "Polska": "POL", "Polen": "POL", "Pologne": "POL", "Česko": "CZE", "Česká republika": "CZE",
    "Tschechien": "CZE", "Slovensko": "SVK", "Slovenija": "SVN", "Hrvatska": "HRV",
    "Srbija": "SRB", "Србија": "SRB", "Crna Gora": "MNE", "Shqipëria": "ALB", "Shqipëri": "ALB",
    "Severna Makedonija": "MKD", "Magyarország": "HUN", "România": "ROU", "България": "BGR",
    "Ellada": "GRC", "Ελλάδα": "GRC", "Hellas": "GRC", "Griechenland": "GRC", "Grèce": "GRC",
    "Türkei": "TUR", "Turquie": "TUR", "Rossiya": "RUS", "Россия": "RUS", "Russland": "RUS",
    "Russie": "RUS", "Ukraina": "UKR", "Україна": "UKR", "Qazaqstan": "KAZ",
    "Mongol Uls": "MNG", "Nippon": "JPN", "Nihon": "JPN", "日本": "JPN", "Japon": "JPN",
    "Zhongguo": "CHN", "中国": "CHN", "Chine": "CHN", "대한민국": "KOR", "Hanguk": "KOR",
    "Südkorea": "KOR", "Corée du Sud": "KOR", "Corea del Sur": "KOR", "Bharat": "IND",
    "भारत": "IND", "Indien": "IND", "Inde": "IND", "Prathet Thai": "THA", "ประเทศไทย": "THA",
    "Kampuchea": "KHM", "Pilipinas": "PHL", "Filipinas": "PHL", "Aotearoa": "NZL",
    "Yisrael": "ISR", "ישראל": "ISR", "Druk Yul": "BTN", "Madagasikara": "MDG",
    "Brasil": "BRA", "Brésil": "BRA", "Mexique": "MEX", "Mexiko": "MEX",
    "República Dominicana": "DOM", "Estados Unidos": "USA", "Vereinigte Staaten": "USA",
    "États-Unis": "USA", "Reino Unido": "GBR", "Royaume-Uni": "GBR",
    "Vereinigtes Königreich": "GBR", "Suid-Afrika": "ZAF", "Südafrika": "ZAF",
    "Afrique du Sud": "ZAF", "Sudáfrica": "ZAF", "Maroc": "MAR", "Tunisie": "TUN",
}
# Names of several countries: never one of them.
AMBIGUOUS = {
    "Republic of China": ("TWN", "CHN"),  # Taiwan's official name, often meant for China
    "Czechoslovakia": ("CZE", "SVK"), "Serbia and Montenegro": ("SRB", "MNE"),
    "Yugoslavia": ("SRB", "MNE", "HRV", "SVN", "BIH", "MKD", "XKX"),
    "Soviet Union": ("RUS", "UKR", "BLR", "KAZ", "UZB", "GEO", "AZE", "LTU", "MDA", "LVA",
                     "KGZ", "TJK", "ARM", "TKM", "EST"),
    "Netherlands Antilles": ("CUW", "SXM", "BES"),
}
# ISO 3166-3 countries that are now several (their code ends in HH or XX): the candidates.
HISTORIC_SPLITS = {"CSHH": AMBIGUOUS["Czechoslovakia"], "CSXX": AMBIGUOUS["Serbia and Montenegro"],
                   "YUCS": AMBIGUOUS["Yugoslavia"], "SUHH": AMBIGUOUS["Soviet Union"],
                   "ANHH": AMBIGUOUS["Netherlands Antilles"], "GEHH": ("KIR", "TUV"),
                   "PCHH": ("FSM", "MHL", "MNP", "PLW"), "FQHH": ("ATA", "ATF"),
                   "NTHH": ("SAU", "IRQ")}
# Class folders for countries whose own name is ambiguous (see resolve).
FOLDER_NAMES = {"COG": "RepublicOfTheCongo", "COD": "DRCongo"}
# How messages name countries whose ISO name reads badly ("Congo, The Democratic ...").
DISPLAY_NAMES = {"COG": "Republic of the Congo", "COD": "DR Congo",
                 "VGB": "British Virgin Islands", "VIR": "US Virgin Islands",
                 "RUS": "Russia", "BRN": "Brunei", "PSE": "Palestine", "FSM": "Micronesia",
                 "VAT": "Vatican City", "FLK": "Falkland Islands", "SXM": "Sint Maarten",
                 "MAF": "Saint Martin", "BES": "Caribbean Netherlands",
                 "SHN": "Saint Helena", "CCK": "Cocos Islands",
                 # Natural Earth's own codes for areas ISO 3166 does not list.
                 "CYN": "Northern Cyprus", "SOL": "Somaliland"}
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
    """``DominicanRepublic`` -> ``Dominican Republic``, ``DRCongo`` -> ``DR Congo``."""
    name = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return name.replace("_", " ")


def _tokens(name: str) -> list[str]:
    """The words of a name, whatever its case, accents and separators: ``"Korea (South)"``,
    ``"south_korea"`` and ``"SouthKorea"`` all give ``["korea"/"south" ...]``."""
    name = re.sub(r"['’`´.]", "", split_camel(name))  # U.S.A. -> USA, d'Ivoire -> dIvoire
    plain = unicodedata.normalize("NFKD", name.replace("&", " and "))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    words = re.findall(r"[^\W_]+", plain)
    return ["saint" if w == "st" else w for w in words if w not in ("the", "and")]


def _keys(name: str) -> tuple[str, str]:
    """(the words joined, the words sorted): the second ignores the word order."""
    words = _tokens(name)
    return "".join(words), " ".join(sorted(words))


def _as_code(name: str) -> str | None:
    """``name`` upper-cased when it has the shape of a code (2 or 3 letters, dots
    allowed: ``U.K.``), else None."""
    plain = name.replace(".", "").strip()
    return plain.upper() if re.fullmatch(r"[A-Za-z]{2,3}", plain) else None


@dataclass(frozen=True)
class _Index:
    codes: dict[str, frozenset]  # CODE -> alpha-3 codes
    joined: dict[str, frozenset]  # words joined -> alpha-3 codes
    bags: dict[str, frozenset]  # words sorted -> alpha-3 codes


def _names() -> list[tuple[str, str]]:
    """(name, alpha-3) for every name of every country, and of the historic countries that
    became one country (ISO 3166-3: the last two letters name the successor, "AA" the
    same code)."""
    pairs = []
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                pairs += [(variant, country.alpha_3) for variant in _forms(name)]
    alpha2 = {c.alpha_2: c.alpha_3 for c in pycountry.countries}
    for old in pycountry.historic_countries:
        successor = alpha2.get(old.alpha_4[2:]) or \
            (alpha2.get(old.alpha_4[:2]) if old.alpha_4.endswith("AA") else None)
        for code in HISTORIC_SPLITS.get(old.alpha_4, (successor,) if successor else ()):
            pairs += [(variant, code) for variant in _forms(old.name)]
    pairs += [(name, code) for code, (_, name) in EXTRA_COUNTRIES.items()]
    pairs += list(VARIANTS.items())
    pairs += [(name, code) for name, codes in AMBIGUOUS.items() for code in codes]
    return pairs


def _forms(name: str) -> list[str]:
    """An ISO name and its short forms: ``"Korea, Republic of"`` is also ``"Korea"``,
    ``"Holy See (Vatican City State)"`` also ``"Holy See"``."""
    forms = [name, name.split(",")[0]]
    if "(" in name:
        forms.append(re.sub(r"\s*\([^)]*\)", "", name))
    return forms


@lru_cache(maxsize=1)
def _index() -> _Index:
    codes: dict[str, set] = {}
    joined: dict[str, set] = {}
    bags: dict[str, set] = {}
    for country in pycountry.countries:
        for code in (country.alpha_2, country.alpha_3):
            codes.setdefault(code, set()).add(country.alpha_3)
    for alpha3, (alpha2, _) in EXTRA_COUNTRIES.items():
        codes.setdefault(alpha2, set()).add(alpha3)
        codes.setdefault(alpha3, set()).add(alpha3)
    for name, code in _names():
        if _as_code(name):
            codes.setdefault(_as_code(name), set()).add(code)
            continue
        one, bag = _keys(name)
        if one:
            joined.setdefault(one, set()).add(code)
            bags.setdefault(bag, set()).add(code)
    freeze = lambda table: {k: frozenset(v) for k, v in table.items()}  # noqa: E731
    return _Index(freeze(codes), freeze(joined), freeze(bags))


def candidates(name: str) -> tuple[str, ...]:
    """The ISO alpha-3 codes a name can mean, sorted: none (unknown), one, or several
    (ambiguous: ``"Korea"``)."""
    index = _index()
    code = _as_code(name)
    if code is not None:  # a code is only ever a code: "XX" is nothing, not a near name
        return tuple(sorted(index.codes.get(code, ())))
    one, bag = _keys(name)
    return tuple(sorted(index.joined.get(one) or index.bags.get(bag) or ()))


def iso3(name: str) -> str | None:
    """ISO 3166 alpha-3 code of a class name, or None when it is not exactly one country."""
    found = candidates(name)
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Country:
    folder: str  # the class folder (CamelCase, ASCII)
    code: str  # ISO 3166 alpha-3


def resolve(name: str) -> Country:
    """A country as a user writes it (``"south korea"``, ``KOR``, ``SouthKorea``,
    ``"Côte d'Ivoire"``): its folder is the reference's name where it has one, else its
    name in ASCII CamelCase. A ConfigError names what could not be found, or the
    candidates of an ambiguous name."""
    found = candidates(name)
    if len(found) == 1:
        return country_of(found[0])
    if found:
        options = " or ".join(f"{display_name(c)} ({c})" for c in found)
        raise ConfigError(f"ambiguous country {name!r}: it could be {options}; write the "
                          "name or code of the one you mean")
    raise ConfigError(f"unknown country {name!r}; {_suggestion(name)}")


def _suggestion(name: str) -> str:
    """A hint for an unknown name: close spellings (only said, never chosen)."""
    known = {_keys(display_name(c))[0]: display_name(c) for c in _all_codes()}
    close = difflib.get_close_matches(_keys(name)[0], known, n=3, cutoff=0.8)
    if close:
        return f"did you mean {' or '.join(repr(known[k]) for k in close)}?"
    return "use an ISO 3166 name or code, e.g. 'Norway', 'NOR' or 'South Korea'"


def _all_codes() -> list[str]:
    return [c.alpha_3 for c in pycountry.countries] + list(EXTRA_COUNTRIES)


def display_name(code: str) -> str:
    """A country's everyday name (``KOR`` -> ``South Korea``)."""
    if code in EXTRA_COUNTRIES:
        return EXTRA_COUNTRIES[code][1]
    if code in DISPLAY_NAMES:
        return DISPLAY_NAMES[code]
    country = pycountry.countries.get(alpha_3=code)
    return getattr(country, "common_name", None) or country.name


@lru_cache(maxsize=1)
def _reference_codes() -> dict[str, str]:
    """{alpha-3: reference class folder}."""
    return {iso3(folder): folder for folder in REFERENCE_COUNTRIES}


def country_of(code: str) -> Country:
    """The class of an ISO alpha-3 code: the reference's folder where it has one, else
    the country's name in ASCII CamelCase (one that maps back to the same code)."""
    if code in _reference_codes():
        return Country(_reference_codes()[code], code)
    if code in FOLDER_NAMES:
        return Country(FOLDER_NAMES[code], code)
    if code in EXTRA_COUNTRIES:
        return Country(_camel(EXTRA_COUNTRIES[code][1]), code)
    country = pycountry.countries.get(alpha_3=code)
    names = [getattr(country, "common_name", None) or country.name,
             getattr(country, "official_name", None)]
    folders = [_camel(n) for n in names if n]
    return Country(next((f for f in folders if iso3(f) == code), folders[0]), code)


def _camel(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(w[0].upper() + w[1:] for w in re.findall(r"[A-Za-z]+", plain))


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
