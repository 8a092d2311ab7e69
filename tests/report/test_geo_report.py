"""The report's "Where" section, from a hand-written geo_predictions.csv (no model, no
images) and once from what evaluate writes."""

import csv
import json
import shutil

import numpy as np
import pytest
import yaml
from conftest import CHROMIUM_ARGS

from geoconvnet.inference.evaluate import EvalResult, write_results
from geoconvnet.report import geo
from geoconvnet.report.page import report
from geoconvnet.report.plots import _great_circle

# Hand-computed: Norway's location-head pins land 10, 30 and 50 km off (median 30), its
# country pins 100, 300 and 200 km (median 200): gain 170 km. Albania: 5 and 15 (median
# 10) against 40 and 60 (median 50): gain 40 km. By the country pin, Albania comes first.
ROWS = [("Norway", (60.0, 10.0), 10, 100), ("Norway", (61.0, 9.0), 30, 300),
        ("Norway", (62.0, 8.0), 50, 200), ("Albania", (41.3, 19.8), 5, 40),
        ("Albania", (40.5, 20.0), 15, 60)]
SUMMARY = {"n": 5, "median_km": 15.0, "mean_km": 22.0, "geoscore": 4926.5,
           "within": {"1": 0.0, "25": 0.6, "200": 1.0, "750": 1.0, "2500": 1.0}}


def _offset(place, km):
    """A place ``km`` km north of ``place`` (one degree of latitude is about 111.2 km)."""
    return place[0] + km / 111.19, place[1]


def _write_geo(folder, kinds=("pin", "country_pin")):
    header = ["path", "truth", "lat", "lon"] + [f"{k}_{p}" for k in kinds
                                                for p in ("lat", "lon", "km")]
    with open(folder / geo.GEO_PREDICTIONS, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (country, place, head_km, country_km) in enumerate(ROWS):
            row = [f"/nowhere/{country}/{i}.png", country, f"{place[0]:.5f}", f"{place[1]:.5f}"]
            for kind in kinds:
                km = country_km if kind == "country_pin" else head_km
                lat, lon = _offset(place, km)
                row += [f"{lat:.5f}", f"{lon:.5f}", f"{km:.1f}"]
            writer.writerow(row)


def _run(tmp_path, kinds=("pin", "country_pin"), geo_metrics=True, name="run"):
    """A run folder from files alone: config, metrics.csv and one eval folder, with
    geo_predictions.csv (``kinds``; none when empty) and metrics.json's "geo"."""
    run = tmp_path / name
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"arch": "resnet18", "eval_view": "center"}))
    (run / "metrics.csv").write_text(
        "epoch,train_loss,train_top1,train_top3,train_top5,val_loss,val_top1,val_top3,val_top5\n"
        "1,0.9,0.5,1,1,0.8,0.6,1,1\n2,0.7,0.7,1,1,0.6,0.8,1,1\n")
    probs = np.array([[0.1, 0.9], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2], [0.4, 0.6]])
    targets = np.array([1 if country == "Norway" else 0 for country, *_ in ROWS])
    result = EvalResult({"loss": 0.5, "n": 5, "top1": 0.6, "top3": 1.0, "top5": 1.0,
                         "split": "test", "eval_view": "center"}, probs, targets,
                        [f"/nowhere/{i}.png" for i in range(5)], ["Albania", "Norway"])
    folder = write_results(result, run / "eval" / "test-center")
    if kinds:
        _write_geo(folder, kinds)
        if geo_metrics:
            metrics = json.loads((folder / "metrics.json").read_text())
            metrics["geo"] = {k: SUMMARY for k in kinds}
            (folder / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="module")
def both_pins(tmp_path_factory):
    return report(_run(tmp_path_factory.mktemp("geo")))


def test_the_figures_are_written(both_pins):
    for name in ("distance_cdf.png", "km_by_country.png", "error_map.png", "geo_by_country.csv"):
        path = both_pins / name
        assert path.is_file() and path.stat().st_size > 0, name


def test_per_country_medians_are_the_hand_computed_ones(both_pins):
    data = geo.read_geo_predictions(both_pins.parent / "eval" / "test-center" / geo.GEO_PREDICTIONS)
    assert data.kinds == ["pin", "country_pin"] and len(data) == 5
    rows = geo.country_medians(data)
    assert [r["country"] for r in rows] == ["Albania", "Norway"]  # by the country pin's median
    albania, norway = rows
    assert albania["n"] == 2 and norway["n"] == 3
    assert norway["pin_median_km"] == pytest.approx(30) and \
        norway["country_pin_median_km"] == pytest.approx(200)
    assert norway["gain_km"] == pytest.approx(170) and albania["gain_km"] == pytest.approx(40)
    assert albania["pin_median_km"] == pytest.approx(10)
    with open(both_pins / "geo_by_country.csv") as f:
        written = list(csv.DictReader(f))
    assert [r["country"] for r in written] == ["Albania", "Norway"]
    assert float(written[1]["gain_km"]) == pytest.approx(170)


def test_the_where_section_shows_the_tables_and_figures(both_pins):
    page = (both_pins / "report.html").read_text()
    where = page[page.index('<section id="where">'):]
    where = where[:where.index("</section>")]
    assert page.index('id="map"') < page.index('id="where"') < page.index('id="predictions"')
    assert where.count("data:image/png;base64,") == 3
    assert where.count('alt="') == 3 and where.count("<figcaption>") == 3
    # the summary from metrics.json, formatted like the rest of the report
    assert "<td>location head</td><td>5</td><td>15 km</td><td>22 km</td><td>4,926</td>" \
        "<td>60.0%</td><td>100.0%</td>" in where
    assert "<td>Norway</td><td>3</td><td>30 km</td><td>200 km</td><td class=\"good\">170 km</td>" \
        in where
    assert "From <code>metrics.json</code>" in where


def test_no_coordinates_no_section(tmp_path):
    run = _run(tmp_path)
    assert (report(run) / "distance_cdf.png").is_file()
    (run / "eval" / "test-center" / geo.GEO_PREDICTIONS).unlink()  # evaluated again, say
    out = report(run)
    page = (out / "report.html").read_text()
    assert 'id="where"' not in page and 'id="predictions"' in page
    for name in geo.OUTPUTS:  # an earlier report's figures do not linger (or get archived)
        assert not (out / name).exists(), name


def test_a_country_only_model(tmp_path):
    run = _run(tmp_path, kinds=("country_pin",), geo_metrics=False)
    out = report(run)
    data = geo.read_geo_predictions(run / "eval" / "test-center" / geo.GEO_PREDICTIONS)
    assert data.kinds == ["country_pin"] and geo.map_kind(data) == "country_pin"
    rows = geo.country_medians(data)
    assert "gain_km" not in rows[0] and rows[1]["country_pin_median_km"] == pytest.approx(200)
    page = (out / "report.html").read_text()
    where = page[page.index('<section id="where">'):]
    where = where[:where.index("</section>")]
    assert "location head" not in where and ">gain<" not in where
    assert "line to the country pin" in where
    # without metrics.json's "geo" the summary comes from the CSV: median of 40..300 = 100
    assert "<td>country pin</td><td>5</td><td>100 km</td><td>140 km</td>" in where
    for name in ("distance_cdf.png", "km_by_country.png", "error_map.png"):
        assert (out / name).stat().st_size > 0


def test_the_error_map_sample_is_seeded_and_bounded():
    rng = np.random.default_rng(0)
    n = 400
    places = np.column_stack([rng.uniform(-50, 70, n), rng.uniform(-180, 180, n)])
    pins = places + 1.0
    pins[3] = np.nan  # no pin: never drawn
    data = geo.GeoPredictions([str(i) for i in range(n)], ["Norway"] * n, places,
                              {"pin": pins}, {"pin": np.full(n, 150.0)})
    first, again = geo.error_sample(data, "pin", seed=0), geo.error_sample(data, "pin", seed=0)
    assert len(first) == geo.MAP_SAMPLE and np.array_equal(first, again)
    assert 3 not in first.tolist() and len(set(first.tolist())) == len(first)
    assert not np.array_equal(first, geo.error_sample(data, "pin", seed=1))
    assert len(geo.error_sample(data, "pin", size=1000)) == n - 1


def test_a_blank_distance_is_measured_from_the_places(tmp_path):
    path = tmp_path / geo.GEO_PREDICTIONS
    path.write_text("path,truth,lat,lon,pin_lat,pin_lon,pin_km\n"
                    "a.png,Norway,60.0,10.0,61.0,10.0,\n")
    assert geo.read_geo_predictions(path).km["pin"][0] == pytest.approx(111.19, abs=0.1)


def test_lines_across_the_antimeridian_are_split():
    pieces = _great_circle((-17.7, 178.0), (-14.3, -170.7))  # Fiji to Samoa
    assert len(pieces) == 2
    for piece in pieces:
        assert np.abs(np.diff(piece[:, 0])).max() < 5  # no piece runs across the map
    assert len(_great_circle((10.0, 20.0), (10.0, 20.0))) == 1  # a pin on the spot


def test_formats():
    assert geo.format_km(3.25) == "3.2 km" and geo.format_km(1234.5) == "1,234 km"
    assert geo.format_km(None) == "–" and geo.format_km(float("nan")) == "–"
    assert geo.format_score(4926.5) == "4,926" and geo.format_share(0.6) == "60.0%"


@pytest.mark.slow
def test_from_what_evaluate_writes(trained_run, tiny_data, tmp_path):
    """A country-only model evaluated on a split with coordinates: the section from
    evaluate's own geo_predictions.csv and metrics.json. Two test images per country have
    a place (a country pin per image is what takes the time)."""
    import random

    from geoconvnet.data.countries import resolve
    from geoconvnet.data.layout import image_files
    from geoconvnet.data.places import Places
    from geoconvnet.inference.evaluate import evaluate

    root = tmp_path / "places"
    shutil.copytree(tiny_data, root)
    rng = random.Random(0)
    rows, placed = [["file", "lat", "lon"]], {}
    for path in image_files(root / "test"):
        relative = path[len(str(root)) + 1:]
        country = relative.split("/")[1]
        placed[country] = placed.get(country, 0) + 1
        if placed[country] <= 2:
            rows.append([relative, *Places(resolve(country).code, rng).point()])
    with open(root / "coordinates.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval", "report"))
    evaluate(run, root, split="test", num_workers=0, eval_view="center",
             out_dir=run / "eval" / "test-center")
    out = report(run, eval_view="center", sample=0)
    page = (out / "report.html").read_text()
    assert 'id="where"' in page and "country pin" in page
    with open(out / "geo_by_country.csv") as f:
        written = list(csv.DictReader(f))
    assert {r["country"] for r in written} == {"Albania", "Iceland", "Norway", "Uruguay"}
    assert all(int(r["n"]) == 2 and float(r["country_pin_median_km"]) >= 0 for r in written)


def test_a_kind_without_pins_is_not_mapped(tmp_path):
    """The map falls back to a pin that exists; unknown medians are shown as "–"."""
    (tmp_path / geo.GEO_PREDICTIONS).write_text(
        "path,truth,lat,lon,pin_lat,pin_lon,pin_km,country_pin_lat,country_pin_lon,country_pin_km\n"
        "a.png,Norway,60,10,nan,nan,nan,61,10,111.2\n")
    where = geo.where(tmp_path, {}, tmp_path)
    assert where.map_kind == "country_pin" and where.map_sample == 1
    assert where.countries[0]["pin_median_km"] is None and where.countries[0]["gain_km"] is None
    html = geo.render_section(where, {k: "data:," for k in where.figures})
    assert "<td>Norway</td><td>1</td><td>–</td><td>111 km</td><td>–</td>" in html


@pytest.mark.slow
def test_the_section_renders_in_headless_chromium(both_pins, chromium):
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto((both_pins / "report.html").as_uri())
        sizes = page.eval_on_selector_all("#where img",
                                          "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        rows = page.eval_on_selector_all("#geo-country-table tbody tr", "rows => rows.length")
        browser.close()
    assert errors == [] and rows == 2
    assert len(sizes) == 3 and all(complete and width > 0 for complete, width in sizes)
