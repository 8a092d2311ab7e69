"""The manifest's SQLite index: it answers as a full read of the JSONL would, reads only
what was appended, and is rebuilt whenever the JSONL was rewritten or the index is lost."""

import json
import os
import time
import tracemalloc
from dataclasses import asdict

import pytest

from geoconvnet.data.manifest import NAME, Record, open_manifest, parse_lines
from geoconvnet.data.manifest_index import NAME as INDEX
from geoconvnet.utils.errors import DataError


def _line(i: int, split: str = "train", country: str = "Peru") -> str:
    return json.dumps(asdict(Record(f"{split}/{country}/osv5m-{i:06d}.jpg", split, country,
                                    "osv5m", f"id{i}", lat=-(i % 90), lon=i % 180,
                                    collected="2026-01-01T00:00:00+00:00"))) + "\n"


def _write(root, lines) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / NAME, "a", encoding="utf-8") as f:
        f.writelines(lines)


def _answers(root) -> tuple:
    """What a reader asks, through a fresh open."""
    manifest = open_manifest(root, repair=False)
    try:
        return (manifest.all_records, manifest.index.folder("train", "Peru"),
                manifest.index.folder("test", "Chile"), "id3" in manifest.source_ids("osv5m"),
                manifest.record("train/Peru/osv5m-000003.jpg"), manifest.index.parsed)
    finally:
        manifest.close()


def test_the_index_answers_as_a_full_read_and_is_rebuilt_when_missing_or_garbage(tmp_path):
    _write(tmp_path, [_line(i, *(("test", "Chile") if i % 3 else ())) for i in range(50)])
    truth = parse_lines(tmp_path / NAME, (tmp_path / NAME).read_bytes())
    first = _answers(tmp_path)
    assert first[0] == truth and first[5] == 50  # built: every line parsed once
    assert first[1] == [r for r in truth if r.country == "Peru"] and first[3]
    assert first[4] == truth[3] and isinstance(first[4].lat, int)  # 0 stays 0, not 0.0
    assert _answers(tmp_path)[5] == 0  # up to date: nothing read
    for name in os.listdir(tmp_path):
        if name.startswith(INDEX):
            os.unlink(tmp_path / name)
    assert _answers(tmp_path) == first  # missing: built again
    (tmp_path / INDEX).write_bytes(b"not a database, but someone's file" * 100)
    assert _answers(tmp_path) == first
    assert (tmp_path / f"{INDEX}.unreadable-1").read_bytes().startswith(b"not a database")


def test_lines_appended_by_another_process_are_parsed_as_a_tail(tmp_path):
    _write(tmp_path, [_line(i) for i in range(20)])
    manifest = open_manifest(tmp_path)
    _write(tmp_path, [_line(i) for i in range(20, 25)])  # a plain append, not through us
    again = open_manifest(tmp_path, repair=False)
    assert again.index.parsed == 5 and len(again.all_records) == 25
    assert "id24" in again.source_ids("osv5m") and "id25" not in again.source_ids("osv5m")
    parsed = manifest.index.parsed
    manifest.append(Record("train/Peru/osv5m-000099.jpg", "train", "Peru", "osv5m", "id99"))
    assert manifest.index.parsed == parsed + 1  # only ours: theirs was indexed already
    assert [r.source_id for r in manifest.iter_records()][-2:] == ["id24", "id99"]


def test_a_same_size_rewrite_is_noticed_even_at_the_same_time(tmp_path):
    _write(tmp_path, [_line(i) for i in range(30)])
    assert len(open_manifest(tmp_path, repair=False).index.folder("train", "Peru")) == 30
    path = tmp_path / NAME
    stat = path.stat()
    text = path.read_text().replace('"Peru"', '"Iran"').replace("/Peru/", "/Iran/")
    with open(path, "r+", encoding="utf-8") as f:  # in place: the same inode and size
        f.write(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    manifest = open_manifest(tmp_path, repair=False)
    assert manifest.index.parsed == 30 and manifest.index.folder("train", "Peru") == []
    assert len(manifest.index.folder("train", "Iran")) == 30


def test_a_bad_line_is_named_every_open_and_the_index_is_left_as_it_was(tmp_path):
    _write(tmp_path, [_line(i) for i in range(10)])
    assert len(open_manifest(tmp_path, repair=False).all_records) == 10
    _write(tmp_path, ['{"file": 3}\n', _line(11)])
    for _ in range(2):
        with pytest.raises(DataError, match=r"line 11: missing or empty field"):
            open_manifest(tmp_path, repair=False)


def test_opening_a_big_manifest_again_reads_nothing_and_counts_a_folder_fast(tmp_path):
    n = 50_000  # 200,000 took ~50 s to build on a loaded 2-core machine
    _write(tmp_path, (_line(i, *(("test", "Chile") if i % 4 else ())) for i in range(n)))
    folder = tmp_path / "train" / "Peru"
    folder.mkdir(parents=True)
    for i in range(0, 400, 4):  # a few of the images are there
        (folder / f"osv5m-{i:06d}.jpg").write_bytes(b"x")
    first = open_manifest(tmp_path, repair=False)
    assert first.index.parsed == n
    first.close()
    tracemalloc.start()
    start = time.perf_counter()
    manifest = open_manifest(tmp_path, repair=False)
    count = manifest.count("train", "Peru")
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert manifest.index.parsed == 0 and count == 100
    assert len(manifest.index) == n
    assert elapsed < 5  # a sanity bound only (the build took ~12 s here)
    assert peak < 10e6  # the folder's 12,500 names; a full read held ~50 MB
