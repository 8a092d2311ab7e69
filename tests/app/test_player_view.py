"""What a player sees in a real headless Chromium: a small country as the top guess, names
as people write them, and cards that free their images (an ONNX model's note: test_server)."""

import math
import shutil
from pathlib import Path

import pytest
import requests
import torch
from served import keep, screenshots, start_server, stop_server

from geoconvnet.data.preprocessing import Preprocessing
from geoconvnet.models.checkpoint import make_meta, save_checkpoint
from geoconvnet.models.registry import build_model

pytest.importorskip("playwright")

# The guesses the model below always makes: Malta far ahead of a big neighbour-less country.
GUESSES = {"Malta": 0.78, "Kazakhstan": 0.19, "SouthAfrica": 0.02, "Norway": 0.01}


@pytest.fixture(scope="module")
def malta_model(tmp_path_factory) -> Path:
    """A checkpoint whose output ignores the image: its last layer is zero but for biases
    that give GUESSES (a random backbone, no download)."""
    classes = sorted(GUESSES)
    net = build_model("resnet18", len(classes), weights="none")
    state = net.state_dict()
    weight, bias = [k for k, v in state.items() if v.shape[:1] == (len(classes),)][-2:]
    state[weight] = torch.zeros_like(state[weight])
    state[bias] = torch.tensor([math.log(GUESSES[c]) for c in classes])
    path = tmp_path_factory.mktemp("malta") / "malta.safetensors"
    return save_checkpoint(path, state, make_meta("resnet18", classes, 0.0, Preprocessing(
        crop_size=64, image_size=64)))


@pytest.fixture(scope="module")
def malta_server(malta_model):
    url, proc = start_server(malta_model)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shots") / "harbour.png"
    path.write_bytes(screenshots(1, size=(800, 450), seed=7)[0])
    return path


def open_page(p, chromium, url):
    browser = p.chromium.launch(executable_path=chromium)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#model:has-text('resnet18')")
    return browser, page, problems


def test_a_small_country_as_top_guess_is_visible_and_named(malta_server, shot, chromium):
    from playwright.sync_api import sync_playwright  # lazy: skipped without Playwright

    url = malta_server
    answer = requests.post(f"{url}/api/predict", files={"file": shot.open("rb")}).json()
    names = {g["country"]: g["name"] for g in answer["probabilities"]}
    assert names["SouthAfrica"] == "South Africa" and answer["top"][0]["name"] == "Malta"
    with sync_playwright() as p:
        browser, page, problems = open_page(p, chromium, url)
        page.set_input_files("#files", str(shot))
        page.wait_for_selector(".top5 li")
        page.wait_for_selector(".heatmap[data-state='ready'][data-shows='heatmap']")
        shown = page.locator(".top5 .name").all_inner_texts()
        assert shown[:3] == ["Malta", "Kazakhstan", "South Africa"]
        status = page.locator(".status").inner_text()
        assert status.startswith("Looked at the middle of the screenshot (800 × 450")
        assert "view" not in status
        # Malta gets a dot as dark as its 78%, bigger than any other, over the map.
        speck = page.locator(".map .speck[data-code='MLT']")
        assert speck.count() == 1 and float(speck.get_attribute("r")) > 4
        assert page.locator(".map .speck[data-code='KAZ']").count() == 0  # big enough
        malta_fill = speck.evaluate("e => getComputedStyle(e).fill")
        kazakh_fill = page.locator(".map path[data-code='KAZ']").evaluate(
            "e => getComputedStyle(e).fill")
        assert darkness(malta_fill) > darkness(kazakh_fill)
        # The inset zooms on Malta (Kazakhstan is far below it) and the pin: Malta's outline.
        box = [float(v) for v in page.locator(".inset").get_attribute("viewBox").split()]
        assert box[2] < 120 and box[0] <= 14.4 + 180 <= box[0] + box[2]
        assert page.locator(".inset path[data-code='MLT']").is_visible()
        page.hover(".map path[data-code='ESP']", force=True)
        assert page.locator("#tooltip").inner_text() == \
            "Spain: not among this model's countries"
        size = speck.bounding_box()  # off its centre, where the pin sits
        speck.hover(position={"x": 0.5 * size["width"], "y": 0.1 * size["height"]},
                    force=True)
        assert page.locator("#tooltip").inner_text() == "Malta: 78.0%"
        keep(page, "small-country-top-guess")
        browser.close()
    assert problems == []


def darkness(css_rgb: str) -> float:
    return 765 - sum(float(v) for v in css_rgb[css_rgb.index("(") + 1:-1].split(","))


# Whether an image URL still loads (the page's CSP lets it load blob: images, not fetch them).
LOADS = """u => new Promise((done) => { const image = new Image();
    image.onload = () => done("readable"); image.onerror = () => done("revoked"); image.src = u; })"""


def test_cards_free_their_images_when_they_go(malta_server, shot, chromium, tmp_path):
    from playwright.sync_api import sync_playwright  # lazy: skipped without Playwright

    files = []
    for i in range(13):
        files.append(tmp_path / f"shot-{i:02d}.png")
        shutil.copy(shot, files[-1])
    with sync_playwright() as p:
        browser, page, _ = open_page(p, chromium, malta_server)
        page.set_input_files("#files", str(files[0]))
        page.wait_for_selector(".heatmap[data-state='ready']")
        blob = page.locator(".heatmap").get_attribute("src")
        assert blob.startswith("blob:") and page.evaluate(LOADS, blob) == "readable"
        page.click(".card .close")
        assert page.locator(".card").count() == 0
        assert page.evaluate(LOADS, blob) == "revoked"
        page.set_input_files("#files", [str(f) for f in files])
        page.wait_for_selector(".card:has(.filename:text-is('shot-12.png')) .top5 li")
        assert page.locator(".card").count() == 12  # the oldest went
        browser.close()
