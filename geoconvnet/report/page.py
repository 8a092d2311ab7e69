"""``report``: every figure and table of the reference write-up, and more, in one page.

Everything is built from files on disk -- the run's ``metrics.csv`` and the CSV/JSON that
``evaluate`` writes -- so a report is regenerated without the model; only a missing
evaluation (and the prediction figures, which show the images) needs ``--data``.
"""

from __future__ import annotations

import base64
import json
import random
import tarfile
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import yaml

from ..data.countries import shapes_for_map
from ..data.images import load_image
from ..data.preprocessing import EVAL_VIEWS
from ..data.root import DataRoot
from ..data.shardstore import is_remote
from ..inference.evaluate import evaluate
from ..models.checkpoint import read_meta
from ..utils.errors import CheckpointError, GeoconvnetError
from ..utils.io import atomic_write, read_csv, write_csv, write_json, write_text
from ..utils.progress import add_task, log, progress_bar
from . import geo, plots
from .analysis import (
    calibration_bins,
    cluster_order,
    embed,
    read_confusion,
    row_normalize,
    top_confused_pairs,
)
from .reference import REFERENCE_ARCHS, REFERENCE_SOURCE, reference_epochs, reference_f1
from .worldmap import map_names


def _epochs(run: Path) -> list[dict]:
    """A run's ``metrics.csv`` (one row per epoch), or an error naming the folder."""
    if not (run / "metrics.csv").is_file():
        raise GeoconvnetError(f"{run}: not a run folder (no metrics.csv); give the folder "
                              "`geoconvnet train` made, e.g. runs/NAME")
    return read_csv(run / "metrics.csv")


def _eval_dir(run: Path, data, split: str, view: str | None) -> Path:
    """The run's evaluation folder for split/view, evaluating first if it is missing."""
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    view = view or _run_view(run, config)
    folder = run / "eval" / f"{split}-{view}"
    if not (folder / "predictions.csv").is_file():
        data = data or config.get("data")
        if not data or not (is_remote(data) or Path(data).exists()):
            raise GeoconvnetError(f"{folder} is missing and the dataset is unknown: pass --data ROOT")
        evaluate(run, DataRoot.open(data), split=split, eval_view=view, out_dir=folder)
    return folder


def _country_rows(per_class: list[dict], ref: dict[str, float]) -> list[dict]:
    rows = []
    for r in per_class:
        row = {"country": r["country"], "precision": float(r["precision"]),
               "recall": float(r["recall"]), "f1": float(r["f1"]), "support": int(r["support"])}
        if ref:
            row["reference_f1"] = ref.get(r["country"])
        rows.append(row)
    return rows


def _prediction_figures(predictions: list[dict], out: Path, all_figures: bool, sample: int,
                        seed: int = 0) -> dict[str, Path]:
    """Confident-correct and confident-wrong grids, and per-country cards."""
    def thumb(path):
        image = load_image(path)
        image.thumbnail((480, 270))
        return image

    readable = [p for p in predictions if Path(p["path"]).is_file()]
    if len(readable) < len(predictions):
        missing = next(p["path"] for p in predictions if not Path(p["path"]).is_file())
        log(f"[yellow]{len(predictions) - len(readable)} evaluated image(s) are not on this "
            f"machine (e.g. {missing}): left out of the prediction figures[/]")
    correct = sorted((p for p in readable if p["pred1"] == p["truth"]), key=lambda p: -float(p["prob1"]))
    wrong = sorted((p for p in readable if p["pred1"] != p["truth"]), key=lambda p: -float(p["prob1"]))
    figures = {}
    for name, items, title in (("predictions_correct", correct, "Most confident correct guesses"),
                               ("predictions_wrong", wrong, "Most confident wrong guesses")):
        if items:
            cells = [(thumb(p["path"]), p["pred1"], float(p["prob1"]), p["truth"]) for p in items[:12]]
            figures[name] = plots.prediction_grid(cells, out / f"{name}.png", title)
    chosen = readable if all_figures else random.Random(seed).sample(readable, min(sample, len(readable)))
    with progress_bar() as bar:
        task = add_task(bar, "Prediction figures", len(chosen))
        for p in chosen:
            top = [(p[f"pred{i}"], float(p[f"prob{i}"])) for i in (1, 2, 3) if f"pred{i}" in p]
            target = out / "figures" / p["truth"] / (Path(p["path"]).stem + ".png")
            plots.prediction_card(load_image(p["path"]), top, p["truth"], target)
            bar.advance(task)
    return figures


def _similarity_maps(matrix: np.ndarray, names: list[str], f1: list[float], out: Path) -> dict:
    figures = {}
    jobs = [(m, metric) for m in ("tsne", "umap") for metric in ("raw", "cosine")]
    with progress_bar() as bar:
        task = add_task(bar, "Country similarity maps", len(jobs), unit="map")
        for method, metric in jobs:
            points = embed(matrix, method, metric)
            if points is not None:
                title = f"{'t-SNE' if method == 'tsne' else 'UMAP'} of confusion rows ({metric}); colour = F1"
                figures[f"{method}_{metric}"] = plots.embedding_scatter(
                    points, names, out / f"similarity_{method}_{metric}.png", title, np.asarray(f1))
            bar.advance(task)
    return figures


def report(run: str | Path, data: str | Path | None = None, split: str = "test",
           eval_view: str | None = None, all_figures: bool = False, sample: int = 24,
           archive: bool = False) -> Path:
    """Write ``RUN/report/`` (figures, tables, ``report.html``) and return its path."""
    run = Path(run)
    epochs = _epochs(run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    eval_dir = _eval_dir(run, data, split, eval_view)
    out = run / "report"
    out.mkdir(exist_ok=True)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    arch = config.get("arch", "")
    countries = _country_rows(read_csv(eval_dir / "per_class.csv"), reference_f1(arch))
    matrix, names = read_confusion(eval_dir / "confusion.csv")
    predictions = read_csv(eval_dir / "predictions.csv")
    figures: dict[str, Path] = {}

    figures["curves"] = plots.training_curves(epochs, out / "curves.png", f"{run.name} ({arch})")
    for path in compare([run], REFERENCE_ARCHS, out):
        figures[path.stem] = path
    ref = reference_f1(arch)
    figures["f1"] = plots.f1_bars(names, [c["f1"] for c in countries], out / "f1_by_country.png", ref)
    order = cluster_order(matrix)
    shares = row_normalize(matrix)
    figures["confusion"] = plots.confusion_heatmap(shares[np.ix_(order, order)],
                                                   [names[i] for i in order], out / "confusion.png")
    pairs = top_confused_pairs(matrix, names)
    write_csv(out / "confused_pairs.csv", ["truth", "predicted", "share", "count"], pairs)
    figures.update(_similarity_maps(matrix, names, [c["f1"] for c in countries], out))

    confidence = np.array([float(p["prob1"]) for p in predictions])
    correct = np.array([p["pred1"] == p["truth"] for p in predictions], dtype=float)
    ece, bins = calibration_bins(confidence, correct)
    write_json(out / "calibration.json", {"ece": ece, "bins": bins}, indent=1)
    figures["reliability"] = plots.reliability_diagram(bins, ece, out / "reliability.png")

    mapped, unmapped = map_names(names)
    recall = {mapped[c["country"]]: c["recall"] for c in countries if c["country"] in mapped}
    figures["map"] = plots.world_map(shapes_for_map(), recall, out / "world_accuracy.png",
                                     "Accuracy (recall) by country", "share of the country's images guessed right")
    where = geo.where(eval_dir, metrics, out)  # None: the split has no coordinates
    figures.update(_prediction_figures(predictions, out, all_figures, sample))
    write_csv(out / "per_class.csv", list(countries[0]), countries)

    views = view_rows(run, split, config)
    page = render_html(run, config, metrics, epochs, countries, pairs, ece, unmapped, figures, out,
                       views, where)
    write_text(out / "report.html", page)
    if archive:
        write_archive(run, out, eval_dir)
    return out


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _checkpoint_meta(run: Path) -> dict:
    """The best checkpoint's metadata; {} for a report made from result files alone."""
    try:
        return read_meta(run)
    except CheckpointError:
        return {}


def _run_view(run: Path, config: dict) -> str:
    """The checkpoint's view (with ``--eval-view auto``, the one validation chose)."""
    meta = _checkpoint_meta(run)
    if meta:
        return meta["preprocessing"]["eval_view"]
    summary = run / "summary.json"
    chosen = json.loads(summary.read_text()).get("eval_view") if summary.is_file() else None
    return chosen or (config.get("eval_view") if config.get("eval_view") in EVAL_VIEWS
                      else "center")


def view_rows(run: Path, split: str, config: dict | None = None) -> list[dict]:
    """The eval views side by side: validation scores (``--eval-view auto`` stores them in
    the checkpoint) and the ``split`` scores of every view evaluated so far."""
    meta = _checkpoint_meta(run)
    chosen, scores = _run_view(run, config or {}), meta.get("view_scores", {})
    rows = []
    for view in EVAL_VIEWS:
        done = run / "eval" / f"{split}-{view}" / "metrics.json"
        tested = json.loads(done.read_text()) if done.is_file() else {}
        if view in scores or tested:
            rows.append({"view": view, "chosen": view == chosen,
                         "val_top1": scores.get(view, {}).get("top1"),
                         "val_top1_se": scores.get(view, {}).get("top1_se"),
                         "val_loss": scores.get(view, {}).get("loss"),
                         "val_loss_se": scores.get(view, {}).get("loss_se"),
                         "val_n": scores.get(view, {}).get("n"),
                         "chosen_by": meta.get("view_chosen_by"),
                         "test_top1": tested.get("top1"), "test_top3": tested.get("top3")})
    return rows


def render_html(run: Path, config: dict, metrics: dict, epochs: list[dict], countries: list[dict],
                pairs: list[dict], ece: float, unmapped: list[str], figures: dict[str, Path],
                out: Path, views: list[dict] | None = None, where: geo.Where | None = None) -> str:
    """One self-contained page: figures embedded as data URIs, no network needed. With
    ``where`` (:func:`.geo.where`), the "Where" section after the world map."""
    template = jinja2.Environment(autoescape=True).from_string(
        resources.files("geoconvnet.resources").joinpath("report.html.j2").read_text())
    ranked = sorted(countries, key=lambda c: -c["f1"])
    cards = sorted(out.glob("figures/*/*.png"))[:12]
    best_val = min(epochs, key=lambda r: float(r["val_loss"]))
    reference = None
    if config.get("arch") in REFERENCE_ARCHS:
        last = reference_epochs(config["arch"])[-1]
        reference = {k: float(last[f"test_{k}"]) for k in ("top1", "top3", "top5")}
    page = template.render(
        run=run.name, config=config, metrics=metrics, best_val=best_val, epochs=len(epochs),
        countries=countries, best=ranked[:5], worst=ranked[-5:][::-1], pairs=pairs, ece=ece,
        unmapped=unmapped, reference=reference, views=views or [], split=metrics.get("split"),
        has_reference_f1=any(c.get("reference_f1") is not None for c in countries),
        fig={k: _data_uri(v) for k, v in figures.items()},
        cards=[(p.parent.name, _data_uri(p)) for p in cards])
    if where is None:
        return page
    section = geo.render_section(where, {k: _data_uri(v) for k, v in where.figures.items()})
    return geo.insert_section(page, section)


def write_archive(run: Path, out: Path, eval_dir: Path) -> Path:
    """results.tar.gz with the CSV/JSON results and every figure, as the reference offered."""
    target = out / "results.tar.gz"
    with atomic_write(target, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
        for path in [run / "metrics.csv", run / "config.yaml", *sorted(eval_dir.glob("*"))]:
            if path.is_file():
                tar.add(path, arcname=f"results/{path.relative_to(run)}")
        for path in sorted(out.rglob("*")):
            if path.is_file() and path.suffix in (".png", ".csv", ".json", ".html"):
                tar.add(path, arcname=f"results/{path.relative_to(run)}")
    return target


def compare(runs: list[str | Path], references: list[str] = (), out: str | Path = "compare",
            metrics: tuple[str, ...] = ("top1", "top3")) -> list[Path]:
    """Overlay the validation curves of runs and the reference's published test curves."""
    out = Path(out)
    written = []
    for metric in metrics:
        series = []
        for run in map(Path, runs):
            rows = _epochs(run)
            series.append((f"{run.name} (validation)", [int(r["epoch"]) for r in rows],
                           [float(r[f"val_{metric}"]) for r in rows], "-"))
        for arch in references:
            rows = reference_epochs(arch)
            series.append((f"{arch}: {REFERENCE_SOURCE}", [int(r["epoch"]) for r in rows],
                           [float(r[f"test_{metric}"]) for r in rows], "--"))
        if not series:
            raise GeoconvnetError("nothing to compare: give run folders and/or --reference NAME")
        label = metric.replace("top", "top-") + " accuracy"
        written.append(plots.compare_curves(series, out / f"compare_{metric}.png", label))
    return written
