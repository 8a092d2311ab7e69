"""The geoguessr source in a real headless Chromium against an imitation of the game."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from fake_geoguessr import GREEN, MAGENTA, FakeGeoGuessr
from PIL import Image

from geoconvnet.collect.http import CollectError
from geoconvnet.collect.sources import collect_from
from geoconvnet.data.manifest import open_manifest


@pytest.fixture()
def site(chromium):
    """The imitation game; needs Chromium (skipped without it, required in CI)."""
    service = FakeGeoGuessr(hang_game=2)
    service.browser = chromium
    yield service
    service.close()


def _options(site, tmp_path, **extra):
    return {"site_url": site.url, "browser": site.browser, "round_timeout": 3.0, "settle": 0.05,
            "backoff": 0.1, "storage_state": site.storage_state(tmp_path / "state.json"),
            **extra}


@pytest.mark.slow
def test_rounds_are_captured_without_the_interface_and_a_hang_is_survived(site, tmp_path):
    result = collect_from("geoguessr", tmp_path / "gg", ["Norway", "Chile"], 3, delay=0,
                          **_options(site, tmp_path))
    assert [c.collected for c in result.countries] == [3, 3]
    manifest = open_manifest(tmp_path / "gg")
    assert len({r.source_id for r in manifest.records}) == 6
    assert site.games >= 3  # game 2 hung in round 2 and was replaced by a fresh game
    for record in manifest.records:
        pixels = np.asarray(Image.open(tmp_path / "gg" / record.file).convert("RGB"))
        assert pixels.shape == (900, 1600, 3)
        for colour in (MAGENTA, GREEN):  # no interface, no loading screen
            assert not (pixels == colour).all(axis=2).any(), (record.file, colour)
        stripes = {tuple(pixels[450, x]) for x in range(50, 1600, 100)}
        assert len(stripes) >= 8, record.file  # the panorama itself is there


def test_without_a_log_in_the_source_says_so(site, tmp_path):
    options = _options(site, tmp_path)
    del options["storage_state"]
    with pytest.raises(CollectError, match="asks to sign in; pass --storage-state"):
        collect_from("geoguessr", tmp_path / "gg", ["Peru"], 1, delay=0, **options)


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


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_was_collected(site, tmp_path):
    root = tmp_path / "gg"
    cmd = [sys.executable, "-m", "geoconvnet", "collect", "geoguessr", "--out", str(root),
           "--countries", "Peru", "--per-country", "50", "--delay", "0", "--settle", "0.05",
           "--site-url", site.url, "--browser", site.browser,
           "--storage-state", site.storage_state(tmp_path / "s.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
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
