"""Training views on screenshots whose clues are spread across the width (`data synth
--spread`, 16 countries, 1600x900, trained from a cache): what each training mode reaches,
and how fast it trains.

Parts (each appends its table to RESULTS.md):

* ``speed``: training images/s of each mode for one architecture on this machine (the real
  training loop, one warm-up epoch, one timed epoch). On the 2-core CPU with resnet18 this
  gives the epochs that fit in equal wall time; on a GPU, with resnet50 and vit_b_16, the
  throughput the issue asks for.
* ``accuracy``: resnet18 from scratch, every mode at equal epochs, plus crop training at the
  epochs that fit in full training's wall time on 2 CPU cores (``--equal-time-epochs``, from
  the speed part); several seeds; test top-1 in the view ``--eval-view auto`` chose and in
  the best view on test; paired differences against crop training with standard errors.
  Accuracy at a given number of epochs does not depend on the hardware, so this part may run
  on a GPU to save time; the speed part says what the wall time is on 2 cores.

    python benchmarks/train_views.py speed --arch resnet18 --device cpu
    python benchmarks/train_views.py speed --arch resnet50 --arch vit_b_16 --device cuda
    python benchmarks/train_views.py accuracy --seeds 3 --epochs 8 --equal-time-epochs 62 --parallel 5
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from _common import record

from geoconvnet.data.cache import prepare
from geoconvnet.data.index import index_dataset
from geoconvnet.data.synth import synth
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.models.checkpoint import read_meta
from geoconvnet.training.config import TrainConfig
from geoconvnet.training.train import Trainer, train

MODES = ("crop", "full", "grid")
# The demo's recipe (configs/demo.yaml): 448 crops at a quarter scale, AdamW, cosine.
RECIPE = dict(crop_size=448, image_size=112, full_width=400, batch_size=32, optimizer="adamw",
              lr=1e-3, head_lr_mult=1.0, weight_decay=0.05, scheduler="cosine",
              warmup_epochs=1.0, dropout=0.2, weights="none", patience=100)


def spread_data(work: Path, classes: int, per_class: int, test_per_class: int) -> Path:
    root, cache = work / "spread", work / "spread-cache"
    if not (cache / "train").is_dir():
        synth(root, classes=classes, per_class=per_class, test_per_class=test_per_class,
              spread=True)
        prepare(root, cache)
    return root


def speed(args, work: Path, root: Path) -> None:
    table = ["| arch | train view | images/s | time per epoch of 1,000 images |",
             "|---|---|---:|---:|"]
    cache = work / "spread-cache"
    for arch in args.arch:
        for mode in MODES:
            options = dict(RECIPE, image_size=224 if arch == "vit_b_16" else 112)
            if arch == "vit_b_16" and mode == "full":
                table.append(f"| {arch} | {mode} | n/a: a 224x224-only model | |")
                continue
            cfg = TrainConfig(data=str(cache), arch=arch, train_view=mode, epochs=2,
                              device=args.device, name=f"speed-{arch}-{mode}",
                              runs_dir=str(work / "runs"), **options)
            rate = epoch_rate(cfg, cache, work, args.epoch_images)
            table.append(f"| {arch} | {mode} | {rate:,.1f} | {1000 / rate:,.1f} s |")
            print(table[-1], flush=True)
    record(f"train_views.py speed: training images/s per training view ({args.device})", table,
           f"spread sample data (16 countries, 1600x900) from a cache; batch 32, bf16 + "
           f"channels_last on CUDA; crop = 448 crops at {RECIPE['image_size']} px (224 for "
           f"vit_b_16), full = the whole screenshot at {RECIPE['full_width']}x225, grid = its 12 "
           "crops, pooled. One warm-up epoch, then one timed epoch of "
           f"{args.epoch_images} images.")


def epoch_rate(cfg: TrainConfig, cache: Path, work: Path, epoch_images: int) -> float:
    """Training images/s of ``cfg`` in the real loop: one warm-up epoch (cuDNN autotuning,
    workers, page cache), then one timed epoch of ``epoch_images`` images."""
    index = index_dataset(cache, scan=False)
    index.train = (index.train * (epoch_images // len(index.train) + 1))[:epoch_images]
    run_dir = work / "runs" / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, run_dir, index, resume=False)
    trainer.train_epoch(1)
    return trainer.train_epoch(2)["train_images_per_s"]


def accuracy(args, work: Path, root: Path) -> None:
    cache = work / "spread-cache"
    # (label, train view, epochs, other options)
    plans = [(mode, mode, args.epochs, {}) for mode in MODES]
    plans.append(("full, flipped", "full", args.epochs, {"hflip": True}))
    if args.equal_time_epochs:
        plans.append(("crop", "crop", args.equal_time_epochs, {}))
    results = {}
    runs = work / f"runs-{time.strftime('%Y%m%d-%H%M%S')}"  # a fresh folder per invocation
    jobs = [(seed, plan, cache, root, runs, args.device, args.parallel)
            for seed in range(args.seeds) for plan in plans]
    # --parallel N: N runs at once (small runs leave a GPU mostly idle), each in a process of
    # its own. One run at a time stays in this process: a spawned one trained 3-7x slower on
    # the 2-core CPU.
    pool = (ProcessPoolExecutor(args.parallel, mp_context=mp.get_context("spawn"))
            if args.parallel > 1 else None)
    outcomes = pool.map(_one_run, jobs) if pool else map(_one_run, jobs)
    with pool or contextlib.nullcontext():
        for (seed, (label, _, epochs, _), *_), outcome in zip(jobs, outcomes):
            results[(label, epochs, seed)] = outcome
            chosen, tests, seconds = outcome
            print(label, epochs, seed, chosen, {v: f"{p:.1%}" for v, p in tests.items()},
                  f"{seconds:.0f} s", flush=True)
    table = ["| training | epochs | test top-1 in the view auto chose (mean ± s.e.) | "
             "difference to crop training, paired | best view on test: top-1 | views auto "
             "chose | seconds per run here |", "|---|---:|---:|---:|---:|---|---:|"]
    # (with --parallel, runs shared the machine: their seconds are not comparable)
    base = [results[("crop", args.epochs, s)][1][results[("crop", args.epochs, s)][0]]
            for s in range(args.seeds)]
    for mode, _, epochs, _ in plans:
        rows = [results[(mode, epochs, s)] for s in range(args.seeds)]
        auto = [tests[chosen] for chosen, tests, _ in rows]
        best = [max(tests.values()) for _, tests, _ in rows]
        diffs = [a - b for a, b in zip(auto, base)]
        table.append(
            f"| {mode} | {epochs} | {_mean_se(auto)} | "
            f"{'–' if (mode, epochs) == ('crop', args.epochs) else _mean_se(diffs, signed=True)} | "
            f"{_mean_se(best)} | {', '.join(chosen for chosen, _, _ in rows)} | "
            f"{statistics.mean(s for *_, s in rows):.0f} |")
    record(f"train_views.py accuracy: crop vs full vs grid training on spread clues "
           f"({args.device})", table,
           f"resnet18 from scratch, {args.seeds} seeds (0..{args.seeds - 1}), spread sample "
           f"data: 16 countries, {args.per_class} train / {args.test_per_class} test images "
           f"each, 1600x900, from a cache; recipe {RECIPE}. 'auto' = the view chosen on "
           "validation; differences are paired by seed (same data split and init seed). "
           "'full, flipped' = full training with random horizontal flips (off by default "
           "for full: a flip mirrors the driving side).")


def _one_run(job) -> tuple[str, dict, float]:
    seed, (label, mode, epochs, extra), cache, root, runs, device, parallel = job
    name = f"{label.replace(', ', '-')}-e{epochs}-s{seed}"
    workers = max(2, (os.cpu_count() or 2) // parallel)
    start = time.perf_counter()
    run = train(data=str(cache), train_view=mode, epochs=epochs, seed=seed, device=device,
                runs_dir=str(runs), name=name, num_workers=workers,
                **{**RECIPE, **extra})
    seconds = time.perf_counter() - start
    chosen = read_meta(run)["preprocessing"]["eval_view"]
    tests = {view: evaluate(run, root, eval_view=view, write=False,
                            num_workers=workers).metrics["top1"]
             for view in ("center", "grid", "full")}
    return chosen, tests, seconds


def _mean_se(values: list[float], signed: bool = False) -> str:
    mean = statistics.mean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    sign = "+" if signed and mean >= 0 else ""
    return f"{sign}{100 * mean:.1f} ± {100 * se:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "accuracy"])
    parser.add_argument("--arch", action="append", help="speed: architectures (repeat)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--equal-time-epochs", type=int, default=0)
    parser.add_argument("--epoch-images", type=int, default=512)
    parser.add_argument("--parallel", type=int, default=1, help="accuracy: runs at once")
    parser.add_argument("--image-size", type=int, default=RECIPE["image_size"],
                        help="side of a 448 crop after resizing (112: a quarter scale)")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--test-per-class", type=int, default=12)
    parser.add_argument("--work")
    args = parser.parse_args()
    args.arch = args.arch or ["resnet18"]
    # Smaller sizes keep the scale of the three views equal: full = 1600 x image_size / 448.
    RECIPE.update(image_size=args.image_size, full_width=round(1600 * args.image_size / 448))
    args.device = str(torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                                   else "cpu" if args.device == "auto" else args.device))
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-views-"))
    root = spread_data(work, 16, args.per_class, args.test_per_class)
    (speed if args.part == "speed" else accuracy)(args, work, root)


if __name__ == "__main__":
    main()
