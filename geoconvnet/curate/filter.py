"""Screenshots that should not train a model: a report first, moves only when asked.

Built-in checks, no model needed (on a 160x90 grey copy): unreadable; smaller than
``min_size``; black (mean brightness under 16 of 255); near-uniform (standard deviation
under 4); very low detail (mean absolute difference between neighbouring pixels under 0.5,
as on a loading screen). Measured on the sample data (2026-11-27): drawn street scenes have
a detail of 1.7-3.1, a loading screen (flat colour and a line of text) 0.04, a scene
blurred with a 20-pixel Gaussian 0.87 (kept).

The learned check is the reference's idea: a "valid screenshot" classifier trained with
geoconvnet's own ``train`` on a two-class root the user fills (``train/valid/``,
``train/invalid/``), applied through the one inference core; an image is rejected when its
probability of being valid is under ``threshold`` (the reference kept sigmoid >= 0.75).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import load_image
from ..data.layout import FILTER_REPORT, split_files
from ..inference.core import infer
from ..models.checkpoint import load_checkpoint
from ..training.train import train
from ..utils.errors import ConfigError, DataError
from ..utils.io import write_csv
from ..utils.progress import add_task, progress_bar

REPORT = FILTER_REPORT
MIN_SIZE = (320, 180)
BLACK, UNIFORM, LOW_DETAIL = 16.0, 4.0, 0.5
VALID, INVALID = "valid", "invalid"
THRESHOLD = 0.75


@dataclass
class Rejection:
    file: str  # relative to the root
    reason: str
    p_valid: float | None = None


def check_image(path: str, min_size: tuple[int, int] = MIN_SIZE) -> str | None:
    """Why an image is not a usable screenshot, or None."""
    try:
        image = load_image(path)
    except DataError as exc:
        return f"unreadable ({str(exc).split(': ', 1)[-1]})"
    if image.width < min_size[0] or image.height < min_size[1]:
        return f"too small ({image.width}x{image.height} < {min_size[0]}x{min_size[1]})"
    grey = np.asarray(image.convert("L").resize((160, 90), Image.BILINEAR), dtype=float)
    detail = (np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()) / 2
    if grey.mean() < BLACK:
        return f"black frame (mean brightness {grey.mean():.1f})"
    if grey.std() < UNIFORM:
        return f"near-uniform (brightness std {grey.std():.1f})"
    if detail < LOW_DETAIL:
        return f"very low detail ({detail:.2f}; a loading screen?)"
    return None


def _check(job) -> str | None:
    return check_image(*job)


def filter_root(root: str | Path, model=None, threshold: float = THRESHOLD,
                min_size: tuple[int, int] = MIN_SIZE, workers: int | None = None,
                device: str | None = None) -> list[Rejection]:
    """Every image of ``root`` that fails a check; writes ``ROOT/filter-report.csv``."""
    root = Path(root)
    files = [f for paths in split_files(root).values() for f in paths]
    rejected: dict[str, Rejection] = {}
    with progress_bar() as bar, ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        task = add_task(bar, "Checking images", len(files))
        jobs = [(f, min_size) for f in files]
        for path, reason in zip(files, pool.map(_check, jobs, chunksize=16)):
            if reason:
                rejected[path] = Rejection(_relative(root, path), reason)
            bar.advance(task)
    if model is not None:
        rest = [f for f in files if f not in rejected]
        for path, p in _learned(model, rest, threshold, device):
            rejected[path] = Rejection(_relative(root, path), f"classifier: p(valid) {p:.2f} < "
                                       f"{threshold:g}", p)
    result = sorted(rejected.values(), key=lambda r: r.file)
    write_csv(root / REPORT, ["file", "reason", "p_valid"],
              [[r.file, r.reason, "" if r.p_valid is None else f"{r.p_valid:.4f}"]
               for r in result])
    return result


def _learned(model, files: list[str], threshold: float, device) -> list[tuple[str, float]]:
    loaded = load_checkpoint(model, device or "cpu")
    if sorted(loaded.class_names) != [INVALID, VALID]:
        raise ConfigError(f"--model {model}: its classes are {loaded.class_names}; a filter "
                          f"model has exactly '{VALID}' and '{INVALID}' (make one with "
                          "--train-from)")
    run = infer(loaded, files, device=device, description="Classifying")
    p_valid = run.probs[:, loaded.class_names.index(VALID)].tolist()
    return [(files[i], p) for i, p in zip(run.indices.tolist(), p_valid) if p < threshold]


def train_filter(labelled_root: str | Path, runs_dir: str | Path = "runs",
                 name: str = "screenshot-filter", **options) -> Path:
    """Train the valid/invalid classifier on ``labelled_root`` (``train/valid/``,
    ``train/invalid/``) with geoconvnet's ``train``; returns the run folder (its best
    checkpoint is the ``--model`` of :func:`filter_root`)."""
    classes = sorted(p.name for p in (Path(labelled_root) / "train").iterdir() if p.is_dir()) \
        if (Path(labelled_root) / "train").is_dir() else []
    if classes != [INVALID, VALID]:
        raise ConfigError(f"{labelled_root}: expected train/{VALID}/ and train/{INVALID}/ "
                          f"(found {classes or 'no train/ folder'})")
    # The whole image is judged: interface overlays sit at the edges, where a centre crop
    # would not look.
    settings = {"arch": "resnet18", "epochs": 5, "eval_view": "full", **options}
    return train(data=str(labelled_root), runs_dir=str(runs_dir), name=name, **settings)


def _relative(root: Path, path: str) -> str:
    return Path(path).relative_to(root).as_posix()
