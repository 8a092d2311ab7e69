"""A real `geoconvnet serve` process against what other web pages and hostile clients do:
cross-origin requests, bursts over the queue, stalled connections, security headers."""

import base64
import http.server
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import requests
from served import free_port, png_bytes, screenshots, start_server, stop_server
from PIL import Image

TIMEOUT = 2  # --client-timeout of the server below, seconds


@pytest.fixture(scope="module")
def page_port():
    """The port of a second loopback web server: pages from another origin."""
    return free_port()


@pytest.fixture(scope="module")
def server(trained_run, page_port):
    url, proc = start_server(trained_run, "--max-queue", "2", "--client-timeout", str(TIMEOUT),
                             "--allow-origin", f"http://127.0.0.1:{page_port}")
    yield url
    stop_server(proc)


def health(url) -> dict:
    return requests.get(f"{url}/api/health", timeout=10).json()


def post(url, data: bytes, **kwargs):
    return requests.post(f"{url}/api/predict", files={"file": ("shot.png", data, "image/png")},
                         timeout=120, **kwargs)


# -- other origins ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_site(tmp_path_factory, page_port):
    """A plain web page served from 127.0.0.1:page_port (reachable as localhost too)."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "index.html").write_text("<!doctype html><title>another site</title>")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield page_port
    site.shutdown()


SEND_FROM_PAGE = """async ([app, b64, mode]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const form = new FormData();
    form.append("file", new Blob([bytes], {type: "image/png"}), "shot.png");
    try {
        const response = await fetch(app + "/api/predict", {method: "POST", mode, body: form});
        if (mode === "no-cors") return "sent";
        return (await response.json()).top ? "read" : "no guesses";
    } catch (error) { return "failed: " + error.message; }
}"""


def test_pages_of_other_origins_cannot_make_the_app_work(server, other_site, chromium):
    from playwright.sync_api import sync_playwright  # lazy: skipped without Playwright

    shot = base64.b64encode(screenshots(1, size=(320, 180))[0]).decode()
    before = health(server)["answered"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page()
        page.goto(f"http://localhost:{other_site}/")  # not allowed: another origin
        page.evaluate(SEND_FROM_PAGE, [server, shot, "no-cors"])  # the answer is opaque
        assert page.evaluate(SEND_FROM_PAGE, [server, shot, "cors"]).startswith("failed")
        assert health(server)["answered"] == before  # refused before any work
        page.goto(f"http://127.0.0.1:{other_site}/")  # the origin given to --allow-origin
        assert page.evaluate(SEND_FROM_PAGE, [server, shot, "cors"]) == "read"
        assert health(server)["answered"] == before + 1
        browser.close()


def test_origin_rules_for_browsers_and_other_clients(server):
    shot = screenshots(1, size=(320, 180))[0]
    port = server.rsplit(":", 1)[1]
    refused = post(server, shot, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "evil.example" in refused.json()["detail"]
    assert "--allow-origin" in refused.json()["detail"]
    assert post(server, shot, headers={"Origin": "null"}).status_code == 403
    assert post(server, shot, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert requests.get(f"{server}/api/model", headers={"Sec-Fetch-Site": "same-site"}
                        ).status_code == 403
    assert post(server, shot).ok  # curl, scripts: no Origin
    assert post(server, shot, headers={"Origin": f"http://127.0.0.1:{port}",
                                       "Sec-Fetch-Site": "same-origin"}).ok
    assert requests.get(server, headers={"Sec-Fetch-Site": "cross-site"}).ok  # a link to it


# -- bursts -----------------------------------------------------------------------------------
def test_a_burst_over_the_queue_gets_503_at_once_and_the_server_recovers(server):
    shots = screenshots(16, size=(1600, 900), seed=3)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda s: post(server, s), shots))
    codes = [a.status_code for a in answers]
    busy = [a for a in answers if a.status_code == 503]
    assert set(codes) <= {200, 503} and codes.count(200) >= 3 and busy, codes
    assert all(int(a.headers["retry-after"]) >= 1 for a in busy)
    assert "serve --max-queue" in busy[0].json()["detail"]
    state = health(server)
    assert state["waiting"] == 0 and state["in_flight"] == 0 and state["max_queue"] == 2
    assert state["refused_busy"] >= len(busy)
    assert post(server, shots[0]).ok


# -- slow clients -----------------------------------------------------------------------------
def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(TIMEOUT + 8)
    return sock


def _closed_after(sock: socket.socket, started: float) -> float:
    """Seconds from ``started`` until the server closed ``sock`` (reading any answer)."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    return time.monotonic() - started


def test_stalled_connections_are_closed_while_predictions_keep_answering(server):
    port = int(server.rsplit(":", 1)[1])
    started = time.monotonic()
    silent = [_connect(port) for _ in range(5)]
    half_head = [_connect(port) for _ in range(5)]
    for sock in half_head:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    no_body = [_connect(port) for _ in range(5)]
    for sock in no_body:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     b"multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\n")
    trickler = _connect(port)
    stop = threading.Event()

    def trickle():  # a byte of the head every 0.3 s: each byte would reset uvicorn's timer
        for byte in b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 500:
            if stop.is_set():
                return
            try:
                trickler.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.3)

    threading.Thread(target=trickle, daemon=True).start()
    shot = screenshots(1, size=(320, 180))[0]
    assert post(server, shot).ok and health(server)["status"] == "ok"  # while they stall
    with ThreadPoolExecutor(16) as pool:
        closed = list(pool.map(lambda s: _closed_after(s, started),
                               silent + half_head + no_body + [trickler]))
    stop.set()
    assert max(closed) < TIMEOUT + 3, closed
    assert post(server, shot).ok


def test_a_client_that_stops_sending_its_body_gets_408(server):
    port = int(server.rsplit(":", 1)[1])
    sock = _connect(port)
    sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 b"multipart/form-data; boundary=x\r\nContent-Length: 5000\r\n\r\n--x\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"serve --client-timeout" in answer


# -- headers and small things -----------------------------------------------------------------
@pytest.mark.parametrize("path, html", [("/", True), ("/docs", True), ("/redoc", True),
                                        ("/api/health", False), ("/api/model", False),
                                        ("/static/app.js", False), ("/nowhere", False)])
def test_every_answer_has_nosniff_and_every_page_a_strict_csp(server, path, html):
    response = requests.get(f"{server}{path}")
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers.get("content-security-policy", "")
    assert ("frame-ancestors 'none'" in csp) == html, csp
    if html:
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]


def test_refusals_carry_the_headers_too(server):
    refused = post(server, b"x", headers={"Origin": "https://evil.example"})
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_head_of_the_page_and_images_too_small_to_be_screenshots(server):
    head, page = requests.head(server), requests.get(server)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(page.content))
    assert "frame-ancestors 'none'" in head.headers["content-security-policy"]
    tiny = post(server, png_bytes(Image.new("RGB", (1, 1))))
    assert tiny.status_code == 415 and "too small to be a screenshot" in tiny.json()["detail"]
