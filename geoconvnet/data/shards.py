"""A sharded training cache: the cache files (:mod:`.cachefile`, tiled JPEG) packed into
WebDataset tar shards, with a memory-mapped index for random access.

Why this layout (benchmarks/RESULTS.md, "Scale"): a WebDataset shard is a plain tar
(``<key>.jpg`` + ``<key>.json`` per sample) that ``tar``, ``webdataset`` and object stores
handle as is, and it needs only the small ``webdataset``-free reader below; MosaicML
streaming (MDS) pulls about 90 packages (transformers, three cloud SDKs) and LitData its own
chunk format and object-store client. The tiles stay as they were, so a training crop still
decodes one tile, and the loader still hands uint8 images to the transforms.

On disk (``out/``)::

    geoconvnet-shards.json        the table: settings, classes, shards (name, count, bytes,
                                  SHA-256), the index files (SHA-256) and unreadable sources
    shards/<split>-GGGG-NNNNNN.tar one shard (GGGG: the prepare generation that wrote it)
    shards/<split>-GGGG-NNNNNN.json what `prepare` knows of its members (resume, incremental)
    index-GGGG/*.npy              per sample: shard, byte offset, length, label, split, key hash;
                                  keys.bin + key_end.npy: the source paths; lat.npy + lon.npy:
                                  where the source was taken (float64, NaN where unknown; a
                                  cache made before they existed has none: all unknown)

Nothing is read in full when training starts: the table is a few hundred kB at 5M images,
the index is memory-mapped (shared by every loader worker through the page cache), and a
shard's SHA-256 is checked the first time a process reads from it, not before.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..utils.errors import DataError
from ..utils.progress import add_task, progress_bar
from .cachefile import open_cached_bytes
from .layout import check_same_classes
from .shardstore import Store, is_remote, sha256_file

TABLE = "geoconvnet-shards.json"
FORMAT = "geoconvnet-shards/1"
SPLIT_CODES = {"train": 0, "test": 1}
INDEX_ARRAYS = ("shard", "offset", "length", "crc32", "label", "split", "keyhash", "key_end")
# Optional index arrays (older caches lack them), loaded on first use only: a loader worker
# that never asks for coordinates does not check or map them.
COORDINATE_ARRAYS = ("lat", "lon")


def is_sharded(location: str | Path) -> bool:
    return is_remote(location) or (Path(location) / TABLE).is_file()


def key_hash(key: str) -> int:
    """A stable 64-bit hash of a source path: orders shards' members and carves validation."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def read_table(store: Store) -> dict:
    try:
        table = json.loads(store.read_bytes(TABLE))
    except json.JSONDecodeError as exc:
        raise DataError(f"{store.url(TABLE)}: unreadable shard table ({exc}); run "
                        "`geoconvnet data prepare` again") from exc
    if table.get("format") != FORMAT:
        raise DataError(f"{store.url(TABLE)}: format {table.get('format')!r}, this version "
                        f"reads {FORMAT}; prepare the cache again with this version")
    return table


class ShardedCache:
    """Random access to the samples of a sharded cache (local folder or ``s3://`` URL).

    Each read checks the CRC-32 of exactly the bytes it read (a shard's SHA-256 is checked
    when it is written, downloaded and by ``data verify``): checking costs what reading
    does, however many workers and ranks read, and a damaged sample is named, never used."""

    OPEN_FILES = 64  # shards kept open per process (a 5M cache has ~5,000)

    def __init__(self, location: str | Path):
        self.store = Store(location)
        self.table = read_table(self.store)
        self.classes: list[str] = self.table["classes"]
        self.scale = float(self.table["scale"])
        self._arrays: dict | None = None
        self._places: tuple | None = None  # (lat, lon) memory maps; () when not stored
        self._keys = None
        self._files: OrderedDict[int, int] = OrderedDict()  # shard -> fd, least recent first
        self._pid = os.getpid()

    def __getstate__(self):  # memory maps and files are reopened where they are used
        return {**self.__dict__, "_arrays": None, "_places": None, "_keys": None,
                "_files": OrderedDict()}

    def __del__(self):
        for fd in getattr(self, "_files", {}).values():
            os.close(fd)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            try:
                self._arrays = {name: np.load(self._index_file(f"{name}.npy"), mmap_mode="r")
                                for name in INDEX_ARRAYS}
                self._keys = np.memmap(self._index_file("keys.bin"), mode="r") \
                    if self.table["counts_all"] else np.zeros(0, np.uint8)
            except (OSError, ValueError) as exc:
                raise DataError(f"{self.store.location}: unreadable index ({exc}); run "
                                "`geoconvnet data prepare` again") from exc
        return self._arrays

    def _index_file(self, name: str) -> Path:
        index = self.table["index"]
        path = self.store.local(f"{index['folder']}/{name}", index["files"][name])
        if not self.store.remote and sha256_file(path) != index["files"][name]:
            # a few bytes an image (~60 MB at a million): checked once per process
            raise DataError(f"{path}: corrupted index file (checksum mismatch); run "
                            "`geoconvnet data prepare` again")
        return path

    def __len__(self) -> int:
        return int(self.table["counts_all"])

    def has_split(self, split: str) -> bool:
        return self.table["counts"].get(split, 0) > 0

    def samples(self, split: str, classes: list[str] | None = None) -> "ShardSamples":
        """The samples of ``split`` as (sample id, label) pairs, labelled with ``classes``
        (a checkpoint's order) or with the cache's own."""
        if split not in SPLIT_CODES or not self.has_split(split):
            raise DataError(f"{self.store.location}: no {split!r} images in this cache")
        arrays = self.arrays
        ids = np.flatnonzero(np.asarray(arrays["split"]) == SPLIT_CODES[split])
        labels = np.asarray(arrays["label"][ids], dtype=np.int64)
        if classes is not None and list(classes) != self.classes:
            check_same_classes(Path("the checkpoint"), list(classes),
                               Path(self.store.location) / split, self.classes)
            order = np.array([list(classes).index(name) for name in self.classes])
            labels = order[labels]
        return ShardSamples(ids, labels, np.asarray(arrays["shard"][ids]))

    @property
    def places(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The index's (lat, lon) arrays, memory-mapped; None for a cache made before they
        were stored (its table lists no ``lat.npy``/``lon.npy``)."""
        if self._places is None:
            files = self.table["index"]["files"]
            if not all(f"{name}.npy" in files for name in COORDINATE_ARRAYS):
                self._places = ()
            else:
                try:
                    places = tuple(np.load(self._index_file(f"{name}.npy"), mmap_mode="r")
                                   for name in COORDINATE_ARRAYS)
                except (OSError, ValueError) as exc:
                    raise DataError(f"{self.store.location}: unreadable index ({exc}); run "
                                    "`geoconvnet data prepare` again") from exc
                if any(p.shape != (len(self),) for p in places):
                    raise DataError(f"{self.store.location}: the index's coordinates do not "
                                    "match its samples; run `geoconvnet data prepare` again")
                self._places = places
        return self._places or None

    def coordinates(self, ids: np.ndarray) -> np.ndarray:
        """``[n, 2]`` float64 (lat, lon) of samples, NaN where unknown."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        places = self.places
        if places is None:
            return np.full((len(ids), 2), np.nan)
        return np.stack([np.asarray(p[ids], dtype=np.float64) for p in places], axis=1)

    def key(self, sample: int) -> str:
        """The source path (relative to the dataset) that a sample was made from."""
        ends = self.arrays["key_end"]
        start = int(ends[sample - 1]) if sample else 0
        return bytes(self._keys[start:int(ends[sample])]).decode()

    def find(self, keys: list[str]) -> list[int]:
        """Sample ids of source paths (a run's recorded validation split), found through
        the key hashes: numpy over the index, Python only for the keys asked for. Keys of
        a file cache (``<source>.jpg``) are found too."""
        keys = [_source_key(k) for k in keys]
        hashes = np.asarray(self.arrays["keyhash"])
        order = np.argsort(hashes, kind="stable")
        wanted = np.array([key_hash(k) for k in keys], dtype=np.uint64)
        at = np.searchsorted(hashes[order], wanted)
        found = []
        for key, i in zip(keys, at.tolist()):
            while i < len(order) and hashes[order[i]] == key_hash(key) \
                    and self.key(int(order[i])) != key:
                i += 1  # a 64-bit collision: the next with the same hash
            if i >= len(order) or self.key(int(order[i])) != key:
                raise DataError(f"{self.store.location}: a recorded file is not in this "
                                f"cache: {key}")
            found.append(int(order[i]))
        return found

    def read(self, sample: int):
        """One sample as an RGB image or a :class:`~.cachefile.TiledImage`."""
        arrays = self.arrays
        shard = int(arrays["shard"][sample])
        start, length = int(arrays["offset"][sample]), int(arrays["length"][sample])
        name = f"{self.shard_name(shard)}:{self.key(sample)}"
        try:
            data = os.pread(self._fd(shard), length, start)
        except OSError as exc:
            raise DataError(f"{name}: unreadable ({exc.strerror or exc})") from exc
        if len(data) != length or zlib.crc32(data) != int(arrays["crc32"][sample]):
            raise DataError(f"{name}: corrupted (checksum mismatch); run `geoconvnet data "
                            "verify` and `data prepare` again")
        return open_cached_bytes(name, data)

    def identity(self, sample: int) -> str:
        """What names a sample's bytes for good: its source path and its shard's SHA-256
        (shards never change once written)."""
        shard = self.table["shards"][int(self.arrays["shard"][sample])]
        return f"{self.key(sample)}|{shard['sha256'][:16]}"

    def shard_name(self, shard: int) -> str:
        return f"shards/{self.table['shards'][shard]['name']}.tar"

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # a forked worker: its own descriptors
            self._files, self._pid = OrderedDict(), os.getpid()
        if shard in self._files:
            self._files.move_to_end(shard)
            return self._files[shard]
        entry = self.table["shards"][shard]
        path = self.store.local(self.shard_name(shard), entry["sha256"])
        self._files[shard] = os.open(path, os.O_RDONLY)
        if len(self._files) > self.OPEN_FILES:
            os.close(self._files.popitem(last=False)[1])
        return self._files[shard]


def verify(location: str | Path) -> tuple[int, dict[str, str]]:
    """Check every shard and index file of a sharded cache against the table's SHA-256
    (for a remote cache: its local copies, downloading what is missing); returns (files
    checked, {file: problem})."""
    cache = ShardedCache(location)
    index = cache.table["index"]
    files = [(f"{index['folder']}/{name}", digest) for name, digest in index["files"].items()]
    files += [(f"shards/{s['name']}.tar", s["sha256"]) for s in cache.table["shards"]]
    bad = {}
    with progress_bar() as bar:
        task = add_task(bar, "Verifying shards", len(files), unit="file")
        for name, digest in files:
            try:
                path = cache.store.local(name, digest)
                if sha256_file(path) != digest:
                    bad[name] = f"{path}: corrupted (checksum mismatch); run prepare again"
            except DataError as exc:
                bad[name] = str(exc)
            bar.advance(task)
    return len(files), bad


def _source_key(key: str) -> str:
    """A file cache names its files ``<source name>.jpg``: the source's own name."""
    stem = key[:-4] if key.endswith(".jpg") else key
    return stem if "." in stem.rsplit("/", 1)[-1] else key


class ShardSamples(Sequence):
    """A split of a sharded cache as a sequence of (sample id, label), held in arrays."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray, shards: np.ndarray):
        self.ids, self.labels, self.shards = ids, labels, shards

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ShardSamples(self.ids[i], self.labels[i], self.shards[i])
        return int(self.ids[i]), int(self.labels[i])

    def __add__(self, other: "ShardSamples") -> "ShardSamples":
        return ShardSamples(*(np.concatenate([a, b]) for a, b in
                              zip((self.ids, self.labels, self.shards),
                                  (other.ids, other.labels, other.shards))))

    def subset(self, mask: np.ndarray) -> "ShardSamples":
        return ShardSamples(self.ids[mask], self.labels[mask], self.shards[mask])


def split_train_val(samples: ShardSamples, keyhash: np.ndarray, val_fraction: float,
                    seed: int) -> tuple[ShardSamples, ShardSamples]:
    """A stratified, seeded validation split in linear time: per class, the samples with
    the smallest seeded key hashes (``round(fraction * n)``, at least one) go to validation."""
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    counts = np.bincount(samples.labels)
    if (counts[counts > 0] < 2).any():
        raise DataError(f"too few training images to carve a stratified validation split: "
                        "every class needs at least 2 images")
    mixed = (np.asarray(keyhash[samples.ids], dtype=np.uint64)
             ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)) * np.uint64(0xBF58476D1CE4E5B9)
    order = np.lexsort((mixed, samples.labels))  # by class, then by seeded hash
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, counts)
    n_val = np.clip(np.round(val_fraction * counts), 1, counts - 1)
    val = rank < n_val[samples.labels]
    return samples.subset(~val), samples.subset(val)


class ShardEpochSampler:
    """Keys ``epoch * n + position`` over the samples of a sharded split.

    Each epoch the shards are put in a seeded order; a DDP rank takes a contiguous run of
    them holding about ``n / world`` samples and shuffles only those, so no rank lists the
    whole epoch and each reads only its own shards. Ranks run the same number of steps
    (a short run repeats its start)."""

    def __init__(self, samples: ShardSamples, seed: int, shuffle: bool, rank: int = 0,
                 world: int = 1):
        self.samples, self.seed, self.shuffle = samples, seed, shuffle
        self.rank, self.world, self.epoch = rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.samples) // self.world)

    def positions(self) -> np.ndarray:
        """This rank's positions (into ``samples``) for the current epoch."""
        n, size = len(self.samples), len(self)
        if not self.shuffle and self.world == 1:
            return np.arange(n)
        rng = np.random.default_rng([self.seed, self.epoch])
        # Samples are ordered by shard: each shard is one run of positions.
        _, first = np.unique(self.samples.shards, return_index=True)
        counts = np.diff(np.append(first, n))
        order = rng.permutation(len(first)) if self.shuffle else np.arange(len(first))
        ends = np.cumsum(counts[order])
        starts = ends - counts[order]
        lo, hi = self.rank * size, min(n, (self.rank + 1) * size)
        chosen = np.flatnonzero((ends > lo) & (starts < hi))
        if not len(chosen):
            return np.zeros(size, np.int64)  # more ranks than samples: repeat the first
        pos = np.concatenate([np.arange(first[order[k]], first[order[k]] + counts[order[k]])
                              for k in chosen])
        pos = pos[lo - starts[chosen[0]]:hi - starts[chosen[0]]]
        if self.shuffle:
            pos = rng.permutation(pos)
        return np.resize(pos, size)  # the last rank repeats its start to run as many steps

    def __iter__(self):
        n = len(self.samples)
        return (self.epoch * n + int(p) for p in self.positions())
