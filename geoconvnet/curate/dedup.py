"""Duplicates and leakage in a dataset root, within and across splits.

Two images are linked when they are byte-identical (SHA-256), look the same (perceptual
hashes within ``max_distance`` bits) or, where the manifest knows where they were taken,
were taken within ``spot_m`` metres of each other. Linked images form groups; a group with
members in both train and test is leakage: the test split would score a copy of a training
image. Nothing is deleted: ``--move`` moves all but one image of each group (a train image
is kept) and records the moves, which :func:`.moves.undo` puts back; images linked only by
place are different pictures and are never moved (``data split`` keeps them on one side).

Defaults, measured on the sample data (pHash of 64 drawn 480x270 scenes, 2026-11-27):
re-encoded (JPEG 75) and half-size copies differ by at most 2 bits, copies cropped by 2% by
2 (median) to 6, by 5% by 2 to 8; two different scenes by at least 6 (none of 2,016 pairs
at 5 or less). ``max_distance`` 5 takes every re-encoded and resized copy and most slight
crops, and no different scene; the sample scenes are drawn from few parts and look more
alike than real screenshots, so real data may allow more (check the report).
``spot_m`` 50: Street View panoramas are about 10 m apart and phone positions (Mapillary)
are off by 5-10 m; within 50 m the same road, buildings and signs are in view.

A pHash match is confirmed by the dHash (at most ``MAX_DHASH`` = 10 bits): on 3,000
generated scenes (``benchmarks/dedup_speed.py``'s) copies stayed within 10 dHash bits,
while the one pair of different scenes within 5 pHash bits (of 4.5 million) was 13 dHash
bits apart; without it, 100,000 such scenes gave about 2,500 false pairs.

Near neighbours are found with an index, not by comparing all pairs: bit-sampling LSH (32
tables keyed by 16 random bits of the hash: a pair within 5 bits shares a key in some
table with probability above 99.9%), then the exact distance of each candidate pair. On 100,000
random hashes with 1,000 planted pairs this found 991 of the 994 pairs within 6 bits (a
brute-force check) in 0.3 s, against 42 s for all pairs. Pairs are checked bucket by
bucket, so a crowd of similar images (5,000 hashes within 2 bits of each other) costs time
(14 s) but keeps only the close pairs in memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import BallTree

from ..data.layout import DEDUP_REPORT, SPLITS, split_files
from ..data.manifest import NAME as MANIFEST
from ..data.manifest import open_manifest
from ..utils.errors import ConfigError
from ..utils.io import write_csv
from .hashes import hash_files
from .moves import move_files

DEFAULT_MAX_DISTANCE = 5
MAX_DHASH = 10
SPOT_M = 50.0
EARTH_RADIUS_M = 6_371_000.0
REPORT = DEDUP_REPORT


@dataclass
class Group:
    files: list[str]  # relative to the root, train before test
    links: set[str] = field(default_factory=set)  # exact, near, spot

    @property
    def splits(self) -> set[str]:
        return {f.split("/", 1)[0] for f in self.files}

    @property
    def leakage(self) -> bool:
        return len(self.splits) > 1


@dataclass
class DedupResult:
    root: Path
    images: int
    groups: list[Group]  # linked by content or place: what leakage and `data split` use
    unreadable: list[str]
    _copies: list[Group] = field(default_factory=list, repr=False)

    def count(self, link: str) -> int:
        return sum(1 for g in self.groups if link in g.links)

    @property
    def leakage(self) -> list[Group]:
        return [g for g in self.groups if g.leakage]

    @property
    def copy_groups(self) -> list[Group]:
        """Groups of copies (exact or near); images linked only by place are different
        pictures, kept apart here so that --move never takes them."""
        return self._copies

    @property
    def extra_copies(self) -> int:
        return sum(len(g.files) - 1 for g in self.copy_groups)


def find_duplicates(root: str | Path, max_distance: int = DEFAULT_MAX_DISTANCE,
                    spot_m: float = SPOT_M, workers: int | None = None) -> DedupResult:
    """Group a root's images by content and place; writes ``ROOT/dedup-report.csv``."""
    root = Path(root)
    if not 0 <= max_distance < 32:
        raise ConfigError(f"--max-distance must be 0..31 bits, got {max_distance}")
    files = [f for paths in split_files(root).values() for f in paths]
    hashes = hash_files(root, files, workers)
    relative = [Path(f).relative_to(root).as_posix() for f in files]
    pairs = [_exact_pairs([hashes[f]["sha256"] for f in files]),
             _near_pairs([hashes[f]["phash"] for f in files],
                         [hashes[f]["dhash"] for f in files], max_distance),
             _spot_pairs(root, relative, spot_m)]
    groups = _groups(relative, pairs)
    unreadable = [r for r, f in zip(relative, files) if hashes[f]["phash"] is None]
    result = DedupResult(root, len(files), groups, unreadable, _groups(relative, pairs[:2]))
    write_csv(root / REPORT, ["group", "file", "split", "links", "leakage"],
              [[i, f, f.split("/", 1)[0], "+".join(sorted(g.links)), g.leakage]
               for i, g in enumerate(groups) for f in g.files])
    return result


def _exact_pairs(digests: list[str]) -> np.ndarray:
    first: dict[str, int] = {}
    pairs = []
    for i, digest in enumerate(digests):
        if digest in first:
            pairs.append((first[digest], i))
        else:
            first[digest] = i
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _near_pairs(phashes: list[str | None], dhashes: list[str | None], max_distance: int,
                tables: int = 32, bits: int = 16, seed: int = 0) -> np.ndarray:
    """Pairs of images whose pHashes differ by at most ``max_distance`` bits and dHashes by
    at most ``MAX_DHASH`` (see the module doc for the index). Identical pHashes are
    collapsed first, so a thousand black frames cost one lookup, not half a million pairs."""
    readable = np.array([i for i, h in enumerate(phashes) if h is not None], dtype=np.int64)
    if len(readable) < 2:
        return np.empty((0, 2), dtype=np.int64)
    values = np.array([int(phashes[i], 16) for i in readable], dtype=np.uint64)
    unique, inverse = np.unique(values, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    first = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0])  # one per unique value
    representative = readable[order][first]  # an image for each unique hash
    same = np.stack([representative[inverse], readable], axis=1)
    pairs = [same[same[:, 0] != same[:, 1]]]
    close = _lsh_close_pairs(unique, max_distance, tables, bits, seed)
    if len(close):
        pairs.append(representative[close])
    linked = np.concatenate(pairs)
    second = np.array([int(h, 16) if h else 0 for h in dhashes], dtype=np.uint64)
    agree = np.bitwise_count(second[linked[:, 0]] ^ second[linked[:, 1]]) <= MAX_DHASH
    return linked[agree]


def _lsh_close_pairs(values: np.ndarray, max_distance: int, tables: int, bits: int,
                     seed: int, block: int = 256) -> np.ndarray:
    """Index pairs of ``values`` that share the key of some table and are within
    ``max_distance`` bits. Pairs are checked bucket by bucket and only close ones kept, so
    a crowded bucket (similar-looking images) costs time, not memory; buckets larger than
    ``block`` are compared in blocks of rows."""
    rng = np.random.default_rng(seed)
    all_bits = ((values[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    found = []
    for _ in range(tables):
        chosen = rng.choice(64, bits, replace=False)
        keys = np.ascontiguousarray(np.packbits(all_bits[:, chosen], axis=1)).view(">u2").ravel()
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(keys[order].astype(np.int64)) != 0])
        sizes = np.diff(np.r_[starts, len(keys)])
        for size in np.unique(sizes[(sizes > 1) & (sizes <= block)]):  # same-size buckets
            members = order[starts[sizes == size][:, None] + np.arange(size)]
            i, j = np.triu_indices(size, 1)
            found.append(_close(values, members[:, i].ravel(), members[:, j].ravel(),
                                max_distance))
        for start, size in zip(starts[sizes > block], sizes[sizes > block]):
            members = order[start:start + size]
            for row in range(0, size, block):
                a = np.repeat(members[row:row + block], size)
                b = np.tile(members, len(members[row:row + block]))
                keep = a < b
                found.append(_close(values, a[keep], b[keep], max_distance))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.sort(np.concatenate(found), axis=1), axis=0)


def _close(values: np.ndarray, a: np.ndarray, b: np.ndarray, max_distance: int) -> np.ndarray:
    near = np.bitwise_count(values[a] ^ values[b]) <= max_distance
    return np.stack([a[near], b[near]], axis=1)


def _spot_pairs(root: Path, relative: list[str], spot_m: float) -> np.ndarray:
    """Pairs taken within ``spot_m`` metres, for the images the manifest places."""
    if spot_m <= 0 or not (root / MANIFEST).is_file():
        return np.empty((0, 2), dtype=np.int64)
    where = {r.file: (r.lat, r.lon) for r in open_manifest(root, repair=False).records
             if r.lat is not None and r.lon is not None}
    placed = [i for i, f in enumerate(relative) if f in where]
    if len(placed) < 2:
        return np.empty((0, 2), dtype=np.int64)
    radians = np.radians([where[relative[i]] for i in placed])
    neighbours = BallTree(radians, metric="haversine").query_radius(
        radians, r=spot_m / EARTH_RADIUS_M)
    pairs = [(placed[a], placed[b]) for a, near in enumerate(neighbours) for b in near if a < b]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _groups(relative: list[str], pairs: list[np.ndarray]) -> list[Group]:
    n = len(relative)
    linked = np.concatenate(pairs)
    if not len(linked):
        return []
    graph = coo_matrix((np.ones(len(linked)), (linked[:, 0], linked[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    sizes = Counter(label.tolist())
    members: dict[int, list[str]] = {}
    for i, component in enumerate(label.tolist()):
        if sizes[component] > 1:
            members.setdefault(component, []).append(relative[i])
    links: dict[int, set[str]] = {}
    for kind, kind_pairs in zip(("exact", "near", "spot"), pairs):  # spot may be absent
        for a in kind_pairs[:, 0].tolist():
            links.setdefault(label[a], set()).add(kind)
    order = {s: k for k, s in enumerate(SPLITS)}
    return [Group(sorted(files, key=lambda f: (order[f.split("/", 1)[0]], f)),
                  links.get(component, set()))
            for component, files in sorted(members.items(), key=lambda kv: sorted(kv[1])[0])]


def move_duplicates(result: DedupResult, move_dir: str | Path) -> int:
    """Move all but the first image of each group of copies (a train image where the
    group has one) to ``move_dir``, recorded for :func:`.moves.undo`."""
    return move_files(result.root, [f for g in result.copy_groups for f in g.files[1:]],
                      move_dir)
