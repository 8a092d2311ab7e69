"""Accuracy when training from the cache vs from the PNGs: same data, seed and epochs.

Trains the demo recipe (configs/demo.yaml: resnet18 from scratch, 448 crops -> 112) twice on
the sample data -- once from the PNG folder, once from its cache -- and evaluates both on
the PNG test split with every eval view. Appends the table to RESULTS.md.

    python benchmarks/cache_quality.py [--work DIR] [--epochs N] [--seeds $(seq 0 23)]
        [--caches 94:420 90:420]   # JPEG quality:chroma of each cache to compare
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import record, sample_data
from geoconvnet.cache import DEFAULT_QUALITY, prepare
from geoconvnet.evaluate import evaluate
from geoconvnet.train import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


VIEWS = ("center", "grid", "full")


def summary_rows(top1s: dict, names: list[str]) -> list[str]:
    """``top1s[(source, view)]``: top-1 per seed. Rows: mean top-1 per source, and each
    cache's paired difference to the PNG runs (same seeds) with its standard error:
    seed-to-seed spread is about 1 point here, so a difference smaller than two standard
    errors is not a measured difference."""
    rows = [f"| {name} | mean top-1 | | " + " | ".join(
        f"{statistics.mean(top1s[(name, v)]):.1%}" for v in VIEWS) + " |" for name in names]
    for name in names[1:]:
        cells = []
        for v in VIEWS:
            diffs = [100 * (c - p) for c, p in zip(top1s[(name, v)], top1s[(names[0], v)])]
            error = statistics.stdev(diffs) / len(diffs) ** 0.5
            cells.append(f"{statistics.mean(diffs):+.1f} ± {error:.1f}")
        rows.append(f"| {name} | minus PNG, points ± SE | | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work")
    parser.add_argument("--epochs", type=int, default=8)
    # One seed moves by 1-3 points, so a single run says little. Measured standard errors of
    # the paired difference: 8 seeds (about 35 minutes on 2 cores) 0.5 center / 1.3 grid,
    # 24 seeds 0.5 / 1.0.
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--caches", nargs="+", default=[f"{DEFAULT_QUALITY}:420"],
                        help="JPEG quality:chroma of each cache (default: the prepare default)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work, classes=8, per_class=48, test_per_class=24)
    sources = {"PNG folder": root}
    for spec in args.caches:
        quality, chroma = spec.split(":")
        out = work / f"cache-q{quality}-{chroma}"
        summary = prepare(root, out, quality=int(quality), chroma=chroma)
        share = summary["cache_bytes"] / summary["source_bytes"]
        sources[f"cache q{quality} {chroma} ({share:.1%} of PNG bytes)"] = out
    rows, top1s = [], {}
    for seed in args.seeds:
        for name, data in sources.items():
            start = time.perf_counter()
            run = train(config_file=CONFIG, data=str(data), epochs=args.epochs, seed=seed,
                        runs_dir=str(work / "runs"),
                        name=f"quality-{Path(data).name}-s{seed}-{int(start)}")
            minutes = (time.perf_counter() - start) / 60
            views = {v: evaluate(run, root, eval_view=v, write=False).metrics
                     for v in VIEWS}
            for v, m in views.items():
                top1s.setdefault((name, v), []).append(m["top1"])
            rows.append(f"| {name} | {seed} | {minutes:.1f} | " + " | ".join(
                f"{m['top1']:.1%} / {m['top3']:.1%}" for m in views.values()) + " |")
            print(rows[-1], flush=True)  # runs take minutes each: show results as they come
    if len(args.seeds) > 1:
        rows += summary_rows(top1s, list(sources))
    table = ["| trained from | seed | training minutes | center top-1 / top-3 | grid | full |",
             "|---|---:|---:|---:|---:|---:|"] + rows
    record("cache_quality.py: training from the cache vs from the PNGs", table,
           f"configs/demo.yaml, {args.epochs} epochs, seeds {args.seeds}, 8 classes x 48 train images, "
           "evaluated on the same 192 PNG test images.")


if __name__ == "__main__":
    main()
