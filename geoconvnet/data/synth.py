"""Procedurally drawn street scenes: the built-in sample dataset.

Every class ("country") owns a combination of visual cues -- sky, terrain, road surface,
road markings, driving side, poles, signs, vegetation, bollards -- drawn from small
vocabularies, so most cues are shared with other classes and only the combination is
unique. Cues appear with a probability and at varying positions, small ones (signs,
bollards) near the image edges, so that a random 448 crop can miss the decisive cue.
Output follows the reference layout: ``OUT/train/<Class>/<n>.png`` and ``OUT/test/...``.

``spread=True`` draws scenes closer to real GeoGuessr screenshots, where the decisive clue
(a bollard, a sign, a pole) can be anywhere across the width: roadside objects are placed
uniformly across the whole image, and the global cues (sky, terrain) are less reliable, so
a single centre crop often misses what decides the country. ``clue_scale`` draws the
small clues (poles, signs, bollards) smaller, e.g. 0.5 for half their size: the
few-pixel plates and bollards a player squints at.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..utils.errors import ConfigError
from ..utils.io import atomic_write
from ..utils.progress import add_task, progress_bar
from .countries import REFERENCE_COUNTRIES

# The reference's 85 countries; sample classes borrow these names so that reports
# (maps, reference comparisons) work on sample data too.

# Cue vocabularies. Index 0 of the optional cues means "absent".
SKIES = [((90, 150, 230), (180, 210, 245)), ((170, 185, 200), (215, 220, 225)),
         ((120, 125, 135), (160, 162, 168)), ((230, 150, 90), (250, 210, 150))]
TERRAINS = [(70, 130, 60), (190, 170, 90), (150, 80, 50), (225, 228, 235), (215, 190, 140)]
ROADS = [(60, 60, 65), (150, 150, 145), (130, 100, 70)]
CENTER_LINES = ["none", "white_dashed", "yellow_solid", "double_yellow", "white_solid"]
EDGE_LINES = [None, (240, 240, 240), (235, 200, 40)]
POLES = ["none", "wood", "concrete", "striped"]
SIGNS = ["none", "triangle", "diamond", "circle", "rectangle"]
PLANTS = ["none", "conifer", "palm", "round"]
BOLLARDS = ["none", "white_black", "red_white", "yellow"]
CUES = {"sky": SKIES, "terrain": TERRAINS, "road": ROADS, "center": CENTER_LINES,
        "edge": EDGE_LINES, "side": ["right", "left"], "pole": POLES, "sign": SIGNS,
        "plant": PLANTS, "bollard": BOLLARDS}


@dataclass(frozen=True)
class ClassStyle:
    """Index into each cue vocabulary: what makes one class recognisable."""

    cues: dict

    def __getitem__(self, key: str) -> int:
        return self.cues[key]


def class_names(n: int) -> list[str]:
    """``n`` country names spread over the reference list (extra ones are numbered)."""
    if n < 2:
        raise ConfigError(f"--classes must be at least 2, got {n}")
    if n <= len(REFERENCE_COUNTRIES):
        picks = np.linspace(0, len(REFERENCE_COUNTRIES) - 1, n).round().astype(int)
        return [REFERENCE_COUNTRIES[i] for i in picks]
    extra = [f"Country{i:03d}" for i in range(len(REFERENCE_COUNTRIES), n)]
    return list(REFERENCE_COUNTRIES) + extra


def class_styles(n: int, seed: int) -> list[ClassStyle]:
    """Distinct cue combinations; any two classes differ in at least two cues."""
    rng = np.random.default_rng(seed)
    styles: list[ClassStyle] = []
    while len(styles) < n:
        cues = {k: int(rng.integers(len(v))) for k, v in CUES.items()}
        if all(sum(cues[k] != s[k] for k in CUES) >= 2 for s in styles):
            styles.append(ClassStyle(cues))
    return styles


def _vertical_gradient(draw: ImageDraw.ImageDraw, box, top, bottom) -> None:
    x0, y0, x1, y1 = box
    span = max(1, y1 - y0)
    for y in range(y0, y1):
        t = (y - y0) / span
        color = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom))
        draw.line([(x0, y), (x1, y)], fill=color)


def _jitter(color, rng, amount=12):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


class _Scene:
    """Draws one image; coordinates are fractions of the width/height."""

    def __init__(self, size, style: ClassStyle, rng: np.random.Generator, spread: bool = False,
                 clue_scale: float = 1.0):
        self.w, self.h = size
        self.style, self.rng, self.spread = style, rng, spread
        self.img = Image.new("RGB", size)
        self.draw = ImageDraw.Draw(self.img)
        self.horizon = int(self.h * rng.uniform(0.38, 0.55))
        self.vanish_x = int(self.w * rng.uniform(0.35, 0.65))
        self.s = self.h / 900  # scale of objects relative to a 1600x900 screenshot
        self.clue = self.s * clue_scale  # scale of the small clues: poles, signs, bollards

    def road_x(self, y: int, frac: float) -> float:
        """x of a point across the road (-1 left edge, +1 right edge) at height y."""
        depth = (y - self.horizon) / max(1, self.h - self.horizon)
        half_width = self.w * 0.55 * depth
        return self.vanish_x + frac * half_width

    def pick(self, cue: str, keep: float) -> int:
        """The class's value of a cue, or with probability 1-keep a random one (weather,
        regional variation): no single cue is fully reliable."""
        if self.rng.random() < keep:
            return self.style[cue]
        return int(self.rng.integers(len(CUES[cue])))

    def background(self):
        top, bottom = SKIES[self.pick("sky", 0.4 if self.spread else 0.75)]
        _vertical_gradient(self.draw, (0, 0, self.w, self.horizon), _jitter(top, self.rng),
                           _jitter(bottom, self.rng))
        ground = _jitter(TERRAINS[self.pick("terrain", 0.5 if self.spread else 0.85)], self.rng)
        self.draw.rectangle([0, self.horizon, self.w, self.h], fill=ground)
        road = _jitter(ROADS[self.style["road"]], self.rng, 8)
        self.draw.polygon([(self.vanish_x, self.horizon), (self.road_x(self.h, -1), self.h),
                           (self.road_x(self.h, 1), self.h)], fill=road)

    def markings(self):
        kind = CENTER_LINES[self.style["center"]]
        width = max(1, int(6 * self.s))
        if kind != "none":
            color = (240, 240, 240) if kind.startswith("white") else (235, 200, 40)
            offsets = [-0.03, 0.03] if kind == "double_yellow" else [0.0]
            for off in offsets:
                segments = 14 if kind.endswith("dashed") else 1
                for i in range(segments):
                    if kind.endswith("dashed") and i % 2:
                        continue
                    ya = self.horizon + (self.h - self.horizon) * i / segments
                    yb = self.horizon + (self.h - self.horizon) * (i + 1) / segments
                    self.draw.line([(self.road_x(ya, off), ya), (self.road_x(yb, off), yb)],
                                   fill=color, width=width)
        edge = EDGE_LINES[self.style["edge"]]
        if edge is not None:
            for side in (-0.92, 0.92):
                self.draw.line([(self.road_x(self.horizon, side), self.horizon),
                                (self.road_x(self.h, side), self.h)], fill=edge, width=width)

    def car(self):
        # A car in the lane of the driving side tells which side the country drives on.
        sign = 1 if self.style["side"] == 0 else -1
        y = int(self.horizon + (self.h - self.horizon) * self.rng.uniform(0.15, 0.35))
        cx = self.road_x(y, sign * 0.45)
        half = (y - self.horizon) * 0.5 + 8 * self.s
        body = tuple(int(c) for c in self.rng.integers(20, 235, 3))
        self.draw.rectangle([cx - half, y - half * 0.9, cx + half, y], fill=body)
        self.draw.rectangle([cx - half * 0.7, y - half * 0.8, cx + half * 0.7, y - half * 0.45],
                            fill=(40, 50, 60))
        lamp = (220, 30, 30)
        self.draw.rectangle([cx - half * 0.9, y - half * 0.35, cx - half * 0.6, y - half * 0.2],
                            fill=lamp)
        self.draw.rectangle([cx + half * 0.6, y - half * 0.35, cx + half * 0.9, y - half * 0.2],
                            fill=lamp)

    def roadside_points(self, count: int, near: bool):
        """Positions beside the road; ``near`` ones are large and near the image edge."""
        for _ in range(count):
            side = self.rng.choice([-1, 1])
            y = int(self.horizon + (self.h - self.horizon) * (self.rng.uniform(0.45, 0.9)
                                                            if near else self.rng.uniform(0.05, 0.4)))
            x = (self.rng.uniform(0.02, 0.98) * self.w if self.spread else
                 self.road_x(y, side * self.rng.uniform(1.15, 1.6)))
            yield float(np.clip(x, 0, self.w)), y, (y - self.horizon) / (self.h - self.horizon)

    def poles(self):
        kind = POLES[self.style["pole"]]
        if kind == "none" or self.rng.random() > 0.85:
            return
        for x, y, depth in self.roadside_points(int(self.rng.integers(1, 4)), near=False):
            height = (120 + 500 * depth) * self.clue
            width = max(2, int((4 + 14 * depth) * self.clue))
            top = y - height
            if kind == "wood":
                self.draw.line([(x, y), (x, top)], fill=(110, 75, 40), width=width)
                self.draw.line([(x - width * 3, top + width * 2), (x + width * 3, top + width * 2)],
                               fill=(110, 75, 40), width=max(1, width // 2))
            elif kind == "concrete":
                self.draw.line([(x, y), (x, top)], fill=(185, 185, 180), width=width)
                self.draw.rectangle([x - width * 2, top, x + width * 2, top + width * 1.5],
                                    fill=(120, 120, 120))
            else:
                bands = 6
                for i in range(bands):
                    ya, yb = y - height * i / bands, y - height * (i + 1) / bands
                    color = (200, 30, 30) if i % 2 else (245, 245, 245)
                    self.draw.line([(x, ya), (x, yb)], fill=color, width=width)

    def signs(self):
        kind = SIGNS[self.style["sign"]]
        if kind == "none" or self.rng.random() > 0.8:
            return
        for x, y, depth in self.roadside_points(1, near=True):
            r = (18 + 45 * depth) * self.clue
            cy = y - r * 3
            self.draw.line([(x, y), (x, cy)], fill=(90, 90, 90), width=max(2, int(r / 6)))
            if kind == "triangle":
                pts = [(x, cy - r), (x - r, cy + r * 0.8), (x + r, cy + r * 0.8)]
                self.draw.polygon(pts, fill=(250, 250, 250), outline=(210, 20, 20),
                                  width=max(2, int(r / 4)))
            elif kind == "diamond":
                pts = [(x, cy - r), (x + r, cy), (x, cy + r), (x - r, cy)]
                self.draw.polygon(pts, fill=(245, 200, 20), outline=(20, 20, 20),
                                  width=max(1, int(r / 8)))
            elif kind == "circle":
                self.draw.ellipse([x - r, cy - r, x + r, cy + r], fill=(30, 80, 200),
                                  outline=(250, 250, 250), width=max(1, int(r / 8)))
            else:
                self.draw.rectangle([x - r * 1.4, cy - r * 0.7, x + r * 1.4, cy + r * 0.7],
                                    fill=(20, 120, 60), outline=(250, 250, 250),
                                    width=max(1, int(r / 8)))

    def plants(self):
        kind = PLANTS[self.style["plant"]]
        if kind == "none" or self.rng.random() > 0.9:
            return
        for x, y, depth in self.roadside_points(int(self.rng.integers(2, 6)), near=False):
            size = (40 + 260 * depth) * self.s
            trunk = (95, 65, 35)
            if kind == "conifer":
                self.draw.polygon([(x, y - size * 2), (x - size * 0.5, y), (x + size * 0.5, y)],
                                  fill=_jitter((25, 80, 40), self.rng))
            elif kind == "palm":
                self.draw.line([(x, y), (x + size * 0.1, y - size * 1.6)], fill=trunk,
                               width=max(2, int(size / 12)))
                cx, cy = x + size * 0.1, y - size * 1.6
                for dx in (-1, -0.5, 0.5, 1):
                    self.draw.line([(cx, cy), (cx + dx * size * 0.6, cy + size * 0.25)],
                                   fill=_jitter((40, 140, 50), self.rng), width=max(2, int(size / 10)))
            else:
                self.draw.line([(x, y), (x, y - size)], fill=trunk, width=max(2, int(size / 10)))
                self.draw.ellipse([x - size * 0.5, y - size * 1.6, x + size * 0.5, y - size * 0.7],
                                  fill=_jitter((60, 120, 45), self.rng))

    def bollards(self):
        kind = BOLLARDS[self.style["bollard"]]
        if kind == "none" or self.rng.random() > 0.75:
            return
        colors = {"white_black": ((245, 245, 245), (20, 20, 20)),
                  "red_white": ((245, 245, 245), (210, 30, 30)),
                  "yellow": ((240, 200, 30), (240, 200, 30))}[kind]
        for x, y, depth in self.roadside_points(int(self.rng.integers(1, 3)), near=True):
            hgt, wid = (30 + 90 * depth) * self.clue, (6 + 16 * depth) * self.clue
            self.draw.rectangle([x - wid / 2, y - hgt, x + wid / 2, y], fill=colors[0])
            self.draw.rectangle([x - wid / 2, y - hgt * 0.85, x + wid / 2, y - hgt * 0.7],
                                fill=colors[1])

    def render(self) -> Image.Image:
        self.background()
        self.markings()
        self.plants()
        self.poles()
        self.car()
        self.signs()
        self.bollards()
        # Photographic grain keeps the PNGs as hard to compress as real screenshots.
        pixels = np.asarray(self.img, dtype=np.int16)
        grain = self.rng.integers(-8, 9, size=pixels.shape, dtype=np.int16)
        return Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))


def draw_scene(style: ClassStyle, size=(1600, 900), seed: int = 0,
               spread: bool = False, clue_scale: float = 1.0) -> Image.Image:
    """One street scene of the given class style; the same seed draws the same image."""
    return _Scene(size, style, np.random.default_rng(seed), spread, clue_scale).render()


def _write_image(job) -> None:
    path, style, size, seed, spread, clue_scale = job
    with atomic_write(path, "wb") as f:  # a killed run never leaves a half-written PNG behind
        # compress_level=1: fast; the grain keeps it ~2.5 MB like a real screenshot
        draw_scene(style, size, seed, spread, clue_scale).save(f, format="PNG",
                                                               compress_level=1)


def synth(out: str | Path, classes: int = 10, per_class: int = 60, test_per_class: int | None = None,
          size: tuple[int, int] = (1600, 900), seed: int = 0, workers: int | None = None,
          spread: bool = False, clue_scale: float = 1.0) -> Path:
    """Write a sample dataset in the reference layout and return its root.

    ``test_per_class`` defaults to a quarter of ``per_class`` (the reference's 240/60).
    ``spread``: clues anywhere across the width; ``clue_scale``: the size of the small
    clues (see the module doc). Re-running with the same arguments rewrites identical images.
    """
    out = Path(out)
    if per_class < 2:
        raise ConfigError(f"--per-class must be at least 2 (one for validation), got {per_class}")
    if not 0.1 <= clue_scale <= 4:
        raise ConfigError(f"--clue-scale must be between 0.1 and 4, got {clue_scale}")
    test_per_class = max(1, per_class // 4) if test_per_class is None else test_per_class
    names, styles = class_names(classes), class_styles(classes, seed)
    jobs = []
    for split, count in (("train", per_class), ("test", test_per_class)):
        for c, (name, style) in enumerate(zip(names, styles)):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                seq = np.random.SeedSequence([seed, int(split == "test"), c, i])
                image_seed = int(seq.generate_state(1)[0])
                jobs.append((folder / f"{i}.png", style, tuple(size), image_seed, spread,
                             clue_scale))
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    with progress_bar() as bar:
        task = add_task(bar, "Drawing sample images", len(jobs))
        if workers <= 1:
            for job in jobs:
                _write_image(job)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(workers) as pool:
                for _ in pool.map(_write_image, jobs, chunksize=4):
                    bar.advance(task)
    return out
