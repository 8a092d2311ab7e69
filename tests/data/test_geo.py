import json
import math

import numpy as np
import pytest
import torch

from geoconvnet.data.geo import (
    EARTH_KM,
    SCALE_KM,
    GeoCells,
    distance_summary,
    geoscore,
    haversine_km,
    unit_vectors,
)
from geoconvnet.utils.errors import CheckpointError, ConfigError

PARIS, LONDON = (48.8566, 2.3522), (51.5074, -0.1278)


def _box(rng, n, lat, lon):
    """n places uniform in a lat/lon box ((lat0, lat1), (lon0, lon1))."""
    return np.column_stack([rng.uniform(*lat, n), rng.uniform(*lon, n)])


def _world(seed=0):
    """Land A: a dense town (400 places in 0.2 deg) plus 100 places over a wide area;
    land B: 60 places; land C: 3 places."""
    rng = np.random.default_rng(seed)
    parts = [(_box(rng, 400, (50.0, 50.2), (10.0, 10.2)), "A"),
             (_box(rng, 100, (40.0, 60.0), (-10.0, 30.0)), "A"),
             (_box(rng, 60, (-30.0, -20.0), (20.0, 30.0)), "B"),
             (_box(rng, 3, (0.0, 1.0), (0.0, 1.0)), "C")]
    latlon = np.concatenate([p for p, _ in parts])
    countries = [name for p, name in parts for _ in range(len(p))]
    return latlon, countries


def _max_spread_km(points):
    lat, lon = points[:, 0], points[:, 1]
    return float(haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]).max())


# distances and scores

def test_haversine_matches_hand_computed_distances():
    assert haversine_km(0, 0, 0, 1) == pytest.approx(111.19, abs=0.05)
    assert haversine_km(*PARIS, *LONDON) == pytest.approx(343.5, abs=1)
    assert haversine_km(*LONDON, *PARIS) == pytest.approx(float(haversine_km(*PARIS, *LONDON)))
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_KM)
    assert haversine_km(10, 20, -10, -160) == pytest.approx(math.pi * EARTH_KM, abs=1e-3)
    assert haversine_km(*PARIS, *PARIS) == 0
    assert haversine_km(90, 0, 90, 123) == pytest.approx(0, abs=1e-6)


def test_haversine_broadcasts():
    d = haversine_km(np.array([0.0, 0.0]), np.array([0.0, 0.0]), 0.0, np.array([[1.0], [2.0]]))
    assert d.shape == (2, 2)
    assert d[1, 0] == pytest.approx(2 * 111.195, abs=0.05)


def test_geoscore_is_5000_at_zero_and_falls_by_e_per_scale():
    assert geoscore(0) == 5000
    assert geoscore(SCALE_KM) == pytest.approx(5000 / math.e)
    assert geoscore([0, SCALE_KM]).shape == (2,)


def test_unit_vectors_lie_on_the_sphere_and_point_the_right_way():
    v = unit_vectors(np.array([[0.0, 0.0], [0.0, 90.0], [90.0, 0.0], [12.3, -45.6]]))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    np.testing.assert_allclose(v[:3], np.eye(3), atol=1e-12)
    with pytest.raises(ConfigError, match="shape"):
        unit_vectors(np.zeros((4, 3)))


def test_distance_summary_counts_a_threshold_distance_as_within():
    s = distance_summary([25.0, 25.0001, 1.0, 2500.0, np.nan, 3000.0])
    assert s["n"] == 5
    assert s["within"] == {"1": 0.2, "25": 0.4, "200": 0.6, "750": 0.6, "2500": 0.8}
    assert s["median_km"] == pytest.approx(25.0001)
    assert s["mean_km"] == pytest.approx((25 + 25.0001 + 1 + 2500 + 3000) / 5)
    expected = np.mean(5000 * np.exp(-np.array([25, 25.0001, 1, 2500, 3000]) / SCALE_KM))
    assert s["geoscore"] == pytest.approx(expected)
    json.dumps(s)


def test_distance_summary_of_nothing_is_empty():
    for empty in ([], [np.nan, np.nan]):
        s = distance_summary(empty)
        assert s["n"] == 0 and s["median_km"] is None and s["mean_km"] is None
        assert s["geoscore"] is None and set(s["within"].values()) == {None}


# building cells

@pytest.fixture(scope="module")
def world():
    latlon, countries = _world()
    cells, assignment = GeoCells.build(latlon, countries, cells=24, min_size=10, seed=3)
    return latlon, countries, cells, assignment


def test_cells_hold_one_country_and_enough_places(world):
    latlon, countries, cells, assignment = world
    assert len(cells) == 24  # reachable: asked for and got
    assert assignment.shape == (len(latlon),) and assignment.min() >= 0
    np.testing.assert_array_equal(np.bincount(assignment, minlength=len(cells)), cells.counts)
    for c in range(len(cells)):
        members = np.flatnonzero(assignment == c)
        assert {countries[i] for i in members} == {cells.countries[c]}
        if cells.countries[c] != "C":
            assert cells.counts[c] >= 10
    assert cells.countries.count("C") == 1  # too few to split, still its own cell
    assert cells.countries == sorted(cells.countries)


def test_centre_of_a_cell_is_one_of_its_places(world):
    latlon, _, cells, assignment = world
    for c, centre in enumerate(cells.centres):
        members = latlon[assignment == c]
        assert np.any(np.all(members == centre, axis=1)), c


def test_crowded_places_get_more_cells_than_sparse_ones(world):
    _, _, cells, _ = world
    land_a = [c for c in range(len(cells)) if cells.countries[c] == "A"]
    in_town = [c for c in land_a if 50 <= cells.centres[c, 0] <= 50.2
               and 10 <= cells.centres[c, 1] <= 10.2]
    assert len(in_town) >= 2 * (len(land_a) - len(in_town)) > 0


def test_pin_places_are_a_sample_of_the_cell(world):
    latlon, _, cells, assignment = world
    for c, places in enumerate(cells.places):
        assert len(places) == min(32, cells.counts[c])
        members = latlon[assignment == c]
        assert all(np.any(np.all(members == p, axis=1)) for p in places)


def test_build_is_reproducible():
    latlon, countries = _world()
    a, assign_a = GeoCells.build(latlon, countries, cells=24, min_size=10, keep=5, seed=1)
    b, assign_b = GeoCells.build(latlon.copy(), list(countries), cells=24, min_size=10,
                                 keep=5, seed=1)
    assert a.countries == b.countries
    np.testing.assert_array_equal(a.centres, b.centres)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(assign_a, assign_b)
    for pa, pb in zip(a.places, b.places):
        np.testing.assert_array_equal(pa, pb)


def test_splitting_stops_when_no_cell_can_split():
    rng = np.random.default_rng(0)
    latlon = _box(rng, 25, (0, 5), (0, 5))
    cells, _ = GeoCells.build(latlon, ["X"] * 25, cells=100, min_size=10)
    assert len(cells) == 2 and sorted(cells.counts.tolist()) == [12, 13]
    latlon = _box(rng, 100, (0, 5), (0, 5))
    cells, _ = GeoCells.build(latlon, ["X"] * 100, cells=100, min_size=10)
    assert 5 <= len(cells) < 100
    assert cells.counts.min() >= 10 and cells.counts.max() < 20  # none left that can split


def test_ties_on_the_median_never_leave_a_half_too_small():
    # 30 places share one latitude, the rest spread: the cut must not fall by value
    latlon = np.column_stack([np.r_[np.full(30, 5.0), np.linspace(0, 10, 30)],
                              np.r_[np.linspace(0, 0.001, 30), np.linspace(0, 0.001, 30)]])
    cells, assignment = GeoCells.build(latlon, ["X"] * 60, cells=6, min_size=10)
    assert cells.counts.min() >= 10 and cells.counts.sum() == 60
    # one spot holding every place cannot split (both halves would be the same cell)
    cells, _ = GeoCells.build(np.tile([[1.0, 2.0]], (50, 1)), ["X"] * 50, cells=8, min_size=10)
    assert len(cells) == 1


def test_cells_across_the_antimeridian_stay_compact():
    # an island group on both sides of 180 deg, two thirds west of it (Fiji-like)
    rng = np.random.default_rng(0)
    lon = rng.uniform(172.0, 184.0, 300)
    latlon = np.column_stack([rng.uniform(-17.0, -16.5, 300), (lon + 180) % 360 - 180])
    whole = _max_spread_km(latlon)
    cells, assignment = GeoCells.build(latlon, ["Fiji"] * 300, cells=2, min_size=10)
    assert len(cells) == 2
    for c in range(2):
        assert _max_spread_km(latlon[assignment == c]) < 0.6 * whole
    cells, assignment = GeoCells.build(latlon, ["Fiji"] * 300, cells=8, min_size=10)
    for c in range(len(cells)):
        assert _max_spread_km(latlon[assignment == c]) < 0.3 * whole


@pytest.mark.parametrize("kwargs, match", [
    (dict(cells=0), "cells=0"), (dict(min_size=0), "min_size=0"),
    (dict(tau_km=0.0), "tau_km=0.0"), (dict(cells=2), "cells=2 is fewer than the 3"),
])
def test_build_refuses_bad_settings(kwargs, match):
    latlon, countries = _world()
    with pytest.raises(ConfigError, match=match):
        GeoCells.build(latlon, countries, **kwargs)


def test_build_refuses_bad_places():
    latlon, countries = _world()
    latlon[7, 1] = np.nan
    with pytest.raises(ConfigError, match="first #7"):
        GeoCells.build(latlon, countries)
    with pytest.raises(ConfigError, match="564 places but 563 countries"):
        GeoCells.build(np.zeros((564, 2)), countries)


# assigning and targets

def test_assign_puts_places_in_a_cell_of_their_country(world):
    latlon, countries, cells, assignment = world
    again = cells.assign(latlon, countries)
    assert [cells.countries[c] for c in again] == countries
    np.testing.assert_array_equal(again, assignment)  # the same cuts, the same cells
    # a place of B next to A's town still goes to a cell of B
    near = cells.assign(np.array([[50.1, 10.1]]), ["B"])
    assert cells.countries[near[0]] == "B"


def test_assign_of_new_places_follows_the_cuts(world):
    latlon, countries, cells, assignment = world
    # a place a hair from a training place (not on a cut) is in that place's cell
    rng = np.random.default_rng(2)
    moved = latlon + rng.choice([-1e-9, 1e-9], latlon.shape)
    assert np.mean(cells.assign(moved, countries) == assignment) > 0.99
    # far outside its country's places it still gets one of that country's cells
    far = cells.assign(np.array([[-80.0, 170.0], [89.0, -179.0]]), ["B", "C"])
    assert [cells.countries[c] for c in far] == ["B", "C"]


def test_cells_without_cuts_assign_by_nearest_centre():
    cells = GeoCells(["X", "X", "Y"], np.array([[0.0, 0.0], [0.0, 10.0], [0.0, 5.0]]),
                     np.array([10, 10, 10]), [np.zeros((1, 2))] * 3, 10, 75.0)
    out = cells.assign(np.array([[1.0, 4.0], [1.0, 6.0], [1.0, 6.0], [np.nan, 0.0]]),
                       ["X", "X", "Y", "X"])
    assert out.tolist() == [0, 1, 2, -1]
    again = GeoCells.from_dict(json.loads(json.dumps(cells.to_dict())))
    assert again.nodes is None and again.assign(np.array([[1.0, 6.0]]), ["X"]).tolist() == [1]


def test_assign_gives_minus_one_without_place_or_country(world):
    _, _, cells, _ = world
    out = cells.assign(np.array([[np.nan, 10.0], [50.1, 10.1], [50.1, 10.1]]),
                       ["A", "Atlantis", "A"])
    assert out[0] == -1 and out[1] == -1 and cells.countries[out[2]] == "A"
    assert cells.assign(np.zeros((0, 2)), []).shape == (0,)


def test_smooth_targets_peak_at_the_true_cell_and_decay_with_distance(world):
    latlon, _, cells, assignment = world
    rows = np.array([0, 450, 520, 562])
    t = cells.smooth_targets(torch.tensor(latlon[rows], dtype=torch.float32),
                             torch.tensor(assignment[rows]))
    assert t.dtype == torch.float32 and t.shape == (4, len(cells))
    torch.testing.assert_close(t.sum(dim=1), torch.ones(4))
    assert t.argmax(dim=1).tolist() == assignment[rows].tolist()
    for r, i in enumerate(rows):
        d = haversine_km(latlon[i, 0], latlon[i, 1], cells.centres[:, 0], cells.centres[:, 1])
        others = [c for c in np.argsort(d) if c != assignment[i]]
        w = t[r, others].numpy()
        assert np.all(np.diff(w) <= 1e-7), r
        expected = np.exp(-d[others[0]] / cells.tau_km) * t[r, assignment[i]].item()
        assert w[0] == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_small_tau_makes_targets_nearly_one_hot(world):
    latlon, countries, _, _ = world
    cells, assignment = GeoCells.build(latlon, countries, cells=24, min_size=10, tau_km=0.001)
    t = cells.smooth_targets(torch.tensor(latlon[:50]), torch.tensor(assignment[:50]))
    assert t[torch.arange(50), torch.tensor(assignment[:50])].min() > 0.99


def test_smooth_targets_of_places_without_a_cell_are_zero(world):
    _, _, cells, _ = world
    t = cells.smooth_targets(torch.tensor([[np.nan, 0.0], [50.1, 10.1], [1.0, 1.0]]),
                             torch.tensor([0, -1, 3]))
    assert t[:2].abs().sum() == 0 and t[2].sum().item() == pytest.approx(1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_smooth_targets_on_the_gpu_match_the_cpu(world):
    latlon, _, cells, assignment = world
    x, c = torch.tensor(latlon[:64], dtype=torch.float32), torch.tensor(assignment[:64])
    gpu = cells.smooth_targets(x.cuda(), c.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cells.smooth_targets(x, c), atol=1e-5, rtol=1e-4)


# the pin cloud and checkpoints

def test_cell_distribution_keeps_likely_cells_renormalised(world):
    _, _, cells, _ = world
    probs = np.full(len(cells), 0.001)
    probs[[3, 7, 11]] = [0.5, 0.3, 0.02]
    cloud = cells.cell_distribution(probs / probs.sum())
    assert [round(p, 6) for p, _ in cloud] == [round(p, 6) for p in np.array([.5, .3, .02]) / .82]
    assert cloud[0][1] is cells.places[3]
    assert len(cells.cell_distribution(probs, top=2)) == 2
    only = cells.cell_distribution(np.full(len(cells), 1 / len(cells)), min_probability=0.5)
    assert len(only) == 1 and only[0][0] == 1.0
    with pytest.raises(ConfigError, match="3 cell probabilities for 24 cells"):
        cells.cell_distribution(np.ones(3))


def test_dict_round_trip_keeps_assign_and_targets(world):
    latlon, countries, cells, assignment = world
    loaded = GeoCells.from_dict(json.loads(json.dumps(cells.to_dict())))
    assert loaded.countries == cells.countries and loaded.tau_km == cells.tau_km
    np.testing.assert_array_equal(loaded.counts, cells.counts)
    rng = np.random.default_rng(5)
    probes = latlon + rng.normal(0, 0.05, latlon.shape)
    np.testing.assert_array_equal(loaded.assign(probes, countries),
                                  cells.assign(probes, countries))
    x, c = torch.tensor(latlon[:40]), torch.tensor(assignment[:40])
    torch.testing.assert_close(loaded.smooth_targets(x, c), cells.smooth_targets(x, c))
    for a, b in zip(loaded.places, cells.places):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_from_dict_names_what_is_missing(world):
    d = world[2].to_dict()
    del d["centres"], d["tau_km"]
    with pytest.raises(CheckpointError, match="missing centres, tau_km"):
        GeoCells.from_dict(d)
    d = world[2].to_dict()
    d["counts"] = d["counts"][:-1]
    with pytest.raises(CheckpointError, match="23 counts for 24"):
        GeoCells.from_dict(d)
    d = world[2].to_dict()
    d["nodes"][0] = [-1, 0, 0, 99, -1]
    with pytest.raises(CheckpointError, match="a cut leads to a cell outside 0..23"):
        GeoCells.from_dict(d)
    d = world[2].to_dict()
    d["roots"] = {"A": 10_000}
    with pytest.raises(CheckpointError, match="roots a dict of node indices"):
        GeoCells.from_dict(d)
    with pytest.raises(CheckpointError, match="expected a dict"):
        GeoCells.from_dict([1, 2])
