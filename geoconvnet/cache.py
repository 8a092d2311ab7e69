"""Training cache: the dataset converted once into small, fast-to-decode files.

A random 448 crop resized to 224 carries the same information as a 224 crop of the image
downscaled by 2, so the cache stores every screenshot at ``scale`` (default 0.5: 800x450)
as JPEG (quality ``DEFAULT_QUALITY``). Transforms crop ``crop_size * scale`` pixels from such
images, so every train/eval view stays as defined.

Training decodes only the part of a file it crops from: each image is stored as up to four
overlapping JPEG tiles (two spans per axis, cut on 16-pixel MCU borders so they decode like
the whole image: only pixels within 2 of a tile edge differ), overlapping by the training
crop, so every crop lies inside one tile. At 800x450 a tile is 512x336 and decodes about 3x
faster than the whole image (0.36 vs 1.06 ms), for about twice the bytes. The tiles are
concatenated in one file whose start is an ordinary JPEG (the top-left tile, which carries
the tile table in a JPEG comment); evaluation views read the whole image, stitched from its
tiles. On the sample data the cache is about 4.3% of the PNG bytes and a training sample
costs about 1.3 ms of one core instead of 30 ms (see benchmarks/RESULTS.md).

Layout: the reference layout with ``<source name>.jpg`` files, plus ``geoconvnet-cache.json``
(manifest: scale, quality, and per source file its size, mtime, cache file and SHA-256).
A re-run only converts new or changed sources and drops entries whose source is gone.
Every read checks the SHA-256, so a corrupted cache file is detected and named.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image

from .data import (DEFAULT_MAX_PIXELS, atomic_write_text, find_classes, list_samples,
                   load_image)
from .errors import DataError
from .progress import add_task, console, progress_bar

MANIFEST = "geoconvnet-cache.json"
FORMAT = 2
TILE_ALIGN = 16  # the JPEG MCU at 4:2:0: tiles cut on MCU borders decode like the whole image
TILE_TABLE = b'{"geoconvnet_tiles"'
# JPEG chroma subsampling: PIL's code for each. "444" keeps colour at full resolution (a
# 2-pixel yellow line keeps its colour: tests/test_cache.py) but costs 40% more bytes and
# about 30% more decode time; on the sample data it did not raise accuracy (RESULTS.md,
# cache_quality.py over 4 seeds), so the default stays 4:2:0.
CHROMA = {"444": 0, "422": 1, "420": 2}
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
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable cache manifest ({exc}); run "
                        "`geoconvnet data prepare` again") from exc


def source_scale(root: str | Path) -> float:
    """How much a dataset's images are shrunk relative to the screenshots (1 for a folder)."""
    return float(load_manifest(root)["scale"]) if is_cache(root) else 1.0


@lru_cache(maxsize=4)
def _checksums(root: str, mtime: float) -> dict[str, str]:
    entries = load_manifest(root)["entries"]
    return {str(Path(root) / e["file"]): e["sha256"] for e in entries.values()}


def checksums(root: str | Path) -> dict[str, str]:
    """{cache file path: SHA-256} (cached per manifest version)."""
    root = str(root)
    return _checksums(root, (Path(root) / MANIFEST).stat().st_mtime)


def _checked_bytes(path: str, expected_sha256: str | None) -> bytes:
    """A cache file's bytes, or DataError naming it when missing or corrupted."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cache file missing ({exc}); re-run `geoconvnet data prepare`") from exc
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise DataError(f"{path}: corrupted cache file (checksum mismatch); re-run "
                        "`geoconvnet data prepare` to rebuild it")
    return data


def read_cached(path: str, expected_sha256: str | None) -> Image.Image:
    """Decode a whole cache file (an RGB image) after checking its SHA-256."""
    image = open_cached(path, expected_sha256)
    return image.to_pil() if isinstance(image, TiledImage) else image


def open_cached(path: str, expected_sha256: str | None) -> "Image.Image | TiledImage":
    """A cache file after checking its SHA-256: a decoded RGB image, or for a tiled file a
    :class:`TiledImage` that decodes only the tiles asked for.

    PIL (libjpeg-turbo) decodes 800x450 in about 1 ms, as fast as ``torchvision.io``, whose
    decoders are deprecated since torchvision 0.29. A PIL image lets the training crop
    happen before any conversion to a tensor."""
    data = _checked_bytes(path, expected_sha256)
    image = _open(path, data)
    if not is_tiled(image):
        return _load(path, image)
    try:
        return TiledImage(path, data, json.loads(image.info["comment"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable tile table ({exc!r}); re-run "
                        "`geoconvnet data prepare` to rebuild it") from exc


def is_tiled(image: Image.Image) -> bool:
    """Whether an opened (not necessarily decoded) image is a tiled cache file."""
    return image.format == "JPEG" and image.info.get("comment", b"").startswith(TILE_TABLE)


def _open(path: str, data: bytes) -> Image.Image:
    """Headers only: nothing is decoded yet."""
    try:
        return Image.open(io.BytesIO(data))
    except OSError as exc:
        raise DataError(f"{path}: undecodable cache file ({exc})") from exc


def _load(path: str, image: Image.Image) -> Image.Image:
    try:
        image.load()
    except OSError as exc:
        raise DataError(f"{path}: undecodable cache file ({exc})") from exc
    return image if image.mode == "RGB" else image.convert("RGB")


class TiledImage:
    """An image stored as overlapping JPEG tiles (see the module docstring)."""

    def __init__(self, path: str, data: bytes, table: dict):
        self.path, self.data = path, data
        self.width, self.height = table["size"]
        self.boxes = [tuple(box) for box in table["geoconvnet_tiles"]]
        # The first tile runs up to the others, which fill the end of the file in order.
        lengths = table["lengths"]
        ends = list(itertools.accumulate(lengths, initial=len(data) - sum(lengths)))
        self.byte_ranges = list(zip([0] + ends[:-1], ends))

    def tile(self, index: int) -> Image.Image:
        start, end = self.byte_ranges[index]
        return _load(self.path, _open(self.path, self.data[start:end]))

    def region(self, top: int, left: int, height: int, width: int) -> Image.Image:
        """The region, decoded from the one tile that holds it (else from the whole image)."""
        for index, (x0, y0, x1, y1) in enumerate(self.boxes):
            if x0 <= left and left + width <= x1 and y0 <= top and top + height <= y1:
                return self.tile(index).crop((left - x0, top - y0, left - x0 + width,
                                              top - y0 + height))
        return self.to_pil().crop((left, top, left + width, top + height))

    def to_pil(self) -> Image.Image:
        whole = Image.new("RGB", (self.width, self.height))
        for index, box in enumerate(self.boxes):
            whole.paste(self.tile(index), box[:2])
        return whole


def tile_spans(length: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans covering ``length`` such that any window of at most ``overlap``
    pixels lies inside one of them: two spans cut on MCU borders when that saves decoding,
    else the whole length."""
    start = (length - overlap) // 2 // TILE_ALIGN * TILE_ALIGN
    end = -(-(start + overlap) // TILE_ALIGN) * TILE_ALIGN
    if overlap <= 0 or start <= 0 or end > length - TILE_ALIGN:
        return [(0, length)]
    return [(0, end), (start, length)]


def encode(image: Image.Image, quality: int, chroma: str, overlap: int) -> bytes:
    """One cache file: a plain JPEG, or tiles overlapping by ``overlap`` pixels."""
    boxes = [(x0, y0, x1, y1) for y0, y1 in tile_spans(image.height, overlap)
             for x0, x1 in tile_spans(image.width, overlap)]
    if len(boxes) == 1:
        return _jpeg(image, quality, chroma)
    rest = [_jpeg(image.crop(box), quality, chroma) for box in boxes[1:]]
    table = {"geoconvnet_tiles": boxes, "lengths": [len(part) for part in rest],
             "size": [image.width, image.height]}
    first = _jpeg(image.crop(boxes[0]), quality, chroma, comment=json.dumps(table).encode())
    return first + b"".join(rest)


def _jpeg(image: Image.Image, quality: int, chroma: str, **extra) -> bytes:
    # Huffman tables fitted to each image: the same pixels (only the lossless entropy coding
    # changes) in about 6% fewer bytes, decoded as fast (sample data, q94: 4.3% instead of
    # 4.6% of the PNG bytes). Costs a second pass at encode time, paid once in `prepare`.
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=CHROMA[chroma],
               optimize=True, **extra)
    return buffer.getvalue()


def _convert(job) -> tuple[str, dict | None, str | None]:
    """Worker: one source image -> (source key, manifest entry or None, error or None)."""
    key, source, target, scale, quality, chroma, overlap, max_pixels = job
    try:
        image = load_image(source, max_pixels)
    except DataError as exc:
        return key, None, str(exc)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if scale == 0.5:
        small = image.reduce(2)  # exact 2x2 box average: fast and alias-free
        small = small if small.size == size else image.resize(size, Image.LANCZOS)
    else:
        small = image.resize(size, Image.LANCZOS)
    data = encode(small.convert("RGB"), quality, chroma, overlap)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    stat = os.stat(source)
    return key, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "file": str(target.relative_to(target.parents[2])),
                 "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                 "width": small.width, "height": small.height}, None


def _sources(root: Path) -> list[str]:
    """Relative paths of every image under train/ and test/, with the layout checks."""
    keys = []
    for split in ("train", "test"):
        split_dir = root / split
        if split == "test" and not split_dir.exists():
            continue
        for path, _ in list_samples(split_dir, find_classes(split_dir)):
            keys.append(os.path.relpath(path, root))
    return keys


def prepare(root: str | Path, out: str | Path, scale: float = 0.5, quality: int | None = None,
            workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
            chroma: str | None = None, max_crop: int = 448) -> dict:
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
                "tile_overlap": overlap, "source": str(root), "entries": {}, "bad_files": {}}
    if old:
        settings = (old.get("scale"), old.get("quality"), old.get("chroma", DEFAULT_CHROMA),
                    old.get("tile_overlap", 0))
        if settings != (scale, quality, chroma, overlap):
            raise DataError(f"{out} was prepared with scale {settings[0]}, quality {settings[1]}, "
                            f"chroma {settings[2]} and tiles overlapping by {settings[3]} pixels; "
                            "use another --out for different settings")
        manifest["entries"] = old["entries"]
    keys = _sources(root)
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
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=0))
    summary = {"converted": len(jobs) - sum(1 for j in jobs if j[0] in manifest["bad_files"]),
               "unchanged": unchanged, "removed": removed, "bad": len(manifest["bad_files"]),
               "source_bytes": sum(e["size"] for e in manifest["entries"].values()),
               "cache_bytes": sum(e["bytes"] for e in manifest["entries"].values())}
    return summary


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


def verify(root: str | Path) -> dict[str, str]:
    """Check every cache file against its checksum; {path: problem} for the bad ones.
    Hashing only (about 0.04 ms a file): decoding happens once, when training reads it."""
    bad = {}
    sums = checksums(root)
    with progress_bar(transient=True) as bar:
        task = add_task(bar, "Verifying cache", len(sums))
        for path, digest in sums.items():
            try:
                _checked_bytes(path, digest)
            except DataError as exc:
                bad[path] = str(exc)
            bar.advance(task)
    return bad


def print_summary(summary: dict, out: Path) -> None:
    ratio = summary["cache_bytes"] / max(1, summary["source_bytes"])
    console.print(f"Cache [bold]{out}[/]: {summary['converted']} converted, "
                  f"{summary['unchanged']} unchanged, {summary['removed']} removed, "
                  f"{summary['bad']} unreadable source file(s) skipped; "
                  f"{summary['cache_bytes'] / 2**20:.1f} MiB = {ratio:.1%} of the source's "
                  f"{summary['source_bytes'] / 2**20:.1f} MiB")
