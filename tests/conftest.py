"""Shared fixtures: a tiny generated dataset and one briefly trained run (CPU, seconds)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from geoconvnet.data.synth import synth
from geoconvnet.training.train import train

# Under `make test` two pytest processes share the cores (pytest-xdist): one thread each
# for torch and OpenMP, in them and in the servers and workers they start, so that they do
# not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# Small images and crops keep every end-to-end test on a 2-core CPU in seconds; the crop is
# the same share of the image as the reference's 448 of 1600.
TINY = dict(classes=4, per_class=20, test_per_class=8, size=(384, 216), seed=0)
TINY_TRAIN = dict(arch="resnet18", weights="none", epochs=6, patience=6, batch_size=8,
                  crop_size=108, image_size=64, lr=1e-3, head_lr_mult=1.0, optimizer="adamw",
                  scheduler="cosine", warmup_epochs=0.5, dropout=0.2, num_workers=0, seed=0)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("data") / "sample", workers=2, **TINY)


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return train(data=str(tiny_data), runs_dir=str(runs), name="tiny", **TINY_TRAIN)


@pytest.fixture(scope="session")
def chromium():
    """The system's Chromium (Debian's, installed by .ci/run): required in CI, else skip."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed; .ci/run installs Debian's chromium package")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


# Quiet flags for a headless Chromium in a container (no sandbox, no GPU, no updates).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# The longest files first: with two pytest processes taking a file at a time, a long file
# started last would leave one process running alone at the end.
LONGEST_FIRST = ("training/test_views.py", "training/test_tune.py", "models/test_pooling.py",
                 "inference/test_explain.py", "test_cli.py", "training/test_pooling_runs.py",
                 "report/test_analysis.py", "app/test_server.py",
                 "training/test_geo_learning.py", "report/test_geo_report.py",
                 "training/test_geo_head.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)),
                    len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order within a file is kept
