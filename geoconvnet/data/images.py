"""Decoding images safely: one RGB image or a :class:`DataError` that names the file."""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..utils.errors import DataError, ImageTooLargeError
from ..utils.progress import add_task, progress_bar
from .cachefile import is_tiled, read_cached

# A 1600x900 screenshot has 1.4 MP; anything beyond this is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image as RGB (a tiled cache file as the whole image), or raise DataError
    naming the file and the reason (ImageTooLargeError over ``max_pixels``)."""
    try:
        return _decode(path, str(path), max_pixels, tiled_ok=True)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (DataError, MemoryError):
        raise
    except Exception as exc:  # PIL raises many types for broken files
        reason = "empty file (0 bytes)" if _is_empty(path) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path}: not a readable image ({reason})") from exc


def decode_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """:func:`load_image` for bytes in memory (an upload); errors name ``name``."""
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    try:
        return _decode(io.BytesIO(data), name, max_pixels, tiled_ok=False)
    except (DataError, MemoryError):
        raise
    except UnidentifiedImageError:
        raise DataError(f"{name}: not an image Pillow can read; send a PNG, JPEG or WebP "
                        "screenshot") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from exc


def _decode(source, name: str, max_pixels: int, tiled_ok: bool) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > max_pixels:
                    raise ImageTooLargeError(
                        f"{name}: {img.width}x{img.height} pixels exceeds the limit of "
                        f"{max_pixels:,} (possible decompression bomb)")
                # A training-cache file given on its own (predict, report figures): the
                # whole image, not its first tile. Without its manifest there is no
                # checksum to check; DataRoot.read checks it for every file of a cache.
                if is_tiled(img):
                    if not tiled_ok:
                        raise DataError(f"{name}: a training-cache file; send the original "
                                        "screenshot instead")
                    return read_cached(str(source), None)
                return img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{name}: decompression bomb ({exc})") from exc


FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


def checked_image(data: bytes, name: str, min_side: int = 16,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The file extension for ``data`` (a download) once it has decoded in full as a JPEG,
    PNG or WebP image of at least ``min_side`` pixels a side; a DataError names the
    problem otherwise (an HTML page, a truncated body, a tiny error image)."""
    if not data:
        raise DataError(f"{name}: empty body (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind, size = img.format, img.size
                if size[0] * size[1] > max_pixels:
                    raise DataError(f"{name}: {size[0]}x{size[1]} pixels, over the limit")
                img.load()  # a truncated JPEG or PNG fails here, not at open
    except DataError:
        raise
    except UnidentifiedImageError:
        start = data[:64].decode("utf-8", "replace").strip().splitlines()[0][:40] \
            if data[:64].strip() else ""
        raise DataError(f"{name}: not an image (starts with {start!r})") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    if kind not in FORMAT_EXTENSIONS:
        raise DataError(f"{name}: a {kind} image; expected JPEG, PNG or WebP")
    if min(size) < min_side:
        raise DataError(f"{name}: only {size[0]}x{size[1]} pixels")
    return FORMAT_EXTENSIONS[kind]


def _is_empty(path) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def check_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Cheap integrity check; returns the reason a file is unusable, or None if it is fine.

    PNG ``verify()`` checks every chunk's CRC without decompressing (about 2 ms for a
    1600x900 screenshot, against about 20-40 ms for a full decode); other formats are
    decoded, JPEG at reduced scale.
    """
    if _is_empty(path):
        return "empty file (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    return f"{img.width}x{img.height} pixels exceeds {max_pixels:,} (decompression bomb)"
                if img.format == "PNG":
                    img.verify()
                else:
                    img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
                    img.load()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def scan_images(paths: list[str], max_pixels: int = DEFAULT_MAX_PIXELS,
                workers: int | None = None) -> dict[str, str]:
    """Check many files in parallel; returns {path: reason} for the unusable ones."""
    bad: dict[str, str] = {}
    if not paths:
        return bad
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with progress_bar(transient=True) as bar, ThreadPoolExecutor(workers) as pool:
        task = add_task(bar, "Scanning images", len(paths))
        for path, reason in zip(paths, pool.map(lambda p: check_image(p, max_pixels), paths)):
            if reason is not None:
                bad[path] = reason
            bar.advance(task)
    return bad
