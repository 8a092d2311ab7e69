"""Accuracy when training from the cache vs from the PNGs: same data, seed and epochs.

Trains the demo recipe (configs/demo.yaml: resnet18 from scratch, 448 crops -> 112) twice on
the sample data -- once from the PNG folder, once from its cache -- and evaluates both on
the PNG test split with every eval view. Appends the table to RESULTS.md.

Each finished run is kept in ``WORK/runs.jsonl``; run again with the same ``--work`` (more
seeds, another cache), the runs already there are reused, not trained again (a seed
reproduces its numbers exactly on the same machine and library versions).

    python benchmarks/cache_quality.py [--work DIR] [--epochs N] [--seeds $(seq 0 23)]
        [--caches 94:420 90:420]   # JPEG quality:chroma of each cache to compare
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import record, sample_data

from geoconvnet.data.cache import DEFAULT_QUALITY, is_cache, load_manifest, prepare
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.training.train import train

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


def train_once(work: Path, root: Path, data: Path, seed: int, epochs: int) -> dict:
    """Train and evaluate one (data, seed), or the stored result of an earlier invocation."""
    store = work / "runs.jsonl"
    manifest = load_manifest(data) if is_cache(data) else None
    settings = manifest and {k: manifest.get(k) for k in ("format", "scale", "quality", "chroma",
                                                          "tile_overlap")}
    key = {"data": data.name, "cache": settings, "seed": seed, "epochs": epochs,
           "torch": torch.__version__}
    lines = store.read_text().splitlines() if store.exists() else []
    for line in lines:
        result = json.loads(line)
        if result["key"] == key:
            return result
    start = time.perf_counter()
    run = train(config_file=CONFIG, data=str(data), epochs=epochs, seed=seed,
                runs_dir=str(work / "runs"), name=f"quality-{data.name}-s{seed}-{int(start)}")
    result = {"key": key, "minutes": (time.perf_counter() - start) / 60}
    for v in VIEWS:
        metrics = evaluate(run, root, eval_view=v, write=False).metrics
        result[v] = {"top1": metrics["top1"], "top3": metrics["top3"]}
    with open(store, "a") as f:  # one line per run: a stopped benchmark keeps what it did
        f.write(json.dumps(result) + "\n")
    return result


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
            result = train_once(work, root, Path(data), seed, args.epochs)
            for v in VIEWS:
                top1s.setdefault((name, v), []).append(result[v]["top1"])
            rows.append(f"| {name} | {seed} | {result['minutes']:.1f} | " + " | ".join(
                f"{result[v]['top1']:.1%} / {result[v]['top3']:.1%}" for v in VIEWS) + " |")
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
