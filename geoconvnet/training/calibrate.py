"""Temperature scaling: one scalar T fitted on the validation split so that
``softmax(logits / T)`` matches how often the model is right. Stored in the checkpoint;
evaluate, predict and the app divide logits by it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as nnf

from ..data.index import recorded_val_samples
from ..data.root import DataRoot
from ..inference.core import infer, require_some
from ..models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from ..models.weights import read_state_dict
from ..utils.device import resolve_device
from ..utils.errors import ConfigError


@dataclass
class Calibration:
    temperature: float
    nll_before: float
    nll_after: float
    n: int
    checkpoint: Path
    skipped: dict[str, str]  # unreadable validation file -> why


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, steps: int = 100) -> float:
    """Minimise the validation NLL over log T (keeps T positive)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nnf.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def calibrate(checkpoint, data=None, device: str | None = None, batch_size: int | None = None,
              num_workers: int | None = None) -> Calibration:
    """Fit the temperature on the run's validation split and store it in the checkpoint."""
    path = resolve_checkpoint(checkpoint)
    device = resolve_device(device)
    model = load_checkpoint(path, device)
    root = data or model.meta.get("config", {}).get("data")
    if not root:
        raise ConfigError("the dataset is unknown: pass --data ROOT")
    data = DataRoot.open(root)
    val = recorded_val_samples(path.parent, data, model.class_names)
    run = require_some(infer(model, val, data=data, batch_size=batch_size, device=device,
                             num_workers=num_workers, description="Calibrating"),
                       f"the validation split in {data.path}", len(val))
    logits, targets = run.logits, run.labels
    before = nnf.cross_entropy(logits, targets).item()
    temperature = fit_temperature(logits, targets)
    after = nnf.cross_entropy(logits / temperature, targets).item()
    meta = {**model.meta, "temperature": temperature,
            "calibration": {"split": "val", "n": len(targets), "nll_before": before,
                            "nll_after": after}}
    save_checkpoint(path, read_state_dict(path), meta)
    skipped = {data.display(val[i][0]): why for i, why in run.failed.items()}
    return Calibration(temperature, before, after, len(targets), path, skipped)
