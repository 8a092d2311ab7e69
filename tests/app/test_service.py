import io

import pytest
from PIL import Image
from served import png_bytes, screenshots

from geoconvnet.app.service import Service, UnknownClassError
from geoconvnet.data.countries import resolve
from geoconvnet.inference.predict import predict
from geoconvnet.models.onnx import export_onnx
from geoconvnet.utils.errors import ConfigError, DataError, ImageTooLargeError


@pytest.fixture(scope="module")
def service(trained_run):
    return Service(trained_run, "cpu")


def test_analyse_matches_predict_and_puts_the_pin_on_the_map(service, trained_run, tiny_data):
    path = next((tiny_data / "test").rglob("*.png"))
    result = service.analyse(path.read_bytes(), path.name)
    expected = predict(trained_run, [str(path)], top_k=4, device="cpu")[0].top
    assert [g["country"] for g in result["top"]] == [c for c, _ in expected]
    assert [g["probability"] for g in result["top"]] == pytest.approx([p for _, p in expected],
                                                                      abs=1e-5)
    assert sum(g["probability"] for g in result["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert result["image"] == {"filename": path.name, "width": 384, "height": 216}
    top = result["top"][0]
    assert top["code"] == resolve(top["country"]).code
    pins = result["pin"]
    assert pins["suggested"]["expected_score"] >= pins["naive"]["expected_score"]
    assert pins["source"] == "country" and pins["country"] is None  # no location head
    assert result["cells"] is None
    assert result["timings_ms"]["predict"] > 0


def test_heat_maps_are_made_for_any_class_and_kept(service, tiny_data):
    path = next((tiny_data / "test").rglob("*.png"))
    data = path.read_bytes()
    second = service.analyse(data, path.name)["top"][1]["country"]
    jpeg = service.heat_map(data, path.name, second)
    with Image.open(io.BytesIO(jpeg)) as overlay:
        assert overlay.format == "JPEG" and overlay.size == (384, 216)
    assert service.heat_map(data, path.name, second) is jpeg  # computed once
    assert service.heat_map(data, path.name, service.model.class_names[0]) != jpeg
    with pytest.raises(UnknownClassError, match="'Atlantis' is not one of the model's classes"):
        service.heat_map(data, path.name, "Atlantis")


def test_only_the_last_heat_maps_are_kept(trained_run):
    service = Service(trained_run, "cpu", keep=2)
    images = screenshots(3, size=(200, 120))
    country = service.model.class_names[0]
    first = service.heat_map(images[0], "0.png", country)
    for i, data in enumerate(images[1:], start=1):
        service.heat_map(data, f"{i}.png", country)
    assert service.heat_map(images[0], "0.png", country) is not first  # made again
    assert len(service._heat_maps) == 2


def test_bad_uploads_name_the_file(service, trained_run):
    with pytest.raises(DataError, match="notes.txt: not an image"):
        service.analyse(b"hello", "notes.txt")
    with pytest.raises(DataError, match="x.png: empty file"):
        service.analyse(b"", "x.png")
    huge = png_bytes(Image.new("1", (9000, 9000)))
    with pytest.raises(ImageTooLargeError, match="big.png: 9000x9000 pixels exceeds"):
        Service(trained_run, "cpu", max_pixels=10_000_000).analyse(huge, "big.png")


def test_info_describes_the_model_without_server_paths(service, trained_run):
    info = service.info()
    assert info["name"] == trained_run.name and info["arch"] == "resnet18"
    assert info["format"] == "pytorch" and info["heat_maps"] and info["pin"]
    assert info["location_head"] is None
    assert str(trained_run.parent) not in repr(info)


@pytest.mark.slow
def test_an_onnx_model_predicts_the_same_without_heat_maps(service, trained_run, tmp_path,
                                                          tiny_data):
    onnx = Service(export_onnx(trained_run, tmp_path / "m.onnx"), "cpu")
    path = next((tiny_data / "test").rglob("*.png"))
    ours, theirs = (s.analyse(path.read_bytes(), path.name) for s in (onnx, service))
    assert onnx.info()["format"] == "onnx" and not onnx.can_explain
    with pytest.raises(ConfigError, match="heat maps need the PyTorch checkpoint"):
        onnx.heat_map(path.read_bytes(), path.name, ours["top"][0]["country"])
    assert [g["country"] for g in ours["top"]] == [g["country"] for g in theirs["top"]]
    assert [g["probability"] for g in ours["top"]] == pytest.approx(
        [g["probability"] for g in theirs["top"]], abs=1e-4)
