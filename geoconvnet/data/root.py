"""One object that describes a data root: a dataset folder or a training cache.

Every stage that reads data (train, evaluate, calibrate, tune, report) opens the root once
with :meth:`DataRoot.open` and asks it for classes, samples, the scale of its images and
how to read one; nobody else decides "folder or cache".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import cache
from .cachefile import TiledImage, open_cached
from .coords import Coordinates, as_array, read_coordinates
from .images import DEFAULT_MAX_PIXELS, load_image, scan_images
from .layout import Sample, check_same_classes, find_classes, list_samples
from .shards import ShardedCache, is_sharded


@dataclass
class DataRoot:
    path: Path
    is_cache: bool = False
    scale: float = 1.0  # < 1 for a cache of downscaled images
    checksums: dict[str, str] | None = None  # cache file -> SHA-256, checked on every read
    bad_files: dict[str, str] = field(default_factory=dict)  # unreadable sources (cache only)
    max_pixels: int = DEFAULT_MAX_PIXELS
    shards: ShardedCache | None = None  # a sharded cache (local or s3://): samples are ids
    # source-relative file -> (lat, lon); read on first use (a file cache: from its manifest)
    coords_table: Coordinates | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> "DataRoot":
        if is_sharded(path):
            shards = ShardedCache(path)
            bad = {str(k): v for k, v in shards.table["bad_files"].items()}
            return cls(shards.store.folder, True, shards.scale, None, bad, max_pixels, shards)
        path = Path(path)  # a missing folder is reported by the first classes() call
        if not cache.is_cache(path):
            return cls(path, max_pixels=max_pixels)
        manifest = cache.load_manifest(path)
        bad = {str(Path(manifest["source"]) / k): v for k, v in manifest["bad_files"].items()}
        coords = {k: tuple(e["latlon"]) for k, e in manifest["entries"].items() if "latlon" in e}
        return cls(path, True, float(manifest["scale"]), cache.checksums(path, manifest), bad,
                   max_pixels, coords_table=coords)

    @property
    def location(self) -> str:
        """Where the data is, as the user named it (a folder or an ``s3://`` URL)."""
        return self.shards.store.location if self.shards else str(self.path)

    def classes(self, split: str = "train") -> list[str]:
        if self.shards:
            return list(self.shards.classes)
        return find_classes(self.path / split)

    def has_split(self, split: str) -> bool:
        if self.shards:
            return self.shards.has_split(split)
        return (self.path / split).is_dir()

    def samples(self, split: str, classes: list[str] | None = None) -> list[Sample]:
        """Samples of ``root/split``, labelled with ``classes`` (a checkpoint's order) or with
        the split's own folders."""
        if self.shards:
            return self.shards.samples(split, classes)
        split_dir = self.path / split
        found = find_classes(split_dir)
        if classes is not None and found != list(classes):
            check_same_classes(Path("the checkpoint"), list(classes), split_dir, found)
        return list_samples(split_dir, list(classes or found))

    def scan(self, paths: list[str]) -> dict[str, str]:
        """{path: problem} for unusable files: checksums for a cache, a decode check else.
        A sharded cache checks each shard when it is first read instead: nothing to do."""
        if self.shards:
            return {}
        if self.is_cache:
            return cache.verify(self.path, self.checksums)
        return scan_images(paths, self.max_pixels)

    def read(self, path: str) -> "Image.Image | TiledImage":
        """One image of this root for the loader (a cache file after its checksum)."""
        if self.shards:
            return self.shards.read(path)
        if self.is_cache:
            return open_cached(path, self.checksums.get(path))
        return load_image(path, self.max_pixels)

    def locate(self, relative: str) -> str:
        """A path recorded relative to another root (a run's ``split.json``), in this one:
        a cache names its files ``<source name>.jpg``."""
        path = self.path / relative
        if not path.exists():
            other = self.path / (relative[:-4] if relative.endswith(".jpg") else relative + ".jpg")
            path = other if other.exists() else path
        return str(path)

    def relative(self, path: str | int) -> str:
        """A sample's name relative to the root (for a sharded cache, its source path)."""
        if self.shards:
            return self.shards.key(path)
        return os.path.relpath(path, self.path)

    def sample_key(self, source: str | int) -> str:
        """A key that changes when a sample's bytes do (embedding caches): path, size and
        mtime of a file; source path and shard checksum of a sharded sample."""
        if self.shards:
            return f"{self.location}#{self.shards.identity(source)}"
        stat = os.stat(source)
        return f"{os.path.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}"

    def display(self, source: str | int) -> str:
        """How reports name a sample: its path; for a sharded cache, the source image it was
        made from (where a person, and the report's figures, can open it)."""
        if self.shards:
            return str(Path(self.shards.table["source"]) / self.shards.key(source))
        return str(source)

    def source_key(self, source: str | int) -> str:
        """A sample's file relative to the dataset folder it came from (``train/<Country>/
        <name>``): what coordinate tables are keyed by, for a folder and its caches alike."""
        if self.shards:
            return self.shards.key(source)
        relative = self.relative(source)
        return relative[:-4] if self.is_cache and relative.endswith(".jpg") else relative

    def coordinates(self, sources) -> np.ndarray:
        """``[n, 2]`` (lat, lon) of samples' sources (paths, or a sharded cache's ids), NaN
        where the root has no coordinates for one (see :mod:`.coords`)."""
        if self.shards:
            return self.shards.coordinates(np.asarray(sources))
        if self.coords_table is None:
            self.coords_table = read_coordinates(self.path)
        if not self.coords_table:
            return np.full((len(sources), 2), np.nan)
        return as_array([self.source_key(s) for s in sources], self.coords_table)
