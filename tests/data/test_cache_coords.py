"""`data prepare` carries each image's coordinates into the cache it writes (file cache and
sharded cache), so that a cache gives the same coordinates as its source folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from geoconvnet.data import cache
from geoconvnet.data.root import DataRoot
from geoconvnet.data.shards import TABLE
from geoconvnet.data.shardwrite import prepare_shards
from geoconvnet.data.synth import synth
from geoconvnet.utils.errors import DataError

SHARDS = dict(scale=0.5, max_crop=96, workers=1, shard_size=4)


@pytest.fixture()
def located(tmp_path):
    """A folder of 10 images: 3 placed by the collect manifest, 4 by coordinates.csv (one of
    them also in the manifest: the CSV wins), 4 without coordinates."""
    root = synth(tmp_path / "src", classes=2, per_class=4, test_per_class=1, size=(160, 90),
                 workers=1)
    files = sorted(cache.source_files(root))
    assert len(files) == 10
    records = [{"file": f, "split": f.split("/")[0], "country": f.split("/")[1],
                "source": "folders", "source_id": f, "lat": 10.0 + i / 7, "lon": -20.0 - i / 3}
               for i, f in enumerate(files[:3])]
    (root / "collect-manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    _write_csv(root, {f: (-33.8688 + i, 151.2093 - i) for i, f in enumerate(files[2:6])})
    return root


def _write_csv(root, places: dict) -> None:
    lines = ["file,lat,lon"] + [f"{f},{lat!r},{lon!r}" for f, (lat, lon) in places.items()]
    (root / "coordinates.csv").write_text("\n".join(lines) + "\n")


def _prepare(kind: str, root, out) -> dict:
    if kind == "files":
        return cache.prepare(root, out, workers=1, max_crop=96)
    return prepare_shards(root, out, **SHARDS)


def _coordinates(location) -> dict[str, tuple]:
    """{source key: (lat, lon)} of every sample of a root, as DataRoot gives them."""
    root = DataRoot.open(location)
    found = {}
    for split in ("train", "test"):
        sources = [s for s, _ in root.samples(split)]
        places = root.coordinates(sources)
        assert places.shape == (len(sources), 2) and places.dtype == np.float64
        found.update((root.source_key(s), tuple(p)) for s, p in zip(sources, places.tolist()))
    return found


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # NaN equals NaN here


def _known(places: dict) -> int:
    return sum(not np.isnan(p[0]) for p in places.values())


@pytest.mark.parametrize("kind", ["files", "shards"])
def test_a_cache_gives_its_sources_coordinates(located, tmp_path, kind):
    out = tmp_path / "cache"
    summary = _prepare(kind, located, out)
    folder = _coordinates(located)
    assert _known(folder) == 6
    _same(_coordinates(out), folder)
    assert summary["with_coordinates"] == 6
    files = sorted(cache.source_files(located))
    assert folder[files[2]] == (-33.8688, 151.2093)  # the CSV wins over the manifest
    assert folder[files[0]] == (10.0, -20.0)


@pytest.mark.parametrize("kind", ["files", "shards"])
def test_changed_coordinates_update_the_cache_without_converting(located, tmp_path, kind):
    out = tmp_path / "cache"
    _prepare(kind, located, out)
    files = sorted(cache.source_files(located))
    # one changed, one dropped (files[5]), one added (files[8]); the manifest's stay
    _write_csv(located, {files[2]: (1.5, 2.5), files[3]: (-33.8688 + 1, 151.2093 - 1),
                         files[4]: (-33.8688 + 2, 151.2093 - 2), files[8]: (48.85, 2.35)})
    summary = _prepare(kind, located, out)
    assert summary["converted"] == 0 and summary["with_coordinates"] == 6
    if kind == "files":
        assert summary["unchanged"] == 10
    else:
        assert not summary["unchanged"] and summary["generation"] == 2
        assert summary["shards_written"] == 0
    cached = _coordinates(out)
    _same(cached, _coordinates(located))
    assert cached[files[2]] == (1.5, 2.5) and cached[files[8]] == (48.85, 2.35)
    assert np.isnan(cached[files[5]]).all()
    if kind == "files":
        assert "latlon" not in cache.load_manifest(out)["entries"][files[5]]
    else:  # nothing changed now: nothing written
        stamp = (out / TABLE).stat().st_mtime_ns
        again = _prepare(kind, located, out)
        assert again["unchanged"] and again["with_coordinates"] == 6
        assert (out / TABLE).stat().st_mtime_ns == stamp


def test_a_file_cache_converted_to_shards_keeps_its_coordinates(located, tmp_path):
    files, shards = tmp_path / "files", tmp_path / "shards"
    cache.prepare(located, files, workers=1, max_crop=96)
    summary = prepare_shards(files, shards, **SHARDS)
    assert summary["with_coordinates"] == 6
    _same(_coordinates(shards), _coordinates(located))


def _make_old(out) -> None:
    """Strip a sharded cache's coordinates, as caches made before they existed were."""
    table = json.loads((out / TABLE).read_text())
    for name in ("lat.npy", "lon.npy"):
        del table["index"]["files"][name]
        (out / table["index"]["folder"] / name).unlink()
    del table["with_coordinates"]
    (out / TABLE).write_text(json.dumps(table))


def test_a_sharded_cache_without_coordinates_opens_and_gains_them(located, tmp_path):
    out = tmp_path / "cache"
    prepare_shards(located, out, **SHARDS)
    _make_old(out)
    old = DataRoot.open(out)
    assert np.isnan(old.coordinates(np.arange(len(old.shards)))).all()
    assert old.coordinates([]).shape == (0, 2)
    # re-prepared: the index gains the coordinates, no image is converted again
    summary = prepare_shards(located, out, **SHARDS)
    assert summary["converted"] == 0 and not summary["unchanged"]
    _same(_coordinates(out), _coordinates(located))


def test_an_old_sharded_cache_of_a_source_without_coordinates_stays_as_it_is(tmp_path):
    root = synth(tmp_path / "src", classes=2, per_class=4, test_per_class=1, size=(160, 90),
                 workers=1)
    out = tmp_path / "cache"
    first = prepare_shards(root, out, **SHARDS)
    assert first["with_coordinates"] == 0
    assert np.isnan(DataRoot.open(out).coordinates(np.arange(10))).all()
    _make_old(out)
    stamp = (out / TABLE).stat().st_mtime_ns
    again = prepare_shards(root, out, **SHARDS)
    assert again["unchanged"] and again["with_coordinates"] == 0
    assert (out / TABLE).stat().st_mtime_ns == stamp


def test_a_damaged_coordinates_index_is_named_and_rewritten(located, tmp_path):
    out = tmp_path / "cache"
    prepare_shards(located, out, **SHARDS)
    table = json.loads((out / TABLE).read_text())
    lat = out / table["index"]["folder"] / "lat.npy"
    lat.write_bytes(lat.read_bytes()[:-1] + b"\x07")
    root = DataRoot.open(out)
    root.samples("train")  # training without coordinates does not read them
    with pytest.raises(DataError, match="lat.npy: corrupted index file"):
        root.coordinates([0])
    summary = prepare_shards(located, out, **SHARDS)
    assert summary["converted"] == 0 and not summary["unchanged"]
    _same(_coordinates(out), _coordinates(located))


@pytest.mark.parametrize("kind", ["files", "shards"])
def test_a_bad_coordinates_file_stops_prepare_before_converting(located, tmp_path, kind):
    (located / "coordinates.csv").write_text("file,lat,lon\ntrain/A/0.png,91,0\n")
    out = tmp_path / "cache"
    with pytest.raises(DataError, match="coordinates.csv line 2"):
        _prepare(kind, located, out)
    assert not out.exists() or not any((out / "shards").glob("*.tar"))


def test_a_cache_copied_elsewhere_keeps_its_coordinates(located, tmp_path):
    """Coordinates travel in the cache itself, not read from the source again."""
    for kind in ("files", "shards"):
        out = tmp_path / kind
        _prepare(kind, located, out)
        moved = tmp_path / f"moved-{kind}"
        shutil.copytree(out, moved)
        expected = _coordinates(located)
        (located / "coordinates.csv").rename(located / "aside.csv")
        try:
            _same(_coordinates(moved), expected)
        finally:
            (located / "aside.csv").rename(located / "coordinates.csv")
