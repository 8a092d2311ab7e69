"""`geoconvnet data dedup` at the real size: recall per kind of copy, precision, false groups
per 1,000 distinct screenshots, and images/s from PNGs and from a training cache against
Pillow's plain decode of the same PNGs.

The root: ``--scenes`` distinct street scenes drawn by ``data.synth`` at ``--size`` (half
``spread``; PNG, as screenshots are saved; 80% train, 20% test, 10 countries). These scenes
are drawn from few parts and look far more alike than real screenshots (two scenes can share
horizon, road and colours), a hard set of negatives. ``--per-kind`` scenes each get one
planted copy of each kind, half in the same split, half in the other (leakage):

- exact (the same bytes), resized (25-80%), re-encoded (JPEG 50-90), brightness (x0.65-0.9
  or x1.1-1.35), crop 5% and crop 10% (at one edge, each of the four in turn; saved as it is
  or stretched back to the old size, in turn), overlay (text, a logo, a button, a bar, a map
  panel, a watermark, in turn); brightness, crops and overlays saved as JPEG 90 or PNG in
  turn;
- mirrored: NOT a copy (it swaps the driving side); counted when linked at all.

Recall: planted pairs in one copy group. Precision: of the links ``--move`` would act on
(each copy to its group's kept image), those between a scene and its own copy. A false group:
a group (copy group, or any group: leakage) holding two different scenes.

Speed: hashing only (``hashes.hash_files``, no cache) from the PNGs, and from a training cache
(``data prepare``; its own time given apart); the rest of a run (candidates, pixel checks,
groups) after; and a second run (everything cached). The bound: Pillow decoding the same PNGs
(``Image.open(...).load()``) with as many processes.

    python benchmarks/dedup_speed.py [--scenes 2000] [--per-kind 40] [--size 1600x900]
        [--workers 2] [--work DIR]     # a --work DIR is reused: its images are drawn once
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _common import record
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from geoconvnet.curate.dedup import find_duplicates
from geoconvnet.curate.hashes import CACHE, hash_files
from geoconvnet.data.cache import prepare
from geoconvnet.data.layout import split_files
from geoconvnet.data.synth import class_names, class_styles, draw_scene

KINDS = ("exact", "resized", "re-encoded", "brightness", "crop 5%", "crop 10%", "overlay",
         "mirrored")
OVERLAYS = ("text", "logo", "button", "bar", "map", "watermark")
EDGES = ("left", "right", "top", "bottom")


def crop(image: Image.Image, fraction: float, edge: str, stretch: bool) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    box = {"left": (dx, 0, w, h), "right": (0, 0, w - dx, h), "top": (0, dy, w, h),
           "bottom": (0, 0, w, h - dy)}[edge]
    cut = image.crop(box)
    return cut.resize((w, h), Image.LANCZOS) if stretch else cut


def overlay(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """A small overlay as a screenshot tool or a re-uploader adds one (sizes for 1600x900,
    scaled)."""
    image = image.copy()
    w, h = image.size
    s = h / 900
    draw = ImageDraw.Draw(image, "RGBA")
    x, y = rng.uniform(0.05, 0.7) * w, rng.uniform(0.05, 0.85) * h
    font = ImageFont.load_default(size=max(8, int(40 * s)))
    if kind == "text":
        draw.text((x, y), "geoguessr.com  round 3/5", font=font, fill=(255, 255, 255, 255))
    elif kind == "logo":
        r = 60 * s
        draw.ellipse([x, y, x + 2 * r, y + 2 * r], fill=(230, 40, 40, 255))
        draw.rectangle([x + r * 0.5, y + r * 0.6, x + r * 1.5, y + r * 1.4], fill="white")
    elif kind == "button":
        draw.rounded_rectangle([x, y, x + 220 * s, y + 70 * s], 12 * s, fill=(20, 160, 60, 255))
        draw.text((x + 30 * s, y + 15 * s), "GUESS", font=font, fill="white")
    elif kind == "bar":
        top = 0 if rng.random() < 0.5 else h - 48 * s
        draw.rectangle([0, top, w, top + 48 * s], fill=(30, 30, 40, 255))
    elif kind == "map":
        draw.rectangle([w - 330 * s, h - 230 * s, w - 10 * s, h - 10 * s],
                       fill=(200, 220, 200, 255), outline=(0, 0, 0, 255), width=3)
    else:  # a watermark: large, half transparent
        big = ImageFont.load_default(size=max(8, int(64 * s)))
        draw.text((x, y), "© streetshots", font=big, fill=(255, 255, 255, 110))
    return image


def make_copy(original: Path, kind: str, k: int, rng: np.random.Generator
              ) -> tuple[bytes, str]:
    """(bytes, extension) of the k-th planted copy of that kind."""
    if kind == "exact":
        return original.read_bytes(), ".png"
    image = Image.open(original).convert("RGB")
    w, h = image.size
    jpeg = kind == "re-encoded" or (kind not in ("resized", "mirrored") and k % 2 == 0)
    quality = int(rng.integers(50, 91)) if kind == "re-encoded" else 90
    if kind == "resized":
        f = rng.uniform(0.25, 0.8)
        image = image.resize((round(w * f), round(h * f)), Image.LANCZOS)
    elif kind == "brightness":
        image = ImageEnhance.Brightness(image).enhance(
            rng.uniform(0.65, 0.9) if k % 2 else rng.uniform(1.1, 1.35))
    elif kind.startswith("crop"):
        image = crop(image, 0.05 if kind == "crop 5%" else 0.10, EDGES[k % 4], k // 4 % 2 == 1)
    elif kind == "overlay":
        image = overlay(image, OVERLAYS[k % len(OVERLAYS)], rng)
    elif kind == "mirrored":
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    if jpeg:
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), ".jpg" if jpeg else ".png"


def _draw(job) -> None:
    path, style, size, seed, spread = job
    draw_scene(style, size, seed, spread).save(path, format="PNG", compress_level=1)


def make_root(root: Path, scenes: int, per_kind: int, size: tuple[int, int], workers: int
              ) -> tuple[dict[str, int], list[tuple[str, str, str, bool]]]:
    """Draws (once per folder) and plants; returns ({file: scene}, [(kind, original, copy,
    across splits)])."""
    names, styles = class_names(10), class_styles(10, seed=0)
    scene_of, jobs = {}, []
    for k in range(scenes):
        split = "test" if k // 10 % 5 == 0 else "train"
        file = f"{split}/{names[k % 10]}/{k:05d}.png"
        scene_of[file] = k
        if not (root / file).exists():
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            jobs.append((root / file, styles[k % 10], size, 10_000 + k, k % 2 == 1))
    if jobs:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_draw, jobs, chunksize=4))
    rng = np.random.default_rng(0)
    planted = []
    originals = list(scene_of)
    for n, (kind, k) in enumerate((kind, k) for kind in KINDS for k in range(per_kind)):
        original = originals[n]
        split, country, _ = original.split("/")
        across = k % 2 == 1
        other = ("test" if split == "train" else "train") if across else split
        data, ext = make_copy(root / original, kind, k, rng)
        copy = f"{other}/{country}/copy-{n:05d}{ext}"
        (root / copy).parent.mkdir(parents=True, exist_ok=True)
        (root / copy).write_bytes(data)
        scene_of[copy] = scene_of[original]
        planted.append((kind, original, copy, across))
    return scene_of, planted


def decode_rate(files: list[str], workers: int) -> float:
    """Images/s of Pillow's plain decode (the bound for hashing PNGs)."""
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode, files, chunksize=4))
    return len(files) / (time.perf_counter() - start)


def _decode(path: str) -> None:
    with Image.open(path) as image:
        image.load()


def score(result, scene_of: dict[str, int], planted) -> dict:
    star_of = {f: i for i, g in enumerate(result.copy_groups) for f in g.files}
    group_of = {f: i for i, g in enumerate(result.groups) for f in g.files}
    found, missed = {}, []
    for kind, original, copy, across in planted:
        if kind == "mirrored":
            hit = group_of.get(original, -1) == group_of.get(copy, -2)
        else:
            hit = star_of.get(original, -1) == star_of.get(copy, -2)
        found.setdefault((kind, across), []).append(hit)
        if hit == (kind == "mirrored"):
            missed.append(copy)
    links = [(scene_of[f], scene_of[g.kept]) for g in result.copy_groups for f in g.files
             if f != g.kept]
    true_links = sum(a == b for a, b in links)
    false_copy = [g for g in result.copy_groups if len({scene_of[f] for f in g.files}) > 1]
    false_any = [g for g in result.groups if len({scene_of[f] for f in g.files}) > 1]
    return {"found": found, "links": len(links), "true links": true_links,
            "false copy groups": len(false_copy), "false groups": len(false_any),
            "false leakage": sum(g.leakage for g in false_any),
            "examples": [g.files for g in false_any[:5]], "missed": missed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--size", default="1600x900")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to "
                        "RESULTS.md")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-dedup-"))
    root = work / f"root-{args.scenes}-{args.per_kind}-{args.size}"
    for old in root.glob("*/*/copy-*"):
        old.unlink()  # planted afresh each time
    start = time.perf_counter()
    scene_of, planted = make_root(root, args.scenes, args.per_kind, size, args.workers)
    print(f"root ready in {time.perf_counter() - start:.0f} s: {len(scene_of)} images")
    files = [f for paths in split_files(root).values() for f in paths]
    pngs = [f for f in files if "copy-" not in f]

    (root / CACHE).unlink(missing_ok=True)
    bound = decode_rate(pngs[:400], args.workers)
    start = time.perf_counter()
    hash_files(root, files, args.workers)
    hashing = time.perf_counter() - start
    start = time.perf_counter()
    result = find_duplicates(root, workers=args.workers)
    rest = time.perf_counter() - start
    start = time.perf_counter()
    find_duplicates(root, workers=args.workers)
    again = time.perf_counter() - start
    measured = score(result, scene_of, planted)

    cache = work / f"cache-{root.name}"
    start = time.perf_counter()
    prepare(root, cache, workers=args.workers)
    prepared = time.perf_counter() - start
    (root / CACHE).unlink()
    start = time.perf_counter()
    hash_files(root, files, args.workers, cache)
    from_cache = time.perf_counter() - start
    cached_result = find_duplicates(root, workers=args.workers, cache=cache)
    measured_cache = score(cached_result, scene_of, planted)

    n = len(files)
    table = ["| measure | from PNGs | from the training cache |", "|---|---:|---:|"]
    for kind in KINDS:
        cells = []
        for m in (measured, measured_cache):
            within, across = m["found"][kind, False], m["found"][kind, True]
            if kind == "mirrored":
                cells.append(f"linked {sum(within) + sum(across)} of {len(within) + len(across)}")
            else:
                share = (sum(within) + sum(across)) / (len(within) + len(across))
                cells.append(f"{sum(within)}/{len(within)} within, {sum(across)}/{len(across)} "
                             f"across: {share:.0%}")
        table.append(f"| recall, {kind} | {cells[0]} | {cells[1]} |")
    for m_label, key in (("precision (links --move acts on)", None),):
        cells = [f"{m['true links']}/{m['links']} = {m['true links'] / max(m['links'], 1):.1%}"
                 for m in (measured, measured_cache)]
        table.append(f"| {m_label} | {cells[0]} | {cells[1]} |")
    for key in ("false copy groups", "false groups", "false leakage"):
        cells = [f"{m[key]} ({m[key] * 1000 / args.scenes:.1f} per 1,000 scenes)"
                 for m in (measured, measured_cache)]
        table.append(f"| {key} | {cells[0]} | {cells[1]} |")
    table += [f"| hashing, images/s ({args.workers} processes) | {n / hashing:.1f} "
              f"({hashing:.0f} s) | {n / from_cache:.1f} ({from_cache:.0f} s; the cache took "
              f"{prepared:.0f} s to make) |",
              f"| Pillow decode of the PNGs alone, images/s | {bound:.1f} | |",
              f"| rest of the first run (candidates, pixel checks, groups), s | {rest:.1f} | |",
              f"| second run (all cached), s | {again:.1f} | |",
              f"| pairs: {', '.join(result.work)} | "
              f"{', '.join(str(v) for v in result.work.values())} | "
              f"{', '.join(str(v) for v in cached_result.work.values())} |"]
    notes = (f"{args.scenes} distinct scenes drawn by data.synth at {args.size} (PNG) plus "
             f"{len(planted)} planted copies ({args.per_kind} per kind, half across splits): "
             f"{n} images. Load average at the start: {os.getloadavg()[0]:.1f}. "
             f"False groups (PNGs): {measured['examples']}; missed (PNGs): "
             f"{measured['missed'][:10]}")
    if args.no_record:
        print("\n".join(table) + "\n\n" + notes)
    else:
        record(f"dedup_speed.py: data dedup at {args.size}, recall per kind, precision, "
               "false groups, speed", table, notes)
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
