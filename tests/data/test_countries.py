import random

import pycountry
import pytest

from geoconvnet.data.countries import (
    REFERENCE_COUNTRIES,
    VARIANTS,
    candidates,
    country_of,
    iso3,
    outline,
    resolve,
)
from geoconvnet.data.places import Places
from geoconvnet.utils.errors import ConfigError


def test_every_iso_country_has_a_place_on_the_map_and_land_for_the_pin():
    for country in pycountry.countries:
        assert outline(country.alpha_3), country.name
    for name in ("Faroe Islands", "Guam", "Isle of Man", "Gibraltar", "Curaçao"):
        lat, lon = Places(resolve(name).code, random.Random(0)).point()
        assert -90 <= lat <= 90 and -180 <= lon <= 180


def test_resolve_takes_names_codes_and_folders():
    assert resolve("south korea").folder == "SouthKorea" == resolve("KOR").folder
    assert resolve("Faroe Islands").folder == "FaroeIslands"
    with pytest.raises(Exception, match="unknown country 'Atlantis'"):
        resolve("Atlantis")


# How people, datasets and sources spell countries -> the ISO alpha-3 code, or None: not
# one country (unknown or ambiguous), so an import lists it as unmapped.
SPELLINGS = [
    # ISO codes, any case (OSV-5M's `country` column is alpha-2)
    ("NO", "NOR"), ("no", "NOR"), ("NOR", "NOR"), ("kor", "KOR"), ("KR", "KOR"),
    ("de", "DEU"), ("GB", "GBR"), ("CI", "CIV"), ("NA", "NAM"), ("CD", "COD"),
    ("CG", "COG"), ("XK", "XKX"), ("U.S.A.", "USA"),
    # not countries
    ("XX", None), ("ZZ", None), ("EU", None), ("Atlantis", None), ("", None), ("??", None),
    ("  ", None), ("America", None), ("Country099", None), ("Texas", None),
    ("California", None), ("Bavaria", None), ("Noord-Holland", None), ("unknown", None),
    # the reference's folders and other CamelCase/underscore/hyphen folder names
    ("SouthKorea", "KOR"), ("NorthKorea", "PRK"), ("DominicanRepublic", "DOM"),
    ("UnitedArabEmirates", "ARE"), ("NewZealand", "NZL"), ("CoteDIvoire", "CIV"),
    ("DRCongo", "COD"), ("united_states", "USA"), ("South-Korea", "KOR"),
    ("south_africa", "ZAF"), ("bosnia-and-herzegovina", "BIH"), ("GUINEA-BISSAU", "GNB"),
    ("timor-leste", "TLS"), ("USVirginIslands", "VIR"),
    # Korea, every way
    ("South Korea", "KOR"), ("Korea, Republic of", "KOR"), ("Republic of Korea", "KOR"),
    ("Korea (South)", "KOR"), ("Korea South", "KOR"), ("ROK", "KOR"), ("대한민국", "KOR"),
    ("Südkorea", "KOR"), ("North Korea", "PRK"), ("DPRK", "PRK"),
    ("Democratic People's Republic of Korea", "PRK"),
    ("Korea, Democratic People's Republic of", "PRK"), ("Korea", None),
    # the UK and the US
    ("UK", "GBR"), ("U.K.", "GBR"), ("United Kingdom", "GBR"), ("Great Britain", "GBR"),
    ("Britain", "GBR"), ("England", "GBR"), ("Scotland", "GBR"), ("Wales", "GBR"),
    ("Northern Ireland", "GBR"), ("United Kingdom of Great Britain and Northern Ireland", "GBR"),
    ("US", "USA"), ("USA", "USA"), ("United States", "USA"),
    ("United States of America", "USA"), ("the United States", "USA"),
    # renamed, old and common English names
    ("Czech Republic", "CZE"), ("Czechia", "CZE"), ("Ivory Coast", "CIV"),
    ("Côte d'Ivoire", "CIV"), ("Cote d'Ivoire", "CIV"), ("Swaziland", "SWZ"),
    ("Eswatini", "SWZ"), ("eSwatini", "SWZ"), ("Macedonia", "MKD"), ("North Macedonia", "MKD"),
    ("Burma", "MMR"), ("Myanmar (Burma)", "MMR"), ("Holland", "NLD"),
    ("The Netherlands", "NLD"), ("Turkey", "TUR"), ("Türkiye", "TUR"), ("Russia", "RUS"),
    ("Russian Federation", "RUS"), ("Vietnam", "VNM"), ("Viet Nam", "VNM"), ("Laos", "LAO"),
    ("Syria", "SYR"), ("Iran", "IRN"), ("Bolivia", "BOL"), ("Cape Verde", "CPV"),
    ("Cabo Verde", "CPV"), ("East Timor", "TLS"), ("Zaire", "COD"), ("Brunei", "BRN"),
    ("Vatican City", "VAT"), ("Holy See", "VAT"), ("Palestine", "PSE"), ("Taiwan", "TWN"),
    ("Hong Kong", "HKG"), ("Macau", "MAC"), ("Kosovo", "XKX"), ("UAE", "ARE"),
    ("The Gambia", "GMB"), ("Gambia", "GMB"), ("Bahamas", "BHS"), ("Republic of Ireland", "IRL"),
    ("Ireland", "IRL"),
    # Street View / Google Maps spellings
    ("St. Lucia", "LCA"), ("St Kitts & Nevis", "KNA"), ("St. Vincent & Grenadines", "VCT"),
    ("Bosnia & Herzegovina", "BIH"), ("Trinidad & Tobago", "TTO"),
    ("São Tomé & Príncipe", "STP"), ("Congo - Kinshasa", "COD"), ("Congo - Brazzaville", "COG"),
    ("Hong Kong SAR China", "HKG"), ("U.S. Virgin Islands", "VIR"),
    ("British Virgin Islands", "VGB"), ("Åland Islands", "ALA"), ("Curaçao", "CUW"),
    ("Réunion", "REU"), ("Falkland Islands", "FLK"), ("Palestinian Territories", "PSE"),
    ("Democratic Republic of the Congo", "COD"), ("Republic of the Congo", "COG"),
    # local names and other languages
    ("Deutschland", "DEU"), ("España", "ESP"), ("Espana", "ESP"), ("Italia", "ITA"),
    ("Nederland", "NLD"), ("Sverige", "SWE"), ("Norge", "NOR"), ("Danmark", "DNK"),
    ("Suomi", "FIN"), ("Schweiz", "CHE"), ("Suisse", "CHE"), ("Österreich", "AUT"),
    ("Oesterreich", "AUT"), ("Česko", "CZE"), ("Polska", "POL"), ("Magyarország", "HUN"),
    ("Hrvatska", "HRV"), ("Ελλάδα", "GRC"), ("Россия", "RUS"), ("Україна", "UKR"),
    ("Nippon", "JPN"), ("日本", "JPN"), ("中国", "CHN"), ("Brasil", "BRA"), ("México", "MEX"),
    ("Perú", "PER"), ("Aotearoa", "NZL"), ("Pilipinas", "PHL"), ("ประเทศไทย", "THA"),
    # names close to others: each its own, or ambiguous on purpose
    ("Guinea", "GIN"), ("Equatorial Guinea", "GNQ"), ("Papua New Guinea", "PNG"),
    ("Georgia", "GEO"), ("Dominica", "DMA"), ("Niger", "NER"), ("Nigeria", "NGA"),
    ("Sudan", "SDN"), ("South Sudan", "SSD"), ("Samoa", "WSM"), ("American Samoa", "ASM"),
    ("Congo", None), ("Virgin Islands", None), ("Republic of China", None),
    ("People's Republic of China", "CHN"), ("China", "CHN"), ("Czechoslovakia", None),
    ("Yugoslavia", None), ("USSR", None), ("Soviet Union", None),
    ("Serbia and Montenegro", None), ("Netherlands Antilles", None),
]


@pytest.mark.parametrize("name,code", SPELLINGS, ids=[repr(s) for s, _ in SPELLINGS])
def test_real_world_spellings_map_to_the_right_country_or_to_none(name, code):
    assert iso3(name) == code
    if code is None:
        with pytest.raises(ConfigError):
            resolve(name)
    else:
        assert resolve(name).code == code


def test_the_spelling_table_is_large():
    assert len(SPELLINGS) >= 60 and len({code for _, code in SPELLINGS}) >= 60


def test_an_ambiguous_name_is_never_one_country_and_its_error_lists_the_candidates():
    assert candidates("Korea") == ("KOR", "PRK") and candidates("congo") == ("COD", "COG")
    with pytest.raises(ConfigError, match=r"ambiguous country 'Korea'.*South Korea \(KOR\).*"
                                          r"North Korea \(PRK\)"):
        resolve("Korea")
    with pytest.raises(ConfigError, match="DR Congo .*Republic of the Congo"):
        resolve("Congo")


def test_an_unknown_name_is_never_guessed_only_hinted():
    # pycountry's fuzzy search took these for Malta and North Korea
    assert candidates("XX") == () and resolve("Republic of Korea").code == "KOR"
    with pytest.raises(ConfigError, match="did you mean 'Norway'"):
        resolve("Norwya")
    assert iso3("Norwya") is None


def test_every_folder_maps_back_to_its_country():
    codes = [c.alpha_3 for c in pycountry.countries] + ["XKX"]
    for code in codes:
        folder = country_of(code).folder
        assert folder.isascii() and folder.isalnum(), folder
        assert resolve(folder).code == code, (code, folder)
    assert [resolve(name).folder for name in REFERENCE_COUNTRIES] == REFERENCE_COUNTRIES
    assert country_of("COG").folder == "RepublicOfTheCongo" and country_of("COD").folder == \
        "DRCongo"


def test_the_variants_table_contradicts_no_iso_name():
    for name, code in VARIANTS.items():  # a variant that clashed would become ambiguous
        assert candidates(name) == (code,), name
