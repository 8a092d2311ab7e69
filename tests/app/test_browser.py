"""The page in a real headless Chromium: upload a screenshot, see the guesses, the map with
the pin and the heat maps; nothing is fetched from outside the server."""

import base64
from urllib.parse import urlsplit

import pytest
import requests
from served import screenshots, start_server, stop_server

pytest.importorskip("playwright")


@pytest.fixture(scope="module")
def server(trained_run):
    """A real `geoconvnet serve` process of the tiny trained run."""
    url, proc = start_server(trained_run)
    yield url
    stop_server(proc)


def test_upload_shows_guesses_map_pin_and_switchable_heat_maps(server, chromium, tmp_path):
    from playwright.sync_api import sync_playwright  # lazy: skipped without Playwright

    shot = tmp_path / "screenshot.png"
    shot.write_bytes(screenshots(1, size=(800, 450))[0])
    problems, hosts = [], set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url.split(":")[0]))
        made = []  # the guesses whose heat maps the server sent
        page.on("response", lambda r: r.url.endswith("/api/heatmap") and r.ok and
                made.append(r.headers["x-country"]))
        page.goto(server)
        page.wait_for_selector("#model:has-text('resnet18')")
        page.set_input_files("#files", str(shot))

        guesses = page.locator(".top5 li")
        guesses.first.wait_for()
        names = guesses.evaluate_all("items => items.map(i => i.dataset.country)")
        expected = requests.post(f"{server}/api/predict", files={"file": shot.open("rb")}).json()
        assert names == [g["country"] for g in expected["top"]]
        assert page.locator(".map path").count() > 150  # the world's countries
        assert page.locator(".map .pin-suggested").count() == 1
        assert page.locator(".map .pin-naive").count() == 1
        assert "expected points" in page.locator(".pins").inner_text()
        # A country-only model: no cells, no country pin beside the suggested one.
        assert page.locator(".map .cell, .inset .cell, .pin-country").count() == 0
        assert "location head" not in page.locator(".pins").inner_text()
        assert "location head" not in page.locator("#model").inner_text()

        shown = ".heatmap[data-rank='{}'][data-state='ready'][data-shows='heatmap']"
        page.wait_for_selector(shown.format(1))
        first = page.locator(".heatmap").get_attribute("src")
        page.click(".cam-buttons button[data-rank='2']")
        page.wait_for_selector(shown.format(2))
        assert page.locator(".heatmap").get_attribute("src") != first
        assert made == [names[0], names[1]]  # one request per guess shown, in order
        assert page.locator(".cam-buttons button[data-rank='2']").get_attribute(
            "aria-pressed") == "true"

        second = expected["top"][1]
        page.hover(f".map path[data-code='{second['code']}']", force=True)
        tooltip = page.locator("#tooltip")
        assert tooltip.is_visible() and tooltip.inner_text().startswith(second["country"] + ":")

        page.goto(f"{server}/docs")
        page.wait_for_selector(".swagger-ui .info")
        browser.close()
    assert problems == []
    assert hosts <= {"127.0.0.1", "blob", "data"}, hosts


def test_several_files_pasted_dropped_or_picked_each_get_a_card(server, chromium, tmp_path):
    from playwright.sync_api import sync_playwright  # lazy: skipped without Playwright

    bad, good = tmp_path / "notes.png", tmp_path / "good.png"
    bad.write_text("not a picture")
    good.write_bytes(screenshots(1, size=(320, 180), seed=5)[0])
    as_file = """([selector, name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: "image/png"}));
        const target = selector ? document.querySelector(selector) : document;
        const event = selector ? new DragEvent("drop", {dataTransfer: data, bubbles: true})
                               : new ClipboardEvent("paste", {clipboardData: data});
        target.dispatchEvent(event);
    }"""
    encoded = base64.b64encode(good.read_bytes()).decode()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_selector("#model:has-text('resnet18')")
        page.set_input_files("#files", [str(bad), str(good)])  # picked, two at once
        page.evaluate(as_file, [None, "pasted.png", encoded])
        page.evaluate(as_file, ["#drop", "dropped.png", encoded])
        page.locator(".card").nth(3).wait_for()
        page.wait_for_selector(".card:has(.filename:text-is('pasted.png')) .top5 li")
        page.wait_for_selector(".card:has(.filename:text-is('dropped.png')) .top5 li")
        page.wait_for_selector(".card:has(.filename:text-is('good.png')) .top5 li")
        error = page.locator(".card:has(.filename:text-is('notes.png')) .status.error")
        assert "notes.png: not an image" in error.inner_text()
        browser.close()
