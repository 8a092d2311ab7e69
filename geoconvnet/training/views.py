"""``--eval-view auto``: after training, the best checkpoint is scored in every eval view on
the validation split, and the best view (with every view's scores and their standard
errors) is written into the checkpoint, so ``evaluate``, ``predict``, ``report`` and the
app use it.

Which view wins depends on the data: on the built-in sample data the centre crop does, on
screenshots whose clues are spread across the width the whole image or the grid of crops.
The choice must not hang on one image: on 48 validation images one image is two points of
top-1. So the view with the lowest validation loss wins (a proper score that every image
moves a little, far less noisy than top-1), unless another view's top-1 is ahead by more
than twice the standard error of the paired difference. The test split is never looked at.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data.index import DatasetIndex
from ..data.preprocessing import AUTO_VIEWS
from ..inference.evaluate import evaluate
from ..models.checkpoint import BEST_NAME, load_checkpoint, update_meta

SIGNIFICANT = 2.0  # standard errors a top-1 lead needs to overrule the loss


def choose_view(run_dir: Path, index: DatasetIndex, device: torch.device,
                num_workers: int | None = None) -> dict:
    """{"eval_view": best, "chosen_by": "loss" or "top1", "view_scores": {view: {top1,
    top1_se, top3, loss, loss_se, n}}}, also stored in ``run_dir/best.safetensors``."""
    model = load_checkpoint(run_dir / BEST_NAME, device)
    views = [v for v in AUTO_VIEWS if not (v == "full" and model.net.fixed_size)]
    scores, per_image = {}, {}
    for view in views:
        try:
            result = evaluate(model, index.data, split="val", samples=index.val, eval_view=view,
                              device=device, num_workers=num_workers, write=False, pins=False)
        except Exception as exc:  # a model that cannot take a view's input size: skip it
            warnings.warn(f"--eval-view auto: the {view} view could not be scored ({exc}); "
                          "skipped", stacklevel=1)
            continue
        per_image[view] = image_scores(result.probs, result.targets)
        scores[view] = {**summary(*per_image[view]), "top3": round(result.metrics["top3"], 6)}
    best, chosen_by = pick_view(per_image)
    update_meta(run_dir / BEST_NAME, view_scores=scores, view_chosen_by=chosen_by,
                preprocessing={**model.meta["preprocessing"], "eval_view": best})
    return {"eval_view": best, "chosen_by": chosen_by, "view_scores": scores}


def image_scores(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: right at top-1 (0/1) and the loss (negative log-likelihood of the truth)."""
    rows = np.arange(len(targets))
    correct = (probs.argmax(axis=1) == targets).astype(float)
    return correct, -np.log(np.clip(probs[rows, targets], 1e-12, None))


def summary(correct: np.ndarray, losses: np.ndarray) -> dict:
    n = len(correct)
    return {"top1": round(float(correct.mean()), 6), "top1_se": round(_se(correct), 6),
            "loss": round(float(losses.mean()), 6), "loss_se": round(_se(losses), 6), "n": n}


def pick_view(per_image: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[str, str]:
    """(view, "loss" or "top1"): the lowest mean loss, unless the view with the best top-1
    is ahead of it by more than :data:`SIGNIFICANT` standard errors (paired by image)."""
    by_loss = min(per_image, key=lambda v: per_image[v][1].mean())
    by_top1 = max(per_image, key=lambda v: (per_image[v][0].mean(), -per_image[v][1].mean()))
    if by_top1 != by_loss:
        lead = per_image[by_top1][0] - per_image[by_loss][0]
        if lead.mean() > SIGNIFICANT * _se(lead):
            return by_top1, "top1"
    return by_loss, "loss"


def _se(values: np.ndarray) -> float:
    """The standard error of a mean (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
