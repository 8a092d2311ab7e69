"""`geoconvnet data filter`'s built-in checks on what a screenshot bot really gets: recall per
kind of bad frame, how many clean screenshots are kept, and images/s at 1600x900.

Bad frames (1600x900, drawn here):
- blurred: a clean scene under a Gaussian blur of radius 1, 2, 3, 5 and 8 pixels (a Street
  View frame caught while its tiles are still sharpening), also with a game interface on top;
- loading screens: a logo (badge and name), a spinner and "Loading..." on a flat colour or on
  a gradient (vertical, horizontal, diagonal or radial);
- half-loaded: the top rows, the bottom rows or random 256-pixel tiles of a clean scene a
  flat grey, at 25%, 50% and 75% of the frame;
- a black panorama under a GeoGuessr-like interface (status bar, guess map with a GUESS
  button, compass, zoom buttons).

Clean frames: ``data synth`` scenes (normal and ``spread``), the same with the interface on
top, and real photos (matplotlib's and scikit-learn's sample JPEGs: random 16:9 crops,
resampled 1.0-1.3x as a renderer would, some saved again as JPEG), also with a smooth
overcast sky painted over their top quarter to half (a gradient of 2-15 levels).

    python benchmarks/filter_quality.py [--clean 500] [--per-kind 40] [--speed 40]
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _common import record
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from geoconvnet.curate.filter import check_image, filter_root, frame_problem, measure_frame
from geoconvnet.data.images import load_image
from geoconvnet.data.synth import class_styles, draw_scene
from geoconvnet.utils.progress import add_task, progress_bar

SIZE = (1600, 900)
STYLES = class_styles(12, 0)


def font(pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=pixels)


def colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def scene(seed: int, spread: bool) -> Image.Image:
    return draw_scene(STYLES[seed % len(STYLES)], SIZE, seed=seed, spread=spread)


def gradient(rng: np.random.Generator) -> Image.Image:
    w, h = SIZE
    a, b = np.array(colour(rng)), np.array(colour(rng))
    y, x = np.mgrid[0:h, 0:w]
    t = [y / (h - 1), x / (w - 1), (x / w + y / h) / 2,
         np.clip(np.hypot(x - w / 2, y - h / 2) / (0.6 * w), 0, 1)][int(rng.integers(4))]
    return Image.fromarray((a * (1 - t[..., None]) + b * t[..., None]).round().astype(np.uint8))


def loading_screen(rng: np.random.Generator, background: str) -> Image.Image:
    image = Image.new("RGB", SIZE, colour(rng)) if background == "flat" else gradient(rng)
    draw = ImageDraw.Draw(image)
    cx, cy = SIZE[0] // 2 + int(rng.integers(-100, 100)), SIZE[1] // 2 + int(rng.integers(-80, 80))
    if rng.random() < 0.7:  # a logo: a badge and the name
        r = int(rng.integers(40, 90))
        draw.ellipse((cx - 260 - r, cy - 60 - r, cx - 260 + r, cy - 60 + r), fill=colour(rng))
        draw.text((cx - 150, cy - 60), "GeoGuessr", font=font(int(rng.integers(50, 90))),
                  fill=colour(rng), anchor="lm")
    if rng.random() < 0.7:  # a spinner
        r, start = int(rng.integers(25, 60)), int(rng.integers(0, 360))
        draw.arc((cx - r, cy + 80 - r, cx + r, cy + 80 + r), start, start + 270,
                 fill=colour(rng), width=max(4, r // 5))
    draw.text((cx, cy + 180), "Loading...", font=font(int(rng.integers(18, 40))),
              fill=colour(rng), anchor="mm")
    return image


def half_loaded(image: Image.Image, fraction: float, where: str,
                rng: np.random.Generator) -> Image.Image:
    image = image.copy()
    w, h = SIZE
    grey = (int(rng.integers(90, 200)),) * 3
    draw = ImageDraw.Draw(image)
    if where == "top":
        draw.rectangle((0, 0, w, int(h * fraction) - 1), fill=grey)
    elif where == "bottom":
        draw.rectangle((0, h - int(h * fraction), w, h), fill=grey)
    else:  # tiles that have not arrived
        tiles = [(x, y) for x in range(0, w, 256) for y in range(0, h, 256)]
        for i in rng.permutation(len(tiles))[:round(len(tiles) * fraction)]:
            draw.rectangle((*tiles[i], tiles[i][0] + 255, tiles[i][1] + 255), fill=grey)
    return image


def interface(image: Image.Image, rng: np.random.Generator, big_map: bool = False) -> Image.Image:
    """A GeoGuessr-like interface drawn over a copy of ``image``."""
    image = image.copy()
    w, h = image.size
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((w - 600, 16, w - 16, 86), 12, fill=(26, 26, 58))
    draw.text((w - 580, 51), "MAP World    ROUND 1 / 5    SCORE 0", font=font(24),
              fill=(255, 255, 255), anchor="lm")
    mw, mh = (820, 520) if big_map else (420, 300)
    world = Image.new("RGB", (mw, mh), (170, 211, 223))  # sea, land and roads
    painter = ImageDraw.Draw(world)
    for _ in range(6):
        px, py = rng.integers(0, mw), rng.integers(0, mh)
        painter.polygon([(int(px + rng.integers(-120, 120)), int(py + rng.integers(-90, 90)))
                         for _ in range(6)], fill=(242, 239, 233))
    for _ in range(5):
        painter.line([(int(rng.integers(0, mw)), int(rng.integers(0, mh))) for _ in range(3)],
                     fill=(255, 255, 255), width=2)
    x0 = w - 16 - mw
    image.paste(world, (x0, h - 80 - mh))
    draw.rounded_rectangle((x0, h - 70, w - 16, h - 20), 25, fill=(108, 185, 40))
    draw.text(((x0 + w - 16) // 2, h - 45), "GUESS", font=font(26), fill=(255, 255, 255),
              anchor="mm")
    draw.ellipse((24, h - 230, 104, h - 150), fill=(40, 40, 40), outline=(230, 230, 230), width=3)
    draw.polygon([(64, h - 225), (56, h - 190), (72, h - 190)], fill=(220, 40, 40))
    for i, label in enumerate("+-"):
        draw.rounded_rectangle((24, h - 130 + i * 50, 68, h - 86 + i * 50), 8, fill=(26, 26, 58))
        draw.text((46, h - 108 + i * 50), label, font=font(30), fill=(255, 255, 255),
                  anchor="mm")
    draw.text((24, 24), "Google", font=font(20), fill=(200, 200, 200))
    return image


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def photo_variant(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random 16:9 crop (70-100% of the width), resampled 1.0-1.3x, half of them JPEG."""
    cw = int(photo.width * rng.uniform(0.7, 1.0))
    ch = min(photo.height, cw * 9 // 16)
    x, y = int(rng.integers(0, photo.width - cw + 1)), int(rng.integers(0, photo.height - ch + 1))
    crop = photo.crop((x, y, x + cw, y + ch))
    scale = rng.uniform(1.0, 1.3)
    crop = crop.resize((round(cw * scale), round(ch * scale)), Image.BILINEAR)
    return jpeg(crop, int(rng.integers(75, 96))) if rng.random() < 0.5 else crop


def overcast(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The top 25-45% of ``image`` replaced by a smooth grey sky: a gradient of 2-15 levels,
    noiseless or with a little noise, half of them saved as JPEG (an overcast day)."""
    pixels = np.asarray(image, dtype=float).copy()
    rows = int(pixels.shape[0] * rng.uniform(0.25, 0.45))
    top = rng.uniform(170, 230)
    sky = top + np.linspace(0, rng.integers(2, 16), rows)[:, None, None]
    noise = rng.choice([0.0, 0.5, 1.0])
    pixels[:rows] = sky + (rng.normal(0, noise, (rows, pixels.shape[1], 1)) if noise else 0)
    sky_image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    return jpeg(sky_image, int(rng.integers(80, 96))) if rng.random() < 0.5 else sky_image


@functools.lru_cache(maxsize=1)
def photos() -> list[Image.Image]:
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    return [hopper] + [Image.fromarray(a) for a in load_sample_images().images]


# What each kind should be named (the reason's first words); clean kinds expect None.
EXPECTED = {"blurred": {"blurred"}, "loading": {"loading screen", "near-uniform",
                                                "very low detail"},
            "half-loaded": {"half-loaded"}, "black": {"mostly black", "black frame"}}


def make(job) -> tuple[str, str, str | None, dict]:
    """Draw one frame of a kind and check it: (row, group, reason, measures)."""
    row, group, seed, params = job
    rng = np.random.default_rng(seed)
    if row.startswith("clean"):
        image = scene(seed, spread="spread" in row)
        image = interface(image, rng) if "interface" in row else image
    elif row.startswith("real photo"):
        image = photo_variant(photos()[seed % 3], rng)
        image = overcast(image, rng) if "overcast" in row else image
        image = image.filter(ImageFilter.GaussianBlur(params)) if params else image
    elif row.startswith("blurred"):
        image = scene(seed, spread=seed % 2 == 1).filter(ImageFilter.GaussianBlur(params))
        image = interface(image, rng) if "interface" in row else image
    elif row.startswith("loading"):
        image = loading_screen(rng, params)
    elif row.startswith("half-loaded"):
        fraction, where = params
        image = half_loaded(scene(seed, spread=seed % 2 == 1), fraction, where, rng)
    else:
        image = interface(Image.new("RGB", SIZE, (int(rng.integers(0, 6)),) * 3), rng,
                          big_map=rng.random() < 0.3)
    measures = measure_frame(image)
    return row, group, frame_problem(image), {k: getattr(measures, k) for k in MEASURES}


def jobs(clean: int, per_kind: int) -> list[tuple]:
    plan = [("clean (synth)", "clean", None, clean // 2),
            ("clean (synth, spread)", "clean", None, clean - clean // 2),
            ("clean + interface", "clean", None, per_kind),
            ("real photo (crop, 1.0-1.3x)", "clean", 0, per_kind),
            ("real photo, overcast sky", "clean", 0, per_kind)]
    plan += [(f"blurred r={r}", "blurred", r, per_kind) for r in (1, 2, 3, 5, 8)]
    plan += [("blurred r=3 + interface", "blurred", 3, per_kind),
             ("real photo blurred r=2", "blurred", 2, per_kind // 2),
             ("real photo blurred r=3", "blurred", 3, per_kind // 2),
             ("loading, flat background", "loading", "flat", per_kind),
             ("loading, gradient background", "loading", "gradient", per_kind)]
    plan += [(f"half-loaded {where} {fraction:.0%}", "half-loaded", (fraction, where),
              max(4, per_kind // 3)) for fraction in (0.25, 0.5, 0.75)
             for where in ("top", "bottom", "tiles")]
    plan += [("black panorama + interface", "black", None, per_kind)]
    out, seed = [], 10_000
    for row, group, params, n in plan:
        for _ in range(n):
            seed += 1
            out.append((row, group, seed, params))
    return out


MEASURES = {"soft_edges": "soft edges", "content": "content extent",
            "textured": "textured tiles", "flat": "one flat colour", "near_black": "near-black"}


def span(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def quality(clean: int, per_kind: int, workers: int) -> tuple[list[str], dict]:
    results: dict[str, list] = {}
    measured: dict[str, list] = {}
    groups: dict[str, str] = {}
    todo = jobs(clean, per_kind)
    with progress_bar() as bar, ProcessPoolExecutor(workers) as pool:
        task = add_task(bar, "Drawing and checking frames", len(todo))
        for row, group, reason, m in pool.map(make, todo, chunksize=4):
            results.setdefault(row, []).append(reason)
            measured.setdefault(row, []).append(m)
            groups[row] = group
            bar.advance(task)
    table = ["| frames | n | rejected | named as expected | reasons | "
             + " | ".join(MEASURES.values()) + " |",
             "|---|---:|---:|---:|---|" + "---|" * len(MEASURES)]
    totals = Counter()
    for row, reasons in results.items():
        names = Counter((r or "kept").split(" (")[0] for r in reasons)
        rejected = sum(r is not None for r in reasons)
        group = groups[row]
        named = (sum(names[k] for k in EXPECTED[group]) / len(reasons)) if group != "clean" \
            else None
        totals[f"{group} n"] += len(reasons)
        totals[f"{group} rejected"] += rejected
        table.append(f"| {row} | {len(reasons)} | {rejected / len(reasons):.1%} | "
                     f"{'-' if named is None else f'{named:.1%}'} | "
                     f"{', '.join(f'{k} {v}' for k, v in names.most_common())} | "
                     + " | ".join(span([m[k] for m in measured[row]]) for k in MEASURES) + " |")
    return table, totals


def previous_checks(image: Image.Image) -> float:
    """What the checks computed before 2026-11-29 (a 160x90 grey copy), to compare speed."""
    grey = np.asarray(image.convert("L").resize((160, 90), Image.BILINEAR), dtype=float)
    return grey.mean() + grey.std() + np.abs(np.diff(grey, axis=0)).mean()


def best_rate(fn, items, rounds: int = 2) -> float:
    """Items per second, the best of ``rounds`` passes (the first also warms the page cache)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def speed(n: int, workers: int) -> list[str]:
    """images/s on 1600x900 PNGs written like `data synth` writes them."""
    with tempfile.TemporaryDirectory(prefix="geoconvnet-filter-") as tmp:
        folder = Path(tmp) / "train" / "Somewhere"
        folder.mkdir(parents=True)
        for i in range(n):
            scene(i, spread=i % 2 == 1).save(folder / f"{i}.png", compress_level=1)
        files = sorted(str(p) for p in folder.iterdir())
        images = [load_image(f) for f in files[:10]]
        rates = {"decode only (load_image)": best_rate(load_image, files),
                 "decode + checks (check_image)": best_rate(check_image, files),
                 "the checks alone, on a decoded image": best_rate(frame_problem, images, 3),
                 "the previous checks alone (a 160x90 grey copy)":
                     best_rate(previous_checks, images, 3)}
        start = time.perf_counter()
        filter_root(tmp, workers=workers)
        rates[f"filter_root, {workers} processes (whole run)"] = n / (time.perf_counter() - start)
    return (["| step (1 process unless said) | images/s | ms per image |", "|---|---:|---:|"]
            + [f"| {k} | {v:.1f} | {1000 / v:.1f} |" for k, v in rates.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clean", type=int, default=500, help="clean synth scenes")
    parser.add_argument("--per-kind", type=int, default=40, help="frames per bad kind")
    parser.add_argument("--speed", type=int, default=40, help="PNGs to time")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    load = os.getloadavg()[0]
    table, totals = quality(args.clean, args.per_kind, args.workers)
    bad = sum(v for k, v in totals.items() if k.endswith(" rejected") and not k.startswith("clean"))
    precision = bad / max(1, bad + totals["clean rejected"])
    kept = 1 - totals["clean rejected"] / totals["clean n"]
    table += ["", f"Clean frames kept: {kept:.1%} of {totals['clean n']}; precision of the "
              f"rejects over all frames above: {precision:.1%}.", ""]
    table += speed(args.speed, args.workers)
    record("filter_quality.py: the built-in checks of `data filter` on bad and clean frames",
           table, f"1600x900 frames drawn in memory (see the script's doc); the speed rows "
           f"read PNGs written at compress_level 1. Load average when started: {load:.1f} "
           f"on {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
