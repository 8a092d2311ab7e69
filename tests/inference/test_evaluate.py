import csv
import json

import numpy as np
import pytest
import torch

from geoconvnet.inference.evaluate import evaluate
from geoconvnet.inference.metrics import per_class_table, summarize, topk_correct


def test_topk_correct_hand_computed():
    logits = torch.tensor([[0.9, 0.05, 0.03, 0.02],   # target 0: top-1 hit
                           [0.1, 0.2, 0.3, 0.4],      # target 1: rank 3 -> top-3 hit
                           [0.4, 0.3, 0.2, 0.1]])     # target 3: rank 4 -> only top-5
    targets = torch.tensor([0, 1, 3])
    assert topk_correct(logits, targets).tolist() == [1, 2, 3]
    metrics = summarize(logits, targets)
    assert metrics["top1"] == pytest.approx(1 / 3) and metrics["top5"] == 1.0
    assert metrics["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item())


def test_per_class_table_uses_sklearn_definitions():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    rows = per_class_table(probs, np.array([0, 0, 1, 1]), ["A", "B"])
    # Predictions 0,0,1,0: A has precision 2/3, recall 1; B has precision 1, recall 1/2.
    assert rows[0]["precision"] == pytest.approx(2 / 3) and rows[0]["recall"] == 1.0
    assert rows[1]["precision"] == 1.0 and rows[1]["recall"] == 0.5
    assert rows[1]["f1"] == pytest.approx(2 / 3) and rows[1]["support"] == 2


def test_evaluate_writes_every_output(trained_run, tiny_data, tmp_path):
    result = evaluate(trained_run, tiny_data, split="test", eval_view="center", out_dir=tmp_path,
                      num_workers=0)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 32 and metrics["eval_view"] == "center"
    assert set(metrics) >= {"top1", "top3", "top5", "loss"}
    with open(tmp_path / "per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["country"] for r in rows] == result.class_names
    assert sum(int(r["support"]) for r in rows) == 32
    with open(tmp_path / "confusion.csv") as f:
        matrix = [list(map(int, row[1:])) for row in list(csv.reader(f))[1:]]
    assert sum(map(sum, matrix)) == 32
    assert sum(matrix[i][i] for i in range(4)) == round(metrics["top1"] * 32)
    with open(tmp_path / "predictions.csv") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 32 and {"path", "truth", "pred1", "prob1", "pred4"} <= set(preds[0])
    assert "| country |" in (tmp_path / "per_class.md").read_text()


def test_grid_and_full_views_are_deterministic(trained_run, tiny_data):
    for view in ("grid", "full"):
        a = evaluate(trained_run, tiny_data, eval_view=view, write=False, num_workers=0)
        b = evaluate(trained_run, tiny_data, eval_view=view, write=False, num_workers=0)
        assert np.allclose(a.probs, b.probs)


def test_an_unreadable_file_is_skipped_and_named(trained_run, tiny_data, tmp_path):
    bad = tmp_path / "Albania" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    samples = [(str(p), 0) for p in sorted((tiny_data / "test" / "Albania").glob("*.png"))]
    result = evaluate(trained_run, tiny_data, samples=samples + [(str(bad), 0)], write=False,
                      num_workers=0)
    assert result.metrics["n"] == len(samples) and result.metrics["skipped"] == 1
    assert list(result.skipped) == [str(bad)] and "not a readable image" in result.skipped[str(bad)]
