import hashlib
import io
import json

import pytest
from PIL import Image

from geoconvnet.cli import main
from geoconvnet.curate import dedup
from geoconvnet.curate.hashes import CACHE
from geoconvnet.data.manifest import NAME as MANIFEST
from geoconvnet.data.synth import synth


@pytest.fixture()
def root(tmp_path):
    """Sample data with planted copies: an exact copy within train, a re-encoded copy of a
    train image in test (leakage), a half-size and a slightly (1%) cropped copy in train."""
    root = synth(tmp_path / "d", classes=3, per_class=6, test_per_class=2, size=(480, 270),
                 workers=1)
    a = root / "train" / "Albania"
    (a / "exact.png").write_bytes((a / "0.png").read_bytes())
    image = Image.open(a / "1.png").convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    (root / "test" / "Albania" / "leak.jpg").write_bytes(buffer.getvalue())
    Image.open(a / "2.png").resize((240, 135)).save(a / "small.png")
    w, h = image.size
    Image.open(a / "3.png").crop((3, 2, w - 3, h - 2)).save(a / "cropped.png")
    return root


def _groups(result):
    return {frozenset(g.files): g for g in result.groups}


def test_copies_are_grouped_and_a_train_test_copy_is_leakage(root):
    result = dedup.find_duplicates(root, workers=1)
    groups = _groups(result)
    a = "train/Albania"
    assert groups[frozenset({f"{a}/0.png", f"{a}/exact.png"})].links == {"exact", "near"}
    leak = groups[frozenset({f"{a}/1.png", "test/Albania/leak.jpg"})]
    assert leak.leakage and leak.links == {"near"} and leak.files[0].startswith("train/")
    assert frozenset({f"{a}/2.png", f"{a}/small.png"}) in groups
    assert frozenset({f"{a}/3.png", f"{a}/cropped.png"}) in groups
    assert len(result.groups) == 4  # and no two different scenes
    assert [g.files for g in result.leakage] == [leak.files]
    rows = (root / dedup.REPORT).read_text().splitlines()
    assert len(rows) == 1 + 8 and any("leak.jpg" in r and r.endswith("True") for r in rows)


def test_the_same_spot_across_splits_is_leakage(root):
    records = [{"file": "train/Lebanon/0.png", "lat": 33.8900, "lon": 35.5000},
               {"file": "test/Lebanon/0.png", "lat": 33.8902, "lon": 35.5001},  # 24 m away
               {"file": "test/Lebanon/1.png", "lat": 33.8950, "lon": 35.5000}]  # 556 m away
    with open(root / MANIFEST, "w") as f:
        for r in records:
            f.write(json.dumps({"split": r["file"].split("/")[0], "country": "Lebanon",
                                "source": "streetview", "source_id": r["file"], **r}) + "\n")
    groups = _groups(dedup.find_duplicates(root, workers=1))
    spot = groups[frozenset({"train/Lebanon/0.png", "test/Lebanon/0.png"})]
    assert spot.links == {"spot"} and spot.leakage
    assert not any("test/Lebanon/1.png" in g for g in groups)
    result = dedup.find_duplicates(root, workers=1)
    assert all("spot" not in g.links for g in result.copy_groups)  # --move never takes them


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg")}


def test_move_keeps_one_per_group_and_undo_puts_every_file_back(root, tmp_path, capsys):
    before = _digests(root)
    assert main(["data", "dedup", str(root), "--move", str(tmp_path / "moved"),
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 image(s) moved" in out and "leakage" in out
    after = _digests(root)
    assert len(before) - len(after) == 4 and "test/Albania/leak.jpg" not in after
    assert "train/Albania/1.png" in after  # the train copy of the leaked image stays
    again = dedup.find_duplicates(root, workers=1)
    assert again.groups == [] and not again.leakage
    assert main(["data", "dedup", str(root), "--undo", str(tmp_path / "moved")]) == 0
    assert _digests(root) == before


def test_hashes_are_cached_per_file(root):
    dedup.find_duplicates(root, workers=1)
    cache = json.loads((root / CACHE).read_text())
    assert "train/Albania/small.png" in cache
    # An unchanged file is not hashed again: a planted cache value is taken as it is.
    for kind in ("phash", "dhash"):
        cache["train/Lebanon/0.png"][kind] = cache["train/Lebanon/1.png"][kind]
    (root / CACHE).write_text(json.dumps(cache))
    groups = _groups(dedup.find_duplicates(root, workers=1))
    assert frozenset({"train/Lebanon/0.png", "train/Lebanon/1.png"}) in groups
