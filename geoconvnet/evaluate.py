"""One ``evaluate()`` for the training loop (validation) and the ``evaluate`` command."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .checkpoint import LoadedModel, load_checkpoint, resolve_checkpoint
from .data import Sample, atomic_write_csv, atomic_write_text, samples_for_split
from .models import check_input_size
from .progress import add_task, progress_bar
from .runtime import autocast, make_loader, resolve_device
from .transforms import eval_transform, normalize

TOP_K = (1, 3, 5)


@dataclass
class EvalResult:
    metrics: dict  # loss, top1, top3, top5, n
    probs: np.ndarray  # [n, classes], after temperature scaling
    targets: np.ndarray  # [n]
    paths: list[str]
    class_names: list[str]
    out_dir: Path | None = None


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks=TOP_K) -> torch.Tensor:
    """Number of samples whose target is among the top k logits, for each k (capped at the
    number of classes, so top-5 of a 3-class problem is 100%)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top == targets[:, None]
    return torch.stack([hits[:, :min(k, kmax)].any(dim=1).sum() for k in ks])


def forward_views(net: torch.nn.Module, images, device: torch.device, pp,
                  channels_last: bool = True):
    """Logits for a batch of uint8 ``[B, V, C, H, W]`` views (or a list of ``[V, C, H, W]`` of
    mixed sizes), averaged over the V views of each image."""
    if isinstance(images, list):
        return torch.cat([forward_views(net, img[None], device, pp, channels_last) for img in images])
    b, v = images.shape[:2]
    flat = normalize(images.flatten(0, 1).to(device, non_blocking=True), pp)
    if channels_last and device.type == "cuda":
        flat = flat.contiguous(memory_format=torch.channels_last)
    with autocast(device):
        logits = net(flat)
    return logits.float().view(b, v, -1).mean(dim=1)


@torch.no_grad()
def predict_logits(model: LoadedModel, samples: list[Sample], view: str, batch_size: int,
                   device: torch.device, num_workers: int | None = None, description="Evaluating",
                   source_scale: float = 1.0, checksums: dict | None = None):
    """Logits for every sample that decodes; returns (logits, targets, kept sample indices).
    ``source_scale``/``checksums`` describe a cache (see :mod:`geoconvnet.cache`)."""
    check_input_size(model.net, model.meta["arch"], model.preprocessing.image_size, view)
    transform = eval_transform(model.preprocessing, view, source_scale)
    loader = make_loader(samples, transform, batch_size, device, shuffle=False,
                         num_workers=num_workers, checksums=checksums)
    was_training = model.net.training
    model.net.eval()
    logits, targets, kept = [], [], []
    with progress_bar(transient=True) as bar:
        task = add_task(bar, description, len(samples))
        for batch in loader:
            if batch is None:
                continue
            images, labels, indices = batch
            logits.append(forward_views(model.net, images, device, model.preprocessing).cpu())
            targets.append(labels)
            kept.append(indices)
            bar.advance(task, len(labels))
    model.net.train(was_training)
    if not logits:
        raise RuntimeError("no image of the split could be decoded")
    return torch.cat(logits), torch.cat(targets), torch.cat(kept)


def summarize(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    n = len(targets)
    correct = topk_correct(logits, targets)
    metrics = {"loss": nnf.cross_entropy(logits, targets).item(), "n": n}
    metrics.update({f"top{k}": c.item() / n for k, c in zip(TOP_K, correct)})
    return metrics


def evaluate(model, data, *, split: str = "test", eval_view: str | None = None,
             batch_size: int = 32, device: str | torch.device | None = None,
             num_workers: int | None = None, out_dir: str | Path | None = None,
             write: bool = True, source_scale: float = 1.0,
             checksums: dict | None = None) -> EvalResult:
    """Top-1/3/5 and loss of a model on a dataset split.

    ``model``: a checkpoint file, a run folder or a :class:`LoadedModel`.
    ``data``: a dataset root or cache (``split`` picks its sub-folder) or a list of
    (path, label) -- then ``source_scale``/``checksums`` say whether they are cache files.
    With ``write`` the per-country report, confusion matrix and per-image predictions are
    written to ``out_dir`` (default ``<run>/eval/<split>-<view>``).
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    loaded = model if isinstance(model, LoadedModel) else load_checkpoint(model, device)
    loaded.net.to(device)
    view = eval_view or loaded.preprocessing.eval_view
    if isinstance(data, list):
        samples = data
    else:
        from . import cache

        samples = samples_for_split(data, split, loaded.class_names)
        source_scale = cache.source_scale(data)
        checksums = cache.checksums(data) if cache.is_cache(data) else None
    logits, targets, kept = predict_logits(loaded, samples, view, batch_size, device, num_workers,
                                           source_scale=source_scale, checksums=checksums)
    logits = logits / loaded.temperature
    metrics = {**summarize(logits, targets), "split": split, "eval_view": view,
               "skipped": len(samples) - len(kept)}
    result = EvalResult(metrics, logits.softmax(dim=1).numpy(), targets.numpy(),
                        [samples[i][0] for i in kept.tolist()], loaded.class_names)
    if write:
        if out_dir is None:
            if isinstance(model, LoadedModel):
                raise ValueError("out_dir is required to write results for an in-memory model")
            out_dir = resolve_checkpoint(model).parent / "eval" / f"{split}-{view}"
        result.out_dir = write_results(result, Path(out_dir))
    return result


def per_class_table(result: EvalResult) -> list[dict]:
    """scikit-learn's precision/recall/F1/support for every class (zero where undefined)."""
    labels = list(range(len(result.class_names)))
    predicted = result.probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(result.targets, predicted, labels=labels,
                                                 zero_division=0)
    return [{"country": name, "precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
            for i, name in enumerate(result.class_names)]


def write_results(result: EvalResult, out_dir: Path) -> Path:
    """metrics.json, per_class.csv/.md, confusion.csv and predictions.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = result.class_names
    atomic_write_text(out_dir / "metrics.json", json.dumps(result.metrics, indent=2))
    rows = per_class_table(result)
    atomic_write_csv(out_dir / "per_class.csv", ["country", "precision", "recall", "f1", "support"],
               [[r["country"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}",
                 r["support"]] for r in rows])
    md = ["| country | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r['country']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
           f"{r['support']} |" for r in rows]
    atomic_write_text(out_dir / "per_class.md", "\n".join(md) + "\n")
    matrix = confusion_matrix(result.targets, result.probs.argmax(axis=1),
                              labels=list(range(len(names))))
    atomic_write_csv(out_dir / "confusion.csv", ["truth\\predicted"] + names,
               [[name] + row.tolist() for name, row in zip(names, matrix)])
    k = min(5, len(names))
    top = np.argsort(-result.probs, axis=1)[:, :k]
    header = ["path", "truth"] + [f"{kind}{i + 1}" for i in range(k) for kind in ("pred", "prob")]
    body = [[path, names[t]] + [v for j in order for v in (names[j], f"{probs[j]:.4f}")]
            for path, t, order, probs in zip(result.paths, result.targets, top, result.probs)]
    atomic_write_csv(out_dir / "predictions.csv", header, body)
    return out_dir
