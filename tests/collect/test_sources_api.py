"""streetview and mapillary against local servers in the APIs' documented formats."""

import json
import time

import pytest
from fakes import GOOD_KEY, GOOD_TOKEN, FakeMapillary, FakeStreetView
from PIL import Image

from geoconvnet.cli import main
from geoconvnet.collect.http import CollectError
from geoconvnet.collect.sources import collect_from
from geoconvnet.data.countries import resolve
from geoconvnet.data.manifest import NAME, lock_root, open_manifest
from geoconvnet.data.places import Places
from geoconvnet.utils.errors import ConfigError


@pytest.fixture()
def streetview():
    service = FakeStreetView()
    yield service
    service.close()


@pytest.fixture()
def mapillary():
    service = FakeMapillary()
    yield service
    service.close()


def _check_root(root, countries, per_country, source):
    manifest = open_manifest(root)
    assert len({r.source_id for r in manifest.records}) == len(manifest.records)  # no repeats
    for name in countries:
        records = [r for r in manifest.records if r.country == name]
        assert len(records) == per_country
        places = Places(resolve(name).code, None)
        for r in records:
            assert r.source == source and places.contains(r.lat, r.lon), r
            with Image.open(root / r.file) as image:
                image.verify()
        assert len(list((root / "train" / name).iterdir())) == per_country
    return manifest


def test_streetview_collects_panoramas_inside_the_country(streetview, tmp_path, capsys):
    code = main(["collect", "streetview", "--out", str(tmp_path / "sv"), "--countries",
                 "Norway,uruguay", "--per-country", "4", "--api-url", streetview.url,
                 "--size", "160x90", "--backoff", "0", "--key", GOOD_KEY])
    out = capsys.readouterr()
    assert code == 0, out.err
    manifest = _check_root(tmp_path / "sv", ["Norway", "Uruguay"], 4, "streetview")
    assert all(r.captured == "2019-06" and 0 <= r.heading <= 360 for r in manifest.records)
    assert streetview.requests["/metadata"] > 8  # empty areas, 429s and 503s were retried
    assert "8 images in" in out.out and "images/min" in out.out
    assert GOOD_KEY not in out.out + out.err + (tmp_path / "sv" / NAME).read_text()


def test_a_refused_key_is_one_error_without_the_key(streetview, tmp_path, capsys):
    code = main(["collect", "streetview", "--out", str(tmp_path / "sv"), "--countries", "Peru",
                 "--per-country", "1", "--api-url", streetview.url, "--key", "wrong-key-123"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith("error: streetview: the API key was refused (REQUEST_DENIED")
    assert "wrong-key-123" not in err
    assert streetview.requests["/metadata"] == 1  # no retry loop


def test_mapillary_spreads_images_and_records_attribution(mapillary, tmp_path):
    result = collect_from("mapillary", tmp_path / "m", ["Germany"], 6, token=GOOD_TOKEN,
                          api_url=mapillary.url, per_cell=1, backoff=0)
    assert result.collected == 6
    manifest = _check_root(tmp_path / "m", ["Germany"], 6, "mapillary")
    assert {(r.author, r.licence, r.captured) for r in manifest.records} == \
        {("tester", "CC BY-SA 4.0", "2019-07-01")}
    cells = {(int(r.lat // 0.25), int(r.lon // 0.25)) for r in manifest.records}
    assert len(cells) == 6  # at most one image per 0.25-degree cell
    assert all(GOOD_TOKEN not in url for url in mapillary.seen_urls)  # a header, not a URL
    assert mapillary.images.authorization and not any(mapillary.images.authorization)
    assert mapillary.images.requests["/thumb/" + manifest.records[0].source_id + ".jpg"] == 1
    assert len(mapillary.images.seen_urls) > 6  # expired links (403) were skipped, not fatal


def test_a_refused_token_is_one_error(mapillary, tmp_path):
    with pytest.raises(CollectError, match="refused the credentials .*HTTP 401.*Invalid OAuth"):
        collect_from("mapillary", tmp_path / "m", ["Chile"], 2, token="nope",
                     api_url=mapillary.url, backoff=0)
    assert mapillary.requests["/images"] == 1


def test_a_second_run_continues_to_n_and_a_dry_run_writes_nothing(streetview, tmp_path):
    options = {"key": GOOD_KEY, "api_url": streetview.url, "size": (64, 36), "backoff": 0}
    collect_from("streetview", tmp_path / "r", ["Spain"], 2, **options)
    plan = collect_from("streetview", tmp_path / "r", ["Spain", "Kenya"], 3, dry_run=True)
    assert [(c.had, c.to_fetch(3)) for c in plan.countries] == [(2, 1), (0, 3)]
    assert len(open_manifest(tmp_path / "r").records) == 2
    again = collect_from("streetview", tmp_path / "r", ["Spain"], 3, **options)
    assert [(c.had, c.collected) for c in again.countries] == [(2, 1)]
    _check_root(tmp_path / "r", ["Spain"], 3, "streetview")
    assert not (tmp_path / "dry").exists()
    collect_from("streetview", tmp_path / "dry", ["Spain"], 3, dry_run=True)
    assert not (tmp_path / "dry").exists()


def test_a_killed_run_is_finished_or_undone_and_only_our_temporary_files_go(tmp_path,
                                                                             streetview):
    options = {"key": GOOD_KEY, "api_url": streetview.url, "size": (64, 36), "backoff": 0}
    root = tmp_path / "k"
    collect_from("streetview", root, ["Japan"], 2, **options)
    manifest_path = root / NAME
    folder = root / "train" / "Japan"
    # What SIGKILL can leave in each step of a save: the image under its temporary name
    # before its record (00002), after its record (00003, renamed on the next start), an
    # older version's temporary file, and half a record line.
    image = (folder / "streetview-00000.jpg").read_bytes()
    (folder / ".streetview-00002.jpg.part").write_bytes(image[:40])
    (folder / ".streetview-00003.jpg.part").write_bytes(image)
    (folder / ".streetview-00004.jpg.x1y2.tmp").write_bytes(b"\xff\xd8")
    record = json.loads(manifest_path.read_text().splitlines()[0])
    with open(manifest_path, "a") as f:
        f.write(json.dumps({**record, "file": "train/Japan/streetview-00003.jpg",
                            "source_id": "pano_kept"}) + "\n")
        f.write('{"file": "train/Japan/streetview-00005.jpg", "spl')
    collect_from("streetview", root, ["Japan"], 4, **options)
    lines = manifest_path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["country"] == "Japan" for line in lines)
    _check_root(root, ["Japan"], 4, "streetview")
    assert (folder / "streetview-00003.jpg").read_bytes() == image  # finished, not deleted
    assert sorted(p.name for p in folder.iterdir()) == \
        [f"streetview-0000{i}.jpg" for i in (0, 1, 3, 4)]


def test_images_without_a_record_are_never_deleted(tmp_path, streetview, capsys):
    """A lost manifest next to collected images (also of countries not asked for) stops the
    run with one line; `data manifest --rebuild` records them and the next run goes on
    without overwriting any."""
    options = {"key": GOOD_KEY, "api_url": streetview.url, "size": (64, 36), "backoff": 0}
    root = tmp_path / "lost"
    collect_from("streetview", root, ["Japan", "Peru"], 2, **options)
    before = {p: p.read_bytes() for p in root.rglob("*.jpg")}
    (root / NAME).unlink()
    capsys.readouterr()
    args = ["collect", "streetview", "--out", str(root), "--countries", "Japan",
            "--per-country", "3", "--api-url", streetview.url, "--size", "64x36",
            "--backoff", "0", "--key", GOOD_KEY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 collected image(s) have no manifest" in err
    assert "data manifest" in err and "--rebuild" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in root.rglob("*.jpg")} == before
    assert main(["data", "manifest", str(root), "--rebuild"]) == 0
    assert "4" in capsys.readouterr().out
    records = open_manifest(root, repair=False).records
    assert sorted(r.source_id for r in records)[0].startswith("file:train/")
    assert main(args) == 0
    assert all(p.read_bytes() == data for p, data in before.items())
    assert len(list((root / "train" / "Japan").iterdir())) == 3


def test_a_bad_manifest_line_is_one_line_in_every_command_that_reads_it(tmp_path, streetview,
                                                                        capsys):
    options = {"key": GOOD_KEY, "api_url": streetview.url, "size": (64, 36), "backoff": 0}
    root = tmp_path / "bad"
    collect_from("streetview", root, ["Japan"], 3, **options)
    lines = (root / NAME).read_text().splitlines()
    lines[1] = lines[1][:-1]  # the closing brace lost
    (root / NAME).write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    commands = [["data", "dedup", str(root), "--workers", "1"],
                ["data", "split", str(root), "--test-fraction", "0.4"],
                ["data", "stats", str(root), "--no-page"],
                ["collect", "streetview", "--out", str(root), "--countries", "Japan",
                 "--per-country", "4", "--key", GOOD_KEY, "--api-url", streetview.url]]
    for args in commands:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in err, (args, err)
        assert errors[0].startswith(f"error: {root / NAME} line 2: not valid JSON"), errors
    (root / NAME).write_text("\n".join(lines[:1] + ['{"file": "x", "hacked": 1}'] + lines[2:]))
    assert main(commands[0]) == 2 and "line 2: unknown field(s) 'hacked'" in \
        capsys.readouterr().err
    assert main(["data", "manifest", str(root), "--rebuild"]) == 0
    assert len((root / "collect-manifest.set-aside.jsonl").read_text().splitlines()) == 1
    assert main(commands[0]) == 0  # the bad line set aside, its image recorded anew


def test_a_long_retry_after_is_capped(tmp_path):
    service = FakeStreetView(long_retry_after=True)
    try:
        start = time.monotonic()
        result = collect_from("streetview", tmp_path / "w", ["Italy"], 1, key=GOOD_KEY,
                              api_url=service.url, backoff=0, max_wait=0.2)
        assert result.collected == 1 and time.monotonic() - start < 30
    finally:
        service.close()


def test_one_run_at_a_time_on_a_root(tmp_path):
    handle = lock_root(tmp_path / "busy")
    try:
        with pytest.raises(ConfigError, match="another geoconvnet command is writing there"):
            collect_from("streetview", tmp_path / "busy", ["Italy"], 1, key=GOOD_KEY)
    finally:
        handle.close()


def test_a_collected_root_trains_as_it_is(streetview, tmp_path):
    from geoconvnet.training.train import train

    options = {"key": GOOD_KEY, "api_url": streetview.url, "size": (160, 90), "backoff": 0}
    collect_from("streetview", tmp_path / "c", ["Norway", "Chile"], 4, **options)
    collect_from("streetview", tmp_path / "c", ["Norway", "Chile"], 2, split="test", **options)
    run = train(data=str(tmp_path / "c"), arch="resnet18", weights="none", epochs=1,
                batch_size=4, crop_size=64, image_size=32, num_workers=0,
                runs_dir=str(tmp_path / "runs"), name="collected")
    report = json.loads((run / "data_report.json").read_text())
    assert report["num_classes"] == 2 and report["counts"]["test"] == 4
    assert report["counts"]["train"] + report["counts"]["val"] == 8
