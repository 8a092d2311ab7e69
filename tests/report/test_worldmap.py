from geoconvnet.data.countries import iso3, shapes_for_map, split_camel
from geoconvnet.data.synth import REFERENCE_COUNTRIES
from geoconvnet.report.worldmap import map_names


def test_all_reference_countries_map_to_iso_codes_with_shapes():
    mapped, unmapped = map_names(REFERENCE_COUNTRIES)
    assert unmapped == [] and len(set(mapped.values())) == 85
    shapes = shapes_for_map()
    assert all(code in shapes for code in mapped.values())


def test_known_spellings():
    assert iso3("USA") == "USA" and iso3("UnitedKingdom") == "GBR"
    assert iso3("SouthKorea") == "KOR" and iso3("UnitedArabEmirates") == "ARE"
    assert iso3("DominicanRepublic") == "DOM" and iso3("Turkey") == "TUR"
    assert split_camel("NorthMacedonia") == "North Macedonia"


def test_unknown_names_are_listed_not_fatal():
    mapped, unmapped = map_names(["Norway", "Atlantis", "Country099"])
    assert mapped == {"Norway": "NOR"} and unmapped == ["Atlantis", "Country099"]
