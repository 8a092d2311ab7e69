"""The JSON API of a real `geoconvnet serve` process: good and bad input, load, the docs."""

import http.client
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from fastapi.testclient import TestClient
from PIL import Image
from served import free_port, keep, png_bytes, screenshots, start_server, stop_server

from geoconvnet.app.server import DEFAULT_MAX_QUEUE, create_app
from geoconvnet.app.service import Service
from geoconvnet.models.checkpoint import read_meta
from geoconvnet.models.onnx import export_onnx


@pytest.fixture(scope="module")
def server(trained_run):
    """A real `geoconvnet serve` process of the tiny trained run."""
    url, proc = start_server(trained_run)
    yield url
    stop_server(proc)


def post(url, data: bytes, name="shot.png", **kwargs):
    return requests.post(f"{url}/api/predict", files={"file": (name, data, "image/png")},
                         timeout=60, **kwargs)


def test_health_model_and_openapi(server, trained_run):
    assert requests.get(f"{server}/api/health").json()["status"] == "ok"
    model = requests.get(f"{server}/api/model").json()
    assert model["arch"] == "resnet18" and len(model["class_names"]) == 4
    assert model["preprocessing"]["image_size"] == 64
    assert (model["pool"], model["view_pool"]) == (read_meta(trained_run).get("pool", "avg"),
                                                   read_meta(trained_run).get("view_pool", "mean"))
    spec = requests.get(f"{server}/openapi.json").json()
    assert {"/api/predict", "/api/heatmap", "/api/health", "/api/model"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]


def heat_map(url, data: bytes, country: str | None, name="shot.png"):
    return requests.post(f"{url}/api/heatmap", files={"file": (name, data, "image/png")},
                         data={"country": country} if country else {}, timeout=60)


def test_predict_then_heat_map_of_the_second_guess(server, tiny_data):
    path = next((tiny_data / "test").rglob("*.png"))
    result = post(server, path.read_bytes(), path.name).json()
    assert len(result["top"]) == 4 and result["pin"]["suggested"]["expected_score"] > 0
    heat = heat_map(server, path.read_bytes(), result["top"][1]["country"])
    assert heat.headers["content-type"] == "image/jpeg"
    assert heat.headers["x-country"] == result["top"][1]["country"]
    assert Image.open(io.BytesIO(heat.content)).size == (384, 216)


def test_bad_heat_map_requests(server, tiny_data):
    good = next((tiny_data / "test").rglob("*.png")).read_bytes()
    unknown = heat_map(server, good, "Atlantis")
    assert unknown.status_code == 422 and "'Atlantis' is not one" in unknown.json()["detail"]
    missing = heat_map(server, good, None)
    assert missing.status_code == 400 and "no 'country' field" in missing.json()["detail"]
    not_image = heat_map(server, b"words", "Norway", "a.txt")
    assert not_image.status_code == 415 and "a.txt: not an image" in not_image.json()["detail"]


@pytest.fixture(scope="module")
def huge_png():
    """A real 30000x30000 PNG (900 million pixels), about 110 KB of bytes."""
    return png_bytes(Image.new("1", (30000, 30000)))


@pytest.mark.parametrize("case, status, message", [
    ("text file", 415, "notes.txt: not an image"),
    ("empty file", 400, "empty.png: empty file"),
    ("truncated png", 415, "cut.png: not a readable image"),
    ("huge png", 413, "huge.png: decompression bomb (Image size (900000000 pixels)"),
    ("50 MB", 413, "exceeds the limit of 25 MB"),
    ("json body", 415, "content type 'application/json'"),
    ("no body", 415, "content type 'none'"),
    ("form without file", 400, "no 'file' field"),
    ("broken multipart", 400, ""),
    ("file as text field", 400, "file: "),
    ("strip image", 415, "strip.png: 4000x100 is not a screenshot"),
])
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(server, tiny_data, huge_png,
                                                                case, status, message):
    good = next((tiny_data / "test").rglob("*.png")).read_bytes()
    api = f"{server}/api/predict"
    response = {
        "text file": lambda: post(server, b"just some words", "notes.txt"),
        "empty file": lambda: post(server, b"", "empty.png"),
        "truncated png": lambda: post(server, good[:300], "cut.png"),
        "huge png": lambda: post(server, huge_png, "huge.png"),
        "50 MB": lambda: post(server, b"\0" * (50 * 1024 * 1024), "big.png"),
        "json body": lambda: requests.post(api, json={"image": "x"}),
        "no body": lambda: requests.post(api),
        "form without file": lambda: requests.post(api, files={"other": ("a.png", good)}),
        "broken multipart": lambda: requests.post(api, data=b"--xyz\r\ngarbage", headers={
            "content-type": "multipart/form-data; boundary=xyz"}),
        "file as text field": lambda: requests.post(api, files={"file": (None, "hello")}),
        "strip image": lambda: post(server, png_bytes(Image.new("RGB", (4000, 100))), "strip.png"),
    }[case]()
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert post(server, good).status_code == 200


def test_a_streamed_upload_over_the_limit_is_refused(server):
    def chunks():  # a well-formed multipart form whose file part never ends within the limit
        yield (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(30):
            yield b"\0" * (1024 * 1024)
    response = requests.post(f"{server}/api/predict", data=chunks(),
                             headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["detail"]


def test_the_upload_limit_is_configurable(trained_run):
    client = TestClient(create_app(Service(trained_run, "cpu"), max_upload_mb=0.05))  # any Host
    small, large = png_bytes(Image.new("RGB", (128, 72))), screenshots(1, size=(200, 200))[0]
    assert client.post("/api/predict", files={"file": ("s.png", small)}).status_code == 200
    refused = client.post("/api/predict", files={"file": ("l.png", large)})
    assert refused.status_code == 413 and "limit of 0.05 MB" in refused.json()["detail"]


def test_as_many_concurrent_requests_as_the_queue_holds_are_all_answered_correctly(
        server, trained_run):
    n = DEFAULT_MAX_QUEUE + 1  # one model thread and a full queue (the excess: test_guards)
    images = screenshots(n, seed=1)
    expected = [Service(trained_run, "cpu").analyse(data, f"{i}.png")["top"]
                for i, data in enumerate(images)]
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda i: post(server, images[i], f"{i}.png"), range(n)))
    assert [a.status_code for a in answers] == [200] * n
    for answer, top in zip(answers, expected):
        got = answer.json()["top"]
        assert [g["country"] for g in got] == [g["country"] for g in top]
        assert [g["probability"] for g in got] == pytest.approx(
            [g["probability"] for g in top], abs=1e-4)


def test_health_answers_while_predictions_run(server):
    images = screenshots(16, seed=2)
    done = threading.Event()
    seen = []  # (seconds, requests in flight) of each health check

    def watch():
        while not done.is_set():
            start = time.perf_counter()
            in_flight = requests.get(f"{server}/api/health", timeout=10).json()["in_flight"]
            seen.append((time.perf_counter() - start, in_flight))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(16) as pool:
        assert all(r.ok for r in pool.map(lambda d: post(server, d), images))
    done.set()
    watcher.join()
    busy = sorted(seconds for seconds, in_flight in seen if in_flight >= 2)
    assert busy, f"no health check saw predictions running: {seen}"
    # Blocked behind the model, a check would wait for predictions of ~100 ms each.
    assert busy[len(busy) // 2] < 0.05, busy


def test_the_page_and_its_files_come_from_the_server(server):
    page = requests.get(server)
    assert page.ok and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg", "/docs",
                  "/static-offline-docs/swagger-ui-bundle.js"):
        assert requests.get(server + asset).ok, asset
    assert "http" not in requests.get(server + "/static/app.js").text.replace(
        "http://www.w3.org/2000/svg", "")  # no address outside the server


@pytest.mark.slow
def test_several_worker_processes_serve_the_same_model(trained_run, tiny_data):
    url, proc = start_server(trained_run, "--workers", "2")
    try:
        path = next((tiny_data / "test").rglob("*.png"))
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: post(url, path.read_bytes()), range(4)))
            assert all(a.ok for a in answers)
            assert len({a.json()["top"][0]["country"] for a in answers}) == 1
            # Any process answers a heat map: nothing is kept between requests.
            country = answers[0].json()["top"][0]["country"]
            maps = list(pool.map(lambda _: heat_map(url, path.read_bytes(), country), range(4)))
        assert [m.status_code for m in maps] == [200] * 4
    finally:
        stop_server(proc)


def test_serve_refuses_bad_settings_before_starting(trained_run, tmp_path, capsys):
    from geoconvnet.cli import main
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((trained_run / "best.safetensors").read_bytes()[:1000])
    for args, message in (([str(tmp_path / "nothing")], "no such checkpoint"),
                          ([str(broken), "--workers", "2"], "not a safetensors checkpoint"),
                          ([str(trained_run), "--max-upload-mb", "nan"], "positive number")):
        assert main(["serve", *args, "--port", str(free_port())]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and "Serving" not in captured.out, args


def test_the_default_bind_is_loopback():
    from geoconvnet.app.serve import Settings, _is_loopback
    from geoconvnet.cli import build_parser
    assert build_parser().parse_args(["serve", "run"]).host == "127.0.0.1" == Settings("m").host
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.4")


def test_a_client_that_waits_for_100_continue_is_refused_before_it_uploads(server):
    host, port = urlsplit(server).hostname, urlsplit(server).port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.putrequest("POST", "/api/predict")
    for name, value in (("Content-Type", "multipart/form-data; boundary=x"),
                        ("Content-Length", str(50 << 20)), ("Expect", "100-continue")):
        connection.putheader(name, value)
    connection.endheaders()  # and no body: a 100-continue client waits for the server
    response = connection.getresponse()
    assert response.status == 413 and b"exceeds the limit" in response.read()
    connection.close()


def test_requests_for_another_host_name_are_refused(server):
    refused = requests.get(f"{server}/api/health", headers={"Host": "attacker.example:8000"})
    assert refused.status_code == 400 and "'attacker.example' is not this server" in \
        refused.json()["detail"]
    for name in ("localhost:1234", "127.0.0.1", "[::1]:80"):
        assert requests.get(f"{server}/api/health", headers={"Host": name}).ok, name


def test_a_huge_screenshot_gets_a_bounded_heat_map(server):
    start = time.perf_counter()
    response = heat_map(server, png_bytes(Image.new("RGB", (5120, 2880), (90, 120, 90))),
                        requests.get(f"{server}/api/model").json()["class_names"][0])
    assert response.ok and Image.open(io.BytesIO(response.content)).width <= 1600
    assert time.perf_counter() - start < 30


@pytest.mark.slow
def test_an_onnx_model_is_served_without_heat_maps(trained_run, tiny_data, tmp_path, chromium):
    url, proc = start_server(export_onnx(trained_run, tmp_path / "tiny.onnx"))
    try:
        path = next((tiny_data / "test").rglob("*.png"))
        result = post(url, path.read_bytes(), path.name)
        assert result.ok and requests.get(f"{url}/api/model").json()["format"] == "onnx"
        refused = heat_map(url, path.read_bytes(), result.json()["top"][0]["country"])
        assert refused.status_code == 409 and "PyTorch checkpoint" in refused.json()["detail"]
        _the_page_says_why_there_are_no_heat_maps(url, path, chromium)
    finally:
        stop_server(proc)


def _the_page_says_why_there_are_no_heat_maps(url, shot, chromium):
    from playwright.sync_api import sync_playwright  # lazy: only with Chromium

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#model:has-text('onnx')")
        page.set_input_files("#files", str(shot))
        page.wait_for_selector(".heatmap[data-state='ready'][data-shows='screenshot']")
        note = page.locator(".cam-status").inner_text()
        assert "No heat maps" in note and "ONNX" in note  # still there after the image loaded
        assert not page.locator(".cam-label").is_visible()
        assert page.locator(".cam-buttons button").count() == 0
        keep(page, "onnx-model")
        browser.close()
