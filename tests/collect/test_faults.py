"""The API sources against the faults of real networks and services: bodies that are not
images, connections cut mid-body, image requests refused while metadata works, used-up
quotas, and settings that would cost money or write where they should not."""

import time

import pytest
from fakes import FAULTS, GOOD_KEY, GOOD_TOKEN, FakeMapillary, FakeStreetView
from PIL import Image

from geoconvnet.cli import main
from geoconvnet.collect.http import CollectError
from geoconvnet.collect.sources import collect_from
from geoconvnet.data.manifest import open_manifest

OPTIONS = {"key": GOOD_KEY, "size": (64, 36), "backoff": 0}


def _serve(**faults):
    return FakeStreetView(noise=False, **faults)


def _decodes_in_full(root):
    records = open_manifest(root, repair=False).records
    for r in records:
        with Image.open(root / r.file) as image:
            image.load()
            assert image.format == "JPEG" and image.size == (64, 36), r.file
    files = [p for p in root.rglob("*") if p.is_file() and p.parent.parent.parent == root]
    assert len(files) == len(records)  # nothing saved without its record, no leftovers
    return records


@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in ("forbidden", "quota")])
def test_a_fault_once_is_retried_and_never_saved(tmp_path, fault):
    service = _serve(image_fault=lambda n, pano: fault if n in (1, 3) else None)
    try:
        result = collect_from("streetview", tmp_path / "r", ["Norway"], 3,
                              api_url=service.url, **OPTIONS)
    finally:
        service.close()
    assert result.collected == 3 and not result.countries[0].skipped
    _decodes_in_full(tmp_path / "r")
    assert service.requests["/"] == 5  # two retried downloads


def test_a_place_that_never_gives_an_image_is_skipped_and_counted(tmp_path, capsys):
    bad = set()

    def fault(n, pano):
        if not bad:
            bad.add(pano)
        return "html" if pano in bad else None

    service = _serve(image_fault=fault)
    try:
        code = main(["collect", "streetview", "--out", str(tmp_path / "r"), "--countries",
                     "Norway", "--per-country", "3", "--api-url", service.url, "--size",
                     "64x36", "--backoff", "0", "--key", GOOD_KEY])
    finally:
        service.close()
    out = capsys.readouterr().out
    assert code == 0
    records = _decodes_in_full(tmp_path / "r")
    assert len(records) == 3 and not bad & {r.source_id for r in records}
    assert "skipped 1: not an image (Content-Type text/html) (after 5 retries)" in \
        " ".join(out.split())
    assert service.requests["/"] == 6 + 3  # the bad place: one try and five retries


def test_an_image_whose_body_is_always_cut_is_skipped_not_the_end_of_the_run(tmp_path):
    bad = set()

    def fault(n, pano):
        bad.add(pano) if not bad else None
        return "cut" if pano in bad else None

    service = _serve(image_fault=fault)
    try:
        result = collect_from("streetview", tmp_path / "r", ["Norway"], 2, api_url=service.url,
                              **OPTIONS)
    finally:
        service.close()
    assert result.collected == 2
    [(reason, n)] = result.countries[0].skipped.items()
    assert n == 1 and "ChunkedEncodingError (IncompleteRead)" in reason
    _decodes_in_full(tmp_path / "r")


def test_a_service_that_answers_pages_for_every_image_stops_the_run_with_the_reason(tmp_path):
    service = _serve(image_fault=lambda n, pano: "truncated")
    try:
        with pytest.raises(CollectError, match=r"10 places in a row gave no usable image "
                           r"\(last: not a readable image .*after 5 retries"):
            collect_from("streetview", tmp_path / "r", ["Norway"], 3, api_url=service.url,
                         **OPTIONS)
    finally:
        service.close()
    assert not any((tmp_path / "r").rglob("*.jpg"))


def test_a_connection_cut_mid_body_is_retried_and_counted_right(tmp_path):
    service = _serve(metadata_fault=lambda n: "cut" if n in (1, 2) else None)
    try:
        result = collect_from("streetview", tmp_path / "r", ["Chile"], 2, api_url=service.url,
                              **OPTIONS)
        assert result.collected == 2
    finally:
        service.close()
    down = _serve(metadata_fault=lambda n: "cut")
    try:
        with pytest.raises(CollectError, match=r"request failed after 5 retries: "
                           r"ChunkedEncodingError \(IncompleteRead\)$"):
            collect_from("streetview", tmp_path / "s", ["Chile"], 2, api_url=down.url,
                         **OPTIONS)
        assert down.requests["/metadata"] == 6
    finally:
        down.close()


def test_image_requests_refused_while_metadata_works_say_why_at_once(tmp_path, capsys):
    service = _serve(image_fault=lambda n, pano: "forbidden")
    try:
        code = main(["collect", "streetview", "--out", str(tmp_path / "r"), "--countries",
                     "Norway", "--per-country", "5", "--api-url", service.url, "--backoff",
                     "0", "--key", GOOD_KEY])
    finally:
        service.close()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and GOOD_KEY not in err
    assert "works for the free metadata requests but the image requests are refused" in \
        errors[0] and "enable billing and the Street View Static API" in errors[0]
    assert service.requests["/"] == 3  # a handful, not hundreds


def test_a_used_up_quota_stops_within_seconds(tmp_path):
    for faults in ({"image_fault": lambda n, pano: "quota"},
                   {"metadata_fault": lambda n: "over-quota"}):
        service = _serve(**faults)
        start = time.monotonic()
        try:
            with pytest.raises(CollectError, match="quota"):
                collect_from("streetview", tmp_path / "q", ["Norway"], 5, key=GOOD_KEY,
                             api_url=service.url, backoff=1.0)
        finally:
            service.close()
        assert time.monotonic() - start < 5
        assert service.requests["/"] <= 1


def test_mapillary_skips_an_html_thumbnail_and_stops_when_every_download_is_refused(tmp_path):
    service = FakeMapillary(image_fault=lambda n: "html" if n <= 6 else None)
    try:
        result = collect_from("mapillary", tmp_path / "m", ["Germany"], 2, token=GOOD_TOKEN,
                              api_url=service.url, backoff=0)
    finally:
        service.close()
    assert result.collected == 2 and sum(result.countries[0].skipped.values()) == 1
    assert len(open_manifest(tmp_path / "m").records) == 2
    refused = FakeMapillary(image_fault=lambda n: "forbidden")
    try:
        with pytest.raises(CollectError, match="refused 10 downloads in a row"):
            collect_from("mapillary", tmp_path / "n", ["Germany"], 2, token=GOOD_TOKEN,
                         api_url=refused.url, backoff=0)
    finally:
        refused.close()


@pytest.mark.parametrize("args, message", [
    (["--countries", ""], "no countries given"),
    (["--countries", " , ,"], "no countries given"),
    (["--countries", "Norway", "--delay", "-1"], "--delay must be 0 or more"),
    (["--countries", "Norway", "--backoff", "-2"], "--backoff must be 0 or more"),
    (["--countries", "Norway", "--radius", "-5"], "--radius -5"),
    (["--countries", "Norway", "--per-country", "0"], "--per-country must be at least 1"),
    (["--countries", "Norway", "--delay", "nan"], "--delay must be 0 or more"),
    (["--countries", "Norway", "--delay", "inf"], "--delay must be 0 or more"),
    (["--countries", "Norway", "--size", "10x10"], "--size 10x10: each side must be 16..640"),
])
def test_settings_that_cost_money_or_make_no_sense_are_one_line(tmp_path, capsys, args, message):
    service = _serve()
    try:
        cli = ["collect", "streetview", "--out", str(tmp_path / "r"), "--per-country", "2",
               "--api-url", service.url, "--key", GOOD_KEY, *args]
        assert main(cli) == 2
    finally:
        service.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not service.requests  # nothing was asked of the billed API
    assert not (tmp_path / "r").exists()


def test_an_unusable_out_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("a file")
    for out, message in ((tmp_path / "file" / "root", "is a file, not a folder"),
                         ("/usr", "a system folder"), ("/etc/geoconvnet", "a system folder")):
        code = main(["collect", "streetview", "--out", str(out), "--countries", "Peru",
                     "--per-country", "1", "--key", GOOD_KEY, "--dry-run"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "file").is_dir() and not (tmp_path / "file" / "root").exists()


def test_a_round_timeout_of_zero_is_refused_it_would_wait_forever(tmp_path):
    from geoconvnet.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="--round-timeout must be 1 or more seconds"):
        collect_from("geoguessr", tmp_path / "g", ["Peru"], 1, round_timeout=0)
    assert not (tmp_path / "g").exists()
