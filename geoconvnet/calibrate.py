"""Temperature scaling: one scalar T fitted on the validation split so that
``softmax(logits / T)`` matches how often the model is right. Stored in the checkpoint;
evaluate, predict and the app divide logits by it."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .checkpoint import load_checkpoint, read_state_dict, resolve_checkpoint, save_checkpoint
from .data import samples_from_split_file
from .errors import GeoconvnetError
from .evaluate import predict_logits
from .progress import console
from .runtime import resolve_device


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


def calibrate(checkpoint, data=None, device: str | None = None, batch_size: int = 32,
              num_workers: int | None = None) -> float:
    """Fit the temperature on the run's validation split and store it in the checkpoint."""
    path = resolve_checkpoint(checkpoint)
    device = resolve_device(device)
    model = load_checkpoint(path, device)
    root = data or model.meta.get("config", {}).get("data")
    if not root:
        raise GeoconvnetError("the dataset is unknown: pass --data ROOT")
    from . import cache

    val = samples_from_split_file(path.parent, root, model.class_names)
    logits, targets, _ = predict_logits(model, val, model.preprocessing.eval_view, batch_size,
                                        device, num_workers, "Calibrating", cache.source_scale(root),
                                        cache.checksums(root) if cache.is_cache(root) else None)
    before = nnf.cross_entropy(logits, targets).item()
    temperature = fit_temperature(logits, targets)
    after = nnf.cross_entropy(logits / temperature, targets).item()
    meta = {**model.meta, "temperature": temperature,
            "calibration": {"split": "val", "n": len(targets), "nll_before": before,
                            "nll_after": after}}
    save_checkpoint(path, read_state_dict(path), meta)
    console.print(f"Temperature {temperature:.3f} (validation NLL {before:.4f} -> {after:.4f}) "
                  f"stored in {path}")
    return temperature
