"""The app with a model that has a location head (geocells): the pin from the cells, the
likely cells on the map, /api/model, ONNX, and the page. The checkpoints are made without
training: a random network whose heads' biases make one country and one cell the likely
ones, so the pins are predictable."""

import random

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from served import keep, screenshots, start_server, stop_server

from geoconvnet.app.server import create_app
from geoconvnet.app.service import CELL_MIN_RADIUS_KM, Service, cell_radii_km
from geoconvnet.data.countries import resolve
from geoconvnet.data.geo import GeoCells, haversine_km
from geoconvnet.data.places import Places
from geoconvnet.data.preprocessing import Preprocessing
from geoconvnet.models.checkpoint import make_meta, save_checkpoint
from geoconvnet.models.onnx import export_onnx
from geoconvnet.models.registry import build_model

CLASSES = ["Chile", "Japan", "Kenya", "Norway"]
LIKELY_COUNTRY = "Japan"  # the country head's favourite
LIKELY_CELL_COUNTRY = "Chile"  # the location head's favourite cells are in Chile
PLACES_PER_COUNTRY = 40


def make_checkpoint(path, cells: GeoCells | None, top_cell: int | None = None,
                    second_cell: int | None = None):
    """A resnet18 checkpoint with the country head (and the geocell head when ``cells``);
    the heads' weights are shrunk and their biases favour LIKELY_COUNTRY and ``top_cell``
    (then ``second_cell``), so every screenshot gets about the same answer."""
    torch.manual_seed(0)
    k = len(CLASSES)
    size = k + (len(cells) if cells is not None else 0)
    net = build_model("resnet18", size, weights="none")
    extra = [] if cells is None else [{"name": "geocell", "size": len(cells),
                                       "cells": cells.to_dict()}]
    meta = make_meta("resnet18", CLASSES, 0.2, Preprocessing(crop_size=108, image_size=64),
                     extra_heads=extra)
    with torch.no_grad():
        linear = net.head[1]
        linear.weight.mul_(0.001)
        linear.bias.zero_()
        linear.bias[CLASSES.index(LIKELY_COUNTRY)] = 8.0
        if cells is not None:
            linear.bias[k + top_cell] = 6.0
            linear.bias[k + second_cell] = 4.0
    return save_checkpoint(path, net.state_dict(), meta)


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    """(geocell checkpoint, country-only checkpoint, cells, the favoured cell)."""
    folder = tmp_path_factory.mktemp("geo_models")
    latlon, countries = [], []
    for name in CLASSES:
        places = Places(resolve(name).code, random.Random(0))
        latlon += [places.point() for _ in range(PLACES_PER_COUNTRY)]
        countries += [name] * PLACES_PER_COUNTRY
    cells, _ = GeoCells.build(np.array(latlon), countries, cells=16, min_size=5)
    chile = [c for c in range(len(cells)) if cells.countries[c] == LIKELY_CELL_COUNTRY]
    assert len(chile) >= 2
    top, second = chile[0], chile[1]
    geo_ckpt = make_checkpoint(folder / "geo.safetensors", cells, top, second)
    plain = make_checkpoint(folder / "plain.safetensors", None)
    return geo_ckpt, plain, cells, top


@pytest.fixture(scope="module")
def geo_service(geo):
    return Service(geo[0], "cpu")


def shot() -> bytes:
    return screenshots(1, size=(320, 180), seed=3)[0]


def nearest_km(pin: dict, places: np.ndarray) -> float:
    return float(haversine_km(pin["lat"], pin["lon"], places[:, 0], places[:, 1]).min())


def test_the_pin_comes_from_the_location_head(geo, geo_service):
    _, _, cells, top = geo
    result = geo_service.analyse(shot(), "shot.png")
    pin = result["pin"]
    assert pin["source"] == "geocell"
    assert result["top"][0]["country"] == LIKELY_COUNTRY
    # The suggested pin lies among the favoured cell's places, in Chile; the country pin,
    # kept for comparison, in Japan.
    assert nearest_km(pin["suggested"], cells.places[top]) < 300
    assert nearest_km(pin["country"], cells.places[top]) > 5000
    japan = np.vstack([p for p, c in zip(cells.places, cells.countries) if c == LIKELY_COUNTRY])
    assert nearest_km(pin["country"], japan) < 500
    assert (pin["naive"]["lat"], pin["naive"]["lon"]) == pytest.approx(
        tuple(cells.centres[top]), abs=1e-3)
    assert pin["suggested"]["expected_score"] >= pin["naive"]["expected_score"]


def test_the_likely_cells_are_listed_most_likely_first(geo, geo_service):
    _, _, cells, top = geo
    listed = geo_service.analyse(shot(), "shot.png")["cells"]
    probabilities = [c["probability"] for c in listed]
    assert 2 <= len(listed) <= 32
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-6 and min(probabilities) >= 0.01
    assert (listed[0]["lat"], listed[0]["lon"]) == pytest.approx(tuple(cells.centres[top]),
                                                                 abs=1e-3)
    assert listed[0]["country"] == LIKELY_CELL_COUNTRY and listed[0]["probability"] > 0.5
    assert all(c["radius_km"] >= CELL_MIN_RADIUS_KM for c in listed)
    # 80% of a cell's places lie within its radius of its centre (rounding aside).
    places, (lat, lon) = cells.places[top], cells.centres[top]
    inside = haversine_km(lat, lon, places[:, 0], places[:, 1]) <= listed[0]["radius_km"] + 0.1
    assert inside.mean() >= 0.8


def test_cell_radii_are_robust_and_never_tiny():
    cells = GeoCells(["Chile", "Chile"], [[-33.0, -70.0], [-40.0, -72.0]], [6, 1],
                     [[[-33.0, -70.0]] * 4 + [[-33.5, -70.0], [-53.0, -70.0]],
                      [[-40.0, -72.0]]], 1, 75.0)
    radii = cell_radii_km(cells)
    assert 40 < radii[0] < 100  # the 80th percentile: the stray place 2,200 km away ignored
    assert radii[1] == CELL_MIN_RADIUS_KM


def test_a_country_only_model_has_no_cells(geo):
    service = Service(geo[1], "cpu")
    result = service.analyse(shot(), "shot.png")
    assert result["cells"] is None
    assert result["pin"]["source"] == "country" and result["pin"]["country"] is None
    assert service.info()["location_head"] is None and service.info()["pin"]


def test_the_api_describes_and_validates_the_location_head(geo, geo_service):
    client = TestClient(create_app(geo_service))
    model = client.get("/api/model").json()
    assert model["location_head"] == {"cells": len(geo[2])} and model["pin"]
    answer = client.post("/api/predict", files={"file": ("shot.png", shot(), "image/png")})
    assert answer.status_code == 200
    body = answer.json()
    assert body["pin"]["source"] == "geocell" and body["pin"]["country"] is not None
    assert body["cells"] == geo_service.analyse(shot(), "shot.png")["cells"]
    assert set(body["cells"][0]) == {"lat", "lon", "probability", "country", "radius_km"}
    assert set(body["timings_ms"]) >= {"predict", "pin"}
    plain = TestClient(create_app(Service(geo[1], "cpu")))
    assert plain.get("/api/model").json()["location_head"] is None
    body = plain.post("/api/predict", files={"file": ("shot.png", shot(), "image/png")}).json()
    assert body["cells"] is None and body["pin"]["source"] == "country"


def test_warm_up_primes_the_cell_pin(geo):
    service = Service(geo[0], "cpu")
    assert service.warm_up() > 0
    assert service.analyse(shot(), "shot.png")["timings_ms"]["pin"] < 1000


@pytest.mark.slow
def test_an_onnx_export_gives_the_same_cell_pin(geo, geo_service, tmp_path):
    onnx = Service(export_onnx(geo[0], tmp_path / "geo.onnx"), "cpu")
    assert onnx.info()["format"] == "onnx"
    assert onnx.info()["location_head"] == {"cells": len(geo[2])}
    ours, theirs = (s.analyse(shot(), "shot.png") for s in (onnx, geo_service))
    assert ours["pin"]["source"] == "geocell"
    for kind in ("suggested", "naive", "country"):
        a, b = ours["pin"][kind], theirs["pin"][kind]
        assert haversine_km(a["lat"], a["lon"], b["lat"], b["lon"]) < 1, kind
    assert [(c["lat"], c["lon"]) for c in ours["cells"]] == \
        [(c["lat"], c["lon"]) for c in theirs["cells"]]
    assert [c["probability"] for c in ours["cells"]] == pytest.approx(
        [c["probability"] for c in theirs["cells"]], abs=1e-4)


@pytest.fixture(scope="module")
def geo_server(geo):
    url, proc = start_server(geo[0])
    yield url
    stop_server(proc)


@pytest.mark.slow
def test_the_page_shades_the_likely_cells_and_shows_both_pins(geo, geo_server, chromium,
                                                             tmp_path):
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright
    path = tmp_path / "screenshot.png"
    path.write_bytes(shot())
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(geo_server)
        page.wait_for_selector("#model:has-text('location head')")
        assert f"location head with {len(geo[2])} cells" in page.locator("#model").inner_text()
        page.set_input_files("#files", str(path))
        page.locator(".top5 li").first.wait_for()
        cells = page.locator(".map .cell")
        assert cells.count() > 0
        assert page.locator(".inset .cell").count() > 0
        # Above the countries, below the pins.
        order = page.evaluate("""() => {
            const kids = [...document.querySelector('.map').children];
            const last = (sel) => kids.map((k) => k.matches(sel)).lastIndexOf(true);
            const first = (sel) => kids.findIndex((k) => k.matches(sel));
            return [last('path'), first('.cell'), last('.cell'), first('.pin-suggested')];
        }""")
        assert order[0] < order[1] <= order[2] < order[3]
        pins = page.locator(".pins").inner_text()
        assert "Suggested pin (location head)" in pins and "Country pin" in pins
        assert page.locator(".map .pin-country").count() == 1
        # The likeliest cell is drawn last (on top) and the most opaque.
        opacities = cells.evaluate_all(
            "els => els.map((e) => parseFloat(e.style.fillOpacity))")
        assert opacities[-1] == max(opacities) > 0
        assert cells.last.get_attribute("data-label").startswith("Cell in Chile: ")
        assert "likely cells" in page.locator(".inset-box figcaption").inner_text()
        keep(page, "location-head")
        browser.close()
    assert problems == []
