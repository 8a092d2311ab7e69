"""Trials per hour of `geoconvnet tune` with one worker vs two workers sharing one study.

The test-sized problem: the test suite's tiny generated data (4 countries, 384x216 images),
resnet18 from scratch, 64-pixel inputs, 2 epochs per trial, no pruning (every trial costs
the same). One worker uses every core; two workers share the cores (1 thread each).

    python benchmarks/tune_workers.py [--trials 8] [--storage postgresql://...] [--work DIR]

Default storage: the SQLite file in the study folder (two processes on one machine can share
it); pass a PostgreSQL URL to measure the set-up several machines would use.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import record

TRAIN = dict(arch="resnet18", weights="none", epochs=2, patience=2, batch_size=8, crop_size=108,
             image_size=64, lr=1e-3, head_lr_mult=1.0, optimizer="adamw", num_workers=0)


def run_workers(data: Path, studies: Path, trials: int, workers: int, storage: str | None) -> float:
    study = f"bench-{workers}w-{uuid.uuid4().hex[:6]}"
    cmd = [sys.executable, "-m", "geoconvnet", "tune", "--data", str(data), "--studies-dir",
           str(studies), "--study", study, "--trials", str(trials), "--no-finalize",
           "--pruner", "none", "--heartbeat", "5"]
    cmd += ["--storage", storage] if storage else []
    for key, value in TRAIN.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    if any(p.wait() for p in procs):
        raise SystemExit(f"a worker failed: {' '.join(cmd)}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--storage")
    parser.add_argument("--work")
    args = parser.parse_args()
    from geoconvnet.data.synth import synth

    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    data = work / "tiny"
    if not (data / "train").exists():
        synth(data, classes=4, per_class=20, test_per_class=8, size=(384, 216), seed=0)
    rows, per_hour = [], {}
    for workers in (1, 2):
        seconds = run_workers(data, work / "studies", args.trials, workers, args.storage)
        per_hour[workers] = args.trials / seconds * 3600
        rows.append(f"| {workers} | {args.trials} | {seconds:.0f} | {per_hour[workers]:.0f} |")
    storage = "PostgreSQL" if args.storage else "SQLite (study folder)"
    record("tune_workers.py: tune trials per hour, one vs two workers",
           ["| workers | trials | wall seconds | trials per hour |", "|---:|---:|---:|---:|"] + rows,
           f"Storage: {storage}. Two workers / one worker: {per_hour[2] / per_hour[1]:.2f}x. "
           f"Each trial: resnet18 from scratch, 2 epochs on 72 images of 384x216 (crops 108 -> 64), "
           f"process start-up included.")


if __name__ == "__main__":
    main()
