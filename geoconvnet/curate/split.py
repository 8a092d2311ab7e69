"""Make or redo a dataset root's train/test split so that no group of duplicates or of
images taken at the same spot (see :mod:`.dedup`) has members on both sides, stratified by
country (scikit-learn's StratifiedGroupKFold: the test split is one of ``round(1 /
test_fraction)`` folds). Files move between ``train/`` and ``test/``; every move is recorded
in ``ROOT/split-moves.csv`` (and the manifest's records follow), so :func:`undo_split` puts
them back.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import StratifiedGroupKFold

from ..data.layout import SPLIT_MOVES, SPLITS, created_folders, remove_empty, split_files
from ..data.manifest import NAME as MANIFEST
from ..data.manifest import Record, lock_root, open_manifest
from ..utils.errors import ConfigError
from ..utils.io import read_csv, write_text
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
    group_of = {f: i for i, g in enumerate(groups) for f in g.files}
    group_ids = [group_of.get(f, len(groups) + i) for i, f in enumerate(files)]
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    _, test_index = next(folds.split(files, labels, group_ids))
    target = ["train"] * len(files)
    for i in test_index:
        target[i] = "test"
    before = Counter((f.split("/")[1], f.split("/")[0]) for f in files)
    moves = _moves(root, files, target)
    _apply(root, moves)
    moved = found.renamed(dict(moves))  # the findings where the files are now:
    write_report(root, moved.groups, moved.copy_groups)  # `data stats` is never stale
    after = Counter((f.split("/")[1], s) for f, s in zip(files, target))
    counts = {c: {s: (before[c, s], after[c, s]) for s in SPLITS} for c in sorted(set(labels))}
    return SplitResult(counts, len(moves), len(groups))


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
    records = open_manifest(root, repair=False).all_records
    lines = []
    for record in records:
        new = renamed.get(record.file, record.file)
        moved = Record(**{**record.__dict__, "file": new, "split": new.split("/", 1)[0]})
        lines.append(json.dumps(moved.__dict__, ensure_ascii=False))
    write_text(root / MANIFEST, "\n".join(lines) + "\n")


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
