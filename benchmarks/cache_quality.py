"""Accuracy when training from the cache vs from the PNGs: same data, seed and epochs.

Trains the demo recipe (configs/demo.yaml: resnet18 from scratch, 448 crops -> 112) twice on
the sample data -- once from the PNG folder, once from its cache -- and evaluates both on
the PNG test split with every eval view. Appends the table to RESULTS.md.

    python benchmarks/cache_quality.py [--work DIR] [--epochs N] [--seeds 0 1 2]
        [--caches 90:420 90:444]   # JPEG quality:chroma of each cache to compare
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import record, sample_data
from geoconvnet.cache import prepare
from geoconvnet.evaluate import evaluate
from geoconvnet.train import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--caches", nargs="+", default=["90:420"],
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
    rows, means = [], {}
    for seed in args.seeds:
        for name, data in sources.items():
            start = time.perf_counter()
            run = train(config_file=CONFIG, data=str(data), epochs=args.epochs, seed=seed,
                        runs_dir=str(work / "runs"),
                        name=f"quality-{Path(data).name}-s{seed}-{int(start)}")
            minutes = (time.perf_counter() - start) / 60
            views = {v: evaluate(run, root, eval_view=v, write=False).metrics
                     for v in ("center", "grid", "full")}
            for v, m in views.items():
                means.setdefault((name, v), []).append(m["top1"])
            rows.append(f"| {name} | {seed} | {minutes:.1f} | " + " | ".join(
                f"{m['top1']:.1%} / {m['top3']:.1%}" for m in views.values()) + " |")
    if len(args.seeds) > 1:
        for name in sources:
            rows.append(f"| {name} | mean top-1 | | " + " | ".join(
                f"{sum(means[(name, v)]) / len(args.seeds):.1%}" for v in ("center", "grid", "full"))
                + " |")
    table = ["| trained from | seed | training minutes | center top-1 / top-3 | grid | full |",
             "|---|---:|---:|---:|---:|---:|"] + rows
    record("cache_quality.py: training from the cache vs from the PNGs", table,
           f"configs/demo.yaml, {args.epochs} epochs, seeds {args.seeds}, 8 classes x 48 train images, "
           "evaluated on the same 192 PNG test images.")


if __name__ == "__main__":
    main()
