"""Content hashes of a root's images, cached per file: SHA-256 of the bytes (exact copies)
and two 64-bit perceptual hashes from imagehash, pHash (DCT) and dHash (gradients):
re-encoded, resized and slightly cropped copies stay within a few bits of both. The cache, ``ROOT/.geoconvnet-hashes.json``, is keyed by
path, size and modification time, so a second run only hashes new or changed files."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imagehash

from ..data.images import load_image
from ..utils.errors import DataError
from ..utils.io import write_json
from ..utils.progress import add_task, progress_bar

CACHE = ".geoconvnet-hashes.json"


def _hash(path: str) -> tuple[str, str, str | None, str | None]:
    """Worker: (path, sha256, phash, dhash), the perceptual ones None if unreadable."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = load_image(path)
    except DataError:
        return path, digest, None, None
    return path, digest, str(imagehash.phash(image)), str(imagehash.dhash(image))


def hash_files(root: Path, files: list[str], workers: int | None = None) -> dict[str, dict]:
    """{path: {"sha256", "phash"}} for ``files`` (paths under ``root``), from the cache where
    a file is unchanged."""
    cache_path = root / CACHE
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    result, todo = {}, []
    for path in files:
        stat = os.stat(path)
        key = os.path.relpath(path, root)
        entry = cache.get(key)
        if entry and "dhash" in entry and \
                (entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
            result[path] = entry
        else:
            todo.append(path)
    if todo:
        with progress_bar() as bar, ProcessPoolExecutor(workers or os.cpu_count()) as pool:
            task = add_task(bar, "Hashing images", len(todo))
            for path, digest, phash, dhash in pool.map(_hash, todo, chunksize=16):
                stat = os.stat(path)
                result[path] = {"sha256": digest, "phash": phash, "dhash": dhash,
                                "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                bar.advance(task)
        write_json(cache_path, {os.path.relpath(p, root): e for p, e in result.items()},
                   indent=None)
    return result
