import shutil

import pytest
import torch

from geoconvnet.inference.evaluate import evaluate
from geoconvnet.models.checkpoint import read_meta
from geoconvnet.training.calibrate import calibrate, fit_temperature


def test_fit_temperature_recovers_a_known_scale():

    torch.manual_seed(0)
    targets = torch.randint(0, 5, (4000,))
    true_logits = torch.randn(4000, 5) + 2.0 * torch.nn.functional.one_hot(targets, 5)
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    # Logits 3x too sharp: the fitted temperature must undo that.
    assert fit_temperature(true_logits * 3, labels) == pytest.approx(3.0, rel=0.1)


def test_calibrate_stores_temperature_used_by_evaluate(trained_run, tiny_data, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("report"))
    before = evaluate(run, tiny_data, write=False, num_workers=0)
    result = calibrate(run, data=tiny_data)
    temperature = result.temperature
    assert result.checkpoint == run / "best.safetensors" and result.n > 0
    meta = read_meta(run)
    assert meta["temperature"] == pytest.approx(temperature) and temperature > 0
    assert meta["calibration"]["nll_after"] <= meta["calibration"]["nll_before"] + 1e-6
    after = evaluate(run, tiny_data, write=False, num_workers=0)
    assert after.metrics["top1"] == before.metrics["top1"]  # scaling keeps the ranking
    if abs(temperature - 1) > 1e-3:
        assert not (after.probs == before.probs).all()
