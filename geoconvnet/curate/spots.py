"""Same-spot groups: images taken within ``spot_m`` metres of each other, and chains of
them, are one group (what ``data split`` keeps on one side).

Guaranteed: two places within ``spot_m`` metres (great-circle) always get the same group,
and two places in one group are joined by a chain of steps of at most ``spot_m`` each:
the groups are exactly the connected sets of the "within ``spot_m``" relation, as a pair
list would give, without ever listing the pairs.

How: places become points on a sphere of the Earth's radius (so neither the narrowing of
longitude towards the poles nor the antimeridian needs a case), and the great-circle
limit becomes a straight-line (chord) one. Points are bucketed into cubes whose diagonal
is the chord limit, so every cube's points are one group at once, however many (a dense
street sequence or a thousand shots of one square cost one cube). Two cubes at most two
apart on each axis are then joined when any of their points are close enough: small cubes
by checking all their pairs in bulk (numpy), crowded ones with a k-d tree, and never two
cubes already in one group. Time and memory grow with the number of places and occupied
cubes, not with the pairs inside a crowd.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

EARTH_RADIUS_M = 6_371_000.0
BULK_PAIRS = 1024  # cube pairs with at most this many point pairs are checked in bulk
CHUNK = 1 << 21  # point pairs per bulk step (about 50 MB)
# a linear hash of a cube's integer corner: two cubes may share a key, never a neighbour
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 1], dtype=np.uint64)
# the 13 offsets to the "forward" half of a block's 26 neighbours (the other half mirrors)
_OFFSETS = np.array([o for o in itertools.product(range(-1, 2), repeat=3) if o > (0, 0, 0)],
                    dtype=np.int64)


def spot_groups(lat, lon, spot_m: float) -> np.ndarray:
    """A group label per place (degrees): the lowest index among the places of its group,
    so a place alone keeps its own index. ``spot_m`` <= 0, or a place not a number, is
    alone."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    n = len(lat)
    known = np.isfinite(lat) & np.isfinite(lon)
    if not known.all():
        label, rows = np.arange(n, dtype=np.int64), np.flatnonzero(known)
        label[rows] = rows[spot_groups(lat[rows], lon[rows], spot_m)]
        return label
    if spot_m <= 0 or n < 2:
        return np.arange(n, dtype=np.int64)
    xyz = _points(lat, lon)
    limit = 2 * EARTH_RADIUS_M * math.sin(min(spot_m / (2 * EARTH_RADIUS_M), math.pi / 2))
    side = limit / math.sqrt(3) * (1 - 1e-9)  # a cube's diagonal stays within the limit
    corner = np.floor(xyz / side).astype(np.int64)
    order = np.lexsort(corner.T[::-1])
    xyz, corner = xyz[order], corner[order]
    new = np.r_[True, np.any(corner[1:] != corner[:-1], axis=1)]
    start = np.flatnonzero(new)
    count = np.diff(np.r_[start, n])
    cubes = _Cubes(xyz, start, count, corner[start], limit)
    label = cubes.groups()
    point_label = np.empty(n, dtype=np.int64)
    point_label[order] = np.repeat(label, count)
    first = np.full(n, n, dtype=np.int64)
    np.minimum.at(first, point_label, np.arange(n))
    return first[point_label]


def _points(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return EARTH_RADIUS_M * np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam),
                                      np.sin(phi)], axis=1)


class _Cubes:
    """Occupied cubes (points sorted by cube: ``start``, ``count``) and their joining."""

    def __init__(self, xyz, start, count, corner, limit):
        self.xyz, self.start, self.count, self.corner = xyz, start, count, corner
        self.limit2 = limit * limit
        self.limit = limit

    def groups(self) -> np.ndarray:
        """A group label per cube."""
        m = len(self.start)
        pairs = self._neighbours()
        size = self.count[pairs[:, 0]] * self.count[pairs[:, 1]]
        bulk, crowded = pairs[size <= BULK_PAIRS], pairs[size > BULK_PAIRS]
        joined = bulk[self._bulk_close(bulk)]
        graph = coo_matrix((np.ones(len(joined)), (joined[:, 0], joined[:, 1])), shape=(m, m))
        _, label = connected_components(graph, directed=False)
        return self._join_crowded(label, crowded)

    def _neighbours(self) -> np.ndarray:
        """(cube, cube) pairs of occupied cubes at most two apart on every axis, each once:
        found among the cubes of neighbouring blocks of 2x2x2 cubes (13 searches, not 62)."""
        block = self.corner >> 1
        order = np.lexsort(block.T[::-1])  # the cubes of a block together
        new = np.r_[True, np.any(block[order][1:] != block[order][:-1], axis=1)]
        first = np.flatnonzero(new)
        size = np.diff(np.r_[first, len(order)])
        itself = np.repeat(np.arange(len(first)), 2).reshape(-1, 2)
        blocks = np.r_[itself, _adjacent(block[order][first])]
        a, b = blocks[:, 0], blocks[:, 1]
        per = size[a] * size[b]
        which = np.repeat(np.arange(len(blocks)), per)
        k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        i = order[first[a][which] + k // size[b][which]]
        j = order[first[b][which] + k % size[b][which]]
        near = np.all(np.abs(self.corner[i] - self.corner[j]) <= 2, axis=1)
        near &= (a[which] != b[which]) | (i < j)  # inside a block, each pair once
        return np.stack([i[near], j[near]], axis=1)

    def _bulk_close(self, pairs: np.ndarray) -> np.ndarray:
        """Whether each (small) cube pair has two points within the limit, all point pairs
        checked with numpy, a chunk of cube pairs at a time."""
        close = np.zeros(len(pairs), dtype=bool)
        size = self.count[pairs[:, 0]] * self.count[pairs[:, 1]]
        ends = np.cumsum(size)
        begin = 0
        while begin < len(pairs):
            base = ends[begin] - size[begin]
            stop = max(begin + 1, int(np.searchsorted(ends, base + CHUNK, "right")))
            close[begin:stop] = self._close_chunk(pairs[begin:stop])
            begin = stop
        return close

    def _close_chunk(self, pairs: np.ndarray) -> np.ndarray:
        a, b = pairs[:, 0], pairs[:, 1]
        na, nb = self.count[a], self.count[b]
        per_pair = na * nb
        which = np.repeat(np.arange(len(pairs)), per_pair)
        k = np.arange(per_pair.sum()) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
        i = self.start[a][which] + k // nb[which]
        j = self.start[b][which] + k % nb[which]
        d2 = np.sum((self.xyz[i] - self.xyz[j]) ** 2, axis=1)
        return np.bincount(which[d2 <= self.limit2], minlength=len(pairs)) > 0

    def _join_crowded(self, label: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Crowded cube pairs, one at a time with a k-d tree, skipped when their groups are
        already one (in a dense crowd, most are after the first few)."""
        parent = np.arange(label.max() + 1 if len(label) else 0)

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        trees: dict[int, cKDTree] = {}
        for a, b in pairs.tolist():
            ra, rb = find(label[a]), find(label[b])
            if ra == rb:
                continue
            if self.count[a] > self.count[b]:
                a, b = b, a
            if b not in trees:
                trees[b] = cKDTree(self._members(b))
            distance, _ = trees[b].query(self._members(a), k=1,
                                         distance_upper_bound=self.limit * (1 + 1e-12))
            if np.isfinite(distance).any():
                parent[max(ra, rb)] = min(ra, rb)
        while True:  # every label to its root
            up = parent[parent]
            if np.array_equal(up, parent):
                return parent[label]
            parent = up

    def _members(self, cube: int) -> np.ndarray:
        return self.xyz[self.start[cube]:self.start[cube] + self.count[cube]]


def _adjacent(corner: np.ndarray) -> np.ndarray:
    """(row, row) pairs of distinct ``corner`` rows one apart at most on every axis, each
    once. Rows are found by a linear hash of their corner; the wanted keys are the sorted
    keys shifted by a constant, so the search walks the table in order."""
    key = (corner.astype(np.uint64) * _MIX).sum(axis=1, dtype=np.uint64)
    by_key = np.argsort(key, kind="stable")
    keys, m = key[by_key], len(key)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    run_at = np.zeros(m + 1, dtype=np.int64)
    run_at[starts] = np.diff(np.r_[starts, m])  # rows sharing each key
    found = []
    for offset in _OFFSETS:
        wanted = keys + (offset.astype(np.uint64) * _MIX).sum(dtype=np.uint64)
        low = np.searchsorted(keys, wanted)
        hits = np.where(keys[np.minimum(low, m - 1)] == wanted, run_at[low], 0)
        has = np.flatnonzero(hits)
        source = by_key[np.repeat(has, hits[has])]
        target = by_key[_ranges(low[has], hits[has])]
        real = np.all(corner[target] - corner[source] == offset, axis=1)
        found.append(np.stack([source[real], target[real]], axis=1))
    return np.concatenate(found)


def _ranges(low: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices low[0]..low[0]+counts[0]-1, low[1].., concatenated."""
    total = int(counts.sum())
    return np.repeat(low - np.cumsum(counts) + counts, counts) + np.arange(total)
