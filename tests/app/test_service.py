import io

import pytest
from PIL import Image
from served import png_bytes, screenshots

from geoconvnet.app.service import NotFoundError, Service
from geoconvnet.data.countries import resolve
from geoconvnet.inference.predict import predict
from geoconvnet.models.onnx import export_onnx
from geoconvnet.utils.errors import DataError, ImageTooLargeError


@pytest.fixture(scope="module")
def service(trained_run):
    return Service(trained_run, "cpu", keep=2)


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
    assert result["heat_maps"] == [f"/api/heatmap/{result['id']}/{r}" for r in range(1, 5)]


def test_heat_maps_are_made_on_demand_and_kept(service, tiny_data):
    path = next((tiny_data / "test").rglob("*.png"))
    result = service.analyse(path.read_bytes(), path.name)
    country, jpeg = service.heat_map(result["id"], 2)
    assert country == result["top"][1]["country"]
    with Image.open(io.BytesIO(jpeg)) as overlay:
        assert overlay.format == "JPEG" and overlay.size == (384, 216)
    assert service.heat_map(result["id"], 2)[1] is jpeg  # computed once
    with pytest.raises(NotFoundError, match="guesses 1 to 4"):
        service.heat_map(result["id"], 5)


def test_only_the_last_uploads_are_kept(service):
    ids = [service.analyse(data, f"{i}.png")["id"] for i, data in
           enumerate(screenshots(3, size=(200, 120)))]
    with pytest.raises(NotFoundError, match="keeps the last 2"):
        service.heat_map(ids[0], 1)
    assert service.heat_map(ids[2], 1)[0]


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
    assert str(trained_run.parent) not in repr(info)


@pytest.mark.slow
def test_an_onnx_model_predicts_the_same_without_heat_maps(service, trained_run, tmp_path,
                                                          tiny_data):
    onnx = Service(export_onnx(trained_run, tmp_path / "m.onnx"), "cpu")
    path = next((tiny_data / "test").rglob("*.png"))
    ours, theirs = (s.analyse(path.read_bytes(), path.name) for s in (onnx, service))
    assert onnx.info()["format"] == "onnx" and not onnx.can_explain
    assert ours["heat_maps"] == []
    assert [g["country"] for g in ours["top"]] == [g["country"] for g in theirs["top"]]
    assert [g["probability"] for g in ours["top"]] == pytest.approx(
        [g["probability"] for g in theirs["top"]], abs=1e-4)
