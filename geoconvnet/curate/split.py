"""Make or redo a dataset root's train/test split so that no group of duplicates or of
images taken at the same spot (see :mod:`.dedup`) has members on both sides, with each
country's test share close to ``test_fraction`` (:func:`assign_folds`: one pass over the
groups, in an order drawn from the seed). Files move between ``train/`` and ``test/``;
every move is recorded in ``ROOT/split-moves.csv`` (and the manifest's records follow), so
:func:`undo_split` puts them back.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.layout import SPLIT_MOVES, SPLITS, created_folders, remove_empty, split_files
from ..data.manifest import NAME as MANIFEST
from ..data.manifest import Record, lock_root, open_manifest
from ..utils.errors import ConfigError
from ..utils.io import atomic_write, read_csv, write_text
from .dedup import DEFAULT_MAX_DISTANCE, SPOT_M, find_duplicates, write_report

MOVES = SPLIT_MOVES
CREATED = ".split-created-folders.txt"  # folders the split made, removed again by --undo


@dataclass
class SplitResult:
    counts: dict[str, dict[str, tuple[int, int]]]  # country -> split -> (before, after)
    moved: int
    groups: int  # groups of linked images kept on one side


def split(root: str | Path, test_fraction: float = 0.2, seed: int = 0,
          max_distance: int = DEFAULT_MAX_DISTANCE, spot_m: float = SPOT_M) -> SplitResult:
    root = Path(root)
    split_files(root)  # "not found" and layout hints, before the lock creates anything
    lock = lock_root(root)
    try:
        return _split(root, test_fraction, seed, max_distance, spot_m)
    finally:
        lock.close()


def _split(root: Path, test_fraction: float, seed: int, max_distance: int,
           spot_m: float) -> SplitResult:
    if not 0 < test_fraction < 0.5:
        raise ConfigError(f"--test-fraction must be between 0 and 0.5, got {test_fraction}")
    if (root / MOVES).exists():
        raise ConfigError(f"{root / MOVES} exists: an earlier split was not undone; run "
                          f"`geoconvnet data split {root} --undo` first, or delete the file "
                          "to keep that split")
    files = [Path(f).relative_to(root).as_posix() for paths in split_files(root).values()
             for f in paths]
    labels = [f.split("/")[1] for f in files]
    n_folds = max(2, round(1 / test_fraction))
    _check_enough(Counter(labels), n_folds, test_fraction)
    found = find_duplicates(root, max_distance, spot_m)
    groups = found.groups
    test = assign_folds(labels, _group_labels(files, groups), test_fraction, seed)
    target = ["test" if t else "train" for t in test.tolist()]
    before = Counter((f.split("/")[1], f.split("/")[0]) for f in files)
    moves = _moves(root, files, target)
    _apply(root, moves)
    moved = found.renamed(dict(moves))  # the findings where the files are now:
    write_report(root, moved.groups, moved.copy_groups)  # `data stats` is never stale
    after = Counter((f.split("/")[1], s) for f, s in zip(files, target))
    counts = {c: {s: (before[c, s], after[c, s]) for s in SPLITS} for c in sorted(set(labels))}
    return SplitResult(counts, len(moves), len(groups))


def _group_labels(files: list[str], groups: list) -> np.ndarray:
    """A number per file, the same within a group: the position of its group's first file
    (a file in no group keeps its own)."""
    label = np.arange(len(files), dtype=np.int64)
    index = {f: i for i, f in enumerate(files)}
    for group in groups:
        members = [index[f] for f in group.files if f in index]
        if members:
            label[members] = min(members)
    return label


def assign_folds(countries, groups, test_fraction: float, seed: int) -> np.ndarray:
    """Whether each image goes to test. ``countries``: a label per image; ``groups``: an
    integer per image, the same for the images that must stay on one side.

    Guarantees: a group is never on both sides; the same inputs and seed give the same
    split, another seed another. Within each country the groups are taken in an order drawn
    from a hash of (group, seed), each put in test when that brings the country's test count
    nearer to ``test_fraction`` x its images (the count starts with what is already placed);
    so for a country whose groups are all its own, ``|test - test_fraction * n| <= s / 2``
    with ``n`` its images and ``s`` its largest group: with single images, the target
    rounded. A group spanning countries (the same image under two labels, a spot on a
    border) goes to test with probability ``test_fraction`` by its hash, before the rest, and
    counts as already placed in each of its countries, which can only add to their error.
    Linear but for sorting: numpy for all but the last few groups of a country.
    """
    country = np.unique(np.asarray(countries), return_inverse=True)[1].ravel()
    keys, group = np.unique(np.asarray(groups, dtype=np.int64), return_inverse=True)
    group = group.ravel()
    n_countries = int(country.max()) + 1 if len(country) else 0
    rows, size = np.unique(group * n_countries + country, return_counts=True)
    row_group, row_country = rows // max(n_countries, 1), rows % max(n_countries, 1)
    rank = _rank(keys, seed)
    shared = np.bincount(row_group, minlength=len(keys))[row_group] > 1
    in_test = np.zeros(len(keys), dtype=bool)
    spanning = np.unique(row_group[shared])
    in_test[spanning] = rank[spanning] / 2.0 ** 64 < test_fraction
    placed = np.bincount(row_country[shared], weights=size[shared] * in_test[row_group[shared]],
                         minlength=n_countries).astype(np.float64)
    target = test_fraction * np.bincount(country, minlength=n_countries)
    own = ~shared
    _fill(row_group[own], row_country[own], size[own], rank, placed, target, in_test)
    return in_test[group]


def _fill(group, country, size, rank, placed, target, in_test) -> None:
    """Each country's own groups in rank order, each into test while that brings the
    country's test count nearer its target (``in_test`` and ``placed`` updated in place)."""
    if not len(size):
        return
    order = np.lexsort((rank[group], country))
    group, country, size = group[order], country[order], size[order]
    cumulative = np.cumsum(size)
    first = np.r_[0, np.flatnonzero(np.diff(country)) + 1]
    offset = np.repeat(cumulative[first] - size[first], np.diff(np.r_[first, len(size)]))
    forced = placed[country] + cumulative - offset <= target[country]  # a prefix per country
    in_test[group[forced]] = True
    placed += np.bincount(country[forced], weights=size[forced], minlength=len(placed))
    for c in np.flatnonzero(target - placed > 0.5).tolist():
        low, high = np.searchsorted(country, [c, c + 1])
        fits = ~forced[low:high] & (size[low:high] < 2 * (target[c] - placed[c]))
        rows = low + np.flatnonzero(fits)
        for g, s in zip(group[rows].tolist(), size[rows].tolist()):
            if target[c] - placed[c] <= 0.5:
                break
            if placed[c] + s / 2 < target[c]:
                in_test[g] = True
                placed[c] += s


def _rank(keys: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit hash per key (splitmix64): the order groups are filled in."""
    with np.errstate(over="ignore"):
        x = keys.astype(np.uint64) ^ _mix(np.array([seed], dtype=np.int64).astype(np.uint64))
        return _mix(x)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _check_enough(counts: Counter, n_folds: int, test_fraction: float) -> None:
    """Each country needs an image per fold to have both train and test images."""
    few = sorted((n, c) for c, n in counts.items() if n < n_folds)
    if few:
        listed = ", ".join(f"{c} ({n})" for n, c in few[:5]) + (" ..." if len(few) > 5 else "")
        raise ConfigError(f"{len(few)} countr{'y has' if len(few) == 1 else 'ies have'} fewer "
                          f"images than the {n_folds} folds of --test-fraction {test_fraction:g}"
                          f", so they cannot be in both train and test: {listed}; collect more "
                          "images of them or take them out of the root; nothing was moved")


def _moves(root: Path, files: list[str], target: list[str]) -> list[tuple[str, str]]:
    """(from, to) relative paths; a name already taken on the other side gets a suffix."""
    taken = set(files)
    moves = []
    for file, split_to in zip(files, target):
        split_from, rest = file.split("/", 1)
        if split_from == split_to:
            continue
        new = f"{split_to}/{rest}"
        stem, dot, ext = new.rpartition(".")
        n = 1
        while new in taken:
            new = f"{stem}-{split_from}{n if n > 1 else ''}.{ext}"
            n += 1
        taken.add(new)
        moves.append((file, new))
    return moves


def _apply(root: Path, moves: list[tuple[str, str]]) -> None:
    """The record of the moves first, then the manifest, then the files: a split stopped
    anywhere can be undone, and no file it touched is taken for an orphan meanwhile."""
    created = sorted({f.relative_to(root).as_posix() for _, new in moves
                      for f in created_folders((root / new).parent, root)})
    write_text(root / CREATED, "".join(f"{folder}\n" for folder in created))
    with open(root / MOVES, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["from", "to"])
        writer.writerows(moves)
    _rename_in_manifest(root, dict(moves))
    for old, new in moves:
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(root / old, root / new)


def _rename_in_manifest(root: Path, renamed: dict[str, str]) -> None:
    if not (root / MANIFEST).is_file() or not renamed:
        return
    manifest = open_manifest(root, repair=False)
    with atomic_write(root / MANIFEST, "w", encoding="utf-8") as f:  # streamed, not held
        for record in manifest.iter_records():
            new = renamed.get(record.file, record.file)
            moved = Record(**{**record.__dict__, "file": new, "split": new.split("/", 1)[0]})
            f.write(json.dumps(moved.__dict__, ensure_ascii=False) + "\n")
    manifest.close()


def undo_split(root: str | Path) -> int:
    """Move every file of the last split back; returns how many."""
    root = Path(root)
    split_files(root)
    if not (root / MOVES).is_file():
        raise ConfigError(f"{root}: no {MOVES}; nothing to undo")
    lock = lock_root(root)
    try:
        moves = [(row["from"], row["to"]) for row in read_csv(root / MOVES)]
        _rename_in_manifest(root, {new: old for old, new in moves})
        back = [(new, old) for old, new in reversed(moves)
                if (root / new).exists() and not (root / old).exists()]
        for new, old in back:
            (root / old).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(root / new, root / old)
        (root / MOVES).unlink()
        _remove_created(root)
    finally:
        lock.close()
    return len(back)


def _remove_created(root: Path) -> None:
    """The folders the split created (a country's first test folder), once emptied."""
    if (root / CREATED).is_file():
        remove_empty(root / line for line in (root / CREATED).read_text().splitlines() if line)
        (root / CREATED).unlink()
