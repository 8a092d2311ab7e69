"""The linear split and same-spot grouping of issue 25 on generated groups and places."""

import time

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geoconvnet.curate.split import assign_folds
from geoconvnet.curate.spots import EARTH_RADIUS_M, spot_groups


def _metres(lat1, lon1, lat2, lon2):
    """Great-circle distance (haversine), broadcasting."""
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _all_pairs_groups(lat, lon, spot_m):
    """The reference: connected sets of the full pair matrix."""
    close = _metres(lat[:, None], lon[:, None], lat[None], lon[None]) <= spot_m
    _, label = connected_components(coo_matrix(close), directed=False)
    first = np.full(len(lat), len(lat))
    np.minimum.at(first, label, np.arange(len(lat)))
    return first[label]


def _around(rng, lat, lon, n, metres):
    """``n`` places within about ``metres`` of (lat, lon), longitude wrapped."""
    dlat = rng.uniform(-1, 1, n) * metres / 111_195
    dlon = rng.uniform(-1, 1, n) * metres / (111_195 * max(np.cos(np.radians(lat)), 1e-6))
    return np.clip(lat + dlat, -90, 90), (lon + dlon + 180) % 360 - 180


@pytest.mark.parametrize("lat, lon, spread, spot_m", [
    (48.85, 2.35, 700, 50.0),  # a city: chains and gaps
    (0.0, 179.999, 500, 40.0),  # across the antimeridian
    (89.9995, 0.0, 150, 30.0),  # at the pole, where longitude means little
    (-33.9, 18.4, 40, 4.0),  # a spot of a few metres
])
def test_spot_groups_are_exactly_the_connected_sets_of_close_pairs(lat, lon, spread, spot_m):
    rng = np.random.default_rng(7)
    la, lo = _around(rng, lat, lon, 400, spread)
    got = spot_groups(la, lo, spot_m)
    assert np.array_equal(got, _all_pairs_groups(la, lo, spot_m))
    assert 1 < len(np.unique(got)) < len(la)  # the case has both links and gaps


def test_places_within_spot_m_share_a_group_across_the_antimeridian_and_the_pole():
    lat = np.array([0.0, 0.0, 0.0, 89.99999, 89.99999, 10.0])
    lon = np.array([179.9999, -179.9999, 179.99, 0.0, 180.0, 20.0])  # 22 m; 1.1 km; 2 m
    groups = spot_groups(lat, lon, 50.0)
    assert groups.tolist() == [0, 0, 2, 3, 3, 5]
    assert spot_groups(lat, lon, 0).tolist() == list(range(6))  # 0: off
    lat[0] = np.nan  # a place not known is alone
    assert spot_groups(lat, lon, 50.0).tolist() == [0, 1, 2, 3, 3, 5]


def test_a_dense_crowd_is_one_group_fast_and_a_street_sequence_chains():
    rng = np.random.default_rng(3)
    crowd = _around(rng, 41.9, 12.5, 5000, 15)  # 5,000 shots within 30 m
    street_lat = 41.91 + np.arange(300) * 10 / 111_195  # an image every 10 m, 3 km
    alone = (np.array([41.95]), np.array([12.6]))
    lat = np.concatenate([crowd[0], street_lat, alone[0]])
    lon = np.concatenate([crowd[1], np.full(300, 12.5), alone[1]])
    start = time.perf_counter()
    groups = spot_groups(lat, lon, 50.0)
    assert time.perf_counter() - start < 2.0
    assert set(groups[:5000].tolist()) == {0}
    assert set(groups[5000:5300].tolist()) == {5000}  # 3 km apart end to end: chained
    assert groups[-1] == len(lat) - 1


def _generated(rng, countries=30):
    """Countries of 5 to 2,000 images in groups of 1 to 40 (most single), a few groups
    spanning two countries."""
    country, group = [], []
    for c in range(countries):
        n = int(rng.integers(5, 2000))
        sizes = np.minimum(rng.geometric(0.6, n), 40)
        sizes = sizes[np.cumsum(sizes) <= n]
        sizes = np.r_[sizes, np.ones(n - sizes.sum(), int)]
        for s in sizes.tolist():
            group += [len(group)] * s
            country += [f"C{c}"] * s
    country, group = np.array(country), np.array(group)
    for _ in range(5):  # the same spot near a border: one group over two countries
        i, j = rng.integers(0, len(group), 2)
        group[group == group[j]] = group[i]
    return country, group


def test_folds_keep_groups_whole_and_each_country_within_half_its_largest_group():
    country, group = _generated(np.random.default_rng(11))
    test = assign_folds(country, group, 0.2, seed=5)
    for g in np.unique(group):
        assert len(set(test[group == g].tolist())) == 1, g  # never both sides
    shared = {g for g in np.unique(group) if len(set(country[group == g].tolist())) > 1}
    checked = 0
    for c in np.unique(country):
        mine = country == c
        if shared & set(group[mine].tolist()):
            continue  # the bound is stated for countries whose groups are their own
        largest = np.bincount(group[mine]).max()
        assert abs(test[mine].sum() - 0.2 * mine.sum()) <= largest / 2, c
        assert 0 < test[mine].sum() < mine.sum(), c
        checked += 1
    assert checked >= 20


def test_single_images_give_the_target_rounded_and_the_seed_decides():
    country = np.repeat(["a", "b", "c"], [5, 13, 1000])
    group = np.arange(len(country))
    test = assign_folds(country, group, 0.2, seed=0)
    assert [int(test[country == c].sum()) for c in "abc"] == [1, 3, 200]
    assert np.array_equal(test, assign_folds(country, group, 0.2, seed=0))
    other = assign_folds(country, group, 0.2, seed=1)
    assert not np.array_equal(test, other)
    assert [int(other[country == c].sum()) for c in "abc"] == [1, 3, 200]


def test_fold_assignment_grows_linearly():
    rng = np.random.default_rng(2)
    n = 400_000
    country = rng.integers(0, 200, n)
    group = np.arange(n) // rng.integers(1, 4, n)
    start = time.perf_counter()
    test = assign_folds(country, group, 0.2, seed=0)
    assert time.perf_counter() - start < 5.0
    assert abs(test.mean() - 0.2) < 0.01
