"""Where, not only which country: the location head's pin against the country pin.

On `data synth --coords` screenshots of big countries (Russia, Canada, USA, Brazil,
Australia) and a few small ones, whose look also varies with the place inside the country,
each seed trains two runs with the same recipe and epochs: with the location head (geocells,
haversine label smoothing) and without it (--geo off). The test split is then evaluated
the field's way: median and mean km, GeoScore and within 25/200/750 km for

* the location head's pin (the highest expected score under its cell distribution),
* that pin refined by the nearest training images in embedding space (--refine knn),
* the country pin of the same model (its country probabilities spread over the land),
* the country pin of the model trained without the location head,

and the training speed (images/s) of both runs. Appends its tables to RESULTS.md.

    python benchmarks/geo.py --seeds 0 1 --epochs 12
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from _common import record

from geoconvnet.data.synth import synth
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.training.train import train

COUNTRIES = ["Russia", "Canada", "USA", "Brazil", "Australia", "France", "Japan", "Chile"]
RECIPE = dict(arch="resnet18", weights="none", crop_size=108, image_size=64, batch_size=16,
              optimizer="adamw", lr=1e-3, head_lr_mult=1.0, weight_decay=0.05,
              scheduler="cosine", warmup_epochs=1.0, dropout=0.2, eval_view="center",
              num_workers=2, geocells=64, geocell_min=8)
KINDS = [("pin", "location head pin"), ("pin_knn", "location head pin, knn refined"),
         ("country_pin", "country pin, same model"), ("off", "country pin, no location head")]


def one_seed(work: Path, root: Path, seed: int, epochs: int) -> dict:
    runs = {}
    for geo in ("auto", "off"):
        runs[geo] = train(data=str(root), runs_dir=str(work / "runs"), name=f"{geo}-{seed}",
                          geo=geo, epochs=epochs, patience=epochs, seed=seed, **RECIPE)
    on = evaluate(runs["auto"], root, split="test", refine="knn", num_workers=2,
                  embedding_cache=work / "emb", out_dir=work / f"eval-on-{seed}")
    off = evaluate(runs["off"], root, split="test", num_workers=2,
                   out_dir=work / f"eval-off-{seed}")
    geo = dict(on.metrics["geo"])
    geo["off"] = off.metrics["geo"]["country_pin"]
    speed = {name: _images_per_s(run) for name, run in runs.items()}
    return {"geo": geo, "top1": {"auto": on.metrics["top1"], "off": off.metrics["top1"]},
            "speed": speed}


def _images_per_s(run: Path) -> float:
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))[1:]  # the first epoch warms up (workers, caches)
    return statistics.mean(float(r["train_images_per_s"]) for r in rows)


def _mean(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:,.1f}"
    return f"{statistics.mean(values):,.1f} ± {statistics.stdev(values) / len(values) ** 0.5:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--work", help="folder to keep data and runs (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoconvnet-geo-") as tmp:
        work = Path(args.work or tmp)
        root = synth(work / "places", per_class=args.per_class,
                     test_per_class=args.test_per_class, size=(384, 216), seed=0, coords=True,
                     countries=COUNTRIES)
        results = [one_seed(work, root, seed, args.epochs) for seed in args.seeds]
    table = ["| pin | median km | mean km | GeoScore | ≤25 km | ≤200 km | ≤750 km |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, label in KINDS:
        ms = [r["geo"][kind] for r in results]
        cells = [_mean([m[k] for m in ms]) for k in ("median_km", "mean_km", "geoscore")]
        cells += [_mean([100 * m["within"][t] for m in ms]) + "%" for t in ("25", "200", "750")]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    table += ["", "| run | train images/s | test top-1 |", "|---|---:|---:|"]
    for name, label in (("auto", "with the location head"), ("off", "country head only")):
        table.append(f"| {label} | {_mean([r['speed'][name] for r in results])} | "
                     f"{_mean([100 * r['top1'][name] for r in results])}% |")
    record("Where: location head vs country pin (synth --coords, big countries)", table,
           f"{len(COUNTRIES)} countries ({', '.join(COUNTRIES)}), {args.per_class} train / "
           f"{args.test_per_class} test images each at 384x216, seeds {args.seeds}, "
           f"{args.epochs} epochs, recipe {RECIPE}. Mean ± standard error over seeds. "
           "`python benchmarks/geo.py --seeds " + " ".join(map(str, args.seeds)) +
           f" --epochs {args.epochs}`")


if __name__ == "__main__":
    main()
