"""Pooling, training view and resolution on screenshots whose clues are small and anywhere
across the width (`data synth --spread`, and `--clue-scale 0.5` for smaller clues): what
each recipe reaches at equal epochs and at equal wall time on this machine.

Parts (each appends its table to RESULTS.md):

* ``speed``: training images/s of each recipe (the real training loop, one warm-up epoch,
  one timed epoch), from which the epochs that fit in equal wall time follow;
* ``accuracy``: resnet18 from scratch, every plan on every seed; test top-1 in the view the
  run chose on validation; differences paired by seed against today's default recipe
  (crop training, average pooling).

    python benchmarks/pooling.py speed
    python benchmarks/pooling.py accuracy --plans main --epochs 6 --equal-time-epochs 21
    python benchmarks/pooling.py accuracy --plans small --epochs 6 --clue-scale 0.5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import record
from train_views import RECIPE, _mean_se, epoch_rate

from geoconvnet.data.cache import prepare
from geoconvnet.data.synth import synth
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.models.checkpoint import load_checkpoint, read_meta
from geoconvnet.models.pooling import ViewPool
from geoconvnet.training.config import TrainConfig
from geoconvnet.training.train import train

# label -> (train view, pool, view pool, epochs or None for --epochs, other options)
EQUAL = "equal"  # epochs: the --equal-time-epochs
PLANS = {
    "crop, avg (today)": ("crop", "avg", "mean", None, {}),
    "crop, gem": ("crop", "gem", "mean", None, {}),
    "full, avg": ("full", "avg", "mean", None, {}),
    "full, gem": ("full", "gem", "mean", None, {}),
    "full, max": ("full", "max", "mean", None, {}),
    "full, attn": ("full", "attn", "mean", None, {}),
    "full, gem, progressive 0.5": ("full", "gem", "mean", None, {"progressive": 0.5}),
    "grid, avg, view mean": ("grid", "avg", "mean", "grid", {}),
    "grid, avg, view attn": ("grid", "avg", "attn", "grid", {}),
    "grid, avg, view lse": ("grid", "avg", "lse", "grid", {}),
    "crop, avg, equal time": ("crop", "avg", "mean", EQUAL, {}),
    "crop, gem, equal time": ("crop", "gem", "mean", EQUAL, {}),
}
PLAN_SETS = {
    "all": list(PLANS),
    "main": ["crop, avg (today)", "crop, gem", "full, avg", "full, gem", "full, attn",
             "full, gem, progressive 0.5", "grid, avg, view mean", "grid, avg, view attn",
             "crop, avg, equal time"],
    "small": ["crop, avg (today)", "full, avg", "full, gem"],
    "equal": ["crop, avg (today)", "crop, avg, equal time"],
}
BASELINE = "crop, avg (today)"


def dataset(work: Path, args) -> Path:
    """The synthetic screenshots and their training cache (made once per --work folder)."""
    name = f"spread-c{args.clue_scale:g}"
    root, cache = work / name, work / f"{name}-cache"
    if not (cache / "train").is_dir():
        synth(root, classes=16, per_class=args.per_class, test_per_class=args.test_per_class,
              spread=True, clue_scale=args.clue_scale)
        prepare(root, cache)
    return root


def speed(args, work: Path, root: Path) -> None:
    cache = work / f"{root.name}-cache"
    table = ["| recipe | images/s | time per epoch of 1,000 images |", "|---|---:|---:|"]
    recipes = [("crop", "avg", "mean", 0), ("crop", "gem", "mean", 0), ("full", "avg", "mean", 0),
               ("full", "gem", "mean", 0), ("full", "max", "mean", 0), ("full", "attn", "mean", 0),
               ("full", "gem", "mean", 1.5), ("full", "gem", "mean", 2.0),
               ("grid", "avg", "mean", 0), ("grid", "avg", "attn", 0)]
    for view, pool, view_pool, width in recipes:
        options = dict(RECIPE)
        if width:
            options["full_width"] = round(RECIPE["full_width"] * width)
        cfg = TrainConfig(data=str(cache), arch="resnet18", train_view=view, pool=pool,
                          view_pool=view_pool, epochs=2, device="cpu",
                          name=f"speed-{view}-{pool}-{view_pool}-{width}",
                          runs_dir=str(work / "runs"), **options)
        rate = epoch_rate(cfg, cache, work, args.epoch_images)
        label = f"{view}, {pool}" + (f", view {view_pool}" if view == "grid" else "") + \
            (f", full width {options['full_width']}" if width else "")
        table.append(f"| {label} | {rate:,.1f} | {1000 / rate:,.1f} s |")
        print(table[-1], flush=True)
    record("pooling.py speed: training images/s per recipe (cpu)", table,
           f"resnet18, spread screenshots (16 countries, 1600x900) from a cache; batch "
           f"{RECIPE['batch_size']}; crop = 448 crops at {RECIPE['image_size']} px, full = the "
           f"whole screenshot {RECIPE['full_width']} px wide (unless a width is given), grid = "
           f"its 12 crops. One warm-up epoch, then one timed epoch of {args.epoch_images} images.")


def accuracy(args, work: Path, root: Path) -> None:
    cache = work / f"{root.name}-cache"
    plans = PLAN_SETS[args.plans]
    runs = work / f"runs-{time.strftime('%Y%m%d-%H%M%S')}"
    results = {}
    for seed in range(args.seeds):
        for label in plans:
            results[(label, seed)] = outcome = _one_run(args, label, seed, cache, root, runs)
            chosen, tests, seconds = outcome
            print(label, seed, chosen, {v: f"{p:.1%}" for v, p in tests.items()},
                  f"{seconds:.0f} s", flush=True)
    table = ["| recipe | epochs | test top-1, view chosen on validation (mean ± s.e.) | "
             f"difference to {BASELINE}, paired | best view on test | views chosen | seconds "
             "per run |", "|---|---:|---:|---:|---:|---|---:|"]
    base = [_chosen_top1(results[(BASELINE, s)]) for s in range(args.seeds)]
    for label in plans:
        rows = [results[(label, s)] for s in range(args.seeds)]
        auto = [_chosen_top1(r) for r in rows]
        diffs = [a - b for a, b in zip(auto, base)]
        table.append(
            f"| {label} | {_epochs(args, label)} | {_mean_se(auto)} | "
            f"{'–' if label == BASELINE else _mean_se(diffs, signed=True)} | "
            f"{_mean_se([max(t.values()) for _, t, _ in rows])} | "
            f"{', '.join(chosen for chosen, _, _ in rows)} | "
            f"{statistics.mean(s for *_, s in rows):.0f} |")
    record(f"pooling.py accuracy: pooling x training view on spread clues, clue scale "
           f"{args.clue_scale:g} (cpu)", table,
           f"resnet18 from scratch, {args.seeds} seeds (0..{args.seeds - 1}), spread "
           f"screenshots with clues at {args.clue_scale:g}x their size: 16 countries, "
           f"{args.per_class} train / {args.test_per_class} test images each, 1600x900, from a "
           f"cache; recipe {RECIPE}. Differences are paired by seed (same split and init seed).")


def choice(args, work: Path, root: Path) -> None:
    """Every run of the accuracy part (``--runs``): the test top-1 of the view each rule of
    ``--eval-view auto`` picks from the validation scores stored in the run -- the old rule
    (best validation top-1, ties to the lower loss) against the new one (lowest loss unless a
    top-1 lead exceeds two standard errors) -- and, for crop-trained runs, the grid view
    with its crops' logits combined by log-sum-exp instead of the mean."""
    rows, lse_rows = [], []
    root = work / f"{root.name}-cache"  # the test split of the cache: a quarter of the decoding
    for run in sorted(Path(args.runs).iterdir()):
        meta = read_meta(run)
        scores = meta["view_scores"]
        tests = {v: evaluate(run, root, eval_view=v, write=False).metrics["top1"] for v in scores}
        old = max(scores, key=lambda v: (scores[v]["top1"], -scores[v]["loss"]))
        new = meta["preprocessing"]["eval_view"]
        rows.append((tests[old], tests[new], max(tests.values())))
        if meta["preprocessing"]["train_view"] == "crop":
            model = load_checkpoint(run)
            model.net.view_pool = ViewPool("lse", 0)
            lse = evaluate(model, root, eval_view="grid", write=False).metrics["top1"]
            lse_rows.append((tests["grid"], lse))
        print(run.name, old, new, tests, flush=True)
    table = ["| rule of --eval-view auto | test top-1 of the view it picks (mean over runs) | "
             "paired difference to the old rule |", "|---|---:|---:|"]
    table.append(f"| old: best validation top-1 | {_mean_se([r[0] for r in rows])} | – |")
    table.append(f"| new: lowest validation loss unless top-1 leads by > 2 s.e. | "
                 f"{_mean_se([r[1] for r in rows])} | "
                 f"{_mean_se([r[1] - r[0] for r in rows], signed=True)} |")
    table.append(f"| (the best view on test, for scale) | {_mean_se([r[2] for r in rows])} | |")
    if lse_rows:
        table += ["", "| crop-trained runs, grid view | test top-1 | paired difference |",
                  "|---|---:|---:|",
                  f"| crops' logits: mean | {_mean_se([r[0] for r in lse_rows])} | – |",
                  f"| crops' logits: log-sum-exp | {_mean_se([r[1] for r in lse_rows])} | "
                  f"{_mean_se([r[1] - r[0] for r in lse_rows], signed=True)} |"]
    record(f"pooling.py choice: the eval view picked on validation, {len(rows)} runs, clue "
           f"scale {args.clue_scale:g} (cpu)", table,
           f"every run of {Path(args.runs).name} (the accuracy part), its validation scores as "
           "stored; test top-1 measured again here, on the cache's test split. Validation: 10% of "
           "the train split.")


def _epochs(args, label: str) -> int:
    epochs = PLANS[label][3]
    return {None: args.epochs, EQUAL: args.equal_time_epochs,
            "grid": args.grid_epochs}.get(epochs, epochs)


def _one_run(args, label: str, seed: int, cache: Path, root: Path, runs: Path):
    view, pool, view_pool, _, extra = PLANS[label]
    name = f"{label.replace(', ', '-').replace(' ', '_')}-s{seed}"
    start = time.perf_counter()
    run = train(data=str(cache), arch="resnet18", train_view=view, pool=pool,
                view_pool=view_pool, epochs=_epochs(args, label), seed=seed, device="cpu",
                runs_dir=str(runs), name=name, **{**RECIPE, **extra})
    seconds = time.perf_counter() - start
    chosen = read_meta(run)["preprocessing"]["eval_view"]
    tests = {v: evaluate(run, root, eval_view=v, write=False).metrics["top1"]
             for v in ("center", "grid", "full")}
    return chosen, tests, seconds


def _chosen_top1(outcome) -> float:
    chosen, tests, _ = outcome
    return tests[chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "accuracy", "choice"])
    parser.add_argument("--runs", help="choice: the runs folder of an accuracy part")
    parser.add_argument("--plans", choices=sorted(PLAN_SETS), default="all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--grid-epochs", type=int, default=3)
    parser.add_argument("--equal-time-epochs", type=int, default=40)
    parser.add_argument("--epoch-images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=56,
                        help="side of a 448 crop after resizing (56: an eighth of the scale)")
    parser.add_argument("--clue-scale", type=float, default=1.0)
    parser.add_argument("--per-class", type=int, default=16)
    parser.add_argument("--test-per-class", type=int, default=8)
    parser.add_argument("--work")
    args = parser.parse_args()
    RECIPE.update(image_size=args.image_size, full_width=round(1600 * args.image_size / 448))
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-pooling-"))
    root = dataset(work, args)
    {"speed": speed, "accuracy": accuracy, "choice": choice}[args.part](args, work, root)


if __name__ == "__main__":
    main()
