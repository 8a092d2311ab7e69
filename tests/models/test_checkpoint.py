import json
import os
import pickle

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from geoconvnet.data.preprocessing import Preprocessing
from geoconvnet.inference.predict import predict
from geoconvnet.models.checkpoint import load_checkpoint, make_meta, read_meta, save_checkpoint
from geoconvnet.models.registry import build_model
from geoconvnet.models.weights import read_state_dict
from geoconvnet.utils.errors import CheckpointError


def _save(tmp_path, name="model.safetensors"):
    model = build_model("resnet18", 3, dropout=0.3)
    meta = make_meta("resnet18", ["A", "B", "C"], 0.3, Preprocessing(eval_view="grid"),
                     {"lr": 0.1}, {"val_loss": 1.5})
    return model, save_checkpoint(tmp_path / name, model.state_dict(), meta)


def test_round_trip_restores_weights_and_description(tmp_path):
    model, path = _save(tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.class_names == ["A", "B", "C"]
    assert loaded.preprocessing.eval_view == "grid"
    assert loaded.meta["config"] == {"lr": 0.1} and loaded.meta["metrics"]["val_loss"] == 1.5
    assert loaded.meta["arch"] == "resnet18" and "geoconvnet_version" in loaded.meta
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value), key
    assert not loaded.net.training


def test_run_folder_stands_for_best_checkpoint(tmp_path):
    _save(tmp_path, "best.safetensors")
    assert read_meta(tmp_path)["class_names"] == ["A", "B", "C"]
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no best.safetensors"):
        load_checkpoint(empty)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Payload(str(marker))}, f, protocol=2)
    for loader in (read_state_dict, load_checkpoint):
        with pytest.raises(CheckpointError, match="refused.*pickled Python objects"):
            loader(path)
    assert not marker.exists()


def test_bare_weights_are_not_a_checkpoint(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(CheckpointError, match="without geoconvnet metadata"):
        load_checkpoint(tmp_path / "bare.safetensors")
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="does not describe its model"):
        load_checkpoint(tmp_path / "bare.pt")


def test_save_is_atomic(tmp_path, monkeypatch):
    model, path = _save(tmp_path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        save_checkpoint(path, model.state_dict(), read_meta(path))
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(tmp_path) == [path.name]  # and no temporary file is left behind


def test_a_checkpoint_in_the_layout_of_version_0_1_loads_and_predicts(tmp_path):
    """The metadata layout written before the package was split into subpackages, written
    here by safetensors itself (not by our code), must keep loading."""
    model = build_model("resnet18", 2, dropout=0.4)
    meta = {"format": 1, "geoconvnet_version": "0.1.0", "arch": "resnet18", "num_classes": 2,
            "class_names": ["Norway", "Sweden"], "dropout": 0.4,
            "preprocessing": {"crop_size": 96, "image_size": 48, "mean": [0.485, 0.456, 0.406],
                              "std": [0.229, 0.224, 0.225], "eval_view": "center",
                              "hflip": True, "augment": "reference"},
            "config": {"arch": "resnet18", "data": "somewhere"}, "metrics": {"val_loss": 0.7},
            "temperature": 2.0}
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp_path / "best.safetensors"), metadata={"geoconvnet": json.dumps(meta)})
    loaded = load_checkpoint(tmp_path)
    assert loaded.class_names == ["Norway", "Sweden"] and loaded.temperature == 2.0
    assert loaded.preprocessing.crop_size == 96
    Image.new("RGB", (200, 120), (30, 90, 160)).save(tmp_path / "shot.png")
    [prediction] = predict(tmp_path, [str(tmp_path / "shot.png")], top_k=2)
    model.eval()
    with torch.no_grad():  # the center view of a uniform image is the image, resized
        image = torch.full((1, 3, 48, 48), 0.0)
        for c, (value, mean, std) in enumerate(zip((30, 90, 160), meta["preprocessing"]["mean"],
                                                   meta["preprocessing"]["std"])):
            image[:, c] = (value - mean * 255) / (std * 255)
        expected = (model(image)[0] / 2.0).softmax(0)
    got = dict(prediction.top)
    assert got["Norway"] == pytest.approx(expected[0].item(), abs=1e-4)
