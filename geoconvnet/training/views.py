"""``--eval-view auto``: after training, the best checkpoint is scored in every eval view on
the validation split, and the best view (with every view's scores) is written into the
checkpoint, so ``evaluate``, ``predict``, ``report`` and the app use it.

Which view wins depends on the data: on the built-in sample data the centre crop does, on
screenshots whose clues are spread across the width the whole image or the grid of crops.
The test split is never looked at.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..data.index import DatasetIndex
from ..data.preprocessing import AUTO_VIEWS
from ..inference.evaluate import evaluate
from ..models.checkpoint import BEST_NAME, load_checkpoint, update_meta


def choose_view(run_dir: Path, index: DatasetIndex, device: torch.device,
                num_workers: int | None = None) -> dict:
    """{"eval_view": best, "view_scores": {view: {top1, top3, loss}}}, also stored in
    ``run_dir/best.safetensors``. Ties in top-1 go to the lower loss."""
    model = load_checkpoint(run_dir / BEST_NAME, device)
    views = [v for v in AUTO_VIEWS if not (v == "full" and model.net.fixed_size)]
    scores = {}
    for view in views:
        try:
            result = evaluate(model, index.data, split="val", samples=index.val, eval_view=view,
                              device=device, num_workers=num_workers, write=False)
        except Exception as exc:  # a model that cannot take a view's input size: skip it
            warnings.warn(f"--eval-view auto: the {view} view could not be scored ({exc}); "
                          "skipped", stacklevel=1)
            continue
        scores[view] = {k: round(result.metrics[k], 6) for k in ("top1", "top3", "loss")}
    views = [v for v in views if v in scores]
    best = max(views, key=lambda v: (scores[v]["top1"], -scores[v]["loss"]))
    update_meta(run_dir / BEST_NAME, view_scores=scores,
                preprocessing={**model.meta["preprocessing"], "eval_view": best})
    return {"eval_view": best, "view_scores": scores}
