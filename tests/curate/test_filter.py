import hashlib

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

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
            "loading.png": "loading screen", "tiny.png": "too small", "broken.png": "unreadable"}


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


SIZE = (800, 450)  # half a 1600x900 screenshot: blur radii below are twice as wide there


def _scene(seed, spread=False):
    return draw_scene(class_styles(6, 0)[seed % 6], SIZE, seed=seed, spread=spread)


def _interface(image):
    """A game's interface: a status bar, a guess map with its button, a compass."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    w, h = image.size
    draw.rectangle((w - 300, 8, w - 8, 43), fill=(26, 26, 58))
    draw.text((w - 290, 16), "ROUND 1 / 5   SCORE 0", fill=(255, 255, 255),
              font=ImageFont.load_default(size=14))
    draw.rectangle((w - 220, h - 190, w - 8, h - 40), fill=(170, 211, 223))
    draw.polygon([(w - 200, h - 170), (w - 60, h - 150), (w - 120, h - 60)], fill=(242, 239, 233))
    draw.rounded_rectangle((w - 220, h - 35, w - 8, h - 10), 12, fill=(108, 185, 40))
    draw.ellipse((12, h - 115, 52, h - 75), fill=(40, 40, 40), outline=(230, 230, 230), width=2)
    return image


def _loading_on_gradient():
    image = Image.linear_gradient("L").resize(SIZE).convert("RGB")  # grey, dark to light
    image = Image.merge("RGB", (image.getchannel(0), image.getchannel(0).point(lambda v: v // 2),
                                Image.new("L", SIZE, 140)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((230, 150, 310, 230), fill=(250, 200, 40))  # the logo's badge
    draw.text((330, 190), "GeoGuessr", fill=(255, 255, 255), anchor="lm",
              font=ImageFont.load_default(size=48))
    draw.arc((375, 250, 425, 300), 30, 300, fill=(255, 255, 255), width=8)  # a spinner
    return image


def _half_loaded(image):
    image = image.copy()  # the upper half's tiles have not arrived: flat grey
    ImageDraw.Draw(image).rectangle((0, 0, SIZE[0], SIZE[1] // 2), fill=(128, 128, 128))
    return image


def test_each_kind_of_bad_frame_is_rejected_with_its_reason(tmp_path):
    folder = tmp_path / "root" / "train" / "Somewhere"
    folder.mkdir(parents=True)
    frames = {"blurred.png": (_scene(1).filter(ImageFilter.GaussianBlur(1.5)), "blurred"),
              "blurred-hud.png": (_interface(_scene(2).filter(ImageFilter.GaussianBlur(2))),
                                  "blurred"),
              "loading.png": (_loading_on_gradient(), "loading screen"),
              "half.png": (_half_loaded(_scene(3, spread=True)), "half-loaded"),
              "black-hud.png": (_interface(Image.new("RGB", SIZE)), "mostly black")}
    for name, (image, _) in frames.items():
        image.save(folder / name)
    # The interface alone keeps the mean brightness above the black-frame check's 16.
    assert screen.measure_frame(frames["black-hud.png"][0]).mean > screen.BLACK
    rejected = {r.file.rsplit("/", 1)[1]: r.reason for r in
                screen.filter_root(tmp_path / "root", workers=1)}
    assert {k: v.split(" (")[0] for k, v in rejected.items()} == \
        {name: reason for name, (_, reason) in frames.items()}
    assert "%" in rejected["half.png"] and "%" in rejected["blurred.png"]  # says how much


def test_clean_scenes_pass_also_with_an_interface_or_as_jpeg(tmp_path):
    frames = [_scene(seed, spread=seed % 2 == 1) for seed in range(10, 22)]
    frames += [_interface(frames[0]), _interface(frames[1])]
    for i, image in enumerate(frames):
        image.save(tmp_path / f"{i}.png")
    frames[2].save(tmp_path / "2.jpg", quality=80)
    problems = {p.name: screen.check_image(str(p)) for p in tmp_path.iterdir()}
    assert problems == dict.fromkeys(problems), problems


def test_wide_screenshots_are_judged_at_working_size():
    # 3200x1800: reduced by 2 first, so a radius-4 blur is the radius-2 blur of 1600x900.
    sharp = draw_scene(class_styles(2, 0)[0], (3200, 1800), seed=7)
    assert screen.frame_problem(sharp) is None
    assert screen.frame_problem(sharp.filter(ImageFilter.GaussianBlur(4))).startswith("blurred")


@pytest.mark.parametrize("argv, flag", [
    (["--min-size", "big"], "--min-size 'big'"),
    (["--min-size", "0x180"], "--min-size '0x180'"),
    (["--threshold", "0.5"], "--threshold 0.5 is for the learned filter"),
    (["--model", "m.pt", "--threshold", "1.5"], "--threshold 1.5"),
])
def test_filter_flags_are_refused_in_one_line(tmp_path, capsys, argv, flag):
    assert main(["data", "filter", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}") and err.count("\n") == 1, err


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


def test_an_overcast_sky_is_not_a_half_loaded_frame():
    """A smooth grey sky over a third of a photo (no noise, a gradient of a few levels, also
    as JPEG) is kept; the same area exactly one colour, as tiles that have not arrived, is
    not."""
    import io

    import numpy as np
    from sklearn.datasets import load_sample_image

    photo = np.asarray(Image.fromarray(load_sample_image("china.jpg")).resize((800, 450)))
    for levels, quality in ((3, None), (7, 85), (15, 95)):
        pixels = photo.astype(float).copy()
        pixels[:160] = 200 + np.linspace(0, levels, 160)[:, None, None]
        image = Image.fromarray(pixels.round().astype(np.uint8))
        if quality:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            image = Image.open(buffer).convert("RGB")
        assert screen.frame_problem(image) is None, (levels, quality)
    missing = photo.copy()
    missing[:160] = 128
    assert screen.frame_problem(Image.fromarray(missing)).startswith("half-loaded")
