"""DDP through torchrun: 2 CPU processes (gloo) train one epoch; the checkpoint predicts."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_TRAIN

from geoconvnet.data.loader import EpochSampler
from geoconvnet.inference.predict import predict


def test_epoch_sampler_shards_one_order_across_ranks():
    single = list(EpochSampler(10, seed=3, shuffle=True))
    shards = [list(EpochSampler(10, seed=3, shuffle=True, rank=r, world=3)) for r in range(3)]
    assert {len(s) for s in shards} == {4}  # equal step counts, or DDP would hang
    merged = [k for group in zip(*shards) for k in group]
    assert merged[:10] == single and merged[10:] == single[:2]  # padding repeats the start


@pytest.mark.slow
def test_two_process_gloo_training_writes_one_run_that_predicts(tiny_data, tmp_path):
    options = {**TINY_TRAIN, "epochs": 1, "patience": 1, "device": "cpu"}
    flags = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "geoconvnet", "train", "--data", str(tiny_data), "--runs-dir", str(tmp_path),
           *flags]  # no --name: rank 0's default name must reach rank 1
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1, runs  # one folder, though each rank made up a name
    run = runs[0]
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1  # only rank 0 writes metrics
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    assert len(list((run / "tb").glob("events.*"))) == 1
    assert done.stdout.count("epoch 1: train loss") == 1  # only rank 0 logs
    image = next((Path(tiny_data) / "test").rglob("*.png"))
    result = predict(run, [str(image)], top_k=3)[0]
    assert result.error is None and len(result.top) == 3
