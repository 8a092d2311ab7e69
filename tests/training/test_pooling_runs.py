"""--pool, --view-pool and --progressive in training runs; the auto view chosen by a score
one image cannot flip."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from geoconvnet.inference.evaluate import evaluate
from geoconvnet.models.checkpoint import load_checkpoint, read_meta
from geoconvnet.report.page import view_rows
from geoconvnet.training.config import TrainConfig
from geoconvnet.training.train import progressive_factor, shrink, train
from geoconvnet.training.views import pick_view
from geoconvnet.utils.errors import CheckpointError, ConfigError


def test_a_grid_run_with_gem_attention_and_progressive_resizing(tiny_data, tmp_path):
    # 216 crops: two per 384x216 image, so a grid epoch costs about two crop epochs
    run = train(data=str(tiny_data), runs_dir=str(tmp_path), name="pooled", train_view="grid",
                pool="gem", view_pool="attn", progressive=0.5,
                **{**TINY_TRAIN, "epochs": 2, "patience": 2, "crop_size": 216,
                   "image_size": 48})
    meta = read_meta(run)
    assert (meta["pool"], meta["view_pool"]) == ("gem", "attn")
    assert meta["config"]["progressive"] == 0.5
    model = load_checkpoint(run)
    assert model.net.backbone.avgpool.p.item() != 3.0  # the exponent was trained
    assert model.net.view_pool.attention.score.weight.abs().sum() > 0  # so was the attention
    summary = json.loads((run / "summary.json").read_text())
    assert summary["chosen_by"] in ("loss", "top1")
    metrics = evaluate(run, tiny_data, eval_view="grid", write=False, num_workers=0).metrics
    assert 0 <= metrics["top1"] <= 1 and np.isfinite(metrics["loss"])
    # the report shows every view's validation scores with their standard errors
    rows = {r["view"]: r for r in view_rows(run, "test")}
    assert rows["grid"]["val_top1_se"] is not None and rows["grid"]["val_n"] > 0


def test_progressive_resizing_starts_low_and_ends_at_full_resolution():
    factors = [progressive_factor(0.5, epoch, 10) for epoch in range(1, 11)]
    assert factors[0] == 0.5 and factors[-2:] == [1.0, 1.0]
    assert all(a <= b for a, b in zip(factors, factors[1:]))
    assert progressive_factor(0.0, 1, 10) == 1.0 and progressive_factor(0.5, 1, 1) == 1.0
    images = torch.rand(2, 3, 64, 112)
    assert shrink(images, 0.5).shape[-2:] == (32, 56)
    assert shrink(images, 1.0) is images


def test_pooling_options_are_checked_before_a_run_starts():
    with pytest.raises(ConfigError, match="unknown --pool 'median'"):
        TrainConfig(pool="median")
    with pytest.raises(ConfigError, match="unknown --view-pool 'max'"):
        TrainConfig(view_pool="max")
    with pytest.raises(ConfigError, match="--freeze-backbone .* use --view-pool mean"):
        TrainConfig(view_pool="lse", freeze_backbone=True)
    with pytest.raises(ConfigError, match="--view-pool attn learns .* --train-view crop"):
        TrainConfig(view_pool="attn")
    with pytest.raises(ConfigError, match="progressive must be 0"):
        TrainConfig(progressive=0.1)
    with pytest.raises(ConfigError, match="--freeze-backbone .* would never train"):
        TrainConfig(pool="gem", freeze_backbone=True)


def test_fine_tuning_keeps_the_spatial_pool_of_its_start(trained_run, tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match="--pool avg, this run with --pool gem"):
        train(data=str(tiny_data), runs_dir=str(tmp_path), name="ft", init_from=str(trained_run),
              pool="gem", **{**TINY_TRAIN, "epochs": 1})


def _scores(correct, losses):
    return np.array(correct, float), np.array(losses, float)


def test_one_image_does_not_choose_the_view():
    n = 48
    # centre: one image more right at top-1, but a clearly higher loss than the grid
    center = _scores([1] * 20 + [0] * 28, [1.6] * n)
    grid = _scores([1] * 19 + [0] * 29, [1.2] * n)
    assert pick_view({"center": center, "grid": grid}) == ("grid", "loss")
    # a lead of 12 images out of 48, every one paired: top-1 overrules the loss
    full = _scores([1] * 31 + [0] * 17, [1.3] * n)
    assert pick_view({"grid": grid, "full": full}) == ("full", "top1")
