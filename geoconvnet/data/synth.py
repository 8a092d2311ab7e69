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

``coords=True`` gives every image a place, drawn uniformly inside its country's outline
(:class:`~.places.Places`), written with the image's file to the root's collect manifest
(``OUT/collect-manifest.jsonl``, source ``synth``): what a location head learns from. The
scene then also shows where in the country it is: the sky and the ground (terrain and road,
not the roadside objects) are tinted by the place's position in the country's bounding box,
``(u, v)`` in [0, 1]^2 from west to east and south to north: red shifted by
``POSITION_TINT * (u - 0.5)``, blue by ``POSITION_TINT * (v - 0.5)`` (see
:func:`position_in_country`). Every crop with sky or ground in it shows the tint; the class
cues are drawn as without it. ``countries`` names the classes instead of ``classes``.
"""

from __future__ import annotations

import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..utils.errors import ConfigError
from ..utils.io import atomic_write
from ..utils.progress import add_task, progress_bar
from .countries import REFERENCE_COUNTRIES, resolve
from .manifest import NAME as MANIFEST_NAME
from .manifest import Record, lock_root, open_manifest
from .places import Places

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
# ``coords``: RGB units between the tints of a country's two ends (red west -> east, blue
# south -> north), so +-POSITION_TINT/2 at its edges: 3-4 times the colours' jitter, less
# than what tells most terrains (and skies) apart.
POSITION_TINT = 64
SOURCE = "synth"  # the manifest's source of the images of ``coords``
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


def pick_countries(names) -> list[str]:
    """Class folders of the countries named (``"Brazil"``, ``"USA"``; also any name or code
    :func:`~.countries.resolve` knows for one of them, e.g. ``"United States"``). Unknown
    ones are a ConfigError naming them and the choices."""
    names = [n.strip() for n in names if n.strip()]
    picked, unknown = [], []
    for name in names:
        folder = name if name in REFERENCE_COUNTRIES else _reference_folder(name)
        (picked if folder else unknown).append(folder or name)
    if unknown:
        raise ConfigError(f"--countries: unknown {', '.join(map(repr, unknown))}; choose from "
                          f"{', '.join(REFERENCE_COUNTRIES)}")
    twice = sorted({f for f in picked if picked.count(f) > 1})
    if twice:
        raise ConfigError(f"--countries names {', '.join(twice)} more than once")
    if len(picked) < 2:
        raise ConfigError(f"--countries must name at least 2 countries, got {len(picked)}")
    return picked


def _reference_folder(name: str) -> str | None:
    try:
        folder = resolve(name).folder
    except ConfigError:
        return None
    return folder if folder in REFERENCE_COUNTRIES else None


def class_styles(n: int, seed: int) -> list[ClassStyle]:
    """Distinct cue combinations; any two classes differ in at least two cues."""
    rng = np.random.default_rng(seed)
    styles: list[ClassStyle] = []
    while len(styles) < n:
        cues = {k: int(rng.integers(len(v))) for k, v in CUES.items()}
        if all(sum(cues[k] != s[k] for k in CUES) >= 2 for s in styles):
            styles.append(ClassStyle(cues))
    return styles


@dataclass(frozen=True)
class CountryBox:
    """A country's extent in degrees, its longitudes continuous across the antimeridian:
    each is taken within 180 degrees of ``centre`` (its largest ring's), so Russia's
    Chukotka (-170) is at 190 and Fiji's east (-179.9) at 180.1."""

    west: float
    south: float
    east: float
    north: float
    centre: float

    def unwrap(self, lon):
        """A longitude (or an array of them) within 180 degrees of ``centre``."""
        return (lon - self.centre + 180) % 360 + self.centre - 180

    def position(self, lat: float, lon: float) -> tuple[float, float]:
        """(u, v) of a place: 0 at the west/south edge, 1 at the east/north one."""
        u = (self.unwrap(lon) - self.west) / max(1e-9, self.east - self.west)
        v = (lat - self.south) / max(1e-9, self.north - self.south)
        return float(np.clip(u, 0, 1)), float(np.clip(v, 0, 1))


@lru_cache(maxsize=None)
def country_box(code: str) -> CountryBox:
    """The :class:`CountryBox` of a country's outline (ISO alpha-3)."""
    places = Places(code, random.Random())
    rings = [polygon.vertices for polygon in places.polygons]
    centre = float(rings[int(np.argmax(places.areas))][:, 0].mean())
    unwrap = CountryBox(0, 0, 0, 0, centre).unwrap
    lons = np.concatenate([unwrap(ring[:, 0]) for ring in rings])
    lats = np.concatenate([ring[:, 1] for ring in rings])
    return CountryBox(float(lons.min()), float(lats.min()), float(lons.max()),
                      float(lats.max()), centre)


def position_in_country(code: str, lat: float, lon: float) -> tuple[float, float]:
    """(u, v) in [0, 1]^2: where (lat, lon) lies in the country's bounding box (u west ->
    east, v south -> north; see :class:`CountryBox`)."""
    return country_box(code).position(lat, lon)


def position_tint(position: tuple[float, float] | None) -> tuple[int, int, int]:
    """The RGB shift of the sky and ground of a scene at ``position`` (u, v)."""
    if position is None:
        return (0, 0, 0)
    u, v = position
    return (round(POSITION_TINT * (u - 0.5)), 0, round(POSITION_TINT * (v - 0.5)))


def _tinted(color, tint):
    return tuple(int(np.clip(c + t, 0, 255)) for c, t in zip(color, tint))


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
                 clue_scale: float = 1.0, position: tuple[float, float] | None = None):
        self.w, self.h = size
        self.tint = position_tint(position)
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
        top, bottom = _jitter(top, self.rng), _jitter(bottom, self.rng)
        ground = _jitter(TERRAINS[self.pick("terrain", 0.5 if self.spread else 0.85)], self.rng)
        road = _jitter(ROADS[self.style["road"]], self.rng, 8)
        if any(self.tint):  # where in the country: the same shift of sky and ground
            top, bottom, ground, road = (_tinted(c, self.tint) for c in (top, bottom, ground,
                                                                         road))
        _vertical_gradient(self.draw, (0, 0, self.w, self.horizon), top, bottom)
        self.draw.rectangle([0, self.horizon, self.w, self.h], fill=ground)
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
               spread: bool = False, clue_scale: float = 1.0,
               position: tuple[float, float] | None = None) -> Image.Image:
    """One street scene of the given class style; the same seed draws the same image.
    ``position``: (u, v) in the country (see :func:`position_in_country`), shown as a tint
    of sky and ground; None draws the scene as without coordinates."""
    return _Scene(size, style, np.random.default_rng(seed), spread, clue_scale,
                  position).render()


def _write_image(job) -> None:
    path, style, size, seed, spread, clue_scale, position = job
    with atomic_write(path, "wb") as f:  # a killed run never leaves a half-written PNG behind
        # compress_level=1: fast; the grain keeps it ~2.5 MB like a real screenshot
        draw_scene(style, size, seed, spread, clue_scale, position).save(
            f, format="PNG", compress_level=1)


def synth(out: str | Path, classes: int = 10, per_class: int = 60, test_per_class: int | None = None,
          size: tuple[int, int] = (1600, 900), seed: int = 0, workers: int | None = None,
          spread: bool = False, clue_scale: float = 1.0, coords: bool = False,
          countries: list[str] | None = None) -> Path:
    """Write a sample dataset in the reference layout and return its root.

    ``test_per_class`` defaults to a quarter of ``per_class`` (the reference's 240/60).
    ``spread``: clues anywhere across the width; ``clue_scale``: the size of the small
    clues; ``countries``: the classes by name instead of ``classes`` of them; ``coords``: a
    place for every image, shown in the scene and written to the root's collect manifest
    (see the module doc). Re-running with the same arguments rewrites identical images (and
    records no image twice).
    """
    out = Path(out)
    if per_class < 2:
        raise ConfigError(f"--per-class must be at least 2 (one for validation), got {per_class}")
    if not 0.1 <= clue_scale <= 4:
        raise ConfigError(f"--clue-scale must be between 0.1 and 4, got {clue_scale}")
    test_per_class = max(1, per_class // 4) if test_per_class is None else test_per_class
    names = class_names(classes) if countries is None else pick_countries(countries)
    styles = class_styles(len(names), seed)
    codes = _country_codes(names) if coords else {}
    if not coords:
        _refuse_recorded_places(out)
    jobs, records = [], []
    for split, count in (("train", per_class), ("test", test_per_class)):
        for c, (name, style) in enumerate(zip(names, styles)):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                seq = np.random.SeedSequence([seed, int(split == "test"), c, i])
                image_seed, place_seed = (int(s) for s in seq.generate_state(2))
                position = None
                if coords:
                    code, box = codes[name]
                    lat, lon = Places(code, random.Random(place_seed)).point()
                    position = box.position(lat, lon)
                    file = f"{split}/{name}/{i}.png"
                    records.append(Record(file, split, name, SOURCE, f"{SOURCE}:{file}",
                                          lat=lat, lon=lon))
                jobs.append((folder / f"{i}.png", style, tuple(size), image_seed, spread,
                             clue_scale, position))
    if not coords:
        _draw(jobs, workers)
        return out
    lock = lock_root(out)
    try:
        manifest = open_manifest(out, (SOURCE,))
        try:
            new = _new_records(out, manifest, records)
            _draw(jobs, workers)
            with manifest.batch():  # after the images: a kill leaves images a rerun records
                for record in new:
                    manifest.append(record)
        finally:
            manifest.close()
    finally:
        lock.close()
    return out


def _country_codes(names: list[str]) -> dict[str, tuple[str, CountryBox]]:
    """{class: (ISO alpha-3, box)} of classes that are countries; others are a ConfigError."""
    found = {}
    for name in names:
        if name not in REFERENCE_COUNTRIES:
            raise ConfigError(f"--coords: class {name} is not a country (over "
                              f"{len(REFERENCE_COUNTRIES)} classes); use at most "
                              f"{len(REFERENCE_COUNTRIES)} --classes, or --countries")
        code = resolve(name).code
        found[name] = (code, country_box(code))
    return found


def _new_records(out: Path, manifest, records: list[Record]) -> list[Record]:
    """The records the manifest lacks. A file recorded with another place (a run with
    another seed, or not of synth) is a ConfigError before anything is drawn: its image
    would no longer show the recorded place."""
    new = []
    for record in records:
        known = manifest.record(record.file)
        if known is None:
            new.append(record)
        elif known.source != SOURCE or known.lat is None or known.lon is None or \
                not (math.isclose(known.lat, record.lat, abs_tol=1e-9)
                     and math.isclose(known.lon, record.lon, abs_tol=1e-9)):
            raise ConfigError(f"{out / MANIFEST_NAME} records {record.file} at another place "
                              f"({known.source}: {known.lat}, {known.lon}); this run would "
                              f"draw it at {record.lat:.4f}, {record.lon:.4f} (another --seed "
                              "or class order?). Write into a new folder, or delete the "
                              "folder to draw it again")
    return new


def _refuse_recorded_places(out: Path) -> None:
    """Without ``coords``: refuse a root whose manifest records places of synth images, as
    redrawing them untinted would leave the records wrong."""
    if not (out / MANIFEST_NAME).is_file():
        return
    manifest = open_manifest(out, repair=False)
    try:
        recorded = next(iter(manifest.index.ids(SOURCE)), None) is not None
    finally:
        manifest.close()
    if recorded:
        raise ConfigError(f"{out} holds images of `data synth --coords` (their places are in "
                          f"{MANIFEST_NAME}); redraw them with --coords, or write into "
                          "a new folder")


def _draw(jobs: list, workers: int | None) -> None:
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
