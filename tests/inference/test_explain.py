import numpy as np
import pytest
from PIL import Image, ImageDraw

from geoconvnet.cli import main
from geoconvnet.inference.explain import explain
from geoconvnet.models.checkpoint import load_checkpoint
from geoconvnet.training.train import train


def _scene(rng, colour):
    """Grey noise with one coloured square somewhere: the square alone decides the class."""
    pixels = rng.integers(90, 160, size=(120, 200, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    x, y = int(rng.integers(8, 148)), int(rng.integers(8, 68))
    ImageDraw.Draw(image).rectangle((x, y, x + 44, y + 44), fill=colour)
    return image, (x, y, x + 44, y + 44)


@pytest.mark.slow
def test_the_heat_map_peaks_on_the_deciding_object(tmp_path):
    rng = np.random.default_rng(0)
    colours = {"Norway": (220, 30, 30), "Peru": (30, 60, 220)}
    for split, n in (("train", 24), ("test", 2)):
        for country, colour in colours.items():
            (tmp_path / "d" / split / country).mkdir(parents=True)
            for i in range(n):
                _scene(rng, colour)[0].save(tmp_path / "d" / split / country / f"{i}.png")
    run = train(data=str(tmp_path / "d"), arch="resnet18", weights="none", epochs=12, patience=12,
                batch_size=8, crop_size=120, image_size=120, lr=2e-3, head_lr_mult=1.0,
                optimizer="adamw", num_workers=0, runs_dir=str(tmp_path / "runs"), name="cam")
    model = load_checkpoint(run)
    hits = 0
    for i in range(6):
        image, (x0, y0, x1, y1) = _scene(rng, colours["Peru"])
        [peru] = explain(model, image, [model.class_names.index("Peru")])
        row, col = np.unravel_index(np.argmax(peru.heat), peru.heat.shape)
        hits += (x0 - 8 <= col <= x1 + 8) and (y0 - 8 <= row <= y1 + 8)  # the peak is on it
    assert hits >= 5, hits


def test_predict_explain_writes_overlays(trained_run, tiny_data, tmp_path, capsys):
    image = str(next((tiny_data / "test").rglob("*.png")))
    assert main(["predict", str(trained_run), image, "--explain", str(tmp_path / "cams"),
                 "--json"]) == 0
    written = sorted(p.name for p in (tmp_path / "cams").iterdir())
    assert len(written) == 3 and [w.split("-")[2] for w in written] == ["1", "2", "3"]
    with Image.open(tmp_path / "cams" / written[0]) as overlay:
        assert overlay.size == Image.open(image).size
