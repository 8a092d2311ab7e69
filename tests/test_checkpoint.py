import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from geoconvnet.checkpoint import (load_checkpoint, make_meta, read_meta, read_state_dict,
                                   save_checkpoint)
from geoconvnet.errors import CheckpointError
from geoconvnet.models import build_model
from geoconvnet.transforms import Preprocessing


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
