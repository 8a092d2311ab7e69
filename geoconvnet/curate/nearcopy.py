"""Is image B a copy of image A? The pixel check of a candidate pair, in two stages.

A copy as people make it: resized, re-encoded, brightened or darkened, cut by up to about
12% at one edge (saved as it is, or stretched back to the old size), or with a small overlay
(text, a logo, a button, a bar, a map panel, a watermark). A mirrored image is not a copy:
it swaps the driving side.

1. :func:`coarse`, from the 32x18 colour thumbnails of the hash cache, for many pairs at
   once: every geometric hypothesis (none; or B is A cut by f at one edge, or A is B cut,
   f = 0.5..14% in steps of 0.5%) is scored on the column and row profiles, the best two of
   each axis on the whole thumbnail. Each score fits one gain and offset shared by the three
   channels (brightness and contrast; a colour shift is not a copy), drops saturated cells,
   refits without the worst 30% (an overlay), and takes the mean of the best 80% of the
   per-cell errors (``COARSE_MAX`` levels of 255). Different scenes of the sample data
   rarely pass (about 1 candidate pair in 500, scenes with the same horizon, road and
   colours).
2. :func:`fine`, on the 512x288 analysis frames of the two images (decoded again): the
   hypothesis is refined in steps of 0.1%, and the fine texture (each frame minus its blur)
   of A, aligned, is correlated with B's in 16x16 blocks. A copy keeps its texture (median
   block correlation 0.3 to 0.9, lowest for JPEG quality 50), two different pictures do not
   (at most 0.03 on sample scenes that passed stage 1, their grain being independent), and
   neither does a mirror. The comparison runs at the scale of the smaller image (a 400x225
   copy is compared at 256x144), so resized copies keep their shared texture. Where neither
   image has texture at that scale (a 50x50 thumbnail, flat frames), stage 1 decides with
   the stricter ``STRICT_MAX``.

Measured on drawn 800x450 scenes (2026-11-29): copies scored at most 2.0 in stage 1
(brightness x0.65-1.35 with JPEG 90: 2.0; one-edge crops of 5-10%: 1.5; the rest under 1.0),
different scenes at least 2.5 (1 of 990 candidate pairs under 4.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

COARSE_MAX = 3.0  # stage 1: mean error of the best 80% of cells, levels of 255
STRICT_MAX = 1.0  # stage 1 alone, where stage 2 sees no texture
TEXTURE_MIN = 0.2  # stage 2: median block correlation of the fine texture
STEP, MAX_CUT = 0.005, 0.14
SATURATED = 240  # cells this bright carry no brightness information
BLUR = 0.7  # thumbnail pixels: tolerance for sub-pixel misalignment
MIN_BLOCKS = 8
CAP = 20.0  # levels: the most one cell adds to the alignment score
FINE_STEP, FINE_SPAN = 0.001, 0.015


@dataclass(frozen=True)
class Hypothesis:
    """How B's frame maps into A's: ``axis`` "x"/"y" (None: the same frame); ``kind`` 0/1: B
    is A cut by ``cut`` at the low/high end of that axis; 2/3: A is B cut there."""

    axis: str | None = None
    kind: int = 0
    cut: float = 0.0

    def params(self) -> tuple[float, float, float, float]:
        """(ax, sx, ay, sy): a point at fraction u of B's width lies at ax + sx*u in A."""
        a, s = _axis_params(self.kind, self.cut) if self.axis else (0.0, 1.0)
        return (a, s, 0.0, 1.0) if self.axis != "y" else (0.0, 1.0, a, s)


def _axis_params(kind: int, cut: float) -> tuple[float, float]:
    return [(cut, 1 - cut), (0.0, 1 - cut), (-cut / (1 - cut), 1 / (1 - cut)),
            (0.0, 1 / (1 - cut))][kind]


def _axis_hypotheses() -> list[tuple[int, float]]:
    cuts = np.arange(1, round(MAX_CUT / STEP) + 1) * STEP
    return [(0, 0.0)] + [(kind, float(cut)) for cut in cuts for kind in range(4)]


AXIS_HYPOTHESES = _axis_hypotheses()  # index 0: unchanged


@lru_cache(maxsize=None)
def _resampling(n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each axis hypothesis: the (n, n) matrix that resamples A's axis into B's (linear
    interpolation, then a Gaussian blur of ``BLUR`` pixels), and which of B's n positions
    fall inside A."""
    blur = _blur_matrix(n)
    centres = (np.arange(n) + 0.5) / n
    matrices = np.zeros((len(AXIS_HYPOTHESES), n, n), np.float32)
    inside = np.zeros((len(AXIS_HYPOTHESES), n), bool)
    rows = np.arange(n)
    for k, (kind, cut) in enumerate(AXIS_HYPOTHESES):
        a, s = _axis_params(kind, cut) if cut else (0.0, 1.0)
        position = (a + s * centres) * n - 0.5
        inside[k] = (position >= -0.5) & (position <= n - 0.5)
        position = np.clip(position, 0, n - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, n - 1)
        weight = (position - low).astype(np.float32)
        np.add.at(matrices[k], (rows, low), 1 - weight)
        np.add.at(matrices[k], (rows, high), weight)
        matrices[k] = blur @ matrices[k]
    return matrices, inside


def _blur_matrix(n: int) -> np.ndarray:
    offsets = np.arange(n)[None, :] - np.arange(n)[:, None]
    weights = np.exp(-0.5 * (offsets / BLUR) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _errors(pred: np.ndarray, target: np.ndarray, valid: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per leading index: fit target ~ gain * pred + offset (one pair for all channels,
    robustly: saturated cells out, then the worst 30% out); return the mean of the best 80%
    of the per-cell errors (max over channels; what decides, blind to an overlay) and the
    mean of all errors capped at ``CAP`` (what aligns: the cells a misalignment spoils are
    among the worst). inf where too little is left. pred, target: (..., 3, cells); valid:
    (..., cells)."""
    use = valid & (_max3(pred) < SATURATED) & (_max3(target) < SATURATED)
    keep = use
    for _ in range(2):
        gain, offset = _fit(pred, target, keep)
        error = _max3(np.abs(pred * gain[..., None, None] + offset[..., None, None] - target))
        limit = np.maximum(_quantile(error, use, 0.7), 3.0)
        keep = use & (error <= limit[..., None])
    count = use.sum(-1)
    ordered = np.sort(np.where(use, error, np.inf), axis=-1)
    best = np.maximum(np.ceil(0.8 * count).astype(int), 1)
    total = np.take_along_axis(np.cumsum(np.where(np.isfinite(ordered), ordered, 0), -1),
                               (best - 1)[..., None], -1)[..., 0]
    enough = count >= 0.15 * valid.shape[-1]
    capped = np.where(use, np.minimum(error, CAP), 0).sum(-1) / np.maximum(count, 1)
    return np.where(enough, total / best, np.inf), np.where(enough, capped, np.inf)


def _max3(x: np.ndarray) -> np.ndarray:
    """Max over the channel axis (..., 3, cells)."""
    return np.maximum(np.maximum(x[..., 0, :], x[..., 1, :]), x[..., 2, :])


def _fit(pred, target, keep):
    """Least-squares gain and offset (shared by the channels) over the ``keep`` cells."""
    w = keep[..., None, :].astype(np.float32)
    n = np.maximum(3 * w.sum((-2, -1)), 1)
    xw = pred * w
    mx = xw.sum((-2, -1)) / n
    my = (target * w).sum((-2, -1)) / n
    var = (xw * pred).sum((-2, -1)) / n - mx * mx
    cov = (xw * target).sum((-2, -1)) / n - mx * my
    gain = np.clip(np.where(var > 1, cov / np.maximum(var, 1), 1.0), 0.5, 2.0)
    return gain, my - gain * mx


def _quantile(error, use, q):
    ordered = np.sort(np.where(use, error, np.inf), axis=-1)
    count = use.sum(-1)
    index = np.clip(np.floor(q * (count - 1)).astype(int), 0, error.shape[-1] - 1)
    value = np.take_along_axis(ordered, index[..., None], -1)[..., 0]
    return np.where(np.isfinite(value), value, 0)


def coarse(thumbs_a: np.ndarray, thumbs_b: np.ndarray, top: int = 2
           ) -> tuple[np.ndarray, list[Hypothesis]]:
    """Stage 1 for pairs of thumbnails ((p, 18, 32, 3) uint8 each): (error per pair, the
    best hypothesis of each)."""
    a = np.ascontiguousarray(thumbs_a.transpose(0, 3, 1, 2), dtype=np.float32)  # (p, 3, h, w)
    b = np.ascontiguousarray(thumbs_b.transpose(0, 3, 1, 2), dtype=np.float32)
    p, _, height, width = a.shape
    rx, inside_x = _resampling(width)
    ry, inside_y = _resampling(height)
    b = _blur_matrix(height) @ b @ _blur_matrix(width).T
    # The profiles (column and row means) choose each axis's best hypotheses...
    best_x = _best_axis(np.matmul(a.mean(2)[:, None, :, None, :], rx.transpose(0, 2, 1)[
        None, :, None])[:, :, :, 0], b.mean(2), inside_x, top)
    best_y = _best_axis(np.matmul(a.mean(3)[:, None, :, None, :], ry.transpose(0, 2, 1)[
        None, :, None])[:, :, :, 0], b.mean(3), inside_y, top)
    # ...which are then scored on the whole thumbnail, with no change at all.
    none = np.zeros((p, 1), int)
    hx = np.concatenate([none, best_x, np.zeros_like(best_y)], 1)  # (p, k)
    hy = np.concatenate([none, np.zeros_like(best_x), best_y], 1)
    warped = ry[hy][:, :, None] @ a[:, None] @ rx[hx].transpose(0, 1, 3, 2)[:, :, None]
    valid = inside_y[hy][:, :, :, None] & inside_x[hx][:, :, None, :]
    k = warped.shape[1]
    error, capped = _errors(warped.reshape(p, k, 3, -1),
                            np.broadcast_to(b[:, None], warped.shape).reshape(p, k, 3, -1),
                            valid.reshape(p, k, -1))
    cuts = np.array([cut for _, cut in AXIS_HYPOTHESES])
    # Between near-equal fits the smaller cut: flat images fit any small cut about as well.
    pick = np.argmin(capped + 5.0 * (cuts[hx] + cuts[hy]), axis=1)
    hypotheses = []
    for i, c in enumerate(pick):
        if hx[i, c]:
            hypotheses.append(Hypothesis("x", *AXIS_HYPOTHESES[hx[i, c]]))
        elif hy[i, c]:
            hypotheses.append(Hypothesis("y", *AXIS_HYPOTHESES[hy[i, c]]))
        else:
            hypotheses.append(Hypothesis())
    return error[np.arange(p), pick], hypotheses


def _best_axis(warped: np.ndarray, target: np.ndarray, inside: np.ndarray, top: int
               ) -> np.ndarray:
    """Indices of the ``top`` best axis hypotheses per pair, from the profiles:
    warped (p, k, 3, n), target (p, 3, n), inside (k, n)."""
    p, k = warped.shape[:2]
    _, capped = _errors(warped, np.broadcast_to(target[:, None], warped.shape),
                        np.broadcast_to(inside[None], (p, k, inside.shape[1])))
    return np.argsort(capped, axis=1, kind="stable")[:, :top]


# ---------------------------------------------------------------- stage 2


def comparison_size(size_a, size_b) -> tuple[int, int]:
    """The frame size at which both images still have their own detail: 512x288, halved
    while larger than the smaller image."""
    width, height = 512, 288
    while width > 64 and (width > min(size_a[0], size_b[0]) or
                          height > min(size_a[1], size_b[1])):
        width, height = width // 2, height // 2
    return width, height


def _texture(grey: np.ndarray) -> np.ndarray:
    return grey - cv2.GaussianBlur(grey, (0, 0), 1.5)


def _affine(params, width: int, height: int) -> np.ndarray:
    ax, sx, ay, sy = params
    return np.float32([[sx, 0, ax * width + 0.5 * sx - 0.5],
                       [0, sy, ay * height + 0.5 * sy - 0.5]])


def _block_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray, block: int
                       ) -> tuple[float, int]:
    rows, cols = a.shape[0] // block, a.shape[1] // block

    def blocks(x):
        return x[:rows * block, :cols * block].reshape(rows, block, cols, block) \
            .transpose(0, 2, 1, 3).reshape(rows * cols, block * block)

    inside = blocks(mask.astype(np.float32)).min(1) > 0.5
    a, b = blocks(a)[inside], blocks(b)[inside]
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    energy_a, energy_b = (a * a).mean(1), (b * b).mean(1)
    textured = (energy_a > 0.3) & (energy_b > 0.3)  # grain or detail, not flat colour
    if textured.sum() < MIN_BLOCKS:
        return float("nan"), int(textured.sum())
    corr = (a[textured] * b[textured]).mean(1) / np.sqrt(energy_a[textured] *
                                                          energy_b[textured])
    return float(np.median(corr)), int(textured.sum())


def _around(hypothesis: Hypothesis, span: float, step: float) -> list[Hypothesis]:
    steps = np.arange(-span, span + 1e-9, step)
    return [Hypothesis(hypothesis.axis, hypothesis.kind, float(hypothesis.cut + d))
            for d in steps if 0 < hypothesis.cut + d < 0.5]


def fine(frame_a: np.ndarray, frame_b: np.ndarray, size_a, size_b,
         hypothesis: Hypothesis) -> float:
    """Stage 2: the median block correlation of the fine texture of A (aligned) and B; nan
    where neither has texture to compare. Alignments tried: ``hypothesis`` in steps of 0.3%
    within 1.5%, then 0.1% around the best; no change at all (stage 1 may miss it for a flat
    or brightened image); and OpenCV's ECC (an affine map, from the best so far), which
    takes small cuts at several edges. The best counts: two different pictures correlate
    at no alignment."""
    width, height = comparison_size(size_a, size_b)
    block = 16 if width >= 256 else 8
    grey_a, grey_b = (cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32),
                                 (width, height), interpolation=cv2.INTER_AREA)
                      for f in (frame_a, frame_b))
    a, b = _texture(grey_a), _texture(grey_b)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

    def score(matrix: np.ndarray) -> float:
        warped = cv2.warpAffine(a, matrix, (width, height), flags=flags,
                                borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.warpAffine(np.ones_like(a), matrix, (width, height), flags=flags,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.999
        return _block_correlation(warped, b, mask, block)[0]

    def affine(h: Hypothesis) -> np.ndarray:
        return _affine(h.params(), width, height)

    scores = {Hypothesis(): score(affine(Hypothesis()))}
    if hypothesis.axis is not None:
        for candidate in _around(hypothesis, FINE_SPAN, 3 * FINE_STEP):
            scores[candidate] = score(affine(candidate))
        best = max((h for h in scores if h.axis), key=lambda h: np.nan_to_num(scores[h], nan=-1))
        for candidate in _around(best, 2 * FINE_STEP, FINE_STEP):
            if candidate not in scores:
                scores[candidate] = score(affine(candidate))
    best = max(scores, key=lambda h: np.nan_to_num(scores[h], nan=-1))
    values = [v for v in scores.values() if not np.isnan(v)]
    refined = _ecc(grey_a, grey_b, affine(best))
    if refined is not None:
        value = score(refined)
        if not np.isnan(value):
            values.append(value)
    return max(values) if values else float("nan")


def _ecc(grey_a: np.ndarray, grey_b: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """The affine map (B's pixels to A's) that best aligns the two frames, from ``start``;
    None when ECC does not converge."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        _, matrix = cv2.findTransformECC(grey_b, grey_a, start.copy(), cv2.MOTION_AFFINE,
                                         criteria, None, 3)
    except cv2.error:
        return None
    return matrix


def is_copy(coarse_error: float, texture: float) -> bool:
    if coarse_error > COARSE_MAX:
        return False
    if np.isnan(texture):
        return coarse_error <= STRICT_MAX
    return texture >= TEXTURE_MIN
