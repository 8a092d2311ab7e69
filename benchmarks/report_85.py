"""Time `geoconvnet report` on an 85-class run with ~5,000 test predictions.

No model is trained: the run folder is built from generated data in evaluate's own file
format (`write_results`), with predictions that are right about 58% of the time (the
reference's accuracy) and confusions concentrated on a few neighbours per country. The
prediction figures use real 1600x900 sample screenshots. Prints a table and appends it to
benchmarks/RESULTS.md.

    python benchmarks/report_85.py [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _common import record

from geoconvnet.data.synth import REFERENCE_COUNTRIES, class_styles, draw_scene
from geoconvnet.inference.evaluate import EvalResult, write_results
from geoconvnet.report.page import report

PER_CLASS = 60  # 85 x 60 = 5,100 test images, as in the reference


def make_run(work: Path) -> Path:
    rng = np.random.default_rng(0)
    names = list(REFERENCE_COUNTRIES)
    k = len(names)
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    styles = class_styles(k, 0)
    paths, targets = [], []
    for c in range(k):
        # One real screenshot per country, shared by its test rows (figures read them).
        path = images / f"{names[c]}.png"
        if not path.exists():
            draw_scene(styles[c], (1600, 900), c).save(path)
        paths += [str(path)] * PER_CLASS
        targets += [c] * PER_CLASS
    targets = np.array(targets)
    neighbours = {c: rng.choice(k, 3, replace=False) for c in range(k)}
    logits = rng.normal(0, 1, (len(targets), k))
    for i, t in enumerate(targets):
        logits[i, t] += 2.6
        logits[i, neighbours[t]] += rng.uniform(0, 2.5, 3)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    run = work / "run85"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"arch": "resnet101", "data": str(work),
                                                     "eval_view": "center"}))
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "train_loss", "train_top1", "train_top3", "train_top5",
                         "val_loss", "val_top1", "val_top3", "val_top5"])
        for e in range(1, 16):
            acc = 0.6 * (1 - np.exp(-e / 4))
            writer.writerow([e, 3 / e, acc, acc + 0.2, acc + 0.3, 2.5 / e ** 0.5, acc, acc + 0.2,
                             acc + 0.28])
    result = EvalResult({"loss": 1.6, "n": len(targets), "top1": float((probs.argmax(1) == targets).mean()),
                         "top3": 0.77, "top5": 0.84, "split": "test", "eval_view": "center"},
                        probs, targets, paths, names)
    write_results(result, run / "eval" / "test-center")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    run = make_run(work)
    rows = []
    for label, kwargs in (("default (24 prediction figures)", {}),
                          ("with --archive", {"archive": True})):
        start = time.perf_counter()
        report(run, **kwargs)
        rows.append((label, time.perf_counter() - start))
    table = ["| report of an 85-class run, 5,100 test predictions | seconds |", "|---|---:|"]
    table += [f"| {label} | {seconds:.1f} |" for label, seconds in rows]
    record("report_85.py: report time for 85 countries", table,
           "The first report in a process includes numba's one-time compilation of UMAP.")


if __name__ == "__main__":
    main()
