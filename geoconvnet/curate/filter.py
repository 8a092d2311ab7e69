"""Screenshots that should not train a model: a report first, moves only when asked.

Built-in checks, no model needed, in this order (the first that fails names the reason):

- unreadable; smaller than ``min_size`` (320x180);
- on a 160x90 grey copy: black (mean brightness under 16 of 255); near-uniform (standard
  deviation under 4);
- **mostly black**: half of the 160x90 copy or more near-black (<= 12 of 255), as when the
  panorama is not drawn but the game's interface (status bar, guess map, buttons) is: the
  interface lifts the mean brightness above the black-frame check's 16;
- **blurred**: edges compared at two scales. A 4x smaller copy (block means) finds the
  edges (a step of 10 levels between neighbouring blocks, or half the 99.5th percentile
  step in a very blurred frame); at full resolution each keeps the largest step between
  neighbouring pixels around it. A sharp edge makes its whole change between two pixels,
  so that step is as large as the coarse one or larger; a blurred edge spreads over several
  pixels and its steps are a fraction of it. An edge under 0.6 of its coarse step is soft;
  a frame with 20% soft edges or more is blurred. Counting edges rather than averaging
  keeps a sharp interface drawn over a blurred panorama from hiding the blur, and noise or
  flat areas do not enter: only edges count;
- **loading screen**: content (a logo, a spinner, a line of text) confined to a small part
  of a smooth background. Content = pixels of the 160x90 copy with a Laplacian of 6 levels
  or more; its extent = (share of rows with content) x (share of columns with content).
  An extent under 0.25 with under 15% of the 16x16 tiles textured (a step over 2 levels
  between neighbours; a flat or gradient background has none) is a loading screen. A
  street scene has a horizon across every column and ground over the lower rows;
- **half-loaded**: 20% of the frame or more one perfectly flat colour: 16x16 tiles with no
  step at all between neighbours, all of the same mean level (connected or not, so that
  scattered missing tiles count), while at least half of the rest of the frame is
  textured. A camera always adds noise and a sky has a gradient, so such areas are tiles
  that have not arrived; clipped white (>= 250, an overexposed sky) does not count, and a
  frame smooth nearly everywhere (a drawing) is not called half-loaded. Exactly flat, not
  nearly: an overcast sky over a third of a photo (a gradient of 3 to 15 levels, as PNG or
  JPEG 85/95) was called half-loaded when tiles within 2 levels counted, and is not now
  (2026-11-29, two sample photos of scikit-learn with such skies painted in);
- very low detail (mean absolute difference between neighbouring pixels of the 160x90 copy
  under 0.5).

Images 3200 pixels wide or more are first reduced by a whole factor to about 1600, so blur
is judged at the scale of a 1600x900 screenshot.

Measured 2026-11-29 with ``benchmarks/filter_quality.py`` (1600x900; every range per kind
is in benchmarks/RESULTS.md). Share of soft edges: 500 ``data synth`` scenes (normal and
spread) 0.00; real photos (16:9 crops of matplotlib's and scikit-learn's sample JPEGs,
resampled 1.0-1.3x as a renderer would, half saved again as JPEG) 0.00-0.10; scenes blurred
with a Gaussian of radius 1: 0.21-0.38, 2: 0.55-0.73, 3-8: 0.65-1.00, radius 3 under a
sharp interface 0.21-0.50; photos at radius 2: 0.52-0.57. Content extent: scenes
0.47-0.78, photos 0.53-1.00, loading screens (badge, name, spinner, text; flat or gradient
background) 0.00-0.14. One flat colour: scenes 0.00, scenes under an interface 0.03-0.04,
photos 0.00-0.07; the top or bottom quarter grey 0.23-0.25, half 0.48-0.50, a quarter of
the 256-pixel tiles grey 0.18-0.27 (2 of 13 kept). Near-black share: photos 0.01-0.08, a
black panorama under the interface 0.62-0.85. The checks take 6.0 ms per decoded 1600x900
image (the 160x90-only checks before them 4.5 ms); decoding the PNG takes 42 ms (2 cores,
load average 2.9).

The learned check is the reference's idea: a "valid screenshot" classifier trained with
geoconvnet's own ``train`` on a two-class root the user fills (``train/valid/``,
``train/invalid/``), applied through the one inference core; an image is rejected when its
probability of being valid is under ``threshold`` (the reference kept sigmoid >= 0.75).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..data.images import load_image
from ..data.layout import FILTER_REPORT, split_files
from ..utils.errors import ConfigError, DataError
from ..utils.io import write_csv
from ..utils.pool import worker_pool
from ..utils.progress import add_task, progress_bar

REPORT = FILTER_REPORT
MIN_SIZE = (320, 180)
BLACK, UNIFORM, LOW_DETAIL = 16.0, 4.0, 0.5
NEAR_BLACK, MOSTLY_BLACK = 12, 0.5  # a pixel's level; share of such pixels
SOFT_EDGE, SOFT_SHARE, EDGE_LEVEL = 0.6, 0.2, 10.0  # blurred: ratio, share of edges, levels
CONTENT, CONTENT_LEVEL, TEXTURED = 0.25, 6.0, 0.15  # loading screen: extent, Laplacian, tiles
FLAT_STEP = 2  # a tile with no larger step between neighbours is smooth (not textured)
FLAT_SHARE, CLIPPED = 0.2, 250  # half-loaded: share of exactly flat tiles; clipped white
TEXTURED_REST = 0.5  # half-loaded: least share of the rest of the frame that is textured
TILE, COARSE = 16, 4  # pixels of a flatness tile; scale of the coarse copy
WORK_WIDTH = 1600  # wider images are reduced by a whole factor to about this first
VALID, INVALID = "valid", "invalid"
THRESHOLD = 0.75


@dataclass
class Rejection:
    file: str  # relative to the root
    reason: str
    p_valid: float | None = None


@dataclass(frozen=True)
class FrameMeasures:
    """What the built-in checks look at (see the module doc for each)."""

    mean: float
    std: float
    detail: float
    near_black: float  # share of pixels
    soft_edges: float | None  # share of the strongest edges; None: too few to judge
    content: float  # extent, 0-1
    textured: float  # share of tiles
    flat: float  # share of the frame in one flat colour
    flat_level: int  # that colour's grey level


def parse_min_size(text: str) -> tuple[int, int]:
    """``--min-size WxH`` as two positive whole numbers, or a ConfigError naming the flag."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width <= 0 or height <= 0:
        raise ConfigError(f"--min-size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 320x180")
    return width, height


def check_threshold(threshold: float | None, learned: bool) -> None:
    """A ConfigError when ``--threshold`` would do nothing (no learned filter) or is not a
    probability."""
    if threshold is None:
        return
    if not learned:
        raise ConfigError(f"--threshold {threshold:g} is for the learned filter: add --model "
                          "CHECKPOINT or --train-from LABELLED_ROOT, or leave it out")
    if not 0 < threshold <= 1:
        raise ConfigError(f"--threshold {threshold:g}: a probability of being valid, over 0 "
                          f"and at most 1 (default {THRESHOLD:g})")


def measure_frame(image: Image.Image) -> FrameMeasures:
    """The measures of one decoded image (any size; wide ones are reduced first)."""
    grey = image.convert("L")
    if grey.width >= 2 * WORK_WIDTH:
        grey = grey.reduce(grey.width // WORK_WIDTH)
    pixels = np.asarray(grey)
    height, width = (n // TILE * TILE for n in pixels.shape)
    if not height or not width:  # too small to judge edges and tiles (min_size stops these)
        thumb = _thumbnail(pixels)
        return FrameMeasures(*_brightness(thumb), None, 1.0, 1.0, 0.0, 0)
    # Whole tiles only, so that every coarser copy is an exact block mean of the finer one.
    pixels = pixels[:height, :width]
    block_step = _block_max(_steps(pixels), COARSE)  # largest step per 4x4 block
    smooth = _block_max(block_step, TILE // COARSE) <= FLAT_STEP  # per 16x16 tile
    coarse = _block_mean(pixels, COARSE)
    thumb = _thumbnail(coarse)
    exact = _block_max(block_step, TILE // COARSE) == 0  # not a step in the whole tile
    flat, level = _flat_share(exact, _block_mean(coarse, TILE // COARSE))
    return FrameMeasures(*_brightness(thumb), _soft_edge_share(block_step, coarse),
                         _content_extent(thumb), float(1 - smooth.mean()), flat, level)


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    return cv2.resize(pixels, (160, 90), interpolation=cv2.INTER_AREA).astype(np.float32)


def _brightness(thumb: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, standard deviation, detail and near-black share of the 160x90 copy."""
    detail = (np.abs(np.diff(thumb, axis=0)).mean() + np.abs(np.diff(thumb, axis=1)).mean()) / 2
    return (float(thumb.mean()), float(thumb.std()), float(detail),
            float((thumb <= NEAR_BLACK).mean()))


def frame_problem(image: Image.Image) -> str | None:
    """Why a decoded image is not a usable screenshot (the size aside), or None."""
    m = measure_frame(image)
    if m.mean < BLACK:
        return f"black frame (mean brightness {m.mean:.1f})"
    if m.std < UNIFORM:
        return f"near-uniform (brightness std {m.std:.1f})"
    if m.near_black >= MOSTLY_BLACK:
        return (f"mostly black ({m.near_black:.0%} of the frame near-black: no panorama "
                "behind the interface?)")
    if m.soft_edges is not None and m.soft_edges >= SOFT_SHARE:
        return f"blurred ({m.soft_edges:.0%} of the edges are soft)"
    if m.content < CONTENT and m.textured < TEXTURED:
        return (f"loading screen (content spans {m.content:.0%} of the frame, on a smooth "
                "background)")
    if m.flat >= FLAT_SHARE and m.textured >= TEXTURED_REST * (1 - m.flat):
        return (f"half-loaded ({m.flat:.0%} of the frame is one flat colour, grey level "
                f"{m.flat_level})")
    if m.detail < LOW_DETAIL:
        return f"very low detail ({m.detail:.2f}; a loading screen?)"
    return None


def check_image(path: str, min_size: tuple[int, int] = MIN_SIZE) -> str | None:
    """Why an image file is not a usable screenshot, or None."""
    try:
        image = load_image(path)
    except DataError as exc:
        return f"unreadable ({str(exc).split(': ', 1)[-1]})"
    if image.width < min_size[0] or image.height < min_size[1]:
        return f"too small ({image.width}x{image.height} < {min_size[0]}x{min_size[1]})"
    return frame_problem(image)


def _steps(pixels: np.ndarray) -> np.ndarray:
    """Per pixel, the larger absolute step to its right and lower neighbours."""
    step = np.zeros_like(pixels)
    step[:, :-1] = cv2.absdiff(pixels[:, 1:], pixels[:, :-1])
    np.maximum(step[:-1], cv2.absdiff(pixels[1:], pixels[:-1]), out=step[:-1])
    return step


def _block_max(a: np.ndarray, k: int) -> np.ndarray:
    # The maximum of k strided views, twice: a few times faster than reducing a reshaped
    # (h/k, k, w/k, k) array.
    rows = functools.reduce(np.maximum, (a[i::k] for i in range(k)))
    return functools.reduce(np.maximum, (rows[:, j::k] for j in range(k)))


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    return cv2.resize(a, (a.shape[1] // k, a.shape[0] // k), interpolation=cv2.INTER_AREA)


def _soft_edge_share(block_step: np.ndarray, coarse: np.ndarray) -> float | None:
    """The share of the coarse copy's edges whose largest fine step is under SOFT_EDGE of
    their coarse step; None when there are fewer than 50 edges."""
    coarse_step = _steps(coarse)
    # A coarse edge may sit on either side of a block border: take the fine step of the
    # neighbouring blocks too.
    fine = cv2.dilate(block_step, np.ones((3, 3), np.uint8))
    # Edges of EDGE_LEVEL levels, or of half the strongest ones in a very blurred frame.
    cumulative = np.cumsum(np.bincount(coarse_step.ravel(), minlength=256))
    strongest = int(np.searchsorted(cumulative, 0.995 * cumulative[-1]))  # 99.5th percentile
    level = min(EDGE_LEVEL, max(4.0, 0.5 * strongest))
    edges = coarse_step >= level
    if edges.sum() < 50:
        return None
    ratio = fine[edges] / coarse_step[edges].astype(np.float32)
    return float((ratio < SOFT_EDGE).mean())


def _content_extent(thumb: np.ndarray) -> float:
    content = np.abs(cv2.Laplacian(thumb, cv2.CV_32F, ksize=1)) >= CONTENT_LEVEL
    # Two content pixels make a row or column count: one stray pixel is not content.
    rows, cols = (content.sum(axis=1) >= 2).mean(), (content.sum(axis=0) >= 2).mean()
    return float(rows * cols)


def _flat_share(exact: np.ndarray, tile_mean: np.ndarray) -> tuple[float, int]:
    """The largest share of tiles that are exactly flat and of one grey level (clipped
    white aside), and that level."""
    levels = np.rint(tile_mean[exact & (tile_mean < CLIPPED)]).astype(int)
    if levels.size == 0:
        return 0.0, 0
    counts = np.bincount(levels, minlength=256)
    level = int(counts.argmax())
    return float(counts[level] / exact.size), level


def _check(job) -> str | None:
    return check_image(*job)


def filter_root(root: str | Path, model=None, threshold: float = THRESHOLD,
                min_size: tuple[int, int] = MIN_SIZE, workers: int | None = None,
                device: str | None = None) -> list[Rejection]:
    """Every image of ``root`` that fails a check; writes ``ROOT/filter-report.csv``."""
    root = Path(root)
    files = [f for paths in split_files(root).values() for f in paths]
    rejected: dict[str, Rejection] = {}
    if model is not None:
        check_threshold(threshold, learned=True)
    with progress_bar() as bar, worker_pool(workers, len(files), (__name__,)) as pool:
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
    # The check workers import this module: torch with it costs seconds before the first image.
    from ..inference.core import infer  # lazy: see above
    from ..models.checkpoint import load_checkpoint  # lazy: see above

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
    from ..training.train import train  # lazy: see _learned

    settings = {"arch": "resnet18", "epochs": 5, "eval_view": "full", **options}
    return train(data=str(labelled_root), runs_dir=str(runs_dir), name=name, **settings)


def _relative(root: Path, path: str) -> str:
    return Path(path).relative_to(root).as_posix()
