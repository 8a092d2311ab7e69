import numpy as np
import pytest

from geoconvnet.cli import main
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.inference.predict import predict
from geoconvnet.models.load import load_model
from geoconvnet.utils.errors import CheckpointError


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", str(trained_run), "--format", "onnx", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("view", ["center", "grid", "full"])
def test_onnx_runtime_matches_pytorch(exported, trained_run, tiny_data, view):
    images = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))[:6]
    torch_probs = [dict(r.top) for r in predict(trained_run, images, top_k=4, eval_view=view)]
    onnx_probs = [dict(r.top) for r in predict(exported, images, top_k=4, eval_view=view)]
    for a, b in zip(torch_probs, onnx_probs):
        assert a.keys() == b.keys()
        assert np.allclose([a[k] for k in a], [b[k] for k in a], atol=1e-4)


def test_the_onnx_file_describes_itself_and_evaluates(exported, trained_run, tiny_data):
    model = load_model(exported)
    assert model.class_names == load_model(trained_run).class_names
    assert model.preprocessing == load_model(trained_run).preprocessing
    on_onnx = evaluate(exported, tiny_data, write=False, num_workers=0)
    on_torch = evaluate(trained_run, tiny_data, write=False, num_workers=0)
    assert on_onnx.metrics["top1"] == on_torch.metrics["top1"]
    assert abs(on_onnx.metrics["loss"] - on_torch.metrics["loss"]) < 1e-4


def test_a_bad_onnx_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        load_model(bad)
