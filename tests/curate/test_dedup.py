import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from geoconvnet.cli import main
from geoconvnet.curate import dedup, hashcache, hashes
from geoconvnet.curate.hashes import CACHE
from geoconvnet.data.cache import prepare
from geoconvnet.data.manifest import NAME as MANIFEST
from geoconvnet.data.synth import synth

SIZE = (480, 270)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _cut(image: Image.Image, fraction: float, edge: str) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    return image.crop({"left": (dx, 0, w, h), "right": (0, 0, w - dx, h),
                       "top": (0, dy, w, h), "bottom": (0, 0, w, h - dy)}[edge])


def _overlay(image: Image.Image, kind: str) -> Image.Image:
    image = image.copy()
    draw = ImageDraw.Draw(image, "RGBA")
    w, h = image.size
    if kind == "logo":
        draw.ellipse([w * 0.7, h * 0.1, w * 0.7 + 40, h * 0.1 + 40], fill=(230, 40, 40, 255))
    else:  # a bar across the bottom, as a game's interface
        draw.rectangle([0, h - 14, w, h], fill=(30, 30, 40, 255))
    return image


# Each kind of copy people make, as (name, bytes of the copy); a mirror is not a copy.
KINDS = {
    "resized": lambda im: _png(im.resize((SIZE[0] // 2, SIZE[1] // 2), Image.LANCZOS)),
    "re-encoded": lambda im: _jpeg(im, 60),
    "brighter": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.3)),
    "darker": lambda im: _png(ImageEnhance.Brightness(im).enhance(0.75)),
    "crop 5% stretched back": lambda im: _jpeg(_cut(im, 0.05, "left").resize(SIZE)),
    "crop 10% as it is": lambda im: _png(_cut(im, 0.10, "bottom")),
    "logo": lambda im: _jpeg(_overlay(im, "logo")),
    "bar": lambda im: _png(_overlay(im, "bar")),
    "border trimmed all round": lambda im: _png(im.crop((3, 2, SIZE[0] - 3, SIZE[1] - 2))),
}


@pytest.fixture()
def copies(tmp_path):
    """Sample scenes (3 countries, 8 each) with a copy of every kind of one train image:
    in train for the first half of the kinds, in test (leakage) for the rest; and a
    mirrored image, which is not a copy."""
    root = synth(tmp_path / "d", classes=3, per_class=6, test_per_class=2, size=SIZE,
                 workers=1)
    planted = {}
    for n, (kind, make) in enumerate(KINDS.items()):
        country = sorted(p.name for p in (root / "train").iterdir())[n % 3]
        original = f"train/{country}/{n // 3}.png"
        split = "train" if n < len(KINDS) // 2 else "test"
        data = make(Image.open(root / original).convert("RGB"))
        ext = "png" if data.startswith(b"\x89PNG") else "jpg"
        copy = f"{split}/{country}/copy{n}.{ext}"
        (root / copy).write_bytes(data)
        planted[kind] = (original, copy)
    mirrored = ImageOps.mirror(Image.open(root / "train/Lebanon/5.png"))
    (root / "test/Lebanon/mirrored.png").write_bytes(_png(mirrored))
    return root, planted


def _star_of(result):
    return {f: i for i, g in enumerate(result.copy_groups) for f in g.files}


def test_every_kind_of_copy_is_found_within_and_across_splits_and_a_mirror_is_not(copies):
    root, planted = copies
    result = dedup.find_duplicates(root, workers=1)
    star = _star_of(result)
    for kind, (original, copy) in planted.items():
        assert original in star and star[original] == star.get(copy), kind
    assert len(result.copy_groups) == len(KINDS)  # nothing else linked
    assert all(g.kept == g.files[0] and g.kept.startswith("train/")
               for g in result.copy_groups)  # the originals, as large and sharp as any
    assert "test/Lebanon/mirrored.png" not in {f for g in result.groups for f in g.files}
    leaks = {frozenset(g.files) for g in result.leakage}
    assert leaks == {frozenset(pair) for kind, pair in planted.items()
                     if pair[1].startswith("test/")}
    rows = (root / dedup.REPORT).read_text().splitlines()
    assert rows[0].startswith("group,file,split,links,leakage,")
    assert len(rows) == 1 + 2 * len(KINDS)
    assert result.work["candidate pairs"] < 60  # the index, not all 1,000 pairs


def test_a_chain_is_not_one_copy_group():
    """B passes as a copy of A and of C, but A and C are different pictures: A (the best)
    keeps B, and C is not moved for being a copy of a copy."""

    class Checker:
        asked = []

        def check(self, pairs):
            self.asked += [tuple(p) for p in pairs.tolist()]
            return np.array([{a, b} != {0, 2} for a, b in pairs.tolist()], bool)

    n = 3
    features = hashes.Features(
        ["a", "b", "c"], ["1", "2", "3"], np.array([[480, 270], [240, 135], [480, 270]]),
        np.ones(n, bool), np.zeros((n, len(hashes.VARIANTS)), np.uint64),
        np.zeros((n, 4), np.uint64), np.zeros((n, 18, 32, 3), np.uint8),
        np.array([1.0, 0.9, 1.0], np.float32), np.zeros(n, bool))
    checker = Checker()
    stars, checked = dedup._stars(features, ["train/X/a.png", "train/X/b.png",
                                             "train/X/c.png"], np.array([[0, 1], [1, 2]]),
                                  checker)
    assert stars == [[0, 1]] and (0, 2) in checker.asked and len(checked) == 0


def test_move_keeps_the_full_size_sharp_original_over_a_thumbnail_and_a_blurred_copy(
        copies, tmp_path, capsys):
    root, planted = copies
    original = "test/Albania/0.png"  # in test: quality comes before the split
    image = Image.open(root / original).convert("RGB")
    (root / "train/Albania/thumb.png").write_bytes(_png(image.resize((50, 50))))
    (root / "train/Albania/blurred.png").write_bytes(
        _png(image.filter(ImageFilter.GaussianBlur(2))))
    before = _digests(root)
    assert main(["data", "dedup", str(root), "--move", str(tmp_path / "moved"),
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "leakage" in out and f"{len(KINDS) + 2} image(s) moved" in out
    after = _digests(root)
    assert original in after and "train/Albania/thumb.png" not in after
    assert "train/Albania/blurred.png" not in after
    assert all(o in after and c not in after for o, c in planted.values())
    again = dedup.find_duplicates(root, workers=1)
    assert again.copy_groups == [] and not again.leakage
    assert main(["data", "dedup", str(root), "--undo", str(tmp_path / "moved")]) == 0
    assert _digests(root) == before


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg")}


def test_the_same_image_under_two_countries_is_a_label_conflict_and_never_moved(
        tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=3, test_per_class=1, size=SIZE,
                 workers=1)
    a, b = sorted(p.name for p in (root / "train").iterdir())
    image = Image.open(root / f"train/{a}/0.png").convert("RGB")
    (root / f"test/{b}/same.jpg").write_bytes(_jpeg(image))
    assert main(["data", "dedup", str(root), "--move", str(tmp_path / "moved"),
                 "--workers", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"label conflict ({a} vs {b})" in out and "0 image(s) moved" in out
    assert "1 label conflict(s) not moved" in out
    assert (root / f"test/{b}/same.jpg").is_file()
    rows = [line.split(",") for line in (root / dedup.REPORT).read_text().splitlines()]
    assert [r[-1] for r in rows[1:]] == [f"{a}|{b}"] * 2
    assert len(dedup.find_duplicates(root, workers=1).conflicts) == 1


def test_the_same_spot_across_splits_is_leakage_but_never_moved(copies):
    root, planted = copies
    records = [{"file": "train/Lebanon/4.png", "lat": 33.8900, "lon": 35.5000},
               {"file": "test/Lebanon/0.png", "lat": 33.8902, "lon": 35.5001},  # 24 m away
               {"file": "test/Lebanon/1.png", "lat": 33.8950, "lon": 35.5000}]  # 556 m away
    with open(root / MANIFEST, "w") as f:
        for r in records:
            f.write(json.dumps({"split": r["file"].split("/")[0], "country": "Lebanon",
                                "source": "streetview", "source_id": r["file"], **r}) + "\n")
    result = dedup.find_duplicates(root, workers=1)
    groups = {frozenset(g.files): g for g in result.groups}
    spot = groups[frozenset({"train/Lebanon/4.png", "test/Lebanon/0.png"})]
    assert spot.links == {"spot"} and spot.leakage and spot.kept is None
    assert not any("test/Lebanon/1.png" in g for g in groups)
    assert all("test/Lebanon/0.png" not in g.files for g in result.copy_groups)


def test_the_report_follows_files_a_split_moved(copies):
    root, planted = copies
    result = dedup.find_duplicates(root, workers=1)
    original, copy = planted["logo"]  # a train image with its copy in test
    moved = result.renamed({copy: copy.replace("test/", "train/")})
    dedup.write_report(root, moved.groups, moved.copy_groups)
    rows = (root / dedup.REPORT).read_text()
    assert copy not in rows and copy.replace("test/", "train/") in rows
    assert len(moved.leakage) == len(result.leakage) - 1


def test_a_corrupt_hash_cache_is_rebuilt_with_a_one_line_warning(copies, capsys):
    root, planted = copies
    dedup.find_duplicates(root, workers=1)
    (root / CACHE).write_bytes(b"PK\x03\x04 not a zip at all")
    (root / ".geoconvnet-hashes.json").write_text("{broken")  # an old version's: ignored
    capsys.readouterr()
    assert main(["data", "dedup", str(root), "--workers", "2"]) == 0  # worker processes too
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and CACHE in warnings[0] and "Traceback" not in err
    with hashcache.HashCache(root) as rebuilt:
        assert rebuilt.count() == 24 + len(KINDS) + 1


def test_unchanged_and_moved_files_are_not_decoded_again(copies, monkeypatch):
    root, planted = copies
    first = dedup.find_duplicates(root, workers=1)
    again = dedup.find_duplicates(root, workers=1)  # every verdict cached
    assert again.work["thumbnail checks"] == again.work["pixel checks"] == 0
    assert again.work["cached verdicts"] == first.work["thumbnail checks"] > 0
    (root / "train/Albania/0.png").rename(root / "train/Albania/renamed.png")  # as a split
    monkeypatch.setattr(hashes, "_decode_reduced", _no_decoding)
    files = sorted(str(p) for p in root.glob("*/*/*.*"))
    features = hashes.hash_files(root, files, workers=1)
    assert features.readable.all() and str(root / "train/Albania/renamed.png") in files


def _no_decoding(*args):
    raise AssertionError("decoded again")


def test_the_training_cache_is_read_where_it_is_up_to_date(copies, tmp_path):
    root, planted = copies
    cache = tmp_path / "cache"
    prepare(root, cache, scale=1.0, workers=1)  # at 1600x900 the default half size is as good
    (root / "train/Albania/4.png").write_bytes(
        _png(Image.open(root / "train/Albania/4.png").rotate(180)))  # changed since
    features = hashes.hash_files(root, sorted(str(p) for p in root.glob("*/*/*.*")), 1, cache)
    row = {f: i for i, f in enumerate(features.files)}
    assert features.from_cache[row[str(root / "train/Albania/0.png")]]
    assert not features.from_cache[row[str(root / "train/Albania/4.png")]]
    digest = hashlib.sha256((root / "train/Albania/0.png").read_bytes()).hexdigest()
    assert features.sha256[row[str(root / "train/Albania/0.png")]] == digest  # the original's
    result = dedup.find_duplicates(root, workers=1, cache=cache)
    star = _star_of(result)
    assert all(star.get(o, -1) == star.get(c) for o, c in planted.values())
    other = synth(tmp_path / "other", classes=2, per_class=2, test_per_class=1, size=(64, 36),
                  workers=1)
    with pytest.raises(Exception, match="not of"):
        dedup.find_duplicates(other, workers=1, cache=cache)


@pytest.mark.parametrize("flags, named", [(["--spot-m", "-5"], "--spot-m"),
                                          (["--max-distance", "40"], "--max-distance"),
                                          (["--max-distance", "-1"], "--max-distance")])
def test_bad_flags_are_one_line(tmp_path, capsys, flags, named):
    root = synth(tmp_path / "d", classes=2, per_class=2, test_per_class=1, size=(64, 36),
                 workers=1)
    capsys.readouterr()
    assert main(["data", "dedup", str(root), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0]
    assert not (root / CACHE).exists()  # refused before any work
