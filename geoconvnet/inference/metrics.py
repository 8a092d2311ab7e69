"""Top-k accuracy, loss and the per-country table: numbers from logits and labels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf

TOP_K = (1, 3, 5)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks=TOP_K) -> torch.Tensor:
    """Number of samples whose target is among the top k logits, for each k (capped at the
    number of classes, so top-5 of a 3-class problem is 100%)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top == targets[:, None]
    return torch.stack([hits[:, :min(k, kmax)].any(dim=1).sum() for k in ks])


def summarize(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    n = len(targets)
    correct = topk_correct(logits, targets)
    metrics = {"loss": nnf.cross_entropy(logits, targets).item(), "n": n}
    metrics.update({f"top{k}": c.item() / n for k, c in zip(TOP_K, correct)})
    return metrics


def per_class_table(probs: np.ndarray, targets: np.ndarray, class_names: list[str]) -> list[dict]:
    """scikit-learn's precision/recall/F1/support for every class (zero where undefined)."""
    labels = list(range(len(class_names)))
    from sklearn.metrics import precision_recall_fscore_support  # lazy: see data.index

    p, r, f, s = precision_recall_fscore_support(targets, probs.argmax(axis=1), labels=labels,
                                                 zero_division=0)
    return [{"country": name, "precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
            for i, name in enumerate(class_names)]
