"""An import killed (SIGKILL) at any point and run again ends as one never stopped: the
same files under the same names, the same records in the same order, no temporary files."""

import io
import signal
import subprocess
import sys
import zipfile
from dataclasses import asdict

import pytest
from PIL import Image

from geoconvnet.curate.importers import import_folders, import_osv5m
from geoconvnet.data.manifest import LOCK, NAME, open_manifest
from geoconvnet.data.manifest_index import NAME as INDEX

# Run in a child: the import with batches of 4 records, killed at the AT-th image written
# ("after": the image is there, its record not yet; "before": its temporary file may be)
# or in the middle of writing the AT-th batch of records ("record": half a line on disk).
KILLED = """
import os, signal, sys
from geoconvnet.curate import importers
from geoconvnet.data import manifest
kind, src, out, mode, at = sys.argv[1:]
importers.BATCH, at, calls = 4, int(at), 0

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def counted(real):
    def call(*args):
        global calls
        calls += 1
        if mode == "before" and calls == at:
            die()
        real(*args)
        if mode == "after" and calls == at:
            die()
    return call

def half_written(self):
    global calls
    calls += bool(self._pending)
    if calls == at:
        with open(self.path, "a") as f:
            f.write("".join(self._pending)[:150])
        die()
    write(self)

if mode == "record":
    write, manifest.Manifest._flush = manifest.Manifest._flush, half_written
else:
    name = "link" if kind == "folders" else "replace"
    setattr(os, name, counted(getattr(os, name)))
(importers.import_folders if kind == "folders" else importers.import_osv5m)(src, out)
"""


def _jpeg(i):
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (i * 20 % 255, 80, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _sources(root):
    for i in range(12):
        folder = root / "folders" / ("Norway" if i % 3 else "Japan")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i}.jpg").write_bytes(_jpeg(i))
    osv = root / "osv5m"
    (osv / "images" / "train").mkdir(parents=True)
    rows = ["id,latitude,longitude,country,captured_at,creator_username"]
    with zipfile.ZipFile(osv / "images" / "train" / "00.zip", "w") as archive:
        for i in range(12):
            archive.writestr(f"train/{500 + i}.jpg", _jpeg(i))
            rows.append(f"{500 + i},{i}.5,10.25,{'NO' if i % 3 else 'JP'},2021-05-04,ann")
    (osv / "train.csv").write_text("\n".join(rows) + "\n")
    return {"folders": root / "folders", "osv5m": osv}


def _state(out):
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and p.name not in (LOCK, NAME)
             and not p.name.startswith(INDEX)}  # the manifest's index: derived, may differ
    records = [{k: v for k, v in asdict(r).items() if k != "collected"}
               for r in open_manifest(out, repair=False).all_records]
    return files, records


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    made = _sources(root)
    runs = {"folders": import_folders, "osv5m": import_osv5m}
    whole = {kind: _state(runs[kind](src, root / f"whole-{kind}") and root / f"whole-{kind}")
             for kind, src in made.items()}
    return made, runs, whole


@pytest.mark.parametrize("kind", ["folders", "osv5m"])
@pytest.mark.parametrize("mode,at", [("after", 6), ("before", 7), ("record", 2)])
def test_a_killed_import_run_again_equals_one_never_stopped(sources, tmp_path, kind, mode,
                                                            at):
    made, runs, whole = sources
    out = tmp_path / "out"
    child = subprocess.run([sys.executable, "-c", KILLED, kind, str(made[kind]), str(out),
                            mode, str(at)], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    files, records = _state(out)
    assert 0 < len(files) and len(records) < 12  # stopped half-way, as meant
    assert all(r["file"] in files for r in records)  # no record of a missing image
    result = runs[kind](made[kind], out)
    assert sum(result.imported.values()) == 12 - len(records)
    assert _state(out) == whole[kind]


def test_an_osv5m_image_a_killed_run_wrote_under_a_numbered_name_is_not_written_twice(
        sources, tmp_path):
    made, _, _ = sources
    japan = tmp_path / "out" / "train" / "Japan"
    japan.mkdir(parents=True)
    (japan / "500.jpg").write_bytes(b"someone else's")
    (japan / "500-1.jpg").write_bytes(_jpeg(0))  # written by a killed run, not its record
    import_osv5m(made["osv5m"], tmp_path / "out")
    files = {r.source_id: r.file for r in open_manifest(tmp_path / "out").records}
    assert files["500"] == "train/Japan/500-1.jpg" and not (japan / "500-2.jpg").exists()
    assert (japan / "500.jpg").read_bytes() == b"someone else's"
