import csv
import json

import pytest
import torch
from conftest import TINY_TRAIN

from geoconvnet.inference.evaluate import evaluate
from geoconvnet.models.checkpoint import load_checkpoint, read_meta
from geoconvnet.training.config import TrainConfig
from geoconvnet.training.train import BestWeights, Trainer, lr_factor, train
from geoconvnet.utils.errors import ConfigError


def _metrics(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_run_folder_contents(trained_run):
    for name in ("config.yaml", "split.json", "data_report.json", "data_report.md",
                 "metrics.csv", "best.safetensors", "last.safetensors", "train_state.pt",
                 "summary.json"):
        assert (trained_run / name).is_file(), name
    assert list((trained_run / "tb").glob("events.out.tfevents.*"))
    rows = _metrics(trained_run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert {"train_loss", "val_loss", "val_top1", "val_top3", "val_top5",
            "train_images_per_s"} <= set(rows[0])


def test_best_checkpoint_holds_the_lowest_validation_loss_epoch(trained_run):
    rows = _metrics(trained_run)
    losses = [float(r["val_loss"]) for r in rows]
    best_epoch = losses.index(min(losses)) + 1
    meta = read_meta(trained_run)
    assert meta["metrics"]["epoch"] == best_epoch
    # Re-evaluating the saved weights reproduces that epoch's validation loss.
    split = json.loads((trained_run / "split.json").read_text())
    model = load_checkpoint(trained_run)
    data_root = meta["config"]["data"]
    val = [(f"{data_root}/{p}", model.class_names.index(p.split("/")[1])) for p in split["val"]]
    # Epochs are validated in the centre view (crop training); --eval-view auto then scored
    # every view on validation and kept the best in the checkpoint.
    result = evaluate(model, data_root, split="val", samples=val, write=False, num_workers=0,
                      eval_view="center")
    assert result.metrics["loss"] == pytest.approx(min(losses), rel=1e-3)
    scores = meta["view_scores"]
    assert scores["center"]["loss"] == pytest.approx(min(losses), rel=1e-3)
    best = max(scores, key=lambda v: (scores[v]["top1"], -scores[v]["loss"]))
    assert model.preprocessing.eval_view == best


def test_best_weights_are_a_copy_not_a_live_reference():
    model = torch.nn.Linear(2, 2)
    best = BestWeights()
    assert best.update(model, loss=1.0, epoch=1)
    saved = best.state["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)  # training goes on
    assert torch.equal(best.state["weight"], saved)
    assert not best.update(model, loss=2.0, epoch=2) and best.epoch == 1


def test_trained_model_beats_chance_by_a_wide_margin(trained_run, tiny_data):
    result = evaluate(trained_run, tiny_data, split="test", write=False, num_workers=0)
    assert result.metrics["n"] == 32
    assert result.metrics["top1"] >= 0.6  # chance is 0.25 with 4 classes


def test_resume_continues_without_losing_an_epoch(tiny_data, tmp_path):
    # StepLR does not depend on the total number of epochs (cosine would), so a resumed
    # run with more epochs can be compared with a straight one.
    args = dict(TINY_TRAIN, epochs=2, scheduler="step", data=str(tiny_data),
                runs_dir=str(tmp_path), name="r")
    run = train(**args)
    first = _metrics(run)
    run = train(resume=True, name="r", runs_dir=str(tmp_path), epochs=3)
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[:2] == first
    # An uninterrupted 3-epoch run gives the same third epoch (per-epoch seeding).
    straight = train(**dict(args, epochs=3, name="s"))
    assert float(_metrics(straight)[2]["train_loss"]) == pytest.approx(float(rows[2]["train_loss"]),
                                                                       rel=1e-4)


def test_existing_run_is_not_overwritten(trained_run):
    with pytest.raises(ConfigError, match="already exists"):
        train(data="x", name=trained_run.name, runs_dir=str(trained_run.parent))


def test_ctrl_c_saves_a_checkpoint_and_resume_works(tiny_data, tmp_path, monkeypatch):
    args = dict(TINY_TRAIN, epochs=3, data=str(tiny_data), runs_dir=str(tmp_path), name="c")
    original = Trainer.train_epoch

    def interrupt_in_second_epoch(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(**args)
    run = tmp_path / "c"
    assert read_meta(run / "interrupted.safetensors")["metrics"]["interrupted_in_epoch"] == 2
    assert [r["epoch"] for r in _metrics(run)] == ["1"]
    monkeypatch.setattr(Trainer, "train_epoch", original)
    train(resume=True, name="c", runs_dir=str(tmp_path))
    assert [r["epoch"] for r in _metrics(run)] == ["1", "2", "3"]


def test_step_schedule_matches_reference_steplr():
    cfg = TrainConfig(scheduler="step", step_size=5, gamma=0.815, epochs=25)
    factor = lr_factor(cfg, steps_per_epoch=10)
    assert factor(0) == 1.0 and factor(49) == 1.0
    assert factor(50) == pytest.approx(0.815) and factor(100) == pytest.approx(0.815 ** 2)


def test_cosine_schedule_warms_up_then_decays():
    cfg = TrainConfig(scheduler="cosine", warmup_epochs=1, epochs=10)
    factor = lr_factor(cfg, steps_per_epoch=10)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5, abs=0.01) and factor(99) < 0.01


def test_best_file_is_the_best_epoch_not_the_last(tiny_data, tmp_path, monkeypatch):
    """Scripted validation losses (best at epoch 2 of 4) make the check independent of how
    training happens to go: the reference's bug would save epoch 4's weights."""
    scripted = iter([1.0, 0.5, 0.8, 0.9])
    weights_after = {}
    original = Trainer.train_epoch

    def remember(self, epoch):
        row = original(self, epoch)
        weights_after[epoch] = {k: v.clone() for k, v in self.model.net.state_dict().items()}
        return row

    monkeypatch.setattr(Trainer, "train_epoch", remember)
    monkeypatch.setattr(Trainer, "validate", lambda self: {
        "val_loss": next(scripted), "val_top1": 0.0, "val_top3": 0.0, "val_top5": 0.0})
    run = train(**dict(TINY_TRAIN, epochs=4, patience=5, data=str(tiny_data),
                       runs_dir=str(tmp_path), name="b"))
    best = load_checkpoint(run).net.state_dict()
    assert read_meta(run)["metrics"]["epoch"] == 2
    for key, value in weights_after[2].items():
        assert torch.equal(best[key], value), key
    assert not all(torch.equal(best[k], v) for k, v in weights_after[4].items())


def test_early_stopping_after_patience(tiny_data, tmp_path, monkeypatch):
    scripted = iter([1.0, 1.1, 1.2, 1.3, 0.1])
    monkeypatch.setattr(Trainer, "validate", lambda self: {
        "val_loss": next(scripted), "val_top1": 0.0, "val_top3": 0.0, "val_top5": 0.0})
    run = train(**dict(TINY_TRAIN, epochs=5, patience=2, data=str(tiny_data),
                       runs_dir=str(tmp_path), name="e"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 3 and summary["stopped_early"] and summary["best_epoch"] == 1


def test_results_do_not_depend_on_the_number_of_loader_workers(tiny_data, tmp_path):
    args = dict(TINY_TRAIN, epochs=1, data=str(tiny_data), runs_dir=str(tmp_path))
    zero = _metrics(train(**dict(args, num_workers=0, name="w0")))
    two = _metrics(train(**dict(args, num_workers=2, name="w2")))
    assert float(zero[0]["train_loss"]) == pytest.approx(float(two[0]["train_loss"]), rel=1e-5)
    assert zero[0]["val_loss"] == two[0]["val_loss"]
