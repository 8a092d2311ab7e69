"""Moving images out of a root without losing track of them: every move is recorded in
``DIR/moves.csv`` (absolute paths) before it happens, a file is never moved onto another,
and :func:`undo` puts back every recorded file it can, keeping the record of any it
cannot (its old place taken, or the file gone) so that nothing is forgotten."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..data.manifest import lock_root
from ..utils.errors import ConfigError
from ..utils.io import read_csv, write_csv

MOVES = "moves.csv"


def move_files(root: Path, files: list[str], move_dir: str | Path) -> int:
    """Move ``files`` (relative to ``root``) to the same relative paths under ``move_dir``."""
    root, move_dir = Path(root).resolve(), Path(move_dir).resolve()
    move_dir.mkdir(parents=True, exist_ok=True)
    log = move_dir / MOVES
    new = not log.exists()
    lock = lock_root(root)
    try:
        with open(log, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["from", "to"])
            for file in files:
                source, target = root / file, free_path(move_dir / file)
                target.parent.mkdir(parents=True, exist_ok=True)
                writer.writerow([source, target])
                f.flush()  # the record first: an interrupted move can still be undone
                shutil.move(source, target)
    finally:
        lock.close()
    return len(files)


def free_path(path: Path) -> Path:
    """``path``, or ``path`` with a number added when it is taken: nothing is overwritten."""
    n = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def undo(move_dir: str | Path) -> tuple[int, list[str]]:
    """Put back the files moved into ``move_dir``; returns (how many, and the problems with
    the others, which stay recorded for another try)."""
    log = Path(move_dir) / MOVES
    if not log.is_file():
        raise ConfigError(f"{move_dir}: no {MOVES} here; give the folder the files were "
                          "moved to")
    restored, kept, problems = 0, [], []
    for row in reversed(read_csv(log)):
        source, target = Path(row["from"]), Path(row["to"])
        if not target.exists():
            problems.append(f"{target}: no longer there")
        elif source.exists():
            problems.append(f"{source}: taken by another file; {target} stays")
        else:
            source.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(target, source)
            restored += 1
            continue
        kept.append(row)
    if kept:
        write_csv(log, ["from", "to"], list(reversed(kept)))
    else:
        log.rename(log.with_name(MOVES + ".undone"))
    return restored, problems
