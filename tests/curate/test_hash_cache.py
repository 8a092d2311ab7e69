"""The hash cache of ``data dedup`` (:mod:`geoconvnet.curate.hashcache`): rows committed in
batches survive a kill, the .npz of earlier versions is copied in once, and a damaged
database is set aside or named."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from geoconvnet.curate import hashcache, hashes
from geoconvnet.data.synth import class_styles, draw_scene
from geoconvnet.utils.errors import DataError

REPO = Path(__file__).resolve().parents[2]
ARRAYS = ("sha256", "size", "readable", "phash", "halves", "thumb", "detail")


def _root(path: Path, n: int) -> tuple[Path, list[str]]:
    styles = class_styles(2, 0)
    for i in range(n):
        folder = path / "train" / ("A" if i % 2 else "B")
        folder.mkdir(parents=True, exist_ok=True)
        draw_scene(styles[i % 2], (160, 90), seed=i).save(folder / f"{i}.png")
    (path / "train/A/broken.png").write_bytes(b"not an image")
    return path, sorted(str(p) for p in path.glob("*/*/*.png"))


def _same(a: hashes.Features, b: hashes.Features) -> bool:
    def names(f):
        return [Path(p).name for p in f.errors]

    return all(np.array_equal(np.asarray(getattr(a, k)), np.asarray(getattr(b, k)))
               for k in ARRAYS) and names(a) == names(b) == ["broken.png"]


def _rows(root: Path) -> int:
    """Rows committed so far (0 while the database is being made)."""
    if not (root / hashes.CACHE).exists():
        return 0
    with sqlite3.connect(f"file:{root / hashes.CACHE}?mode=ro", uri=True) as db:
        try:
            count = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        except sqlite3.OperationalError:  # no table yet
            count = 0
    db.close()
    return count


# Hashes the root in batches of 4 rows, slowly (50 ms an image), for the test to kill.
SLOW = """
import sys, time
from pathlib import Path
from geoconvnet.curate import hashes
hashes.COMMIT_ROWS = 4
features = hashes._features
hashes._features = lambda source: (time.sleep(0.05), features(source))[1]
root = Path(sys.argv[1])
hashes.hash_files(root, sorted(str(p) for p in root.glob("*/*/*.png")), workers=1)
"""


def test_a_killed_run_keeps_its_finished_batches_and_a_rerun_hashes_only_the_rest(tmp_path):
    root, files = _root(tmp_path / "root", 24)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.Popen([sys.executable, "-c", SLOW, str(root)], env=env,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _rows(root) < 8:
        assert run.poll() is None and time.monotonic() < deadline, "no batch committed"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    kept = _rows(root)
    assert 8 <= kept < len(files)  # killed midway: some batches in, not all
    again = hashes.hash_files(root, files, workers=1)
    assert again.work == {"cached": kept, "by content": 0, "hashed": len(files) - kept}
    assert hashes.hash_files(root, files, workers=1).work["hashed"] == 0
    (root / hashes.CACHE).rename(tmp_path / "kept.sqlite")
    whole = hashes.hash_files(root, files, workers=1)  # from scratch, uninterrupted
    assert whole.work["hashed"] == len(files)
    assert _same(again, whole) and again.readable.sum() == len(files) - 1


def test_a_moved_file_keeps_its_row_and_a_deleted_one_loses_it(tmp_path):
    root, files = _root(tmp_path / "root", 6)
    first = hashes.hash_files(root, files, workers=1)
    (root / "train/A/1.png").rename(root / "train/B/moved.png")
    (root / "train/A/3.png").unlink()
    now = sorted(str(p) for p in root.glob("*/*/*.png"))
    again = hashes.hash_files(root, now, workers=1)
    assert again.work == {"cached": len(now) - 1, "by content": 1, "hashed": 0}
    moved = now.index(str(root / "train/B/moved.png"))
    assert (again.phash[moved] == first.phash[files.index(str(root / "train/A/1.png"))]).all()
    with hashcache.HashCache(root) as cache:
        assert cache.count() == len(now) and "train/A/1.png" not in cache.rows(["train/A/1.png"])


def _save_npz(root: Path, features: hashes.Features) -> None:
    """The .npz cache as the versions before the database wrote it."""
    stats = [os.stat(f) for f in features.files]
    keys = ["a" * 64 + ":" + "b" * 64]
    np.savez(root / hashes.OLD_CACHE, format=np.array([hashes.FORMAT]),
             verifier=np.array([hashes.nearcopy.VERSION]),
             files=np.array([os.path.relpath(f, root) for f in features.files]),
             stat=np.array([(s.st_size, s.st_mtime_ns) for s in stats], np.int64),
             sha256=np.array(features.sha256, "<U64"), size=features.size,
             readable=features.readable, phash=features.phash, halves=features.halves,
             thumb=features.thumb, detail=features.detail, from_cache=features.from_cache,
             verdict_keys=np.array(keys), verdict_coarse=np.array([0.25], np.float32),
             verdict_texture=np.array([np.nan], np.float32),
             verdict_measured=np.array([False]))


def test_the_npz_cache_of_earlier_versions_is_copied_in_once_and_left_alone(tmp_path,
                                                                            monkeypatch):
    root, files = _root(tmp_path / "root", 6)
    first = hashes.hash_files(root, files, workers=1)
    _save_npz(root, first)
    (root / hashes.CACHE).unlink()
    before = (root / hashes.OLD_CACHE).read_bytes()
    again = hashes.hash_files(root, files, workers=1)
    assert again.work == {"cached": len(files), "by content": 0, "hashed": 0}
    assert _same(again, first)
    assert again.verdicts.get("a" * 64 + ":" + "b" * 64)[0] == 0.25
    assert (root / hashes.OLD_CACHE).read_bytes() == before
    monkeypatch.setattr(hashes, "_read_npz", lambda path: pytest.fail("read twice"))
    hashes.hash_files(root, files, workers=1)


def test_a_database_that_is_not_one_is_set_aside_and_damage_later_is_one_line(tmp_path,
                                                                              capsys):
    root, files = _root(tmp_path / "root", 30)
    (root / hashes.CACHE).write_bytes(b"SQLite format 3\0" + b"\xff" * 5000)
    first = hashes.hash_files(root, files, workers=1)
    warning = capsys.readouterr().err
    aside = root / (hashes.CACHE + ".unreadable-1")
    assert aside.read_bytes().endswith(b"\xff" * 100) and first.work["hashed"] == len(files)
    assert [line for line in warning.splitlines() if "warning" in line] == [
        line for line in warning.splitlines() if str(root / hashes.CACHE) in line]
    data = bytearray((root / hashes.CACHE).read_bytes())
    data[len(data) // 2:len(data) // 2 + 8192] = b"\x13" * 8192  # pages of rows, not page 1
    (root / hashes.CACHE).write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        hashes.hash_files(root, files, workers=1)
    message = str(caught.value)
    assert "\n" not in message and str(root / hashes.CACHE) in message and "aside" in message


def test_rows_are_looked_up_by_path_in_part(tmp_path):
    with hashcache.HashCache(tmp_path) as cache:
        cache.put([(f"train/A/{i}.png", i, i, 1, bytes(32), 0, 0, 0, None, None, None, 0.0, 0,
                    None) for i in range(1000)])
        found = cache.rows([f"train/A/{i}.png" for i in range(0, 2000, 2)])
    assert len(found) == 500 and found["train/A/998.png"][1] == 998


def test_thumbnails_are_stored_compressed_read_as_asked_and_old_raw_rows_still_read(tmp_path):
    root, files = _root(tmp_path / "root", 6)
    first = hashes.hash_files(root, files, workers=1)
    assert isinstance(first.thumb, hashes.Thumbnails)  # not held in memory
    thumbs = np.asarray(first.thumb)
    assert thumbs.shape == (len(files), 18, 32, 3) and thumbs[first.readable].any()
    assert not thumbs[~first.readable].any()
    rows = np.array([[4, 0], [0, 4], [4, 4]])
    assert np.array_equal(first.thumb[rows], thumbs[rows])
    with sqlite3.connect(root / hashes.CACHE) as db:
        sizes = [n for (n,) in db.execute("SELECT length(thumb) FROM files WHERE readable=1")]
        assert max(sizes) < hashes.THUMB_BYTES  # scenes compress
        for path, i in ((os.path.relpath(f, root), i) for i, f in enumerate(files)):
            if first.readable[i]:  # as the versions before compression wrote them
                db.execute("UPDATE files SET thumb=? WHERE path=?", (thumbs[i].tobytes(), path))
    db.close()
    again = hashes.hash_files(root, files, workers=1)
    assert again.work["hashed"] == 0 and np.array_equal(np.asarray(again.thumb), thumbs)


def test_a_row_changed_under_a_run_is_one_line_not_a_wrong_thumbnail(tmp_path):
    root, files = _root(tmp_path / "root", 2)
    features = hashes.hash_files(root, files, workers=1)
    with sqlite3.connect(root / hashes.CACHE) as db:
        db.execute("UPDATE files SET sha256=zeroblob(32)")
    db.close()
    with pytest.raises(DataError, match="changed during this run"):
        features.thumb[np.flatnonzero(features.readable)]


def test_flushed_verdicts_are_written_and_forgotten_then_read_again(tmp_path):
    verdicts = hashcache.Verdicts(tmp_path, version=3)
    verdicts["a:b"] = (0.5, float("nan"), False)
    verdicts.flush()
    assert verdicts.known == {} and not verdicts.new
    assert verdicts.get("a:b")[0] == 0.5 and "c:d" not in verdicts
    verdicts.close()
    assert hashcache.Verdicts(tmp_path, version=4).get("a:b") is None  # another check's
