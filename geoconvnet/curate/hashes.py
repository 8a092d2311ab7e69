"""What ``data dedup`` knows of each image, from one decode, cached per file.

Each image is read once: SHA-256 of its bytes (exact copies), then one reduced decode (JPEG
decodes at 1/2, 1/4 or 1/8 scale with ``draft``; a PNG decodes whole and is box-averaged with
``Image.reduce``) to a fixed 512x288 analysis frame, the whole image stretched to it whatever
its shape. Everything else comes from that frame:

- 64-bit pHashes (imagehash) of the whole frame, of 16 crops of it (3, 6, 9 and 12% cut at
  one edge) and of its four halves. A copy cut by up to 12% at one edge looks like one of its
  source's crops; a copy with an overlay (text, a logo, a button) keeps at least one half
  unchanged. These find the candidate pairs (:mod:`.dedup`).
- a 32x18 colour thumbnail: the first, cheap check of a candidate pair (:mod:`.nearcopy`).
- ``detail``: how sharp the image is for its content (the median over 32x32 blocks of the
  energy of the Laplacian relative to that of a blurred copy). Relative to a sharp
  1600x900 sample scene (3 scenes, 2026-11-29): blurred by 1 pixel 0.45-0.62, by 2 pixels
  0.18-0.28, a 400x225 copy 0.23-0.38, 160x90 0.06-0.09; an 800x450 copy 0.83-1.01; JPEG 75
  or 20% darker 0.97-1.03. Brightness and a small overlay (a few of the 144 blocks) leave
  it unchanged.

The cache, ``ROOT/.geoconvnet-hashes.sqlite`` (:mod:`.hashcache`), has a row per file keyed
by relative path, size and modification time; a file whose stat changed but whose SHA-256 is
known (moved by ``data split``) is not decoded again. Rows are committed in batches while
hashing (every 2,000 rows or 2 s), so a killed run keeps its finished batches and a rerun
hashes only what is missing or changed. The .npz cache of earlier versions
(``.geoconvnet-hashes.npz``) is copied in once and left alone; the JSON cache before it
(``.geoconvnet-hashes.json``) is not read. The same database keeps the verdicts of pixel
checks of pairs (:mod:`.nearcopy`), keyed by the two SHA-256s and ``nearcopy.VERSION``.

``--cache DIR`` (a training cache made by ``data prepare ROOT --out DIR``) decodes its
half-size JPEGs instead of the originals where the cache entry's size and modification time
match the original; SHA-256 still comes from the original bytes.

Speed at 1600x900 (sample PNGs, 2 processes on 2 cores, 2026-11-30): 35 images/s against
45.5 for Pillow's plain decode of the same PNGs (the bound: the decode is 43 ms of the
65 ms an image costs here); 112 images/s from a training cache
(``benchmarks/dedup_speed.py``, ``docs/dedup.md``).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import scipy.fft
from PIL import Image

from ..data.cache import load_manifest as load_cache_manifest
from ..data.cachefile import read_cached
from ..data.images import DEFAULT_MAX_PIXELS
from ..utils.errors import DataError
from ..utils.pool import worker_pool
from ..utils.progress import add_task, err_console, progress_bar
from . import hashcache, nearcopy
from .hashcache import HashCache, Verdicts, save_verdicts
from .pathlist import Digests, PathList

CACHE = hashcache.NAME
OLD_CACHE = ".geoconvnet-hashes.npz"  # copied into CACHE once, then left alone
FORMAT = 1  # of a cached row; a row of another format is hashed again
COMMIT_ROWS, COMMIT_SECONDS = 2000, 2.0  # a batch of rows committed at once
SLICE = 4096  # files handed to the worker pool at once (its futures hold their results)
LOOKUP_BATCH = 4096  # cached rows looked up (and held) at once
BASE = (512, 288)  # the analysis frame (width, height)
THUMB = (32, 18)
THUMB_SHAPE = (THUMB[1], THUMB[0], 3)
THUMB_BYTES = THUMB[0] * THUMB[1] * 3  # a thumbnail stored as it is; any other size is zlib
CROPS = (0.03, 0.06, 0.09, 0.12)
EDGES = ("left", "right", "top", "bottom")
VARIANTS = (("full", 0.0),) + tuple((edge, f) for f in CROPS for edge in EDGES)
HALVES = EDGES  # the half of the frame on that side
DETAIL_BLOCK = 32
PRELOAD = (__name__,)  # what the workers' fork server imports once


@dataclass
class Features:
    """Per image (rows in the order of ``files``); unreadable images have ``readable``
    False and zeros elsewhere, but a SHA-256."""

    files: PathList  # (a sequence of str)
    sha256: Digests  # hex strings when indexed; ``.raw``: the digests as one array
    size: np.ndarray  # (n, 2) width, height of the original
    readable: np.ndarray
    phash: np.ndarray  # (n, len(VARIANTS)) uint64
    halves: np.ndarray  # (n, 4) uint64
    thumb: Thumbnails | np.ndarray  # (n, 18, 32, 3) uint8, read from the cache when indexed
    detail: np.ndarray
    from_cache: np.ndarray  # decoded from the training cache
    nbytes: np.ndarray | None = None  # file sizes
    errors: dict[str, str] = field(default_factory=dict)  # path -> why unreadable
    # "sha:sha" -> (stage-1 error, stage-2 texture score, whether stage 2 ran): see .nearcopy
    # (a dict, or the cache's :class:`.hashcache.Verdicts` that reads them as asked)
    verdicts: dict[str, tuple[float, float, bool]] = field(default_factory=dict)
    work: dict[str, int] = field(default_factory=dict)  # images "cached", "hashed", ...


class Thumbnails:
    """The thumbnails of :class:`Features`' rows, read from the hash cache when indexed
    (``thumbs[rows]``: an array of ``rows``' shape + (18, 32, 3)) and never held: 1,728 bytes
    an image, 8.6 GB at 5 million, where the pixel check needs those of its candidate pairs
    only. An unreadable image's is zeros."""

    def __init__(self, root: Path, relative: PathList, sha256: Digests, readable: np.ndarray):
        self.root, self.relative, self.sha256, self.readable = root, relative, sha256, readable

    def __len__(self) -> int:
        return len(self.relative)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        every = self[np.arange(len(self))]
        return every if dtype is None else every.astype(dtype)

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        wanted, inverse = np.unique(rows.ravel(), return_inverse=True)
        wanted = wanted.tolist()
        relative = [self.relative[i] for i in wanted]
        with HashCache(self.root) as cache:
            found = cache.thumbs(relative)
        out = np.zeros((len(wanted),) + THUMB_SHAPE, np.uint8)
        for k, (i, path) in enumerate(zip(wanted, relative)):
            if not self.readable[i]:
                continue
            row = found.get(path)
            if row is None or bytes(row[0]) != self.sha256.digest(i) or row[1] is None:
                raise DataError(f"{self.root / CACHE}: the row of {path} changed during this "
                                "run (another `data dedup` of this root?); run again")
            out[k] = _unpack_thumb(row[1])
        return out[inverse].reshape(rows.shape + THUMB_SHAPE)


def _pack_thumb(thumb: np.ndarray) -> bytes:
    """zlib, unless that is no smaller (noise): then as it is, which its size tells."""
    raw = np.ascontiguousarray(thumb, np.uint8).tobytes()
    packed = zlib.compress(raw, 6)
    return packed if len(packed) < THUMB_BYTES else raw


def _unpack_thumb(blob: bytes) -> np.ndarray:
    raw = blob if len(blob) == THUMB_BYTES else zlib.decompress(blob)
    return np.frombuffer(raw, np.uint8).reshape(THUMB_SHAPE)


@dataclass(frozen=True)
class Source:
    """Where to decode an image from: the original, or its training-cache file."""

    path: str
    cache_file: str | None = None
    cache_sha256: str | None = None


# ---------------------------------------------------------------- decoding


def read_frame(source: Source, data: bytes | None = None
               ) -> tuple[np.ndarray, tuple[int, int], bool]:
    """(the 512x288 RGB analysis frame, the original's width and height, whether it came
    from the training cache); ``data``: the original's bytes when already read. DataError
    when the image cannot be decoded."""
    data = _read(source.path) if data is None else data
    if source.cache_file is not None:
        try:
            size = _header_size(data, source.path)
            return _frame(read_cached(source.cache_file, source.cache_sha256)), size, True
        except DataError:
            pass  # a damaged or missing cache file: the original decides
    image, size = _decode_reduced(data, source.path)
    return _frame(image), size, False


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _header_size(data: bytes, name: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"{name}: not a readable image ({type(exc).__name__})") from exc


def _decode_reduced(data: bytes, name: str) -> tuple[Image.Image, tuple[int, int]]:
    """The image decoded at the smallest scale that still covers the analysis frame."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            size = image.size
            if size[0] * size[1] > DEFAULT_MAX_PIXELS:
                raise DataError(f"{name}: {size[0]}x{size[1]} pixels (possible decompression "
                                "bomb)")
            factor = _factor(size)
            if image.format == "JPEG" and factor > 1:
                image.draft("RGB", (size[0] // factor, size[1] // factor))  # DCT scaling
            image.load()
            if image.mode != "RGB":  # (converting an RGB image would copy it: 6 ms)
                image = image.convert("RGB")
            factor = _factor(image.size)
            return (image.reduce(factor) if factor > 1 else image), size
    except DataError:
        raise
    except Exception as exc:  # PIL raises many types for broken files
        reason = "empty file" if not data else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{name}: not a readable image ({reason})") from exc


def _factor(size: tuple[int, int]) -> int:
    return max(1, min(size[0] // BASE[0], size[1] // BASE[1]))


def _frame(image: Image.Image) -> np.ndarray:
    image = image if image.mode == "RGB" else image.convert("RGB")
    shrink = image.width >= BASE[0] and image.height >= BASE[1]
    return np.asarray(image.resize(BASE, Image.BOX if shrink else Image.BILINEAR))


# ---------------------------------------------------------------- features of one frame


def crop_box(edge: str, fraction: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) as fractions of the frame: the frame cut by ``fraction`` at
    ``edge`` ("full": the whole frame)."""
    return {"full": (0, 0, 1, 1), "left": (fraction, 0, 1, 1), "right": (0, 0, 1 - fraction, 1),
            "top": (0, fraction, 1, 1), "bottom": (0, 0, 1, 1 - fraction)}[edge]


def half_box(edge: str) -> tuple[float, float, float, float]:
    return {"left": (0, 0, 0.5, 1), "right": (0.5, 0, 1, 1), "top": (0, 0, 1, 0.5),
            "bottom": (0, 0.5, 1, 1)}[edge]


BOXES = [crop_box(e, f) for e, f in VARIANTS] + [half_box(e) for e in HALVES]
HASH_FRAME = (128, 72)  # the grey frame the hashes are computed from (4x4 pixels a cell)


def _area_matrix(start: float, end: float, size: int, out: int = 32) -> np.ndarray:
    """(out, size): averages [start, end) of an axis of ``size`` pixels into ``out`` bins,
    fractional pixels weighted (an exact area resize of a crop)."""
    edges = start * size + (end - start) * size * np.arange(out + 1) / out
    pixel = np.arange(size)
    overlap = np.clip(np.minimum(edges[1:, None], pixel + 1) - np.maximum(edges[:-1, None], pixel),
                      0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


def _hash_matrices() -> tuple[np.ndarray, np.ndarray]:
    width, height = HASH_FRAME
    rows = np.stack([_area_matrix(y0, y1, height) for _, y0, _, y1 in BOXES])
    cols = np.stack([_area_matrix(x0, x1, width) for x0, _, x1, _ in BOXES])
    return rows, cols


HASH_ROWS, HASH_COLS = _hash_matrices()


def phashes(grey: np.ndarray) -> np.ndarray:
    """imagehash's pHash of every box of ``BOXES`` at once (uint64, the bits in the order of
    ``str(imagehash.phash(...))``): each box area-resized to 32x32 (rounded to whole levels,
    as a PIL image would be), its 2-D DCT-II, the 8x8 lowest frequencies against their
    median. ``tests/curate/test_dedup_hashes.py`` checks it against imagehash itself."""
    small = cv2.resize(grey, HASH_FRAME, interpolation=cv2.INTER_AREA).astype(np.float32)
    rows = (HASH_ROWS.reshape(-1, HASH_FRAME[1]) @ small).reshape(len(BOXES), 32, -1)
    boxes = np.round(rows @ HASH_COLS.transpose(0, 2, 1)).astype(np.float64)
    dct = scipy.fft.dct(scipy.fft.dct(boxes, axis=1), axis=2)[:, :8, :8].reshape(len(BOXES), 64)
    bits = dct > np.median(dct, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def detail(grey: np.ndarray) -> float:
    """Sharpness for the content (see the module doc); brightness and a small overlay (a few
    blocks of 144) leave it unchanged."""
    g = grey.astype(np.float32)
    high = cv2.Laplacian(g, cv2.CV_32F) ** 2
    low = cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 2.0), cv2.CV_32F) ** 2
    rows, cols = g.shape[0] // DETAIL_BLOCK, g.shape[1] // DETAIL_BLOCK

    def blocks(x):
        return x[:rows * DETAIL_BLOCK, :cols * DETAIL_BLOCK].reshape(
            rows, DETAIL_BLOCK, cols, DETAIL_BLOCK).mean(axis=(1, 3))

    high, low = blocks(high), blocks(low)
    textured = low > 0.05  # flat blocks (clear sky, a black bar) say nothing of sharpness
    if textured.sum() < 4:
        return 0.0
    return float(np.median(high[textured] / low[textured]))


def frame_features(frame: np.ndarray) -> dict:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    hashes = phashes(grey)
    return {"phash": hashes[:len(VARIANTS)], "halves": hashes[len(VARIANTS):],
            "thumb": cv2.resize(frame, THUMB, interpolation=cv2.INTER_AREA),
            "detail": detail(grey)}


def _features(source: Source) -> tuple[str, str, dict | None, str | None]:
    """Worker: (path, sha256, features or None, why unreadable or None)."""
    try:
        data = _read(source.path)
    except DataError as exc:
        return source.path, "", None, str(exc)
    digest = hashlib.sha256(data).hexdigest()
    try:
        frame, size, cached = read_frame(source, data)
    except DataError as exc:
        return source.path, digest, None, str(exc)
    return source.path, digest, {**frame_features(frame), "size": size,
                                 "from_cache": cached}, None


def _sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""



# ---------------------------------------------------------------- the cache

_ARRAYS = ("sha256", "size", "readable", "phash", "halves", "thumb", "detail", "from_cache")


def _empty(n: int) -> dict:
    return {"sha256": Digests(n), "size": np.zeros((n, 2), np.int32),
            "readable": np.zeros(n, bool),
            "phash": np.zeros((n, len(VARIANTS)), np.uint64),
            "halves": np.zeros((n, len(HALVES)), np.uint64),
            "detail": np.zeros(n, np.float32), "from_cache": np.zeros(n, bool)}


def _row(relative: str, stat: tuple[int, int], digest: str, result: dict | None,
         error: str | None) -> tuple:
    """A row of the cache (:data:`.hashcache.COLUMNS`) for a file hashed by :func:`_features`;
    ``stat``: its size and modification time (ns)."""
    head = (relative, *stat, FORMAT, bytes.fromhex(digest))
    if result is None:
        return head + (0, 0, 0, None, None, None, 0.0, 0, error)
    return head + (1, int(result["size"][0]), int(result["size"][1]),
                   np.asarray(result["phash"], "<u8").tobytes(),
                   np.asarray(result["halves"], "<u8").tobytes(),
                   _pack_thumb(result["thumb"]),
                   float(result["detail"]), int(result["from_cache"]), None)


def _restat(row: tuple, relative: str, stat: np.ndarray) -> tuple:
    """``row`` (another file of the same content) for this file."""
    return (relative, int(stat[0]), int(stat[1])) + row[3:]


def _fill(new: dict, i: int, row: tuple, errors: dict, path: str) -> None:
    """Row ``i`` of the arrays from a cache row."""
    new["sha256"].set(i, row[4])
    if not row[5]:
        errors[path] = row[13] or f"{path}: not a readable image"
        return
    new["size"][i] = row[6:8]
    new["readable"][i] = True
    new["phash"][i] = np.frombuffer(row[8], "<u8")
    new["halves"][i] = np.frombuffer(row[9], "<u8")
    new["detail"][i] = row[11]
    new["from_cache"][i] = bool(row[12])


def _store(new: dict, i: int, result: dict) -> None:
    new["size"][i] = result["size"]
    new["readable"][i] = True
    new["phash"][i] = result["phash"]
    new["halves"][i] = result["halves"]
    new["detail"][i] = result["detail"]
    new["from_cache"][i] = result["from_cache"]


class _Batches:
    """Rows written a batch (one transaction) at a time: every ``COMMIT_ROWS`` rows or
    ``COMMIT_SECONDS``, so that a kill loses at most the last few seconds of work."""

    def __init__(self, cache: HashCache):
        self.cache, self.rows, self.gone = cache, [], []
        self.since = time.monotonic()
        self.commits = 0

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= COMMIT_ROWS or time.monotonic() - self.since >= COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.rows or self.gone:
            self.cache.put(self.rows)
            self.cache.delete(self.gone)
            self.commits += 1
        self.rows, self.gone = [], []
        self.since = time.monotonic()


def _read_npz(path: Path) -> tuple[list[str], dict, dict[str, tuple]]:
    """(relative paths, arrays, verdicts) of the .npz cache of earlier versions; nothing when
    it was made by another format, or cannot be read (a warning)."""
    nothing = ([], {}, {})
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"][0]) != FORMAT:
                return nothing
            files = [str(f) for f in data["files"]]
            arrays = {k: data[k] for k in ("stat",) + _ARRAYS}
            verdicts = dict(zip((str(k) for k in data["verdict_keys"]),
                                zip(data["verdict_coarse"].tolist(),
                                    data["verdict_texture"].tolist(),
                                    data["verdict_measured"].tolist())))
            if "verifier" not in data.files or int(data["verifier"][0]) != nearcopy.VERSION:
                verdicts = {}  # made by another pixel check: checked again
        if any(len(a) != len(files) for a in arrays.values()) or \
                arrays["phash"].shape[1:] != (len(VARIANTS),):
            raise ValueError("inconsistent arrays")
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        err_console.print(f"warning: {path} is unreadable ({type(exc).__name__}); it is only "
                          "a cache: hashing its images again", markup=False, soft_wrap=True)
        return nothing
    return files, arrays, verdicts


def _migrate_npz(root: Path, cache: HashCache) -> int:
    """Copy the .npz cache of earlier versions into the database, once (it is left as it
    is: delete it by hand when the database works); returns the rows copied."""
    old = root / OLD_CACHE
    if not old.is_file():
        return 0
    stat = old.stat()
    mark, key = f"{stat.st_size}:{stat.st_mtime_ns}", f"copied {OLD_CACHE}"
    if cache.meta(key) == mark:
        return 0
    files, arrays, verdicts = _read_npz(old)
    batches = _Batches(cache)
    for i, relative in enumerate(files):
        result = {"size": arrays["size"][i], "phash": arrays["phash"][i],
                  "halves": arrays["halves"][i], "thumb": arrays["thumb"][i],
                  "detail": arrays["detail"][i], "from_cache": arrays["from_cache"][i]}
        batches.add(_row(relative, tuple(int(v) for v in arrays["stat"][i]),
                         str(arrays["sha256"][i]), result if arrays["readable"][i] else None,
                         None))
    batches.flush()
    cache.put_verdicts(verdicts.items(), nearcopy.VERSION)
    cache.set_meta(key, mark)
    return len(files)


def save_cache(root: Path, features: Features) -> None:
    """Write the verdicts of pairs checked since :func:`hash_files` (its file rows are
    written as they are hashed)."""
    save_verdicts(root, features.verdicts, nearcopy.VERSION)


def training_cache_sources(root: Path, cache_dir: str | Path | None,
                           files: list[str]) -> dict[str, Source]:
    """{path: Source}: the training-cache file for each original it still matches."""
    source = source_lookup(root, cache_dir)
    return {path: source(path) for path in files}


def source_lookup(root: Path, cache_dir: str | Path | None) -> Callable[[str], Source]:
    """``source(path)``: where to decode ``path`` from (:func:`training_cache_sources` for
    one path), asked as needed rather than held for every image; the training cache's
    manifest is read once."""
    if cache_dir is None:
        return Source
    manifest = load_cache_manifest(cache_dir)
    source = Path(manifest.get("source", ""))
    if source.is_absolute() and source.resolve() != Path(root).resolve():
        raise DataError(f"{cache_dir} is the training cache of {source}, not of {root}; give "
                        f"the cache made by `geoconvnet data prepare {root} --out DIR`")
    entries, scale = manifest.get("entries", {}), manifest.get("scale", 1.0)

    def lookup(path: str) -> Source:
        entry = entries.get(os.path.relpath(path, root))
        stat = os.stat(path)
        if entry and (entry.get("size"), entry.get("mtime_ns")) == (stat.st_size,
                                                                   stat.st_mtime_ns) \
                and _large_enough(entry, scale=scale):
            return Source(path, str(Path(cache_dir) / entry["file"]), entry.get("sha256"))
        return Source(path)  # changed since the cache was made (or too small a copy)

    return lookup


def _large_enough(entry: dict, scale: float) -> bool:
    """Whether a cache entry has every pixel the analysis frame takes from its original
    (an 800x450 copy of a 1600x900 screenshot does; a 240x135 copy of 480x270 does not)."""
    width, height = entry.get("width", 0), entry.get("height", 0)
    return (width >= min(BASE[0], width / scale - 1) and
            height >= min(BASE[1], height / scale - 1))



def hash_files(root: Path, files: list[str], workers: int | None = None,
               cache_dir: str | Path | None = None) -> Features:
    """Features of ``files`` (paths under ``root``), from the cache where a file is unchanged
    (same stat, or same bytes under another name); what is hashed is committed to the cache
    in batches as it comes, so a killed run loses only the last seconds of it.
    ``features.work`` counts the images "cached", found "by content" and "hashed"."""
    root = Path(root)
    files = files if isinstance(files, PathList) else PathList(files, root)
    relative = files.relative
    stats = _stats(files)
    new, errors = _empty(len(files)), {}
    with HashCache(root) as cache:
        _migrate_npz(root, cache)
        todo = _from_cache(cache, files, relative, stats, new, errors)
        work = {"cached": len(files) - len(todo), "by content": 0, "hashed": 0}
        if todo and cache.count() > work["cached"]:  # rows not found by name: moved files?
            rest = _reuse_by_content(root, cache, files, relative, stats, todo, new, errors,
                                     workers)
            work["by content"], todo = len(todo) - len(rest), rest
        _hash(root, cache, files, relative, stats, todo, new, errors, workers, cache_dir)
        work["hashed"] = len(todo)
        if cache.count() > len(files):
            _forget_others(cache, relative)
    thumbs = Thumbnails(root, relative, new["sha256"], new["readable"])
    return Features(files, new["sha256"], new["size"], new["readable"], new["phash"],
                    new["halves"], thumbs, new["detail"], new["from_cache"], stats[:, 0].copy(),
                    errors, Verdicts(root, nearcopy.VERSION), work)


def _stats(files: list[str]) -> np.ndarray:
    """(n, 2) int64: size and modification time (ns) of each file (an ``os.stat_result``
    held for each would cost hundreds of bytes an image)."""
    stats = np.zeros((len(files), 2), np.int64)
    for i, path in enumerate(files):
        stat = os.stat(path)
        stats[i] = stat.st_size, stat.st_mtime_ns
    return stats


def _from_cache(cache: HashCache, files, relative, stats, new, errors) -> list[int]:
    """Fill the rows of unchanged files; returns the others' indices."""
    todo = []
    for start in range(0, len(files), LOOKUP_BATCH):
        rows = cache.rows(relative[start:start + LOOKUP_BATCH], thumb=False)
        for i in range(start, min(start + LOOKUP_BATCH, len(files))):
            row = rows.get(relative[i])
            if row is not None and row[1:4] == (*stats[i].tolist(), FORMAT):
                _fill(new, i, row, errors, files[i])
            else:
                todo.append(i)
    return todo


def _reuse_by_content(root, cache, files, relative, stats, todo, new, errors,
                      workers) -> list[int]:
    """Rows of ``todo`` whose bytes are already in the cache under another name are filled
    from there (reading costs a few ms a file, decoding tens) and stored under their name
    (the old name's row is dropped when that file is gone); returns the rest. The SHA-256s
    are read in the worker processes."""
    rest = []
    batches = _Batches(cache)
    with progress_bar(transient=True) as bar, worker_pool(workers, len(todo) // 64, PRELOAD) as pool:
        task = add_task(bar, "Looking for moved images", len(todo))
        for start in range(0, len(todo), SLICE):  # a slice at a time: bounded memory
            part = todo[start:start + SLICE]
            digests = pool.map(_sha256, [files[i] for i in part], chunksize=64)
            for i, digest in zip(part, digests):
                row = cache.row_by_sha256(bytes.fromhex(digest), FORMAT) if digest else None
                if row is None:
                    rest.append(i)
                else:
                    _fill(new, i, row, errors, files[i])
                    batches.add(_restat(row, relative[i], stats[i]))
                    if row[0] != relative[i] and not (root / row[0]).exists():
                        batches.gone.append(row[0])
                bar.advance(task)
    batches.flush()
    return rest


def _hash(root, cache, files, relative, stats, todo, new, errors, workers, cache_dir) -> None:
    """Hash ``todo`` in worker processes, committing rows in batches as results come."""
    if not todo:
        return
    source = source_lookup(root, cache_dir)
    batches = _Batches(cache)
    try:
        with progress_bar() as bar, worker_pool(workers, len(todo), PRELOAD) as pool:
            task = add_task(bar, "Hashing images", len(todo))
            for start in range(0, len(todo), SLICE):  # a slice at a time: bounded memory
                part = todo[start:start + SLICE]
                jobs = [source(files[i]) for i in part]
                for i, (path, digest, result, error) in zip(
                        part, pool.map(_features, jobs, chunksize=8)):
                    if digest:
                        new["sha256"].set(i, digest)
                    if result is None:
                        errors[path] = error
                    else:
                        _store(new, i, result)
                    if digest:  # a file that could not even be read is tried again next run
                        batches.add(_row(relative[i], tuple(stats[i].tolist()), digest,
                                         result, error))
                    bar.advance(task)
    finally:
        batches.flush()  # Ctrl-C keeps what was finished too


def _forget_others(cache: HashCache, current: PathList) -> None:
    """Drop the rows of files not hashed this time (gone, or moved out of the root). The
    current paths are known by a 64-bit hash each (a set of 5 million str would take GBs);
    a row whose path's hash matches a current one by chance stays, which a cache can
    afford."""
    known = np.sort(np.fromiter((_path_key(p) for p in current), np.uint64, len(current)))
    gone, batch = [], []
    for path in cache.paths():
        batch.append(path)
        if len(batch) == 10_000:
            gone += _unknown(batch, known)
            batch = []
    cache.delete(gone + _unknown(batch, known))


def _path_key(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "little")


def _unknown(paths: list[str], known: np.ndarray) -> list[str]:
    keys = np.fromiter((_path_key(p) for p in paths), np.uint64, len(paths))
    at = np.minimum(np.searchsorted(known, keys), max(len(known) - 1, 0))
    found = known[at] == keys if len(known) else np.zeros(len(paths), bool)
    return [p for p, ok in zip(paths, found.tolist()) if not ok]
