import hashlib

import pytest
from PIL import Image, ImageDraw

from geoconvnet.cli import main
from geoconvnet.curate import filter as screen
from geoconvnet.data.synth import class_styles, draw_scene, synth


def _bad_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (480, 270), (3, 3, 5)).save(folder / "black.png")
    Image.new("RGB", (480, 270), (120, 130, 140)).save(folder / "uniform.png")
    loading = Image.linear_gradient("L").resize((480, 270)).point(lambda v: 20 + v * 70 // 255)
    loading = loading.convert("RGB")  # a dark gradient with one line of text
    ImageDraw.Draw(loading).text((200, 130), "Loading...", fill=(220, 220, 220))
    loading.save(folder / "loading.png")
    draw_scene(class_styles(2, 0)[0], (160, 90), seed=5).save(folder / "tiny.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return {"black.png": "black frame", "uniform.png": "near-uniform",
            "loading.png": "very low detail", "tiny.png": "too small", "broken.png": "unreadable"}


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*.png")}


def test_built_in_checks_name_each_bad_frame_and_moves_undo(tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=4, test_per_class=1, size=(480, 270),
                 workers=1)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    expected = _bad_images(root / "train" / country)
    rejected = screen.filter_root(root, workers=1)
    assert {r.file.rsplit("/", 1)[1]: r.reason.split(" (")[0] for r in rejected} == expected
    assert (root / screen.REPORT).read_text().count("\n") == 1 + len(expected)
    before = _digests(root)
    assert main(["data", "filter", str(root), "--move-rejects", str(tmp_path / "rejects"),
                 "--workers", "1"]) == 0
    assert "5 image(s) moved" in capsys.readouterr().out
    assert not any(name in f for f in _digests(root) for name in expected)
    assert main(["data", "filter", "--undo", str(tmp_path / "rejects")]) == 0
    assert _digests(root) == before


def _overlaid(image):
    """An interface-like overlay: a top bar and a map panel, as a game draws them."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width, 28), fill=(20, 20, 30))
    draw.rectangle((image.width - 130, image.height - 90, image.width - 8, image.height - 8),
                   fill=(235, 235, 225), outline=(250, 60, 60), width=3)
    return image


def _labelled(root, n, seed):
    styles = class_styles(4, 0)
    for i in range(n):
        scene = draw_scene(styles[i % 4], (320, 180), seed=seed + i)
        for kind, image in (("valid", scene), ("invalid", _overlaid(scene))):
            (root / "train" / kind).mkdir(parents=True, exist_ok=True)
            image.save(root / "train" / kind / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_learned_filter_separates_interface_overlays(tmp_path):
    labelled = _labelled(tmp_path / "labelled", 24, seed=0)
    run = screen.train_filter(labelled, tmp_path / "runs", weights="none", epochs=6,
                              crop_size=160, image_size=80, batch_size=8, lr=1e-3,
                              head_lr_mult=1.0, optimizer="adamw", num_workers=0, patience=6)
    unseen = _labelled(tmp_path / "unseen", 8, seed=1000)
    (unseen / "train").rename(unseen / "test")  # a root to screen: test/valid, test/invalid
    rejected = {r.file for r in screen.filter_root(unseen, run, threshold=0.5, workers=1,
                                                   min_size=(100, 100))}
    overlays = {f"test/invalid/{i}.png" for i in range(8)}
    clean = {f"test/valid/{i}.png" for i in range(8)}
    assert len(rejected & overlays) >= 7 and len(rejected & clean) <= 1, sorted(rejected)


def test_a_model_that_is_no_filter_is_refused(trained_run, tiny_data):
    with pytest.raises(Exception, match="a filter model has exactly 'valid' and 'invalid'"):
        screen.filter_root(tiny_data, trained_run, workers=1, min_size=(100, 100))
