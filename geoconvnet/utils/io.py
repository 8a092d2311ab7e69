"""Writing files so that a crash or Ctrl-C never leaves half a file behind."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created owner-only (0600); finished files get the mode a plain open()
# would give them, so a shared cache or a served report stays readable by others.
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (for writers that take a path, like
    safetensors); on success it replaces ``path`` in one rename, on error it is removed and
    ``path`` keeps its old content. The name is unique, so two processes never share one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """:func:`atomic_path`, opened: ``with atomic_write(p, "wb") as f: f.write(data)``."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str | Path, data, **dumps_kwargs) -> None:
    write_text(path, json.dumps(data, **{"indent": 2, **dumps_kwargs}))


def write_csv(path: str | Path, header: list, rows) -> None:
    """A CSV file of rows given as lists, or as dicts keyed by ``header`` (missing keys are
    written empty)."""
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([r.get(h, "") for h in header] if isinstance(r, dict) else r
                         for r in rows)


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def set_aside(path: str | Path) -> Path:
    """Rename an SQLite database (and its -wal and -shm files) to the first free
    ``.unreadable-N`` (kept, never deleted); returns the new name."""
    path = Path(path)
    n = 1
    while path.with_name(f"{path.name}.unreadable-{n}").exists():
        n += 1
    aside = path.with_name(f"{path.name}.unreadable-{n}")
    for suffix in ("-wal", "-shm", ""):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
    return aside
