import io
import sqlite3

import cv2
import imagehash
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from geoconvnet.curate import hashes
from geoconvnet.data.synth import class_styles, draw_scene


def _frame(image: Image.Image) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return hashes.read_frame(hashes.Source("x"), buffer.getvalue())[0]


def test_the_batched_phash_is_imagehash_phash_of_each_box():
    scene = draw_scene(class_styles(3, 0)[1], (800, 450), seed=4)
    grey = cv2.cvtColor(_frame(scene), cv2.COLOR_RGB2GRAY)
    ours = hashes.phashes(grey)
    small = cv2.resize(grey, hashes.HASH_FRAME, interpolation=cv2.INTER_AREA).astype(np.float32)
    boxes = np.round(hashes.HASH_ROWS @ small @ hashes.HASH_COLS.transpose(0, 2, 1))
    theirs = [int(str(imagehash.phash(Image.fromarray(b.astype(np.uint8)))), 16) for b in boxes]
    assert [int(h) for h in ours] == theirs and len(set(theirs)) > 10


def test_detail_tells_a_blurred_frame_and_a_stretched_thumbnail_from_their_source():
    scene = draw_scene(class_styles(3, 0)[2], (1600, 900), seed=7)
    sharp = hashes.frame_features(_frame(scene))["detail"]
    blurred = hashes.frame_features(_frame(scene.filter(ImageFilter.GaussianBlur(2))))["detail"]
    thumb = hashes.frame_features(_frame(scene.resize((160, 90))))["detail"]
    darker = hashes.frame_features(_frame(ImageEnhance.Brightness(scene).enhance(0.8)))["detail"]
    assert blurred < 0.5 * sharp and thumb < 0.5 * sharp
    assert abs(darker - sharp) < 0.15 * sharp  # brightness is not sharpness


def test_rows_of_another_format_are_hashed_again_silently(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "train" / "A").mkdir(parents=True)
    draw_scene(class_styles(2, 0)[0], (320, 180), seed=1).save(root / "train/A/0.png")
    files = [str(root / "train/A/0.png")]
    first = hashes.hash_files(root, files, workers=1)
    with sqlite3.connect(root / hashes.CACHE) as db:  # what a misread would return
        db.execute("UPDATE files SET format=?, phash=zeroblob(136)", (hashes.FORMAT + 1,))
    db.close()
    again = hashes.hash_files(root, files, workers=1)
    assert (again.phash == first.phash).all() and again.phash.any()
    assert again.work["hashed"] == 1 and "warning" not in capsys.readouterr().err


def test_pairs_checked_in_chunks_find_the_same_copies(tmp_path, monkeypatch):
    from geoconvnet.curate import dedup  # (a test file of the hashes, this one test of dedup)

    root = tmp_path / "root"
    styles = class_styles(2, 0)
    for i in range(4):
        scene = draw_scene(styles[i % 2], (320, 180), seed=i)
        for split, name, image in (("train", f"{i}.png", scene),
                                   ("test", f"{i}-small.png", scene.resize((240, 135))),
                                   ("test", f"{i}-dark.png",
                                    ImageEnhance.Brightness(scene).enhance(0.8))):
            (root / split / "France").mkdir(parents=True, exist_ok=True)
            image.save(root / split / "France" / name)
    whole = dedup.find_duplicates(root, workers=1, report=False)
    (root / hashes.CACHE).unlink()  # every pair checked again
    monkeypatch.setattr(dedup, "CHUNK", 2)
    chunked = dedup.find_duplicates(root, workers=1, report=False)
    assert chunked.work == whole.work and whole.work["thumbnail checks"] > 4

    def stars(result):
        return sorted(sorted(g.files) for g in result.copy_groups)

    assert stars(chunked) == stars(whole) and len(stars(whole)) == 4
