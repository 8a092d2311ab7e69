"""Moving images out of a root without losing track of them: every move is recorded in
``DIR/moves.csv`` (absolute paths) before it happens, a file is never moved onto another,
and :func:`undo` puts back every recorded file it can, keeping the record of any it
cannot (its old place taken, or the file gone) so that nothing is forgotten. The folders a
move creates under DIR are listed in ``DIR/moves-folders.txt``; an undo removes those it
emptied. DIR may not be the root, nor inside one of its split folders (there it would
become a class of its own, "rejects" or "moved")."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..data.layout import SPLITS, created_folders, remove_empty
from ..data.manifest import check_root_folder, lock_root
from ..utils.errors import ConfigError
from ..utils.io import read_csv, write_csv

MOVES = "moves.csv"
FOLDERS = "moves-folders.txt"


def move_files(root: Path, files: list[str], move_dir: str | Path) -> int:
    """Move ``files`` (relative to ``root``) to the same relative paths under ``move_dir``."""
    root, move_dir = Path(root).resolve(), Path(move_dir).resolve()
    check_move_dir(root, move_dir)
    if not files:
        return 0
    lock = lock_root(root)
    try:
        _record_folders(move_dir, created_folders(move_dir, Path(move_dir.anchor)))
        move_dir.mkdir(parents=True, exist_ok=True)
        log = move_dir / MOVES
        new = not log.exists()
        with open(log, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["from", "to"])
            for file in files:
                source, target = root / file, free_path(move_dir / file)
                _record_folders(move_dir, created_folders(target.parent, move_dir))
                target.parent.mkdir(parents=True, exist_ok=True)
                writer.writerow([source, target])
                f.flush()  # the record first: an interrupted move can still be undone
                shutil.move(source, target)
    finally:
        lock.close()
    return len(files)


def check_move_dir(root: Path, move_dir: Path) -> None:
    """A move folder must be outside the root's split folders (and not the root itself), a
    folder (not a file) and writable: checked before any work, with one line."""
    splits = [root / s for s in SPLITS]
    if move_dir == root or any(move_dir == s or s in move_dir.parents for s in splits):
        raise ConfigError(f"{move_dir}: inside the dataset root {root} (its images would become "
                          "a class, or move onto themselves); choose a folder outside "
                          f"{root}/train and {root}/test, e.g. {root.parent / (root.name + '-moved')}")
    check_root_folder(move_dir, "move folder")


def _record_folders(move_dir: Path, folders: list[Path]) -> None:
    if not folders:
        return
    log = move_dir / FOLDERS
    if move_dir in folders:  # the list lives inside it: make it first, then list it too
        move_dir.mkdir(parents=True)
    with open(log, "a", encoding="utf-8") as f:
        f.writelines(f"{folder}\n" for folder in folders)


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
        _remove_created(Path(move_dir))
    return restored, problems


def _remove_created(move_dir: Path) -> None:
    """Remove the folders the moves created and the undo emptied (never another one). A
    move folder the moves created goes too, with its logs, once nothing else is in it."""
    log = move_dir / FOLDERS
    if not log.is_file():
        return
    created = [Path(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
    ours = {log, move_dir / (MOVES + ".undone")}
    others = [p for p in move_dir.rglob("*") if p.is_file() and p not in ours]
    if move_dir in created and not others:
        for path in ours:
            path.unlink(missing_ok=True)
    else:
        log.unlink()
    remove_empty(created)
