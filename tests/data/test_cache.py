import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from geoconvnet.data import cache, cachefile
from geoconvnet.data.images import load_image
from geoconvnet.data.index import index_dataset
from geoconvnet.data.root import DataRoot
from geoconvnet.data.synth import synth
from geoconvnet.data.transforms import Preprocessing, eval_transform
from geoconvnet.utils.errors import DataError


@pytest.fixture()
def source(tmp_path):
    return synth(tmp_path / "src", classes=3, per_class=6, test_per_class=2, size=(320, 180),
                 workers=1)


# Tiles of these 160x90 test images are tiny, so their JPEG headers weigh more than at 800x450.
@pytest.mark.parametrize("max_crop, tiles, share", [(448, 1, 0.05), (96, 4, 0.1)])
def test_round_trip_size_and_content(source, tmp_path, max_crop, tiles, share):
    out = tmp_path / "cache"
    summary = cache.prepare(source, out, workers=1, max_crop=max_crop)
    assert summary["converted"] == 24 and summary["bad"] == 0
    assert summary["with_coordinates"] == 0  # synth writes none: no entry has latlon
    assert summary["cache_bytes"] < share * summary["source_bytes"]
    manifest = cache.load_manifest(out)
    key = "train/" + sorted(os.listdir(source / "train"))[0] + "/0.png"
    entry = manifest["entries"][key]
    opened = cachefile.open_cached(str(out / entry["file"]), entry["sha256"])
    assert len(getattr(opened, "boxes", [None])) == tiles
    decoded = cachefile.read_cached(str(out / entry["file"]), entry["sha256"])
    assert decoded.size == (160, 90) and decoded.mode == "RGB"
    with Image.open(out / entry["file"]) as plain:  # any JPEG reader opens the file
        plain.load()
    # Reading a cache file by path (report cards, predict) gives the whole image.
    assert load_image(out / entry["file"]).size == (160, 90)
    expected = np.asarray(load_image(source / key).reduce(2), dtype=float)
    error = np.abs(np.asarray(decoded, dtype=float) - expected).mean()
    assert error < 6  # JPEG quality 94 on grainy images: a few grey levels on average


def test_eval_views_see_the_same_image_region(source, tmp_path):
    out = tmp_path / "cache"
    cache.prepare(source, out, workers=1, max_crop=96)  # tiled: views see the stitched image
    pp = Preprocessing(crop_size=96, image_size=48)
    key = "test/" + sorted(os.listdir(source / "test"))[0] + "/0.png"
    for view, shape in (("center", (1, 3, 48, 48)), ("full", (1, 3, 90, 160)), ("grid", None)):
        from_png = eval_transform(pp, view)(load_image(source / key))
        from_cache = eval_transform(pp, view, DataRoot.open(out).scale)(
            cachefile.read_cached(str(out / (key + ".jpg")), None))
        assert from_png.shape == from_cache.shape and (shape is None or from_png.shape == shape)
        assert (from_png.float() - from_cache.float()).abs().mean() < 8, view  # grey levels


@pytest.mark.parametrize("length, overlap", [(450, 224), (800, 224), (900, 448), (1600, 448),
                                             (90, 48), (160, 48), (230, 224), (800, 0)])
def test_tile_spans_hold_every_crop_and_cut_on_mcu_borders(length, overlap):
    spans = cachefile.tile_spans(length, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(a % 16 == 0 and (b % 16 == 0 or b == length) for a, b in spans)
    for start in range(length - overlap + 1):
        assert any(a <= start and start + overlap <= b for a, b in spans), start
    if len(spans) == 2:
        assert max(b - a for a, b in spans) <= length - 16  # a tile saves decoding


def test_tiled_crop_decodes_one_tile_and_matches_the_whole_image(source, tmp_path, monkeypatch):
    whole, tiled = tmp_path / "whole", tmp_path / "tiled"
    cache.prepare(source, whole, workers=1, max_crop=0)
    cache.prepare(source, tiled, workers=1, max_crop=96)
    name = "train/" + sorted(os.listdir(source / "train"))[0] + "/0.png.jpg"
    reference = np.asarray(cachefile.read_cached(str(whole / name), None), dtype=int)
    image = cachefile.open_cached(str(tiled / name), None)
    assert (image.width, image.height) == (160, 90)
    decoded = []
    monkeypatch.setattr(cachefile.TiledImage, "tile", lambda self, i, f=cachefile.TiledImage.tile:
                        decoded.append(i) or f(self, i))
    differing = []
    for top, left in [(0, 0), (42, 112), (20, 60), (42, 0), (0, 112)]:
        decoded.clear()
        crop = np.asarray(image.region(top, left, 48, 48), dtype=int)
        assert len(decoded) == 1  # one tile, not the whole image
        differing.append((crop != reference[top:top + 48, left:left + 48]).mean())
    # Tiles cut on MCU borders decode like the whole image except next to a tile edge.
    assert max(differing) < 0.1
    decoded.clear()
    assert np.asarray(image.region(0, 0, 90, 90)).shape == (90, 90, 3)  # wider than a tile
    assert len(decoded) == 4  # stitched


def test_cache_jpegs_decode_like_plain_ones_in_fewer_bytes(source):
    image = load_image(source / "train" / sorted(os.listdir(source / "train"))[0] / "0.png")
    ours = cachefile._jpeg(image, 94, "420")
    plain = io.BytesIO()
    image.save(plain, format="JPEG", quality=94, subsampling=2)
    assert len(ours) < len(plain.getvalue())  # fitted Huffman tables
    ours, plain = (np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                   for data in (ours, plain.getvalue()))
    assert np.array_equal(ours, plain)  # the entropy coding is lossless: same pixels


def test_a_broken_tile_table_is_named(tmp_path):
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (32, 32)).save(path, comment=b'{"geoconvnet_tiles": [oops')
    with pytest.raises(DataError, match="odd.jpg: unreadable tile table"):
        cachefile.open_cached(str(path), None)


def test_prepare_is_incremental(source, tmp_path):
    out = tmp_path / "cache"
    cache.prepare(source, out, workers=1)
    first = cache.load_manifest(out)
    changed = next((source / "train").rglob("1.png"))
    Image.new("RGB", (320, 180), (255, 0, 0)).save(changed)
    added = changed.with_name("new.png")
    Image.new("RGB", (320, 180), (0, 0, 255)).save(added)
    removed = next((source / "train").rglob("2.png"))
    removed.unlink()
    summary = cache.prepare(source, out, workers=1)
    assert (summary["converted"], summary["unchanged"], summary["removed"]) == (2, 22, 1)
    second = cache.load_manifest(out)
    key = str(changed.relative_to(source))
    assert second["entries"][key]["sha256"] != first["entries"][key]["sha256"]
    assert not any("latlon" in e for e in second["entries"].values())
    (source / "coordinates.csv").write_text(f"file,lat,lon\n{key},45.5,-73.25\n")
    third = cache.prepare(source, out, workers=1)  # coordinates alone: nothing re-encoded
    assert (third["converted"], third["unchanged"], third["with_coordinates"]) == (0, 24, 1)
    assert cache.load_manifest(out)["entries"][key]["latlon"] == [45.5, -73.25]
    place = DataRoot.open(out).coordinates([str(out / (key + ".jpg"))])
    assert place.tolist() == [[45.5, -73.25]]
    assert not (out / (str(removed.relative_to(source)) + ".jpg")).exists()


def test_a_rerun_keeps_the_caches_own_settings_unless_asked(source, tmp_path):
    """A cache made with other settings (e.g. before a default changed) stays incremental."""
    out = tmp_path / "cache"
    cache.prepare(source, out, workers=1, quality=90, chroma="444")
    summary = cache.prepare(source, out, workers=1)
    assert (summary["converted"], summary["unchanged"]) == (0, 24)
    assert (cache.load_manifest(out)["quality"], cache.load_manifest(out)["chroma"]) == (90, "444")
    with pytest.raises(DataError, match="quality 90"):
        cache.prepare(source, out, workers=1, quality=95)
    cache.prepare(source, tmp_path / "new", workers=1)
    assert cache.load_manifest(tmp_path / "new")["quality"] == cache.DEFAULT_QUALITY


def test_bad_sources_are_reported_and_skipped(source, tmp_path):
    bad = next((source / "train").iterdir()) / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    out = tmp_path / "cache"
    summary = cache.prepare(source, out, workers=1)
    assert summary["bad"] == 1
    assert "broken.png" in next(iter(cache.load_manifest(out)["bad_files"]))
    index = index_dataset(out)
    assert any(p.endswith("broken.png") for p in index.bad_files)


def test_corrupted_cache_file_is_detected_and_named(source, tmp_path):
    out = tmp_path / "cache"
    cache.prepare(source, out, workers=1)
    victim = next((out / "train").rglob("3.png.jpg"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    problems = cache.verify(out)
    assert list(problems) == [str(victim)] and "checksum mismatch" in problems[str(victim)]
    with pytest.raises(DataError, match="3.png.jpg: corrupted cache file"):
        cachefile.read_cached(str(victim), cache.checksums(out)[str(victim)])
    index = index_dataset(out)
    assert str(victim) in index.bad_files
    assert str(victim) not in {p for p, _ in index.train + index.val}


def test_cache_and_folder_give_the_same_classes_splits_and_counts(source, tmp_path):
    out = tmp_path / "cache"
    cache.prepare(source, out, workers=1)
    folder, cached = index_dataset(source, seed=3), index_dataset(out, seed=3)
    assert folder.classes == cached.classes
    assert cached.data.scale == 0.5 and folder.data.scale == 1.0
    for split in ("train", "val", "test"):
        a = [(os.path.relpath(p, source), l) for p, l in getattr(folder, split)]
        b = [(os.path.relpath(p, out)[:-4], l) for p, l in getattr(cached, split)]
        assert a == b, split


def test_train_and_evaluate_from_a_cache(source, tmp_path):
    from geoconvnet.inference.evaluate import evaluate
    from geoconvnet.training.train import train

    out = tmp_path / "cache"
    cache.prepare(source, out, workers=1, max_crop=96)  # training crops read single tiles
    run = train(data=str(out), arch="resnet18", weights="none", epochs=1, batch_size=8,
                crop_size=96, image_size=48, num_workers=0, runs_dir=str(tmp_path / "runs"),
                name="c")
    report = json.loads((run / "data_report.json").read_text())
    assert report["counts"]["train"] + report["counts"]["val"] == 18
    on_cache = evaluate(run, out, write=False, num_workers=0)
    on_png = evaluate(run, source, write=False, num_workers=0)
    assert on_cache.metrics["n"] == on_png.metrics["n"] == 6


def test_full_colour_resolution_keeps_a_thin_yellow_line(tmp_path):
    """Why the default is 4:4:4: a yellow centre line 2 pixels wide (after the 2x reduce)
    keeps its colour, while 4:2:0 halves the chroma resolution and washes it out."""
    image = np.full((180, 320, 3), 110, dtype=np.uint8)  # grey asphalt
    image[:, 158:162] = (235, 200, 40)  # 4 px wide, 2 px at half size
    root = tmp_path / "src"
    for split in ("train", "test"):
        (root / split / "A").mkdir(parents=True)
        Image.fromarray(image).save(root / split / "A" / "0.png")
    errors = {}
    for chroma in ("444", "420"):
        out = tmp_path / chroma
        cache.prepare(root, out, workers=1, chroma=chroma)
        assert cache.load_manifest(out)["chroma"] == chroma
        entry = cache.load_manifest(out)["entries"]["train/A/0.png"]
        decoded = np.asarray(cachefile.read_cached(str(out / entry["file"]), entry["sha256"]), float)
        errors[chroma] = np.abs(decoded[:, 79:81] - (235, 200, 40)).mean()
    assert errors["444"] < 8 < errors["420"]
    with pytest.raises(DataError, match="chroma 444"):
        cache.prepare(root, tmp_path / "444", workers=1, chroma="420")
