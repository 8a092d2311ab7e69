"""Training cache: the dataset converted once into small, fast-to-decode files.

A random 448 crop resized to 224 carries the same information as a 224 crop of the image
downscaled by 2, so the cache stores every screenshot at ``scale`` (default 0.5: 800x450)
as JPEG (quality ``DEFAULT_QUALITY``), cut into tiles (:mod:`.cachefile`). Transforms crop
``crop_size * scale`` pixels from such images, so every train/eval view stays as defined.
On the sample data the cache is about 4.3% of the PNG bytes and a training sample costs
about 1.3 ms of one core instead of 30 ms (see benchmarks/RESULTS.md).

Layout: the reference layout with ``<source name>.jpg`` files, plus ``geoconvnet-cache.json``
(manifest: scale, quality, and per source file its size, mtime, cache file and SHA-256, and
``latlon`` where the source's coordinates (:mod:`.coords`) name the file). A re-run only
converts new or changed sources and drops entries whose source is gone; every entry's
coordinates are taken again from the source (coordinates alone re-encode nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from ..utils.errors import DataError
from ..utils.io import write_bytes, write_json
from ..utils.progress import add_task, progress_bar
from .cachefile import CHROMA, checked_bytes, encode
from .coords import Coordinates, read_coordinates
from .images import DEFAULT_MAX_PIXELS, load_image
from .layout import SPLITS, find_classes, list_samples
from .preprocessing import Preprocessing

MANIFEST = "geoconvnet-cache.json"
FORMAT = 2
# The training view's scale (448 -> 224): a training crop of the screenshot is then a crop of
# the cached image at its final size, with no resize left to do.
DEFAULT_SCALE = Preprocessing().scale
# The largest training crop (source pixels) that reads a single tile: the default crop.
DEFAULT_MAX_CROP = Preprocessing.crop_size
DEFAULT_CHROMA = "420"  # also what caches made before the setting existed used
# JPEG quality of a new cache. 94 is the highest that stays within 5% of the sample PNGs'
# bytes (4.3%; 95: 5.1%), and over 24 seeds it trained closer to the PNGs than 90 did
# (grid view +1.0 +- 0.5, full view +3.0 +- 1.9 points) and as well as lossless half-size
# images (every view within one standard error; RESULTS.md, 2026-11-26).
DEFAULT_QUALITY = 94


def is_cache(root: str | Path) -> bool:
    return (Path(root) / MANIFEST).is_file()


def load_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(f"{root} is not a training cache (no {MANIFEST}); make one with "
                        f"`geoconvnet data prepare DATASET --out {root}`")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable cache manifest ({exc}); run "
                        "`geoconvnet data prepare` again") from exc


def entry_coordinates(manifest: dict) -> Coordinates:
    """{source file: (lat, lon)} of the entries of a cache manifest that carry coordinates."""
    return {key: (float(e["latlon"][0]), float(e["latlon"][1]))
            for key, e in manifest["entries"].items() if "latlon" in e}


def checksums(root: str | Path, manifest: dict | None = None) -> dict[str, str]:
    """{cache file path: SHA-256} of every entry of a cache."""
    manifest = load_manifest(root) if manifest is None else manifest
    return {str(Path(root) / e["file"]): e["sha256"] for e in manifest["entries"].values()}


def encode_source(source: str, scale: float, quality: int, chroma: str, overlap: int,
                  max_pixels: int) -> tuple[bytes, tuple[int, int]]:
    """One source image as a cache file's bytes, and its cached size (DataError if bad)."""
    image = load_image(source, max_pixels)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if scale == 0.5:
        small = image.reduce(2)  # exact 2x2 box average: fast and alias-free
        small = small if small.size == size else image.resize(size, Image.LANCZOS)
    else:
        small = image.resize(size, Image.LANCZOS)
    return encode(small.convert("RGB"), quality, chroma, overlap), small.size


def _convert(job) -> tuple[str, dict | None, str | None]:
    """Worker: one source image -> (source key, manifest entry or None, error or None)."""
    key, source, target, scale, quality, chroma, overlap, max_pixels = job
    try:
        data, (width, height) = encode_source(source, scale, quality, chroma, overlap,
                                              max_pixels)
    except DataError as exc:
        return key, None, str(exc)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(target, data)
    stat = os.stat(source)
    return key, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "file": str(target.relative_to(target.parents[2])),
                 "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                 "width": width, "height": height}, None


def source_files(root: Path) -> list[str]:
    """Relative paths of every image under train/ and test/, with the layout checks."""
    keys = []
    for split in SPLITS:
        split_dir = root / split
        if split == "test" and not split_dir.exists():
            continue
        for path, _ in list_samples(split_dir, find_classes(split_dir)):
            keys.append(os.path.relpath(path, root))
    return keys


def prepare(root: str | Path, out: str | Path, scale: float = DEFAULT_SCALE,
            quality: int | None = None, workers: int | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS, chroma: str | None = None,
            max_crop: int = DEFAULT_MAX_CROP) -> dict:
    """Convert (or update) the cache of a dataset folder; returns a summary.

    ``quality``/``chroma``: JPEG settings; left out, an existing cache keeps its own (so a
    re-run stays incremental after the defaults change) and a new one gets DEFAULT_QUALITY
    and 4:2:0. ``max_crop``: the largest training crop, in source pixels, that should read a
    single tile (0: store whole images). Larger crops still work, from the stitched image."""
    root, out = Path(root), Path(out)
    old = load_manifest(out) if is_cache(out) else {}
    quality = old.get("quality", DEFAULT_QUALITY) if quality is None else quality
    chroma = old.get("chroma", DEFAULT_CHROMA) if chroma is None else chroma
    if not 0 < scale <= 1 or not 1 <= quality <= 100 or max_crop < 0:
        raise DataError(f"--scale must be in (0, 1], --quality in 1..100 and --max-crop >= 0, "
                        f"got {scale}, {quality}, {max_crop}")
    if chroma not in CHROMA:
        raise DataError(f"--chroma must be one of {', '.join(CHROMA)}, got {chroma!r}")
    if is_cache(root):
        raise DataError(f"{root} is already a cache; prepare from the original dataset folder")
    overlap = round(max_crop * scale)
    manifest = {"format": FORMAT, "scale": scale, "quality": quality, "chroma": chroma,
                "tile_overlap": overlap, "source": str(root.resolve()), "entries": {},
                "bad_files": {}}
    if old:
        settings = (old.get("scale"), old.get("quality"), old.get("chroma", DEFAULT_CHROMA),
                    old.get("tile_overlap", 0))
        if settings != (scale, quality, chroma, overlap):
            raise DataError(f"{out} was prepared with scale {settings[0]}, quality {settings[1]}, "
                            f"chroma {settings[2]} and tiles overlapping by {settings[3]} pixels; "
                            "use another --out for different settings")
        manifest["entries"] = old["entries"]
    keys = source_files(root)
    places = read_coordinates(root)  # before converting: a bad coordinates.csv stops us now
    jobs, unchanged = [], 0
    for key in keys:
        stat, entry = os.stat(root / key), manifest["entries"].get(key)
        if entry and (entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns) \
                and (out / entry["file"]).is_file():
            unchanged += 1
            continue
        jobs.append((key, str(root / key), str(out / (key + ".jpg")), scale, quality, chroma,
                     overlap, max_pixels))
    removed = _drop_vanished(manifest, set(keys), out)
    _run_jobs(jobs, manifest, workers)
    with_coordinates = _set_coordinates(manifest["entries"], places)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MANIFEST, manifest, indent=0)
    summary = {"converted": len(jobs) - sum(1 for j in jobs if j[0] in manifest["bad_files"]),
               "unchanged": unchanged, "removed": removed, "bad": len(manifest["bad_files"]),
               "source_bytes": sum(e["size"] for e in manifest["entries"].values()),
               "cache_bytes": sum(e["bytes"] for e in manifest["entries"].values()),
               "with_coordinates": with_coordinates}
    return summary


def _set_coordinates(entries: dict, places: Coordinates) -> int:
    """Every entry's ``latlon`` as the source gives it now (added, changed or dropped);
    returns how many entries have coordinates."""
    count = 0
    for key, entry in entries.items():
        place = places.get(key)
        if place is None:
            entry.pop("latlon", None)
        else:
            entry["latlon"] = [float(place[0]), float(place[1])]
            count += 1
    return count


def _drop_vanished(manifest: dict, keys: set[str], out: Path) -> int:
    gone = [k for k in manifest["entries"] if k not in keys]
    for key in gone:
        (out / manifest["entries"].pop(key)["file"]).unlink(missing_ok=True)
    manifest["bad_files"] = {k: v for k, v in manifest["bad_files"].items() if k in keys}
    return len(gone)


def _run_jobs(jobs: list, manifest: dict, workers: int | None) -> None:
    if not jobs:
        return
    workers = workers or os.cpu_count() or 1
    with progress_bar() as bar, ProcessPoolExecutor(workers) as pool:
        task = add_task(bar, "Preparing cache", len(jobs))
        for key, entry, error in pool.map(_convert, jobs, chunksize=8):
            if error is None:
                manifest["entries"][key] = entry
                manifest["bad_files"].pop(key, None)
            else:
                manifest["entries"].pop(key, None)
                manifest["bad_files"][key] = error
            bar.advance(task)


def verify(root: str | Path, sums: dict[str, str] | None = None) -> dict[str, str]:
    """Check every cache file against its checksum (``sums``: the manifest's, read if not
    given); {path: problem} for the bad ones. Hashing only (about 0.04 ms a file):
    decoding happens once, when training reads it."""
    bad = {}
    sums = checksums(root) if sums is None else sums
    with progress_bar(transient=True) as bar:
        task = add_task(bar, "Verifying cache", len(sums))
        for path, digest in sums.items():
            try:
                checked_bytes(path, digest)
            except DataError as exc:
                bad[path] = str(exc)
            bar.advance(task)
    return bad
