"""Places on the globe: distances, GeoGuessr scores and geocells for a location head.

A location head classifies an image into one of a few hundred *geocells* instead of
regressing latitude and longitude (as PIGEON and OSV-5M baselines do). :class:`GeoCells`
cuts the training places of each country into cells that follow their density: a crowded
area ends up in many small cells, a sparse one in a few big ones, and no cell crosses a
border, so a cell also names its country. Its centre is a real training place (the medoid),
so a guess at a centre is always on land inside the country.

Distances are great-circle distances on a sphere of radius :data:`EARTH_KM`; latitudes and
longitudes are in degrees throughout.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..utils.errors import CheckpointError, ConfigError

EARTH_KM = 6371.0
SCALE_KM = 1492.7  # GeoGuessr world map: a guess d km off scores 5000 * exp(-d / SCALE_KM)
WITHIN_KM = (1, 25, 200, 750, 2500)  # Im2GPS / OSV-5M accuracy thresholds
KM_PER_DEGREE = EARTH_KM * math.pi / 180  # along a meridian (about 111.2 km)
FORMAT_VERSION = 1  # of GeoCells.to_dict


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between places given in degrees (numpy broadcasting).

    The haversine term is clipped to [0, 1]: rounding can push it just outside for antipodes
    and identical places, where arcsin/sqrt would give NaN.
    """
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlam = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return np.asarray(2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def geoscore(distance_km) -> np.ndarray:
    """The points GeoGuessr's world map gives a guess ``distance_km`` off (5000 at 0 km)."""
    return np.asarray(5000.0 * np.exp(-np.asarray(distance_km, dtype=float) / SCALE_KM))


def unit_vectors(latlon: np.ndarray) -> np.ndarray:
    """[..., 2] (lat, lon) degrees -> [..., 3] points on the unit sphere.

    Nearest places by great-circle distance are the largest dot products of these vectors,
    which is how cells are assigned without trigonometry per pair.
    """
    latlon = np.asarray(latlon, dtype=float)
    if latlon.ndim < 1 or latlon.shape[-1] != 2:
        raise ConfigError(f"places must be (lat, lon) pairs, shape [N, 2]; got shape "
                          f"{latlon.shape}")
    phi, lam = np.radians(latlon[..., 0]), np.radians(latlon[..., 1])
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)


def distance_summary(distance_km) -> dict:
    """How far off guesses were: count, median, mean, mean GeoGuessr score and the share
    within each of :data:`WITHIN_KM` (a distance equal to a threshold counts as within).

    NaN (and infinite) distances are images without a place and are left out; with none
    left, ``n`` is 0 and every number is None.
    """
    d = np.asarray(distance_km, dtype=float).ravel()
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"n": 0, "median_km": None, "mean_km": None, "geoscore": None,
                "within": {str(t): None for t in WITHIN_KM}}
    return {"n": int(d.size), "median_km": float(np.median(d)), "mean_km": float(d.mean()),
            "geoscore": float(geoscore(d).mean()),
            "within": {str(t): float(np.mean(d <= t)) for t in WITHIN_KM}}


@dataclass(eq=False)  # arrays make field-wise == ambiguous; compare the fields you mean
class GeoCells:
    """Geocells: per cell its country, centre (a real training place), size and a sample of
    its training places (to place a GeoGuessr pin). Build with :meth:`GeoCells.build`.

    ``nodes`` and ``roots`` are the cuts that made the cells, a small kd-tree per country:
    :meth:`assign` follows them, so a place lands in the cell whose area holds it and a
    training place lands in exactly the cell :meth:`build` gave it (nearest-centre
    assignment disagrees with the cuts for about a quarter of synthetic places, which gives
    validation labels from another partition than training's). Cells made without cuts
    (``nodes`` None) assign by nearest centre.
    """

    countries: list[str]
    centres: np.ndarray  # [C, 2] (lat, lon) medoid of each cell
    counts: np.ndarray  # [C] training places per cell
    places: list[np.ndarray]  # per cell up to `keep` training places, [k, 2]
    min_size: int
    tau_km: float
    nodes: np.ndarray | None = None  # [M, 5] per node: axis, ref_lon, cut, left, right
    roots: dict[str, int] | None = None  # country -> its root node
    _by_country: dict | None = field(default=None, init=False, repr=False)
    _torch_centres: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.countries = [str(c) for c in self.countries]
        self.centres = np.asarray(self.centres, dtype=float).reshape(-1, 2)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.places = [np.asarray(p, dtype=float).reshape(-1, 2) for p in self.places]
        if self.nodes is not None:
            self.nodes = np.asarray(self.nodes, dtype=float).reshape(-1, 5)
            self.roots = {str(k): int(v) for k, v in (self.roots or {}).items()}

    def __len__(self) -> int:
        return len(self.countries)

    @classmethod
    def build(cls, latlon: np.ndarray, countries: list[str], *, cells: int = 512,
              min_size: int = 10, keep: int = 32, tau_km: float = 75.0,
              seed: int = 0) -> tuple[GeoCells, np.ndarray]:
        """Cells for training places ``latlon`` [N, 2] whose classes are ``countries``, and
        the cell index of each place [N].

        Each country starts as one cell; then the most populous cell that can still split
        (at least ``2 * min_size`` places) is cut in two at the median of its longer extent
        in km, until there are ``cells`` cells or none can split. A country with fewer than
        ``min_size`` places keeps its one cell. The result depends only on the inputs and
        ``seed`` (which picks the ``keep`` places sampled per cell).
        """
        latlon, countries = _check_build(latlon, countries, cells, min_size, keep, tau_km)
        names, inverse = np.unique(np.asarray(countries), return_inverse=True)
        names = [str(n) for n in names]  # sorted
        if cells < len(names):
            raise ConfigError(f"cells={cells} is fewer than the {len(names)} countries of the "
                              f"training places; ask for at least {len(names)} (every country "
                              "needs a cell of its own)")
        by_country = np.argsort(inverse, kind="stable")
        groups = np.split(by_country, np.cumsum(np.bincount(inverse))[:-1])
        tree = _Tree(latlon, min_size, groups)
        tree.split(cells)
        return _assemble(cls, latlon, names, tree, min_size, keep, tau_km, seed)

    def assign(self, latlon: np.ndarray, countries: list[str]) -> np.ndarray:
        """The cell of each place not used to build the cells [N]: the cell of its country
        whose area holds it (see the class doc); -1 where the place is not finite or its
        country has no cell."""
        latlon = np.asarray(latlon, dtype=float)
        latlon = latlon.reshape(0, 2) if latlon.size == 0 else latlon
        if latlon.ndim != 2 or latlon.shape[1] != 2:
            raise ConfigError(f"places must be (lat, lon) pairs, shape [N, 2]; got shape "
                              f"{latlon.shape}")
        if len(countries) != len(latlon):
            raise ConfigError(f"{len(latlon)} places but {len(countries)} countries; give one "
                              "country per place")
        if len(latlon) == 0:
            return np.zeros(0, dtype=np.int64)
        label = np.asarray([str(c) for c in countries])
        finite = np.isfinite(latlon).all(axis=1)
        if self.nodes is None:
            return self._nearest_centre(latlon, label, finite)
        names, inverse = np.unique(label, return_inverse=True)
        start = np.asarray([self.roots.get(str(c), -1) for c in names], dtype=np.int64)[inverse]
        start[~finite] = -1
        return _descend(self.nodes, start, latlon)

    def smooth_targets(self, latlon: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Haversine-smoothed cell targets [B, C] (float32) for true places ``latlon`` [B, 2]
        (degrees) in cells ``cell`` [B] (long), as in PIGEON.

        The true cell weighs 1 and every other cell ``exp(-d / tau_km)``, d the great-circle
        distance from the place to its centre; each row is then normalised to sum to 1. A
        near miss thus costs less than a far one. A row whose cell is negative or whose place
        is not finite (no location) is all zeros, so a soft cross-entropy gives it no loss.
        Runs on the tensors' device; no host sync.
        """
        dtype = latlon.dtype if latlon.is_floating_point() else torch.float32
        latlon = latlon.to(dtype)
        centres = self._centres_on(latlon.device, dtype)
        valid = (cell >= 0) & torch.isfinite(latlon).all(dim=1)
        latlon = torch.where(valid[:, None], latlon, torch.zeros_like(latlon))
        phi, lam = torch.deg2rad(latlon[:, 0]), torch.deg2rad(latlon[:, 1])
        u = torch.stack([phi.cos() * lam.cos(), phi.cos() * lam.sin(), phi.sin()], dim=1)
        # The chord between unit vectors gives the arc as 2 asin(chord / 2): unlike acos of a
        # dot product near 1, it keeps its precision (in float32) for cells a few km away.
        chord = torch.linalg.vector_norm(u[:, None, :] - centres[None, :, :], dim=-1)
        distance = 2 * EARTH_KM * torch.asin(torch.clamp(chord / 2, max=1.0))
        weight = torch.exp(-distance / self.tau_km)
        rows = torch.arange(len(cell), device=weight.device)
        weight[rows, cell.clamp(min=0)] = 1.0
        weight = weight * valid[:, None]
        total = weight.sum(dim=1, keepdim=True).clamp(min=torch.finfo(dtype).tiny)
        return (weight / total).to(torch.float32)

    def cell_distribution(self, probs: np.ndarray, min_probability: float = 0.01,
                          top: int = 32) -> list[tuple[float, np.ndarray]]:
        """One image's cell probabilities [C] as a cloud for the pin: [(p, places of the
        cell)] for the cells with p >= ``min_probability`` (at most ``top``, the most likely
        first, at least the most likely one), p renormalised to sum to 1."""
        probs = np.asarray(probs, dtype=float).ravel()
        if probs.size != len(self):
            raise ConfigError(f"{probs.size} cell probabilities for {len(self)} cells; give "
                              "one probability per cell")
        if top < 1:
            raise ConfigError(f"top={top}: keep at least 1 cell")
        order = np.argsort(-np.nan_to_num(probs, nan=-np.inf), kind="stable")[:top]
        chosen = [order[0]] + [c for c in order[1:] if probs[c] >= min_probability]
        p = probs[chosen]
        total = p.sum()
        if not (np.isfinite(total) and total > 0):  # no usable mass: trust the top cell
            return [(1.0, self.places[chosen[0]])]
        return [(float(q / total), self.places[c]) for q, c in zip(p, chosen)]

    def to_dict(self) -> dict:
        """A JSON-serialisable form (for checkpoints). Centres and cuts are kept exact so that
        :meth:`assign` gives the same cells after loading; the pin places are rounded to
        5 decimals (about 1 m)."""
        return {"version": FORMAT_VERSION, "countries": list(self.countries),
                "centres": self.centres.tolist(), "counts": self.counts.tolist(),
                "places": [np.round(p, 5).tolist() for p in self.places],
                "min_size": int(self.min_size), "tau_km": float(self.tau_km),
                "nodes": None if self.nodes is None else self.nodes.tolist(),
                "roots": None if self.roots is None else dict(self.roots)}

    @classmethod
    def from_dict(cls, d: dict) -> GeoCells:
        """The cells :meth:`to_dict` wrote; a CheckpointError names what is missing or
        malformed."""
        if not isinstance(d, dict):
            raise CheckpointError(f"geo cells: expected a dict, got {type(d).__name__}; the "
                                  "checkpoint is damaged or not from geoconvnet")
        missing = [k for k in ("countries", "centres", "counts", "places", "min_size",
                               "tau_km", "nodes", "roots") if k not in d]
        if missing:
            raise CheckpointError(f"geo cells: missing {', '.join(missing)}; the checkpoint "
                                  "is damaged or was not saved with a location head")
        if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise CheckpointError(f"geo cells: format version {d['version']!r}, this "
                                  f"geoconvnet reads {FORMAT_VERSION}; upgrade geoconvnet")
        try:
            _check_shapes(d)
            cells = cls(list(d["countries"]), d["centres"], d["counts"], d["places"],
                        int(d["min_size"]), float(d["tau_km"]), d["nodes"], d["roots"])
        except (TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"geo cells: malformed values ({exc}); the checkpoint is "
                                  "damaged") from None
        return cells

    def _nearest_centre(self, latlon, label, finite) -> np.ndarray:
        """Per place the nearest centre among its country's cells (-1: none)."""
        if self._by_country is None:
            own = np.asarray(self.countries)
            self._by_country = {c: np.flatnonzero(own == c) for c in set(self.countries)}
        out = np.full(len(latlon), -1, dtype=np.int64)
        for name in np.unique(label):
            own = self._by_country.get(str(name))
            rows = np.flatnonzero((label == name) & finite)
            if own is not None and rows.size:
                dots = unit_vectors(latlon[rows]) @ unit_vectors(self.centres[own]).T
                out[rows] = own[np.argmax(dots, axis=1)]
        return out

    def _centres_on(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The centres' unit vectors [C, 3] on a device (cached: built once, not per batch)."""
        key = (device, dtype)
        if key not in self._torch_centres:
            self._torch_centres[key] = torch.as_tensor(unit_vectors(self.centres), dtype=dtype,
                                                       device=device)
        return self._torch_centres[key]


LEAF = -1  # a node's axis when it is a cell; its `left` is then the cell index
LAT, LON = 0, 1


def _check_build(latlon, countries, cells, min_size, keep, tau_km):
    for name, value in (("cells", cells), ("min_size", min_size), ("keep", keep)):
        if value < 1:
            raise ConfigError(f"{name}={value}: must be at least 1")
    if not tau_km > 0:
        raise ConfigError(f"tau_km={tau_km}: the smoothing distance must be positive (km)")
    latlon = np.asarray(latlon, dtype=float)
    if latlon.ndim != 2 or latlon.shape[1] != 2 or len(latlon) == 0:
        raise ConfigError(f"training places must be (lat, lon) pairs, shape [N, 2] with N >= 1;"
                          f" got shape {latlon.shape}")
    if len(countries) != len(latlon):
        raise ConfigError(f"{len(latlon)} places but {len(countries)} countries; give one "
                          "country per place")
    bad = ~(np.isfinite(latlon).all(axis=1) & (np.abs(latlon[:, 0]) <= 90)
            & (np.abs(latlon[:, 1]) <= 180))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(f"{int(bad.sum())} training places are not finite latitudes "
                          f"(-90..90) and longitudes (-180..180), first #{i}: "
                          f"{tuple(latlon[i].tolist())}; drop places without coordinates")
    return latlon, [str(c) for c in countries]


def _wrap(lon):
    """Longitudes folded into [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0


def _key(lat, lon, axis, ref_lon):
    """The coordinate a cut compares: latitude, or longitude relative to ``ref_lon``. Build
    and assign both go through here, so a training place is cut the same way both times."""
    return np.where(axis == LAT, lat, _wrap(lon - ref_lon))


class _Tree:
    """The cells while they are being cut: per cell its places and its leaf in ``nodes``."""

    def __init__(self, latlon: np.ndarray, min_size: int, groups: list[np.ndarray]):
        self.latlon, self.min_size = latlon, min_size
        self.nodes = [[LEAF, 0.0, 0.0, -1, -1] for _ in groups]  # one root per country
        self.cells = [(i, idx, i) for i, idx in enumerate(groups)]  # (country, places, leaf)

    def split(self, cells: int) -> None:
        """Split the most populous cell that can split until there are ``cells`` cells."""
        heap = [(-len(idx), i) for i, (_, idx, _) in enumerate(self.cells)
                if len(idx) >= 2 * self.min_size]
        heapq.heapify(heap)
        while len(self.cells) < cells and heap:
            _, i = heapq.heappop(heap)
            country, idx, leaf = self.cells[i]
            cut = _median_cut(self.latlon[idx], self.min_size)
            if cut is None:  # all its places on one spot: a split would only copy the cell
                continue
            axis, ref_lon, value, left, right = cut
            self.nodes[leaf] = [axis, ref_lon, value, len(self.nodes), len(self.nodes) + 1]
            self.nodes += [[LEAF, 0.0, 0.0, -1, -1], [LEAF, 0.0, 0.0, -1, -1]]
            self.cells[i] = (country, idx[left], len(self.nodes) - 2)
            self.cells.append((country, idx[right], len(self.nodes) - 1))
            for j in (i, len(self.cells) - 1):
                if len(self.cells[j][1]) >= 2 * self.min_size:
                    heapq.heappush(heap, (-len(self.cells[j][1]), j))


def _median_cut(latlon: np.ndarray, min_size: int):
    """(axis, ref_lon, value, left, right): how to cut a cell's places in two, or None.

    The cut runs across the longer extent in km, at the place in sorted order nearest the
    median where the coordinate changes and both halves keep ``min_size`` places, so equal
    coordinates stay together and no half is empty (the shorter extent is tried if the
    longer has no such place). Longitudes are taken relative to the cell's circular mean, so
    a cell across the antimeridian (Fiji, Chukotka) is measured and cut as the compact area
    it is, not as one spanning the globe. ``left`` and ``right`` index ``latlon``.
    """
    lat, lon = latlon[:, 0], latlon[:, 1]
    ref_lon = math.degrees(math.atan2(np.sin(np.radians(lon)).mean(),
                                      np.cos(np.radians(lon)).mean()))
    lat_km = np.ptp(lat) * KM_PER_DEGREE
    lon_km = (np.ptp(_key(lat, lon, LON, ref_lon)) * KM_PER_DEGREE
              * math.cos(math.radians(float(lat.mean()))))
    for axis in ((LAT, LON) if lat_km >= lon_km else (LON, LAT)):
        key = _key(lat, lon, axis, ref_lon)
        order = np.argsort(key, kind="stable")
        k = _cut_position(key[order], min_size)
        if k is not None:
            low, high = key[order[k - 1]], key[order[k]]
            value = (low + high) / 2
            if not low < value:  # neighbouring floats: the midpoint rounds onto `low`
                value = high
            return axis, ref_lon, float(value), order[:k], order[k:]
    return None


def _cut_position(sorted_key: np.ndarray, min_size: int) -> int | None:
    """The k nearest n/2 with min_size <= k <= n - min_size and key[k-1] < key[k]."""
    n = len(sorted_key)
    k = np.arange(min_size, n - min_size + 1)
    k = k[sorted_key[k - 1] < sorted_key[k]]
    if k.size == 0:
        return None
    return int(k[np.argmin(np.abs(2 * k - n))])


def _descend(nodes: np.ndarray, node: np.ndarray, latlon: np.ndarray) -> np.ndarray:
    """The cell of each place, from its start node (-1: none) down the cuts; one pass per
    level for all places at once."""
    node = node.copy()
    while True:
        rows = np.flatnonzero(node >= 0)
        rows = rows[nodes[node[rows], 0] != LEAF]
        if rows.size == 0:
            break
        axis, ref_lon, value, left, right = nodes[node[rows]].T
        key = _key(latlon[rows, 0], latlon[rows, 1], axis, ref_lon)
        node[rows] = np.where(key < value, left, right).astype(np.int64)
    out = np.full(len(node), -1, dtype=np.int64)
    ok = node >= 0
    out[ok] = nodes[node[ok], 3].astype(np.int64)
    return out


def _assemble(cls, latlon, names, tree, min_size, keep, tau_km, seed):
    """Order the cells (country, then centre), pick centres and pin places, and index the
    training places."""
    vectors = unit_vectors(latlon)
    groups = tree.cells
    centres = [_medoid(vectors[idx], latlon[idx]) for _, idx, _ in groups]
    order = sorted(range(len(groups)),
                   key=lambda i: (names[groups[i][0]], centres[i][0], centres[i][1], i))
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(latlon), dtype=np.int64)
    places = []
    for c, i in enumerate(order):
        _, idx, leaf = groups[i]
        assignment[idx] = c
        tree.nodes[leaf][3] = c
        sample = idx if len(idx) <= keep else idx[np.sort(rng.choice(len(idx), keep,
                                                                     replace=False))]
        places.append(latlon[sample].copy())
    cells = cls([names[groups[i][0]] for i in order], [centres[i] for i in order],
                [len(groups[i][1]) for i in order], places, min_size, tau_km,
                np.asarray(tree.nodes, dtype=float), {name: i for i, name in enumerate(names)})
    return cells, assignment


def _medoid(vectors: np.ndarray, latlon: np.ndarray) -> np.ndarray:
    """The place nearest the spherical mean of a cell's places (a real place, so on land
    and in the country, unlike the mean itself for a cell shaped like a crescent)."""
    return latlon[int(np.argmax(vectors @ vectors.mean(axis=0)))].copy()


def _check_shapes(d: dict) -> None:
    """Raise CheckpointError unless the lists of a to_dict form agree in length and shape."""
    n = len(d["countries"])
    for key in ("centres", "counts", "places"):
        if len(d[key]) != n:
            raise CheckpointError(f"geo cells: {len(d[key])} {key} for {n} countries; the "
                                  "checkpoint is damaged")
    if np.asarray(d["centres"], dtype=float).shape != (n, 2):
        raise CheckpointError("geo cells: centres must be [C, 2] (lat, lon); the checkpoint "
                              "is damaged")
    if d["nodes"] is not None:
        nodes = np.asarray(d["nodes"], dtype=float)
        roots = d["roots"]
        if nodes.ndim != 2 or nodes.shape[1] != 5 or not isinstance(roots, dict) or any(
                not 0 <= int(r) < len(nodes) for r in roots.values()):
            raise CheckpointError("geo cells: nodes must be [M, 5] and roots a dict of node "
                                  "indices; the checkpoint is damaged")
        leaves = nodes[nodes[:, 0] == LEAF, 3]
        if leaves.size and not (leaves.min() >= 0 and leaves.max() < n):
            raise CheckpointError(f"geo cells: a cut leads to a cell outside 0..{n - 1}; the "
                                  "checkpoint is damaged")
