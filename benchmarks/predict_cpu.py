"""CPU inference: latency of `predict` for one 1600x900 screenshot (resnet50, every eval view,
default first), `predict` on a folder (one call, batched through the loader) against one
call per image, and throughput of `evaluate` on a test split (PNG folder and cache).

Weights are random (`--weights none`): speed does not depend on their values.

    python benchmarks/predict_cpu.py [--work DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import record, sample_data

from geoconvnet.data.cache import prepare
from geoconvnet.data.preprocessing import EVAL_VIEWS, Preprocessing
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.inference.predict import predict
from geoconvnet.models.checkpoint import LoadedModel, load_checkpoint, make_meta, save_checkpoint
from geoconvnet.models.registry import build_model


def make_checkpoint(work: Path, classes: list[str]) -> Path:
    net = build_model("resnet50", len(classes))
    path = work / "resnet50.safetensors"
    save_checkpoint(path, net.state_dict(), make_meta("resnet50", classes, 0.4, Preprocessing()))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work)
    classes = sorted(p.name for p in (root / "train").iterdir())

    model: LoadedModel = load_checkpoint(make_checkpoint(work, classes))
    image = str(next((root / "test").rglob("*.png")))
    default = Preprocessing().eval_view
    table = ["| resnet50 on CPU | eval view | median ms | p90 ms |", "|---|---|---:|---:|"]
    for view in [default] + [v for v in EVAL_VIEWS if v != default]:
        predict(model, [image], eval_view=view)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predict(model, [image], eval_view=view)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        label = f"{view} (default)" if view == default else view
        table.append(f"| predict, one 1600x900 PNG (decode included) | {label} | "
                     f"{statistics.median(times):.0f} | {times[int(0.9 * len(times)) - 1]:.0f} |")
    cache = work / "cache"
    prepare(root, cache)
    table += ["", "| evaluate on CPU (resnet50, center view, default batch) | images | images/s |",
              "|---|---:|---:|"]
    for name, data in (("PNG folder", root), ("cache", cache)):
        start = time.perf_counter()
        result = evaluate(model, data, write=False)
        seconds = time.perf_counter() - start
        table.append(f"| {name} | {result.metrics['n']} | {result.metrics['n'] / seconds:.1f} |")
    table += folder_rows(model, root / "test")
    record("predict_cpu.py: CPU predict latency and evaluate throughput", table,
           f"torch threads: {torch.get_num_threads()}. Target: predict <= 150 ms per screenshot "
           "with the default view.")


def folder_rows(model: LoadedModel, folder: Path) -> list[str]:
    """``predict`` on a folder in one call (batched, decoded by loader workers) against one
    call per image, as the tool predicted before it had one inference core."""
    files = sorted(str(p) for p in folder.rglob("*.png"))
    start = time.perf_counter()
    batched = predict(model, [str(folder)])
    batched_rate = len(batched) / (time.perf_counter() - start)
    start = time.perf_counter()
    for path in files:
        predict(model, [path])
    single_rate = len(files) / (time.perf_counter() - start)
    return ["", "| predict on a folder of 1600x900 PNGs (resnet50, center view) | images | "
            "images/s |", "|---|---:|---:|",
            f"| one call per image | {len(files)} | {single_rate:.1f} |",
            f"| one call for the folder (default batch, loader workers) | {len(batched)} | "
            f"{batched_rate:.1f} |"]


if __name__ == "__main__":
    main()
