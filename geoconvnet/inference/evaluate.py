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
from .core import infer, require_some
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


def evaluate(model, data: str | Path | DataRoot, *, split: str = "test",
             samples: list[Sample] | None = None, eval_view: str | None = None,
             batch_size: int | None = None, device: str | torch.device | None = None,
             num_workers: int | None = None, out_dir: str | Path | None = None,
             write: bool = True) -> EvalResult:
    """Top-1/3/5 and loss of a model on a dataset split.

    ``model``: a checkpoint file, a run folder or a :class:`LoadedModel`.
    ``data``: a dataset folder or cache (``split`` picks its sub-folder), or ``samples``
    of it (the validation split). With ``write`` the per-country report, confusion matrix
    and per-image predictions are written to ``out_dir`` (default ``<run>/eval/<split>-<view>``).
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
    if write:
        if out_dir is None:
            if isinstance(model, LoadedModel):
                raise ConfigError("evaluate: pass out_dir to write the results of an in-memory "
                                  "model (or write=False)")
            out_dir = resolve_checkpoint(model).parent / "eval" / f"{split}-{run.view}"
        result.out_dir = write_results(result, Path(out_dir))
    return result


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
    return out_dir
