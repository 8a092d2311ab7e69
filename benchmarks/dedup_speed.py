"""`geoconvnet data dedup` on generated roots of 20,000 and 100,000 images: time, peak
memory, and precision/recall on planted near-duplicates.

Images are 160x90 JPEGs of random smooth scenes (four gradients and a few rectangles, so
different images differ like photos do, not like noise). One in 100 gets a planted copy in
the other split: re-encoded at JPEG 70, resized to 120x68, or cropped by 2 pixels a side.
Recall = planted pairs found in one group; precision = share of reported pairs that are a
planted image and its copy. The second run of each size uses the hash cache.

    python benchmarks/dedup_speed.py [--sizes 20000 100000] [--work DIR]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import record
from PIL import Image, ImageDraw

from geoconvnet.curate.dedup import find_duplicates

SIZE = (160, 90)


def scene(rng: np.random.Generator) -> Image.Image:
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, SIZE[1])[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).repeat(SIZE[0], axis=1).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.integers(0, SIZE[0] - 20), rng.integers(0, SIZE[1] - 10)
        draw.rectangle((x0, y0, x0 + rng.integers(10, 60), y0 + rng.integers(5, 40)),
                       fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def copy_of(image: Image.Image, kind: int) -> Image.Image:
    if kind == 0:
        return image  # saved again at JPEG 70 below
    if kind == 1:
        return image.resize((120, 68))
    return image.crop((2, 2, SIZE[0] - 2, SIZE[1] - 2))


def make_root(root: Path, n: int, seed: int = 0) -> set[frozenset]:
    """n images over 10 countries, 80% train; returns the planted pairs (relative paths)."""
    rng = np.random.default_rng(seed)
    planted = set()
    for i in range(n):
        split = "train" if i % 5 else "test"
        folder = root / split / f"Country{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        image = scene(rng)
        image.save(folder / f"{i}.jpg", quality=90)
        if i % 100 == 7:
            other = "test" if split == "train" else "train"
            target = root / other / f"Country{i % 10}" / f"{i}-copy.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            copy_of(image, (i // 100) % 3).save(target, quality=70)
            planted.add(frozenset({f"{split}/Country{i % 10}/{i}.jpg",
                                   f"{other}/Country{i % 10}/{i}-copy.jpg"}))
    return planted


def score(groups, planted: set[frozenset]) -> tuple[float, float, int]:
    reported = {frozenset(pair) for g in groups for pair in itertools.combinations(g.files, 2)}
    found = sum(1 for pair in planted if pair in reported)
    return found / len(planted), len(reported & planted) / max(1, len(reported)), len(reported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    table = ["| images | run | seconds | peak memory (MiB) | planted pairs | recall | "
             "precision | pairs reported |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        root = work / f"root-{n}"
        start = time.perf_counter()
        planted = make_root(root, n)
        made = time.perf_counter() - start
        for run in ("first (hashing)", "second (cached)"):
            start = time.perf_counter()
            result = find_duplicates(root)
            seconds = time.perf_counter() - start
            recall, precision, reported = score(result.groups, planted)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            table.append(f"| {result.images:,} | {run} | {seconds:.1f} | {peak:.0f} | "
                         f"{len(planted)} | {recall:.1%} | {precision:.1%} | {reported} |")
        print(f"{n}: made in {made:.0f} s")
    record("dedup_speed.py: dedup time, memory and accuracy on generated roots", table,
           "Default --max-distance (5) and 2 hashing processes. Peak memory is the main "
           "process's maximum resident size so far (it includes the image generation).")


if __name__ == "__main__":
    main()
