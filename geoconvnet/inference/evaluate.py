"""``evaluate``: top-1/3/5, loss, per-country table, confusion matrix and per-image
predictions of a model on a split. The training loop's validation calls it too."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.layout import Sample
from ..data.root import DataRoot
from ..models.checkpoint import LoadedModel, resolve_checkpoint
from ..models.load import load_model
from ..utils.device import resolve_device
from ..utils.errors import ConfigError
from ..utils.io import write_csv, write_json, write_text
from ..data.geo import distance_summary
from . import default_batch_size
from .core import infer, require_some
from .geoeval import CELL, GeoResult, locate
from .refine import build_refiner
from .metrics import per_class_table, summarize


@dataclass
class EvalResult:
    metrics: dict  # loss, top1, top3, top5, n, split, eval_view, skipped
    probs: np.ndarray  # [n, classes], after temperature scaling
    targets: np.ndarray  # [n]
    paths: list[str]
    class_names: list[str]
    out_dir: Path | None = None
    images_per_s: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable file -> why
    geo: GeoResult | None = None  # pins and true places, when the split has coordinates


def evaluate(model, data: str | Path | DataRoot, *, split: str = "test",
             samples: list[Sample] | None = None, eval_view: str | None = None,
             batch_size: int | None = None, device: str | torch.device | None = None,
             num_workers: int | None = None, out_dir: str | Path | None = None,
             write: bool = True, pins: bool = True, refine: str | None = None,
             refine_data: str | Path | DataRoot | None = None,
             embedding_cache: str | Path | None = None) -> EvalResult:
    """Top-1/3/5 and loss of a model on a dataset split.

    ``model``: a checkpoint file, a run folder or a :class:`LoadedModel`.
    ``data``: a dataset folder or cache (``split`` picks its sub-folder), or ``samples``
    of it (the validation split). With ``write`` the per-country report, confusion matrix
    and per-image predictions are written to ``out_dir`` (default ``<run>/eval/<split>-<view>``).
    Where the split has coordinates, ``metrics["geo"]`` says how far the pins land
    (:mod:`.geoeval`; ``pins=False``: only the likeliest geocell's centre, in
    ``metrics["geo_cell"]``, as the training loop's validation wants it). ``refine``:
    ``knn`` adds the location head's pin refined by the nearest training images of
    ``refine_data`` (default: the root the model was trained on; :mod:`.refine`), embedded
    once into ``embedding_cache`` (default ``~/.cache/geoconvnet/embeddings``).
    """
    device = resolve_device(device)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    data = data if isinstance(data, DataRoot) else DataRoot.open(data)
    samples = data.samples(split, loaded.class_names) if samples is None else samples
    run = infer(loaded, samples, view=eval_view, data=data, batch_size=batch_size,
                device=device, num_workers=num_workers, description="Evaluating")
    require_some(run, f"split {split!r} of {data.path}", len(samples))
    logits = run.logits / run.temperature
    metrics = {**summarize(logits, run.labels), "split": split, "eval_view": run.view,
               "skipped": len(samples) - len(run.indices)}
    result = EvalResult(metrics, logits.softmax(dim=1).numpy(), run.labels.numpy(),
                        [data.display(samples[i][0]) for i in run.indices.tolist()],
                        loaded.class_names,
                        images_per_s=run.images_per_s,
                        skipped={data.display(samples[i][0]): why for i, why in run.failed.items()})
    truth = data.coordinates([samples[i][0] for i in run.indices.tolist()])
    if np.isfinite(truth).all(axis=1).any():
        refiner, vectors = _refiner(refine if pins else None, loaded, refine_data, data,
                                    [samples[i] for i in run.indices.tolist()], device,
                                    batch_size, num_workers, embedding_cache)
        result.geo = locate(loaded, run, truth, pins=pins, refiner=refiner, vectors=vectors)
        if result.geo.summary():
            metrics["geo"] = result.geo.summary()
        if CELL in result.geo.pins:
            metrics["geo_cell"] = distance_summary(result.geo.distances(CELL))
    if write:
        if out_dir is None:
            if isinstance(model, LoadedModel):
                raise ConfigError("evaluate: pass out_dir to write the results of an in-memory "
                                  "model (or write=False)")
            out_dir = resolve_checkpoint(model).parent / "eval" / f"{split}-{run.view}"
        result.out_dir = write_results(result, Path(out_dir))
    return result


def _refiner(refine: str | None, model: LoadedModel, refine_data, data: DataRoot,
             evaluated: list, device, batch_size: int | None, num_workers: int | None,
             cache_dir) -> tuple:
    """(refiner, embeddings of the evaluated images) for ``--refine knn``, else (None,
    None)."""
    if refine is None:
        return None, None
    if refine != "knn":
        raise ConfigError(f"--refine {refine!r}: the only refinement is knn")
    if not hasattr(model.net, "backbone"):
        raise ConfigError("--refine knn compares the backbone's embeddings: evaluate the "
                          "PyTorch checkpoint (run folder), not an ONNX export")
    if model.geocells is None:
        raise ConfigError("--refine knn refines the location head's pin; this model has no "
                          "location head (train it on a root with coordinates)")
    refine_data = refine_data or model.meta.get("config", {}).get("data")
    if not refine_data:
        raise ConfigError("--refine knn: pass the root the model was trained on with "
                          "--refine-data")
    train_root = refine_data if isinstance(refine_data, DataRoot) else DataRoot.open(refine_data)
    batch_size = batch_size or default_batch_size(device.type)
    refiner, cache = build_refiner(model, train_root, device, batch_size, num_workers, cache_dir)
    return refiner, cache.get(data, evaluated, device, batch_size, num_workers).numpy()


def write_results(result: EvalResult, out_dir: Path) -> Path:
    """metrics.json, per_class.csv/.md, confusion.csv and predictions.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = result.class_names
    write_json(out_dir / "metrics.json", result.metrics)
    rows = per_class_table(result.probs, result.targets, names)
    write_csv(out_dir / "per_class.csv", ["country", "precision", "recall", "f1", "support"],
              [[r["country"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}",
                r["support"]] for r in rows])
    md = ["| country | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r['country']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
           f"{r['support']} |" for r in rows]
    write_text(out_dir / "per_class.md", "\n".join(md) + "\n")
    from sklearn.metrics import confusion_matrix  # lazy: see data.index

    matrix = confusion_matrix(result.targets, result.probs.argmax(axis=1),
                              labels=list(range(len(names))))
    write_csv(out_dir / "confusion.csv", ["truth\\predicted"] + names,
              [[name] + row.tolist() for name, row in zip(names, matrix)])
    k = min(5, len(names))
    top = np.argsort(-result.probs, axis=1)[:, :k]
    header = ["path", "truth"] + [f"{kind}{i + 1}" for i in range(k) for kind in ("pred", "prob")]
    body = [[path, names[t]] + [v for j in order for v in (names[j], f"{probs[j]:.4f}")]
            for path, t, order, probs in zip(result.paths, result.targets, top, result.probs)]
    write_csv(out_dir / "predictions.csv", header, body)
    if result.geo is not None and result.geo.summary():
        write_geo_predictions(result, out_dir / "geo_predictions.csv")
    else:  # an earlier evaluation's pins must not pass for this one's (the report reads it)
        (out_dir / "geo_predictions.csv").unlink(missing_ok=True)
    return out_dir


def write_geo_predictions(result: EvalResult, path: Path) -> None:
    """Per image: the true place, each pin and its distance (plain data for the report)."""
    geo, kinds = result.geo, [k for k in result.geo.pins if k != CELL]
    header = ["path", "truth", "lat", "lon"] + [f"{kind}_{part}" for kind in kinds
                                                for part in ("lat", "lon", "km")]
    distances = {kind: geo.distances(kind) for kind in kinds}
    rows = []
    for i, (path_i, target) in enumerate(zip(result.paths, result.targets)):
        if not np.isfinite(geo.truth[i]).all():
            continue
        row = [path_i, result.class_names[target], f"{geo.truth[i, 0]:.5f}",
               f"{geo.truth[i, 1]:.5f}"]
        for kind in kinds:
            lat, lon = geo.pins[kind][i]
            row += [f"{lat:.5f}", f"{lon:.5f}", f"{distances[kind][i]:.1f}"]
        rows.append(row)
    write_csv(path, header, rows)
