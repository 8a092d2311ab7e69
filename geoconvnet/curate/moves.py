"""Moving images out of a root without losing track of them: every move is recorded in
``DIR/moves.csv`` before it happens, and :func:`undo` puts every recorded file back."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..utils.errors import ConfigError
from ..utils.io import read_csv

MOVES = "moves.csv"


def move_files(root: Path, files: list[str], move_dir: str | Path) -> int:
    """Move ``files`` (relative to ``root``) to the same relative paths under ``move_dir``."""
    move_dir = Path(move_dir)
    move_dir.mkdir(parents=True, exist_ok=True)
    log = move_dir / MOVES
    new = not log.exists()
    with open(log, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["from", "to"])
        for file in files:
            source, target = root / file, move_dir / file
            target.parent.mkdir(parents=True, exist_ok=True)
            writer.writerow([source, target])
            f.flush()  # the record first: an interrupted move can still be undone
            shutil.move(source, target)
    return len(files)


def undo(move_dir: str | Path) -> int:
    """Put back every file moved into ``move_dir``; returns how many."""
    log = Path(move_dir) / MOVES
    if not log.is_file():
        raise ConfigError(f"{move_dir}: no {MOVES} here; give the folder the files were "
                          "moved to")
    restored = 0
    for row in reversed(read_csv(log)):
        source, target = Path(row["from"]), Path(row["to"])
        if target.exists() and not source.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(target, source)
            restored += 1
    log.rename(log.with_name(MOVES + ".undone"))
    return restored
