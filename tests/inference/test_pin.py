import random

import numpy as np
import pytest

from geoconvnet.data.countries import resolve
from geoconvnet.data.places import Places
from geoconvnet.inference.pin import Land, Target, advise, expected_score


@pytest.fixture(scope="module")
def land():
    return Land(samples=200)


def test_all_mass_on_one_country_puts_the_pin_inside_it(land):
    for country in ("Chile", "Kenya", "Japan"):
        pin = advise({country: 1.0}, land).suggested
        assert Places(resolve(country).code, random.Random(0)).contains(pin.lat, pin.lon), country


def test_the_pin_beats_a_brute_force_grid_and_never_loses_to_the_naive_one(land):
    probabilities = {"Spain": 0.45, "Turkey": 0.35, "Chile": 0.2}
    advice = advise(probabilities, land)
    clouds = [(p, land.points(c)) for c, p in probabilities.items()]
    grid = [(lat, lon) for lat in np.arange(-60, 75, 1.0) for lon in np.arange(-180, 180, 1.0)]
    best = max(expected_score(lat, lon, clouds) for lat, lon in grid)
    assert advice.suggested.expected_score >= best - 5  # the 1-degree grid's resolution
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.dirichlet(np.ones(4))
        advice = advise(dict(zip(["Norway", "Peru", "India", "Kenya"], p)), land)
        assert advice.suggested.expected_score >= advice.naive.expected_score


def test_the_matrix_scores_equal_the_plain_definition(land):
    clouds = [(0.6, land.points("Japan")), (0.3, land.points("Peru")), (0.1, land.points("Oman"))]
    pins = np.random.default_rng(1).uniform((-60, -180), (75, 180), size=(50, 2))
    fast = Target(clouds).expected(pins)
    plain = [expected_score(lat, lon, clouds) for lat, lon in pins]
    assert fast == pytest.approx(plain, rel=1e-6, abs=1e-6)
