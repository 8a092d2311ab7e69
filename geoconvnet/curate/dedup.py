"""Copies and leakage in a dataset root, within and across splits.

Two images are copies when they are byte-identical (SHA-256), or when a candidate pair
passes the pixel check of :mod:`.nearcopy` (resized, re-encoded, brightened, cut by up to
about 12% at one edge, a small overlay; never a mirror). Images are also linked when the
manifest places them within ``spot_m`` metres of each other: different pictures of the same
place, which ``data split`` keeps on one side but ``--move`` never touches.

Candidates come from the pHashes of :mod:`.hashes`: an image's whole-frame hash against the
whole-frame and 16 crop hashes of the others (within ``max_distance`` bits: a one-edge cut
of up to 12% lands within 1.5% of one of the crops), and each half against the same half of
the others (within ``HALF_DISTANCE`` bits: an overlay leaves a half unchanged). Near
neighbours come from an index, not from all pairs: bit-sampling LSH (each table keyed by 16
random bits, as many tables as it takes for a pair within the radius to share a key in one
of them with probability 99.5%: 27 at 6 bits), then the exact distance of the pairs that
share a key. Identical hashes are collapsed first (a thousand black frames cost a thousand
pairs, not half a million), and an image keeps at most ``MAX_CANDIDATES`` candidates.

Copy groups are stars, never chains: in each set of linked images the best copy (below) is
the centre and every member is checked against it; what does not pass starts another star
with the best of the rest. ``--move`` moves every member but the centre. The best copy
(:func:`_rank`): readable; sharp (``detail`` at least ``SHARP`` of the sharpest in the set:
a blurred frame or a stretched thumbnail is not); then the largest (within 5%); then train
over test (copies this alike are equally good, and the training set keeps its image); then
the largest file (the least compressed); then the sharpest. The same image filed under two
countries is a label conflict: reported, and never moved, since only a person can tell which
label is right.

``groups``, what leakage and ``data split`` use, are the connected sets of every verified
copy link and every same-spot link: what shares content or place stays on one side.

Measured (``benchmarks/dedup_speed.py``, 2,000 distinct 1600x900 sample scenes with 40
planted copies of each kind, half across splits; 2 cores, 2026-11-30): every planted copy
found (exact, resized, re-encoded, brightness, crops of 5% and 10%, overlays), none of 40
mirrors linked, no false group; 28,546 candidate pairs, 1,136 of them checked on the
frames; 97 s after hashing, 2.4 s for a second run. See ``docs/dedup.md``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..data.layout import DEDUP_REPORT, SPLITS, split_files
from ..data.manifest import NAME as MANIFEST
from ..data.manifest import open_manifest
from ..utils.errors import ConfigError
from ..utils.io import write_csv
from ..utils.progress import add_task, progress_bar
from . import nearcopy
from ..utils.pool import worker_pool
from .hashcache import Verdicts
from .hashes import PRELOAD, Features, Source, hash_files, read_frame, save_cache, \
    source_lookup
from .pathlist import PathList
from .moves import move_files
from .spots import spot_groups

DEFAULT_MAX_DISTANCE = 6
MAX_MAX_DISTANCE = 16
HALF_DISTANCE = 4
MAX_CANDIDATES = 64
SHARP = 0.7
SPOT_M = 50.0
REPORT = DEDUP_REPORT
REPORT_COLUMNS = ["group", "file", "split", "links", "leakage", "country", "copy_group",
                  "kept", "conflict"]
BATCH = 256  # pairs per stage-1 batch (about 45 MB)
CHUNK = 64 * BATCH  # pairs checked at once: their thumbnails (56 MB) and verdicts held


@dataclass
class Group:
    files: list[str]  # relative to the root, train before test
    links: set[str] = field(default_factory=set)  # exact, near, spot
    kept: str | None = None  # a copy group's best copy: what --move keeps

    @property
    def splits(self) -> set[str]:
        return {f.split("/", 1)[0] for f in self.files}

    @property
    def countries(self) -> set[str]:
        return {f.split("/")[1] for f in self.files}

    @property
    def leakage(self) -> bool:
        return len(self.splits) > 1

    @property
    def conflict(self) -> bool:
        """The same image under two countries (copy groups only)."""
        return self.kept is not None and len(self.countries) > 1


@dataclass
class DedupResult:
    root: Path
    images: int
    groups: list[Group]  # linked by content or place: what leakage and `data split` use
    unreadable: list[str]
    copy_groups: list[Group] = field(default_factory=list)  # stars: what --move uses
    work: dict[str, int] = field(default_factory=dict)  # pairs checked at each stage

    def count(self, link: str) -> int:
        return sum(1 for g in self.groups if link in g.links)

    @property
    def leakage(self) -> list[Group]:
        return [g for g in self.groups if g.leakage]

    @property
    def conflicts(self) -> list[Group]:
        return [g for g in self.copy_groups if g.conflict]

    @property
    def extra_copies(self) -> int:
        """What --move takes: every copy but the kept one, label conflicts left alone."""
        return sum(len(g.files) - 1 for g in self.copy_groups if not g.conflict)

    def renamed(self, moves: dict[str, str]) -> DedupResult:
        """The same findings after files moved (``{old: new}`` relative paths), e.g. by
        ``data split``, for :func:`write_report`."""

        def move(group: Group) -> Group:
            files = _in_split_order([moves.get(f, f) for f in group.files])
            return replace(group, files=files,
                           kept=moves.get(group.kept, group.kept) if group.kept else None)

        return replace(self, groups=[move(g) for g in self.groups],
                       copy_groups=[move(g) for g in self.copy_groups],
                       unreadable=[moves.get(f, f) for f in self.unreadable])


    def without(self, gone: set[str]) -> DedupResult:
        """The findings once ``gone`` files left the root (moved by ``--move``): groups
        left with one member are no groups any more."""

        def keep(groups: list[Group]) -> list[Group]:
            left = [replace(g, files=[f for f in g.files if f not in gone]) for g in groups]
            return [g for g in left if len(g.files) > 1]

        return replace(self, images=self.images - len(gone), groups=keep(self.groups),
                       copy_groups=keep(self.copy_groups),
                       unreadable=[f for f in self.unreadable if f not in gone])


def check_options(max_distance: int, spot_m: float) -> None:
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or \
            not 0 <= max_distance <= MAX_MAX_DISTANCE:
        raise ConfigError(f"--max-distance must be a whole number of bits from 0 to "
                          f"{MAX_MAX_DISTANCE}, got {max_distance}")
    if not (isinstance(spot_m, (int, float)) and math.isfinite(spot_m) and spot_m >= 0):
        raise ConfigError(f"--spot-m must be a distance in metres, 0 or more (0: off), got "
                          f"{spot_m}")


def find_duplicates(root: str | Path, max_distance: int = DEFAULT_MAX_DISTANCE,
                    spot_m: float = SPOT_M, workers: int | None = None,
                    cache: str | Path | None = None, report: bool = True) -> DedupResult:
    """Group a root's images by content and place; writes ``ROOT/dedup-report.csv`` unless
    ``report`` is False. ``cache``: a training cache of the root to decode instead of the
    originals (see :mod:`.hashes`)."""
    root = Path(root)
    check_options(max_distance, spot_m)
    files = PathList((f for paths in split_files(root).values() for f in paths), root)
    features = hash_files(root, files, workers, cache)
    relative = files.relative
    checker = _Checker(features, source_lookup(root, cache), workers)
    exact = _exact_pairs(features.sha256.raw)
    candidates = _candidate_pairs(features, max_distance)
    verified = candidates[checker.check(candidates)]
    stars, star_edges = _stars(features, relative, np.concatenate([exact, verified]), checker)
    if checker.new_verdicts:
        save_cache(root, features)
    near = np.concatenate([verified, star_edges])
    groups = _groups(relative, {"exact": exact, "near": near,
                                "spot": _spot_links(root, relative, spot_m)})
    links = _links_within(stars, {"exact": exact, "near": near})
    copy_groups = [Group(_in_split_order([relative[i] for i in star]), kinds,
                         relative[star[0]]) for star, kinds in zip(stars, links)]
    unreadable = [relative[i] for i in np.flatnonzero(~features.readable).tolist()]
    result = DedupResult(root, len(files), groups, unreadable, copy_groups,
                         {"candidate pairs": len(candidates), **checker.work})
    if report:
        write_report(root, groups, copy_groups)
    return result


def write_report(root: str | Path, groups: list[Group], copy_groups: list[Group] = ()
                 ) -> Path:
    """``ROOT/dedup-report.csv``: a row per image in a group (its first two columns,
    ``group,file``, are what scripts read). After files moved, ``data split`` writes it
    again from ``result.renamed(moves)``'s groups, so that it shows where they are now."""
    star_of = {f: (i, g) for i, g in enumerate(copy_groups) for f in g.files}
    rows = []
    for i, group in enumerate(groups):
        for file in group.files:
            star, copy = star_of.get(file, ("", None))
            rows.append([i, file, file.split("/", 1)[0], "+".join(sorted(group.links)),
                         group.leakage, file.split("/")[1], star,
                         "" if copy is None else ("yes" if file == copy.kept else "no"),
                         "|".join(sorted(copy.countries)) if copy and copy.conflict else ""])
    path = Path(root) / REPORT
    write_csv(path, REPORT_COLUMNS, rows)
    return path


def move_duplicates(result: DedupResult, move_dir: str | Path) -> int:
    """Move every copy but the kept one of each copy group to ``move_dir`` (recorded for
    :func:`.moves.undo`); groups with a label conflict are left for a person to decide.
    The report is written again for what stays, so ``data stats`` is current."""
    moved = [f for g in result.copy_groups if not g.conflict for f in g.files if f != g.kept]
    count = move_files(result.root, moved, move_dir)
    left = result.without(set(moved))
    write_report(result.root, left.groups, left.copy_groups)
    return count


# ---------------------------------------------------------------- candidates


def _exact_pairs(digests: np.ndarray) -> np.ndarray:
    """(first row of a digest, a later row of it), by the later row; b"": no digest."""
    _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
    rows = np.arange(len(digests))
    first = first[inverse.ravel()]
    later = (first != rows) & (digests != b"")
    return np.stack([first[later], rows[later]], 1).astype(np.int64).reshape(-1, 2)


def _candidate_pairs(features: Features, max_distance: int) -> np.ndarray:
    """Pairs (i < j) worth a pixel check, byte-identical ones left out (already copies)."""
    readable = np.asarray(features.readable, bool)
    if readable.sum() < 2:
        return np.empty((0, 2), np.int64)
    found = [_close_pairs(features.phash[:, 0], readable, max_distance,
                          values=features.phash.reshape(-1))]
    for half in range(features.halves.shape[1]):
        found.append(_close_pairs(features.halves[:, half], readable, HALF_DISTANCE))
    pairs = np.unique(np.sort(np.concatenate(found), axis=1), axis=0)
    digests = features.sha256.raw
    return pairs[digests[pairs[:, 0]] != digests[pairs[:, 1]]]


SEARCH_BLOCK = 1 << 16  # index entries keyed or compared at once (4 MB of temporaries)
KEY_SHIFT = 40  # an index entry: its LSH key above this bit, its position below


def _close_pairs(queries: np.ndarray, valid: np.ndarray, radius: int,
                 values: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Pairs (query row, owner row) within ``radius`` bits, rows of ``valid`` only.
    ``values``: what is searched, ``len(values) // len(queries)`` hashes per row (the
    whole-frame and crop hashes of each image, row-major); default the queries themselves.
    Identical query values are collapsed to one representative (linked to the others
    directly), and each row keeps its ``MAX_CANDIDATES`` nearest.

    Memory is the index (a uint64 an indexed hash: its key and position packed, sorted in
    place, one table at a time), a few numbers a query, and ``SEARCH_BLOCK`` entries compared
    at once; never several 8-byte arrays an indexed hash."""
    rows = np.flatnonzero(valid)
    unique, first, inverse = np.unique(queries[rows], return_index=True, return_inverse=True)
    q_rows = rows[first]  # each distinct value's first row
    representative = q_rows[inverse.ravel()]
    linked = representative != rows
    pairs = [np.stack([representative[linked], rows[linked]], 1)]
    del representative, inverse, linked
    keep = np.zeros(len(queries), bool)
    keep[q_rows] = True  # members of an identical group are reached via its first
    values = queries if values is None else values
    per = len(values) // len(queries)
    bits, tables = _lsh_shape(radius)
    rng = np.random.default_rng(seed)
    near = np.empty(0, np.uint64)
    for _ in range(tables):
        chosen = rng.choice(64, bits, replace=False)
        index = _index(values, keep, per, chosen)
        found = _search(unique, q_rows, _keys(unique, chosen), index, values, per, radius,
                        len(queries))
        near = _closest_per_pair(np.concatenate([near, found]))
        del index
    near = _unpack_near(near, len(queries))
    pairs.append(_nearest(near)[:, :2])
    pairs = np.concatenate(pairs).astype(np.int64)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def _index(values: np.ndarray, keep: np.ndarray, per: int, chosen: np.ndarray) -> np.ndarray:
    """The LSH table of ``values`` whose row is kept: (key << KEY_SHIFT | position), sorted;
    built a block at a time (the key's temporaries stay small)."""
    useful = np.repeat(keep, per)
    index = np.empty(int(useful.sum()), np.uint64)
    filled = 0
    for start in range(0, len(values), SEARCH_BLOCK):
        part = np.flatnonzero(useful[start:start + SEARCH_BLOCK])
        keys = _keys(values[start + part], chosen)
        index[filled:filled + len(part)] = (keys << np.uint64(KEY_SHIFT)) | \
            (part + start).astype(np.uint64)
        filled += len(part)
    index.sort()
    return index


def _search(unique: np.ndarray, q_rows: np.ndarray, q_keys: np.ndarray, index: np.ndarray,
            values: np.ndarray, per: int, radius: int, n: int) -> np.ndarray:
    """Packed (query row, owner row, bits) (:func:`_pack_near`) of every query and indexed
    value that share a key and are within ``radius``, ``SEARCH_BLOCK`` entries at a time."""
    shift = np.uint64(KEY_SHIFT)
    low = np.searchsorted(index, q_keys << shift, "left")
    counts = np.searchsorted(index, (q_keys + np.uint64(1)) << shift, "left") - low
    ends = np.cumsum(counts)
    found, start = [], 0
    while start < len(unique):
        before = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, before + SEARCH_BLOCK, "right")), start + 1)
        block = np.arange(start, stop)
        q = np.repeat(block, counts[block])
        at = np.repeat(low[block] - (ends[block] - counts[block]), counts[block]) + \
            np.arange(before, int(ends[stop - 1]))
        position = (index[at] & np.uint64((1 << KEY_SHIFT) - 1)).astype(np.int64)
        distance = np.bitwise_count(unique[q] ^ values[position])
        owner = position // per
        close = (distance <= radius) & (q_rows[q] != owner)
        found.append(_pack_near(q_rows[q[close]], owner[close], distance[close], n))
        start = stop
    return np.concatenate(found) if found else np.empty(0, np.uint64)


def _pack_near(query: np.ndarray, owner: np.ndarray, distance: np.ndarray, n: int
               ) -> np.ndarray:
    """One uint64 a found pair, ordered as (query, owner, bits) (``n`` rows: up to 500
    million)."""
    return ((query.astype(np.uint64) * np.uint64(n) + owner.astype(np.uint64)) * np.uint64(65)
            + distance.astype(np.uint64))


def _closest_per_pair(near: np.ndarray) -> np.ndarray:
    """Of packed finds, the closest of each (query, owner), sorted."""
    near = np.unique(near)
    pair = near // np.uint64(65)
    return near[np.r_[True, pair[1:] != pair[:-1]]] if len(near) else near


def _unpack_near(near: np.ndarray, n: int) -> np.ndarray:
    pair, distance = np.divmod(near, np.uint64(65))
    query, owner = np.divmod(pair, np.uint64(max(n, 1)))
    return np.stack([query, owner, distance], 1).astype(np.int64).reshape(-1, 3)


def _nearest(near: np.ndarray) -> np.ndarray:
    """At most MAX_CANDIDATES pairs per query row, the closest (rows: query, owner, bits);
    the same owner found through several crop hashes counts once."""
    if not len(near):
        return near
    near = near[np.lexsort((near[:, 2], near[:, 1], near[:, 0]))]
    first = np.r_[True, (np.diff(near[:, 0]) != 0) | (np.diff(near[:, 1]) != 0)]
    near = near[first]  # the closest hash of each (query, owner)
    near = near[np.lexsort((near[:, 2], near[:, 0]))]
    start = np.r_[0, np.flatnonzero(np.diff(near[:, 0])) + 1]
    rank = np.arange(len(near)) - np.repeat(start, np.diff(np.r_[start, len(near)]))
    return near[rank < MAX_CANDIDATES]


@lru_cache(maxsize=None)
def _lsh_shape(radius: int, recall: float = 0.995) -> tuple[int, int]:
    """(key bits, tables) so that two hashes ``radius`` bits apart share a key with
    probability ``recall``; shorter keys for larger radii keep the tables few."""
    bits = max(8, 16 - max(0, radius - 6))
    share = math.prod((64 - radius - k) / (64 - k) for k in range(bits))
    if share >= 1:
        return bits, 1
    return bits, min(128, math.ceil(math.log(1 - recall) / math.log(1 - share)))


def _keys(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The ``chosen`` bits of each 64-bit value, packed into one number."""
    key = np.zeros(len(values), np.uint64)
    for k, bit in enumerate(chosen.tolist()):
        key |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(k)
    return key


# ---------------------------------------------------------------- checking pairs


class _Checker:
    """The pixel check (:mod:`.nearcopy`) of pairs of rows, with its verdicts cached by
    content (``features.verdicts``, saved in the hash cache)."""

    def __init__(self, features: Features, source, workers: int | None):
        """``source(path)``: where to decode an image from (:func:`.hashes.source_lookup`)."""
        self.features, self.workers, self.source = features, workers, source
        self.new_verdicts = 0
        self.work = {"thumbnail checks": 0, "pixel checks": 0, "cached verdicts": 0}

    def _key(self, i: int, j: int) -> str:
        a, b = sorted((self.features.sha256[i], self.features.sha256[j]))
        return f"{a}:{b}"

    def check(self, pairs: np.ndarray) -> np.ndarray:
        """Whether each pair (rows) is a copy; ``CHUNK`` pairs at a time, each chunk's
        verdicts written to the cache when it is done (memory bounded whatever the count)."""
        if not len(pairs):
            return np.zeros(0, bool)
        out, self.pixel_total = [], 0
        with progress_bar(transient=True) as bar, \
                worker_pool(self.workers, -(-len(pairs) // BATCH), PRELOAD) as pool:
            tasks = [add_task(bar, "Checking candidate pairs", len(pairs), unit="pair"),
                     add_task(bar, "Comparing pixels", 0, unit="pair")]
            for start in range(0, len(pairs), CHUNK):
                out.append(self._check_part(pairs[start:start + CHUNK], pool, bar, tasks))
                if isinstance(self.features.verdicts, Verdicts):
                    self.features.verdicts.flush()
        _frame.cache_clear()  # a file may change before the next run in this process
        return np.concatenate(out)

    def _check_part(self, pairs: np.ndarray, pool, bar, tasks) -> np.ndarray:
        f = self.features
        keys = [self._key(i, j) for i, j in pairs.tolist()]
        readable = f.readable[pairs[:, 0]] & f.readable[pairs[:, 1]]
        known = [f.verdicts.get(k) for k in keys]
        todo = np.array([r for r in np.flatnonzero(readable) if known[r] is None or (
            not known[r][2] and nearcopy.needs_texture(known[r][0], *f.size[pairs[r]]))],
            np.int64)
        thumbs = f.thumb[pairs[todo]] if len(todo) else None  # (todo, 2, 18, 32, 3)
        hypotheses = {}
        batches = [np.arange(s, min(s + BATCH, len(todo))) for s in range(0, len(todo), BATCH)]
        jobs = [(thumbs[b, 0], thumbs[b, 1]) for b in batches]
        bar.advance(tasks[0], len(pairs) - len(todo))
        for b, (errors, found) in zip(batches, pool.map(_coarse_batch, jobs)):
            for r, error, tried in zip(todo[b].tolist(), errors.tolist(), found):
                f.verdicts[keys[r]] = (error, float("nan"), False)
                hypotheses[r] = tried
            bar.advance(tasks[0], len(b))
        del thumbs, jobs
        need = [r for r in hypotheses
                if nearcopy.needs_texture(f.verdicts[keys[r]][0], *f.size[pairs[r]])]
        self.pixel_total += len(need)
        bar.update(tasks[1], total=self.pixel_total)
        for r, texture in zip(need, self._fine(pairs[need], [hypotheses[r] for r in need],
                                               pool, lambda n: bar.advance(tasks[1], n))):
            f.verdicts[keys[r]] = (f.verdicts[keys[r]][0], texture, True)
        self.new_verdicts += len(todo)
        self.work["thumbnail checks"] += len(todo)
        self.work["pixel checks"] += len(need)
        self.work["cached verdicts"] += int(readable.sum()) - len(todo)
        return np.array([ok and nearcopy.is_copy(*f.verdicts[k][:2], f.size[i], f.size[j])
                         for ok, k, (i, j) in zip(readable.tolist(), keys, pairs.tolist())],
                        bool)

    def _fine(self, pairs: np.ndarray, hypotheses: list, pool, advance) -> list[float]:
        if not len(pairs):
            return []
        pairs = np.asarray(pairs).reshape(-1, 2)
        f = self.features
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))  # one image's pairs together
        close = [f.verdicts[self._key(i, j)][0] <= nearcopy.COARSE_CLOSE for i, j in pairs]
        jobs = [(self.source(f.files[i]), self.source(f.files[j]), tuple(f.size[i]),
                 tuple(f.size[j]),
                 hypotheses[k], close[k]) for k, (i, j) in ((k, pairs[k]) for k in order)]
        chunks = [jobs[s:s + 16] for s in range(0, len(jobs), 16)]
        values = []
        for chunk in pool.map(_fine_chunk, chunks):
            values.extend(chunk)
            advance(len(chunk))
        out = [0.0] * len(pairs)
        for k, value in zip(order, values):
            out[k] = value
        return out


@lru_cache(maxsize=64)
def _frame(source: Source) -> np.ndarray | None:
    try:
        return read_frame(source)[0]
    except Exception:  # unreadable since it was hashed: not a copy of anything
        return None


def _coarse_batch(job: tuple[np.ndarray, np.ndarray]):
    """Worker: stage 1 for a batch of pairs of thumbnails."""
    return nearcopy.coarse(*job)


def _fine_chunk(jobs: list) -> list[float]:
    """Worker: stage 2 for a few pairs (frames cached, the pairs sorted by first image)."""
    out = []
    for source_a, source_b, size_a, size_b, tried, close in jobs:
        a, b = _frame(source_a), _frame(source_b)
        out.append(-1.0 if a is None or b is None else
                   nearcopy.fine(a, b, size_a, size_b, tried, close))
    return out


# ---------------------------------------------------------------- groups


def _rank(features: Features, relative: list[str], members: list[int]) -> list[int]:
    """``members`` best copy first: readable; sharp (not blurred, not a stretched thumbnail:
    ``detail`` at least ``SHARP`` of the sharpest); the largest (within 5%); train over
    test; the largest file (the least compressed); the sharpest; the path."""
    detail = features.detail
    sharpest = max(float(detail[i]) for i in members)
    split_order = {s: k for k, s in enumerate(SPLITS)}
    nbytes = features.nbytes if features.nbytes is not None else np.zeros(len(relative))

    def key(i: int):
        width, height = (int(v) for v in features.size[i])
        area = math.log(max(width * height, 1)) / math.log(1.05)
        return (not features.readable[i], not detail[i] >= SHARP * sharpest, -round(area),
                split_order.get(relative[i].split("/", 1)[0], len(split_order)),
                -int(nbytes[i]), -float(detail[i]), relative[i])

    return sorted(members, key=key)


def _stars(features: Features, relative: list[str], edges: np.ndarray,
           checker: _Checker) -> tuple[list[list[int]], np.ndarray]:
    """Copy groups as stars (centre first), and the centre-member pairs that had to be
    checked on the way (members linked to the centre only through another image)."""
    n = len(relative)
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in edges.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    pending = [_rank(features, relative, c) for c in _components(n, edges)]
    stars, checked = [], []
    while pending:
        asks = [(c[0], v) for c in pending for v in c[1:] if v not in neighbours[c[0]]]
        passed = checker.check(np.asarray(asks, np.int64).reshape(-1, 2))
        for (a, b), ok in zip(asks, passed):
            if ok:
                neighbours[a].add(b)
                neighbours[b].add(a)
                checked.append((a, b))
        still = []
        for members in pending:
            centre, rest = members[0], members[1:]
            star = [centre] + [v for v in rest if v in neighbours[centre]]
            if len(star) > 1:
                stars.append(star)
            left = [v for v in rest if v not in neighbours[centre]]
            if len(left) > 1:
                still.append(left)  # already in rank order
        pending = still
    return stars, np.asarray(checked, np.int64).reshape(-1, 2)


def _components(n: int, edges: np.ndarray) -> list[list[int]]:
    if not len(edges):
        return []
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    members: dict[int, list[int]] = defaultdict(list)
    for i, component in enumerate(label.tolist()):
        members[component].append(i)
    return [m for m in members.values() if len(m) > 1]


def _links_within(stars: list[list[int]], links: dict[str, np.ndarray]) -> list[set[str]]:
    """The kinds of link between members of each star."""
    star_of = {i: k for k, star in enumerate(stars) for i in star}
    kinds: list[set[str]] = [set() for _ in stars]
    for kind, pairs in links.items():
        for a, b in pairs.tolist():
            if a in star_of and star_of[a] == star_of.get(b):
                kinds[star_of[a]].add(kind)
    return kinds


def _in_split_order(files: list[str]) -> list[str]:
    order = {s: k for k, s in enumerate(SPLITS)}
    return sorted(files, key=lambda f: (order.get(f.split("/", 1)[0], len(order)), f))


def _spot_links(root: Path, relative: list[str], spot_m: float) -> np.ndarray:
    """Links (first member, member) tying each same-spot group (:func:`.spots.spot_groups`)
    of the images the manifest places: one per member, never a pair list."""
    if spot_m <= 0 or not (root / MANIFEST).is_file():
        return np.empty((0, 2), dtype=np.int64)
    where = {r.file: (r.lat, r.lon) for r in open_manifest(root, repair=False).iter_records()
             if r.lat is not None and r.lon is not None}
    placed = np.array([i for i, f in enumerate(relative) if f in where], dtype=np.int64)
    if len(placed) < 2:
        return np.empty((0, 2), dtype=np.int64)
    lat, lon = np.array([where[relative[i]] for i in placed.tolist()], dtype=float).T
    first = placed[spot_groups(lat, lon, spot_m)]
    linked = first != placed
    return np.stack([first[linked], placed[linked]], axis=1)


def _groups(relative: list[str], links: dict[str, np.ndarray]) -> list[Group]:
    """Connected sets over every kind of link, each with the kinds inside it."""
    edges = np.concatenate(list(links.values()))
    components = _components(len(relative), edges)
    label = {i: k for k, members in enumerate(components) for i in members}
    kinds: dict[int, set[str]] = defaultdict(set)
    for kind, pairs in links.items():
        for a in pairs[:, 0].tolist():
            kinds[label[a]].add(kind)
    groups = [Group(_in_split_order([relative[i] for i in members]), kinds[k])
              for k, members in enumerate(components)]
    return sorted(groups, key=lambda g: sorted(g.files)[0])
