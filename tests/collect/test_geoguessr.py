"""The geoguessr source in a real headless Chromium against an imitation of the game (and
its image check and JSON reading on their own, without a browser)."""

import io
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from fake_geoguessr import COVER, GREEN, MAGENTA, FakeGeoGuessr
from PIL import Image, ImageDraw

from geoconvnet.cli import main
from geoconvnet.collect.geoguessr import BLANK, COVERED, capture_problem, place_id
from geoconvnet.collect.geoguessr_page import RoundPlace, round_place
from geoconvnet.collect.http import CollectError
from geoconvnet.collect.sources import collect_from
from geoconvnet.data.manifest import open_manifest


@pytest.fixture()
def make_site(chromium):
    """Imitation games (closed after the test); needs Chromium (skipped without it,
    required in CI)."""
    sites = []

    def make(**options):
        service = FakeGeoGuessr(**options)
        service.browser = chromium
        sites.append(service)
        return service

    yield make
    for service in sites:
        service.close()


@pytest.fixture()
def site(make_site):
    return make_site(hang_game=2)


def _options(site, tmp_path, **extra):
    return {"site_url": site.url, "browser": site.browser, "round_timeout": 3.0, "settle": 0.05,
            "backoff": 0.1, "storage_state": site.storage_state(tmp_path / "state.json"),
            **extra}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _stripes(colours: int = 16) -> Image.Image:
    image = Image.new("RGB", (1600, 900))
    draw = ImageDraw.Draw(image)
    for i in range(colours):
        v = i * 29 % 180
        draw.rectangle([i * 100, 0, i * 100 + 99, 899], fill=(40 + v, 60 + v * 3 % 120, 90 + v))
    return image


# -- without a browser ----------------------------------------------------------------------
def test_blank_and_covered_captures_are_told_from_views():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 3, (900, 1600, 3))
    grey = Image.fromarray(np.clip(128 + noise, 0, 255).astype(np.uint8))
    cover = Image.new("RGB", (1600, 900), COVER)
    ImageDraw.Draw(cover).rectangle([720, 410, 880, 490], fill=(255, 255, 255))  # a logo
    half = _stripes()
    half.paste((90, 90, 90), (0, 450, 1600, 900))  # the lower half's tiles not drawn yet
    assert capture_problem(_png(Image.new("RGB", (1600, 900)))) == BLANK  # a black panorama
    assert capture_problem(_png(grey)) == BLANK  # near-uniform, noise and all
    assert capture_problem(_png(cover)) == COVERED  # a loading screen with its logo
    assert capture_problem(_png(half)) == COVERED
    assert capture_problem(_png(_stripes())) is None  # the imitation's panorama
    sky = np.linspace([90, 140, 230], [200, 215, 240], 450)[:, None, :].repeat(1600, axis=1)
    ground = np.clip(100 + rng.normal(0, 25, (450, 1600, 3)), 0, 255)  # road, fields
    view = np.concatenate([sky, ground]).astype(np.uint8)
    assert capture_problem(_png(Image.fromarray(view))) is None  # a clear sky is no cover
    photos = pytest.importorskip("sklearn.datasets")
    for name in ("china.jpg", "flower.jpg"):  # real photographs
        photo = Image.fromarray(photos.load_sample_image(name)).resize((1600, 900))
        assert capture_problem(_png(photo)) is None, name


def test_a_round_is_known_by_its_place_only_when_the_game_says_it():
    game = {"rounds": [{"lat": 59.91, "lng": 10.75, "panoId": "A1B2", "heading": 90},
                       {"lat": -33.456789, "lng": -70.612345, "panoId": None},
                       {"lat": 0, "lng": 0, "panoId": "X"},  # unset, not null island
                       {"lat": "59.9", "lng": 10.7}, {"lat": True, "lng": 1.0},
                       {"lat": 95.0, "lng": 10.0}, "not a round"]}
    assert round_place(game, 1) == RoundPlace(59.91, 10.75, "A1B2", 90.0)
    assert round_place(game, 2) == RoundPlace(-33.456789, -70.612345, None, None)
    assert [round_place(game, n) for n in (0, 3, 4, 5, 6, 7, 8)] == [None] * 7
    assert round_place({"rounds": None}, 1) is None and round_place([], 1) is None
    assert place_id(round_place(game, 1)) == "pano:A1B2"
    assert place_id(round_place(game, 2)) == "at:-33.4568,-70.6123"
    assert place_id(RoundPlace(-0.00001, 5.0)) == "at:0.0000,5.0000"  # no "-0.0000"
    # the same place, a hair apart in two games' JSON, is one id
    assert place_id(RoundPlace(12.3456789, 45.6)) == place_id(RoundPlace(12.345681, 45.6))


# -- in the browser ---------------------------------------------------------------------------
def _check_views(root, records):
    for record in records:
        pixels = np.asarray(Image.open(root / record.file).convert("RGB"))
        assert pixels.shape == (900, 1600, 3)
        for colour in (MAGENTA, GREEN, COVER):  # no interface, loading screen or cover
            assert not (pixels == colour).all(axis=2).any(), (record.file, colour)
        stripes = {tuple(pixels[450, x]) for x in range(50, 1600, 100)}
        assert len(stripes) >= 8, record.file  # the panorama itself is there, not a blank


@pytest.mark.slow
def test_rounds_carry_their_place_bad_views_are_retried_or_skipped_and_repeats_saved_once(
        make_site, tmp_path):
    # game 1: a view drawn late, one covered for a while, one never drawn (round 4);
    # game 2 hangs in round 2 and is replaced by game 3, which serves game 1's places again
    site = make_site(hang_game=2, same_places={3: 1}, quirks={
        (1, 2): "blank-late", (1, 3): "covered-late", (1, 4): "blank-forever"})
    result = collect_from("geoguessr", tmp_path / "gg", ["Norway"], 6, delay=0,
                          **_options(site, tmp_path))
    norway = result.countries[0]
    assert norway.collected == 6 and dict(norway.skipped) == {BLANK: 1}
    assert norway.misses >= 3  # game 3's places 1-3 were taken: not saved again
    result = collect_from("geoguessr", tmp_path / "gg", ["Chile"], 1, delay=0,
                          **_options(site, tmp_path))
    assert result.countries[0].collected == 1 and site.games == 4  # Chile: its own game
    assert site.requests["/maps/chile/play"] == 1

    # places 1-6 (place 4, skipped in game 1, saved from game 3), then Chile's game 4
    expected = {place_id(RoundPlace(site.location(p)["lat"], site.location(p)["lng"],
                                    site.location(p)["panoId"])): site.location(p)
                for p in (1, 2, 3, 4, 5, 6, 16)}
    manifest = open_manifest(tmp_path / "gg")
    got = {r.source_id: r for r in manifest.records}
    assert sorted(got) == sorted(expected) and len(manifest.records) == 7
    assert any(i.startswith("pano:") for i in got) and any(i.startswith("at:") for i in got)
    for source_id, record in got.items():
        where = expected[source_id]
        assert (record.lat, record.lon, record.heading) == \
            (where["lat"], where["lng"], where["heading"]), source_id
    _check_views(tmp_path / "gg", manifest.records)


@pytest.mark.slow
def test_a_site_down_at_first_and_a_late_start_button_are_waited_through(make_site, tmp_path):
    # two 503s, then a map page that draws its start button late; no game JSON
    site = make_site(hang_game=0, down_first=2, start_delay_ms=800, api=False)
    result = collect_from("geoguessr", tmp_path / "gg", ["Peru"], 1, delay=0,
                          **_options(site, tmp_path))
    assert result.countries[0].collected == 1
    assert site.navigations == 3 and site.games == 1
    (record,) = open_manifest(tmp_path / "gg").records
    # where the round was is unknown: no coordinates, and the older id of game and round
    assert (record.lat, record.lon, record.heading) == (None, None, None)
    assert record.source_id == "peru-0001-1"


def test_without_a_log_in_the_source_says_so_even_when_the_wall_comes_late(make_site,
                                                                            tmp_path):
    site = make_site(sign_in_delay_ms=500)
    options = _options(site, tmp_path)
    del options["storage_state"]
    with pytest.raises(CollectError, match="asks to sign in; pass --storage-state"):
        collect_from("geoguessr", tmp_path / "gg", ["Peru"], 1, delay=0, **options)
    assert site.navigations == 1  # said at once, not after reloads


@pytest.mark.slow
def test_a_site_that_stays_down_is_one_line(make_site, tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}"
    failing = make_site(down_first=10**6)

    def error_line(url):
        code = main(["collect", "geoguessr", "--out", str(tmp_path / "gg"), "--countries",
                     "Peru", "--per-country", "1", "--site-url", url, "--backoff", "0.05",
                     "--browser", failing.browser,
                     "--storage-state", failing.storage_state(tmp_path / "s.json")])
        err = capsys.readouterr().err  # the progress bar's line, then the error's
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and "Traceback" not in err and len(errors) == 1, err
        return errors[0]

    for url, problem in ((refused, "ERR_CONNECTION_REFUSED"), (failing.url, "HTTP 503")):
        error = error_line(url)
        assert error.startswith(f"error: geoguessr: could not open {url}/maps/peru/play "
                                "after 3 retries"), error
        assert problem in error and "--site-url" in error
    assert failing.navigations == 4  # the first try and 3 retries
    # a map the site does not have: said at once, no retries
    error = error_line(f"{failing.url}/nowhere")
    assert "/nowhere/maps/peru/play answered HTTP 404" in error and "--site-url" in error
    assert failing.requests["/nowhere/maps/peru/play"] == 1


@pytest.mark.slow
def test_a_run_killed_with_sigkill_restarts_and_ends_with_exactly_n(site, tmp_path):
    root = tmp_path / "gg"
    cmd = [sys.executable, "-m", "geoconvnet", "collect", "geoguessr", "--out", str(root),
           "--countries", "Peru", "--per-country", "5", "--delay", "0", "--settle", "0.05",
           "--round-timeout", "3", "--backoff", "0.1", "--site-url", site.url,
           "--browser", site.browser, "--storage-state", site.storage_state(tmp_path / "s.json")]
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while len(open_manifest(root, repair=False).records) < 2:
        assert victim.poll() is None and time.monotonic() < deadline, "no capture in time"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the collector and its browser, mid-round
    victim.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = open_manifest(root)
    assert len(manifest.records) == 5 and len({r.file for r in manifest.records}) == 5
    assert sorted(p.name for p in (root / "train" / "Peru").iterdir()) == \
        sorted(r.file.rsplit("/", 1)[1] for r in manifest.records)
    # the restart's games serve other places: all five are distinct and located
    assert len({r.source_id for r in manifest.records}) == 5
    assert all(r.lat is not None for r in manifest.records)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_was_collected(site, tmp_path):
    root = tmp_path / "gg"
    cmd = [sys.executable, "-m", "geoconvnet", "collect", "geoguessr", "--out", str(root),
           "--countries", "Peru", "--per-country", "50", "--delay", "0", "--settle", "0.05",
           "--site-url", site.url, "--browser", site.browser,
           "--storage-state", site.storage_state(tmp_path / "s.json")]
    # SIGINT as a terminal's Ctrl-C, also where the suite runs with it ignored (started in the
    # background by a non-interactive shell), which children would inherit.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(open_manifest(root, repair=False).records) < 1:
        assert proc.poll() is None and time.monotonic() < deadline, "no capture in time"
        time.sleep(0.05)
    time.sleep(random.uniform(0, 1.0))  # anywhere in a round
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    manifest = open_manifest(root)
    assert manifest.records and all((root / r.file).is_file() for r in manifest.records)
