"""Is image B a copy of image A? The pixel check of a candidate pair, in two stages.

A copy as people make it: resized, re-encoded, brightened or darkened, cut by up to about
12% at one edge (saved as it is, or stretched back to the old size), or with a small overlay
(text, a logo, a button, a bar, a map panel, a watermark). A mirrored image is not a copy:
it swaps the driving side.

1. :func:`coarse`, from the 32x18 colour thumbnails of the hash cache, for many pairs at
   once. Hypotheses: no change, or B is A cut by f at one edge, or A is B cut (f = 0.5-14%).
   The column and row profiles (in steps of 1%) pick each axis's best two, which are scored
   with their 0.5% neighbours on the whole thumbnail. A score fits one gain and offset
   shared by the three channels (brightness and contrast; a colour shift is not a copy),
   leaves out saturated channels, refits without the worst 30% of cells (an overlay), and
   takes the mean error of the best 80% of cells, in levels of 255. Over ``COARSE_MAX`` the
   pair is no copy.
2. :func:`fine`, on the 512x288 analysis frames of the two images (decoded again). The best
   three hypotheses are refined in steps of 0.1% (then OpenCV's ECC, kept within 1%), and
   the fine texture of A (the frame minus its blur), aligned, is correlated with B's in
   blocks, at the size of the smaller image (a 400x225 copy is compared at 400x225).
   - A copy keeps its source's texture: median block correlation 0.6 to 1 for most kinds,
     down to 0.3 for JPEG quality 50.
   - Two different pictures do not, their grain being independent, and neither does a
     mirror: at most 0.05 at 512x288 (919 pairs of different 1600x900 sample scenes that
     passed stage 1), against at least 0.31 for the copies (240).
   - Below ``GRAIN_WIDTH`` the texture is mostly the layout's edges, which different scenes
     of one layout share (up to 0.45 at 215x121): there a copy needs close colours
     (``COARSE_CLOSE``) and ``TEXTURE_MIN_SMALL``.
   - Where neither image has texture at all (a 50x50 thumbnail, flat frames), stage 1
     decides alone, with the stricter ``STRICT_MAX``.

Measured on drawn 800x450 scenes (2026-11-29; ``benchmarks/dedup_speed.py``, 2,000 scenes,
40 planted copies of each kind): stage 1 passed every copy. Copies that are brightened or
darkened by up to x0.65-1.35 (with JPEG 90) score up to 4.4 when a bright sky saturates.
One-edge crops of 5-10% score up to 1.3, and the rest under 1.0. Of 28,000 candidate pairs
of different scenes, about 1,100 came under ``COARSE_MAX`` (the same horizon, road and
colours). Stage 2 then rejected all of them: no false group. Without stage 2's rules for
small sizes and ECC's bound, 3 false groups came through, all with a thumbnail compared at
128x72.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

VERSION = 1  # of the check: cached verdicts of another version are not used (.hashes)
COARSE_MAX = 6.0  # stage 1: mean error of the best 80% of cells, levels of 255
COARSE_CLOSE = 3.0  # stage 1 errors up to this need TEXTURE_MIN, above it TEXTURE_STRONG
STRICT_MAX = 1.0  # stage 1 alone, where stage 2 sees no texture
TEXTURE_MIN = 0.2  # stage 2: median block correlation of the fine texture
TEXTURE_STRONG = 0.3
GRAIN_WIDTH = 256  # narrower comparisons see the layout's edges more than the grain: ...
TEXTURE_MIN_SMALL = 0.6  # ... they need this much, and close colours
ECC_REACH = 0.01  # ECC may move a corner this far (a fraction of the frame) from the start
ECC_REACH_GRAIN = 0.03  # ... and this far at GRAIN_WIDTH and more
STEP, MAX_CUT = 0.005, 0.14
SATURATED = 240  # channel values this bright carry no brightness information
BLUR = 0.7  # thumbnail pixels: tolerance for sub-pixel misalignment
MIN_BLOCKS = 8
CAP = 20.0  # levels: the most one cell adds to the alignment score
FINE_STEP, FINE_SPAN = 0.001, 0.015
TRIED = 3  # stage 1's best hypotheses that stage 2 tries (the best may be a near miss)
SURE = 0.6  # a texture correlation this high passes every rule: stage 2 stops there
HOPELESS = 0.1  # below this after the search, ECC's refinement is not tried


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
PROFILE = np.array([0] + [k for k, (_, cut) in enumerate(AXIS_HYPOTHESES)
                          if k and round(cut / STEP) % 2 == 0])  # steps of 1%


def _neighbours(indices: np.ndarray) -> np.ndarray:
    """(p, t) hypothesis indices -> (p, 3t): each, and the same kind of cut 0.5% less and
    more (no change stays no change)."""
    kinds, last = 4, len(AXIS_HYPOTHESES) - 1
    out = [indices]
    for steps in (-1, 1):
        moved = indices + steps * kinds
        out.append(np.where((indices > 0) & (moved > 0) & (moved <= last), moved, indices))
    return np.concatenate(out, 1)


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


def _errors(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, fits: int = 2
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per leading index: fit target ~ gain * pred + offset (one pair for all channels,
    robustly: saturated channels out, then the worst 30% of cells out); return the mean of
    the best 80% of the per-cell errors (max over the channels; what decides, blind to an
    overlay) and the mean of all errors capped at ``CAP`` (what aligns: the cells a
    misalignment spoils are among the worst). inf where too little is left. pred, target:
    (..., 3, cells); valid: (..., cells)."""
    usable = valid[..., None, :] & (pred < SATURATED) & (target < SATURATED)
    use = _any3(usable)
    keep = usable
    for fit in range(fits):
        gain, offset = _fit(pred, target, keep)
        error = _max3(np.abs(pred * gain[..., None, None] + offset[..., None, None] - target)
                      * usable)
        if fit + 1 < fits:
            limit = np.maximum(_quantile(error, use, 0.7), 3.0)
            keep = usable & (error <= limit[..., None])[..., None, :]
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


def _any3(x: np.ndarray) -> np.ndarray:
    return x[..., 0, :] | x[..., 1, :] | x[..., 2, :]


def _fit(pred, target, keep):
    """Least-squares gain and offset (shared by the channels) over the ``keep`` values."""
    w = keep.astype(np.float32)
    n = np.maximum(w.sum((-2, -1)), 1)
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
           ) -> tuple[np.ndarray, list[list[Hypothesis]]]:
    """Stage 1 for pairs of thumbnails ((p, 18, 32, 3) uint8 each): (error per pair, the
    best ``TRIED`` distinct hypotheses of each, best first)."""
    a = np.ascontiguousarray(thumbs_a.transpose(0, 3, 1, 2), dtype=np.float32)  # (p, 3, h, w)
    b = np.ascontiguousarray(thumbs_b.transpose(0, 3, 1, 2), dtype=np.float32)
    p, _, height, width = a.shape
    rx, inside_x = _resampling(width)
    ry, inside_y = _resampling(height)
    b = _blur_matrix(height) @ b @ _blur_matrix(width).T
    # The profiles (column and row means), in steps of 1%, choose each axis's best two (by
    # the trimmed error: the right kind of cut, roughly)...
    coarse_x = np.matmul(a.mean(2)[:, None, :, None, :], rx[PROFILE].transpose(0, 2, 1)[
        None, :, None])[:, :, :, 0]
    coarse_y = np.matmul(a.mean(3)[:, None, :, None, :], ry[PROFILE].transpose(0, 2, 1)[
        None, :, None])[:, :, :, 0]
    best_x = _neighbours(PROFILE[_best_axis(coarse_x, b.mean(2), inside_x[PROFILE], top)])
    best_y = _neighbours(PROFILE[_best_axis(coarse_y, b.mean(3), inside_y[PROFILE], top)])
    # ...which are scored with their neighbours on the whole thumbnail (by the capped error:
    # the cut, precisely); and no change.
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
    ranked = np.argsort(capped + 5.0 * (cuts[hx] + cuts[hy]), axis=1, kind="stable")
    hypotheses = []
    for i in range(p):
        found: list[Hypothesis] = []
        for c in ranked[i]:
            if hx[i, c]:
                h = Hypothesis("x", *AXIS_HYPOTHESES[hx[i, c]])
            elif hy[i, c]:
                h = Hypothesis("y", *AXIS_HYPOTHESES[hy[i, c]])
            else:
                h = Hypothesis()
            if all(_distinct(h, g) for g in found):
                found.append(h)
            if len(found) == TRIED:
                break
        hypotheses.append(found)
    return error[np.arange(p), ranked[:, 0]], hypotheses


def _distinct(a: Hypothesis, b: Hypothesis) -> bool:
    """Not within stage 2's search of each other."""
    return (a.axis, a.kind) != (b.axis, b.kind) or abs(a.cut - b.cut) > FINE_SPAN


def _best_axis(warped: np.ndarray, target: np.ndarray, inside: np.ndarray, top: int
               ) -> np.ndarray:
    """Indices of the ``top`` best axis hypotheses per pair, from the profiles:
    warped (p, k, 3, n), target (p, 3, n), inside (k, n)."""
    p, k = warped.shape[:2]
    trimmed, _ = _errors(warped, np.broadcast_to(target[:, None], warped.shape),
                         np.broadcast_to(inside[None], (p, k, inside.shape[1])))
    return np.argsort(trimmed, axis=1, kind="stable")[:, :top]


# ---------------------------------------------------------------- stage 2


def comparison_size(size_a, size_b) -> tuple[int, int]:
    """The frame size at which both images still have their own detail: the smaller image's
    own size, at most 512x288 (at least 64x36)."""
    return (max(64, min(512, int(size_a[0]), int(size_b[0]))),
            max(36, min(288, int(size_a[1]), int(size_b[1]))))


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
         hypotheses: list[Hypothesis], close: bool = False) -> float:
    """Stage 2: the median block correlation of the fine texture of A (aligned) and B; nan
    where neither has texture to compare. Alignments tried: each of ``hypotheses`` in steps
    of 0.3% within 1.5%, then 0.1% around the best; no change at all (stage 1 may miss it
    for a flat or brightened image); and OpenCV's ECC (an affine map, from the best so
    far), which takes small cuts at several edges. The best counts: two different pictures
    correlate at no alignment."""
    width, height = comparison_size(size_a, size_b)
    block = 16 if width >= GRAIN_WIDTH else 8
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
    if scores[Hypothesis()] >= SURE:
        return scores[Hypothesis()]  # most copies: resized, re-encoded, brightened, overlaid
    for hypothesis in (h for h in hypotheses if h.axis is not None):
        for candidate in _around(hypothesis, FINE_SPAN, 3 * FINE_STEP):
            scores[candidate] = score(affine(candidate))
    if len(scores) > 1:
        best = max((h for h in scores if h.axis), key=lambda h: np.nan_to_num(scores[h], nan=-1))
        for candidate in _around(best, 2 * FINE_STEP, FINE_STEP):
            if candidate not in scores:
                scores[candidate] = score(affine(candidate))
    best = max(scores, key=lambda h: np.nan_to_num(scores[h], nan=-1))
    values = [v for v in scores.values() if not np.isnan(v)]
    # ECC refines a near miss, or the alignment of colours that agree (a border trimmed all
    # round, which no hypothesis here describes); at the grain's scale it may go further.
    if values and (HOPELESS <= max(values) or close) and max(values) < SURE:
        reach = ECC_REACH_GRAIN if width >= GRAIN_WIDTH else ECC_REACH
        refined = _ecc(grey_a, grey_b, affine(best), reach)
        if refined is not None:
            value = score(refined)
            if not np.isnan(value):
                values.append(value)
    return max(values) if values else float("nan")


def _ecc(grey_a: np.ndarray, grey_b: np.ndarray, start: np.ndarray, reach: float
         ) -> np.ndarray | None:
    """The affine map (B's pixels to A's) that best aligns the two frames, found by ECC from
    ``start`` and kept only within ``reach`` of it (a fraction of the frame at each corner):
    a refinement, never a search. Left free at small sizes, ECC bends one street scene onto
    another of the same layout until their edges line up (3 of 3 false pairs of the sample
    data at 128x72); at the grain's scale, lined-up edges do not make grain correlate."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        _, matrix = cv2.findTransformECC(grey_b, grey_a, start.copy(), cv2.MOTION_AFFINE,
                                         criteria, None, 3)
    except cv2.error:
        return None
    height, width = grey_b.shape
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]],
                       np.float32)
    moved = np.abs(corners @ (matrix - start).T)
    if (moved[:, 0] > reach * width).any() or (moved[:, 1] > reach * height).any():
        return None
    return matrix


def needs_texture(coarse_error: float, size_a, size_b) -> bool:
    """Whether stage 2 can change the verdict (else it is not run)."""
    return coarse_error <= COARSE_CLOSE or (
        coarse_error <= COARSE_MAX and comparison_size(size_a, size_b)[0] >= GRAIN_WIDTH)


def is_copy(coarse_error: float, texture: float, size_a, size_b) -> bool:
    """The verdict: colours close and texture shared; or, at the full comparison scale, where
    the texture is the grain of the picture itself, colours further apart (a strongly
    brightened, saturated copy) and texture clearly shared. At smaller scales the texture is
    mostly the layout's edges, which different scenes of one layout share too."""
    if coarse_error > COARSE_MAX:
        return False
    if np.isnan(texture):
        return coarse_error <= STRICT_MAX
    grain = comparison_size(size_a, size_b)[0] >= GRAIN_WIDTH
    if coarse_error <= COARSE_CLOSE:
        return texture >= (TEXTURE_MIN if grain else TEXTURE_MIN_SMALL)
    return grain and texture >= TEXTURE_STRONG
