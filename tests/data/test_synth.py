import hashlib
import json

import numpy as np
import pytest

from geoconvnet.data import synth as S
from geoconvnet.utils.errors import ConfigError


def _digest(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_layout_and_counts(tmp_path):
    root = S.synth(tmp_path / "d", classes=3, per_class=4, test_per_class=2, size=(160, 90),
                   workers=1)
    names = S.class_names(3)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(names)
    for name in names:
        assert len(list((root / "train" / name).glob("*.png"))) == 4
        assert len(list((root / "test" / name).glob("*.png"))) == 2
    from PIL import Image
    with Image.open(root / "train" / names[0] / "0.png") as img:
        assert img.size == (160, 90) and img.mode == "RGB"


def test_deterministic_per_seed(tmp_path):
    a = S.synth(tmp_path / "a", classes=2, per_class=2, size=(160, 90), seed=1, workers=1)
    b = S.synth(tmp_path / "b", classes=2, per_class=2, size=(160, 90), seed=1, workers=2)
    c = S.synth(tmp_path / "c", classes=2, per_class=2, size=(160, 90), seed=2, workers=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files and all(_digest(a / f) == _digest(b / f) for f in files)
    assert any(_digest(a / f) != _digest(c / f) for f in files)


def test_styles_differ_in_at_least_two_cues():
    styles = S.class_styles(40, seed=0)
    for i, a in enumerate(styles):
        for b in styles[:i]:
            assert sum(a[k] != b[k] for k in S.CUES) >= 2


def test_class_names_are_reference_countries_and_extend():
    assert set(S.class_names(10)) <= set(S.REFERENCE_COUNTRIES)
    assert len(set(S.class_names(90))) == 90
    with pytest.raises(ConfigError):
        S.class_names(1)


def test_classes_look_different():
    # The mean colour of two classes' images differs more than two images of one class.
    styles = S.class_styles(2, seed=0)
    same = [np.asarray(S.draw_scene(styles[0], (160, 90), s), float).mean((0, 1)) for s in range(8)]
    other = [np.asarray(S.draw_scene(styles[1], (160, 90), s), float).mean((0, 1)) for s in range(8)]
    within = np.abs(np.mean(same, 0) - np.mean(same[:4], 0)).sum()
    between = np.abs(np.mean(same, 0) - np.mean(other, 0)).sum()
    assert between > within


def test_clue_scale_draws_the_small_clues_smaller():
    # a class with signs and bollards: their pixels differ, the scene around them does not
    style = next(s for s in S.class_styles(16, 0) if s["sign"] and s["bollard"])

    def draw(**options):
        return np.asarray(S.draw_scene(style, (480, 270), seed=3, spread=True, **options),
                          np.int16)

    big, small = draw(), draw(clue_scale=0.5)
    assert np.array_equal(big, draw())  # repeatable
    changed = np.abs(big - small).sum(axis=2) > 60
    assert 0 < changed.mean() < 0.2
    with pytest.raises(ConfigError, match="--clue-scale"):
        S.synth("unused", clue_scale=0.01)


# --- coords: a place inside the country for every image, shown by a tint ------------------

SMALL = dict(size=(160, 90), workers=1)


def _pixels(path):
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img, np.int16)


def _r2(x, y):
    """R^2 of a least-squares fit of each column of y on x (with an intercept)."""
    a = np.c_[x, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return 1 - ((y - a @ coef) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)


def test_coords_places_lie_inside_their_countries(tmp_path):
    import random

    from geoconvnet.data.coords import read_coordinates
    from geoconvnet.data.countries import resolve
    from geoconvnet.data.places import Places

    names = ["Russia", "USA", "Canada", "NewZealand"]
    root = S.synth(tmp_path / "d", per_class=3, test_per_class=1, coords=True, countries=names,
                   **SMALL)
    found = read_coordinates(root)
    images = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert sorted(found) == images and len(images) == 16
    for file, (lat, lon) in found.items():
        country = file.split("/")[1]
        assert Places(resolve(country).code, random.Random()).contains(lat, lon), file
    text = (root / "collect-manifest.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert {r["source"] for r in lines} == {"synth"}
    assert {r["source_id"] for r in lines} == {f"synth:{f}" for f in images}


def test_position_clue_follows_the_place(tmp_path):
    from geoconvnet.data.coords import read_coordinates

    # Russia: across the antimeridian. 30 places; the road at the bottom centre (the class's
    # own colour, jittered by 8) and the lower half as a whole tell where they are.
    root = S.synth(tmp_path / "d", per_class=30, test_per_class=1, coords=True,
                   countries=["Russia", "Brazil"], **SMALL)
    box = S.country_box("RUS")
    road, lower, where = [], [], []
    for file, (lat, lon) in read_coordinates(root).items():
        if file.startswith("train/Russia/"):
            pixels = _pixels(root / file)
            road.append(np.median(pixels[-8:, 48:112].reshape(-1, 3), axis=0))
            lower.append(pixels[45:].mean((0, 1)))
            where.append(box.position(lat, lon))
    where = np.array(where)
    assert where.min(0).max() < 0.25 and where.max(0).min() > 0.75  # spread over the country
    assert (_r2(np.array(road), where) > 0.8).all()
    # the lower half too, though a terrain off its class (15%) blurs it: about 0.9, 0.6
    assert (_r2(np.array(lower), where) > 0.4).all()
    # Within the country, places far apart look further apart than neighbours.
    colours = np.array(road)
    pairs = [(i, j) for i in range(len(where)) for j in range(i)]
    gaps = np.array([np.abs(where[i] - where[j]).sum() for i, j in pairs])
    diffs = np.array([np.abs(colours[i] - colours[j]).sum() for i, j in pairs])
    near = diffs[gaps < np.quantile(gaps, 0.2)].mean()
    far = diffs[gaps > np.quantile(gaps, 0.8)].mean()
    assert far > 2 * near  # about 63 and 21


def test_position_is_a_tint_of_sky_and_ground_only():
    style = S.class_styles(4, 0)[1]
    plain = np.asarray(S.draw_scene(style, (320, 180), seed=5), np.int16)
    for u, v in ((0.0, 0.0), (1.0, 0.3), (0.5, 0.5)):
        tinted = np.asarray(S.draw_scene(style, (320, 180), seed=5, position=(u, v)), np.int16)
        shift = np.median((tinted - plain)[-10:, 100:220].reshape(-1, 3), axis=0)
        assert tuple(shift) == S.position_tint((u, v))
        assert (u, v) != (0.0, 0.0) or shift[0] <= -24 and shift[2] <= -24  # strong enough
        assert tuple(shift) == (round(S.POSITION_TINT * (u - 0.5)), 0,
                                round(S.POSITION_TINT * (v - 0.5)))
    assert S.position_tint(None) == (0, 0, 0)
    assert np.array_equal(plain, np.asarray(S.draw_scene(style, (320, 180), seed=5,
                                                         position=None), np.int16))


def test_country_box_is_continuous_across_the_antimeridian():
    russia = S.country_box("RUS")
    assert russia.west < 30 and russia.east > 185  # Chukotka east of 180, not at -170
    assert russia.position(66.0, -172.0)[0] > 0.95  # far east
    assert russia.position(54.7, 20.5)[0] < 0.02  # Kaliningrad: far west
    fiji = S.country_box("FJI")
    assert fiji.east - fiji.west < 10
    usa = S.country_box("USA")
    assert usa.position(40.7, -74.0)[0] > 0.9 and usa.position(61.2, -149.9)[0] < 0.25


def test_coords_reproducible_and_a_rerun_records_nothing_twice(tmp_path):
    from geoconvnet.data.coords import read_coordinates

    options = dict(per_class=2, test_per_class=1, coords=True, countries=["Brazil", "Chile"])
    a = S.synth(tmp_path / "a", seed=4, **options, **SMALL)
    b = S.synth(tmp_path / "b", seed=4, per_class=2, test_per_class=1, coords=True,
                countries=["Brazil", "Chile"], size=(160, 90), workers=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 6 and all(_digest(a / f) == _digest(b / f) for f in files)
    assert read_coordinates(a) == read_coordinates(b)
    manifest = (a / "collect-manifest.jsonl").read_text()
    digests = {f: _digest(a / f) for f in files}
    assert S.synth(a, seed=4, **options, **SMALL) == a  # the documented rerun
    assert (a / "collect-manifest.jsonl").read_text() == manifest
    assert {f: _digest(a / f) for f in files} == digests
    # more images: only theirs are added
    S.synth(a, seed=4, per_class=3, test_per_class=1, coords=True,
            countries=["Brazil", "Chile"], **SMALL)
    assert len(read_coordinates(a)) == 8
    assert len((a / "collect-manifest.jsonl").read_text().splitlines()) == 8
    # another seed would draw the recorded files elsewhere: refused before drawing
    with pytest.raises(ConfigError, match="another place"):
        S.synth(a, seed=5, **options, **SMALL)
    assert {f: _digest(a / f) for f in files} == digests
    # so is redrawing them without their tint
    with pytest.raises(ConfigError, match="--coords"):
        S.synth(a, seed=4, per_class=2, test_per_class=1, countries=["Brazil", "Chile"], **SMALL)
    assert {f: _digest(a / f) for f in files} == digests
    c = S.synth(tmp_path / "c", seed=5, **options, **SMALL)
    assert read_coordinates(c) != read_coordinates(a)


def test_countries_pick_exactly_those(tmp_path):
    root = S.synth(tmp_path / "d", per_class=2, test_per_class=1,
                   countries=["Russia", "Brazil", "united states"], **SMALL)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["Brazil", "Russia", "USA"]
    assert sorted(p.name for p in (root / "test").iterdir()) == ["Brazil", "Russia", "USA"]
    assert S.pick_countries(["Canada", " Australia "]) == ["Canada", "Australia"]
    with pytest.raises(ConfigError, match="'Atlantis'.*choose from.*Albania.*Uruguay"):
        S.synth(tmp_path / "e", countries=["Brazil", "Atlantis"], **SMALL)
    with pytest.raises(ConfigError, match="China"):  # a country, but not a class
        S.pick_countries(["Brazil", "China"])
    with pytest.raises(ConfigError, match="Brazil more than once"):
        S.pick_countries(["Brazil", "BRA"])
    with pytest.raises(ConfigError, match="at least 2"):
        S.pick_countries(["Brazil"])
    assert not (tmp_path / "e").exists()


def test_coords_need_countries(tmp_path):
    with pytest.raises(ConfigError, match="not a country"):
        S.synth(tmp_path / "d", classes=90, per_class=2, coords=True, **SMALL)


def test_without_coords_nothing_changes(tmp_path):
    # The pixels drawn before `coords` existed (sha256 of paths and pixels, computed with
    # the code before it): an image without coordinates is drawn exactly as before.
    digest = hashlib.sha256()
    for n, options in enumerate(({}, {"spread": True, "clue_scale": 0.5})):
        root = S.synth(tmp_path / str(n), classes=3, per_class=2, test_per_class=1, seed=0,
                       **options, **SMALL)
        for path in sorted(root.rglob("*.png")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(_pixels(path).astype(np.uint8).tobytes())
        assert sorted(p.name for p in root.iterdir()) == ["test", "train"]  # no manifest
    assert digest.hexdigest() == \
        "af17cb4b1989d2ab1a82c8e231936c91747845de35cf8306befab6f393947439"


def test_cli_synth_coords(tmp_path, capsys):
    from geoconvnet.cli import main

    out = str(tmp_path / "d")
    args = ["data", "synth", out, "--coords", "--countries", "Brazil,Chile", "--per-class",
            "2", "--test-per-class", "1", "--size", "160x90"]
    assert main(args) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "2 classes" in said and "6 images there have coordinates" in said
    assert main(args) == 0  # a rerun: the same 6
    assert "6 images there have coordinates" in " ".join(capsys.readouterr().out.split())
    assert main(["data", "synth", out, "--classes", "3", "--countries", "Brazil,Chile"]) == 2
    assert "not both" in capsys.readouterr().err
