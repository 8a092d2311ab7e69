import random

import pycountry
import pytest

from geoconvnet.data.countries import outline, resolve
from geoconvnet.data.places import Places


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
