"""An index of ``ROOT/collect-manifest.jsonl`` in SQLite, so that no reader holds every record.

The JSONL stays the truth (and the export and import format); the index,
``ROOT/.collect-manifest.index.sqlite``, is derived from it and may be deleted at any time. Its
name: a dot keeps it out of listings of the root (like the lock and the hash cache), the
manifest's name says what it is derived from, ``.sqlite`` what opens it.

One row per record: its line number and byte offset in the JSONL and all its fields, with
indexes by folder (split, country), by file and by (source, source_id). A ``meta`` row keeps
what the index covers: the JSONL's bytes indexed, its modification time (ns), its inode
(a file replaced by a rename is another) and a hash of its first and last few KB. On open (:meth:`ManifestIndex.sync`):

- the JSONL is as recorded (same size, time, inode and hashes): the index answers, nothing is read;
- it grew in place and its recorded part's ends are unchanged (appends, by us or by another process): only
  the new tail is parsed, checked and indexed;
- anything else (rewritten, even at the same size; no index; an index that SQLite cannot
  read, set aside as ``...sqlite.unreadable-N``): rebuilt from the JSONL, streaming (memory
  does not grow with the manifest), every line checked as before.

A bad line raises the manifest's one-line error and leaves the index as it was, so the next
open says the same. Updates run in one write transaction (WAL mode: readers never wait), so
two processes opening a stale index at once rebuild it once. A root that cannot be written
gets an index in memory. SQLite's locks need one machine: keep the root on a local disk.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterator

from ..utils.errors import DataError
from ..utils.io import set_aside
from ..utils.progress import add_task, err_console, progress_bar

NAME = ".collect-manifest.index.sqlite"
SCHEMA = "1"  # of the tables; an index of another layout is rebuilt
WINDOW = 4096  # bytes hashed at each end of the indexed part
BATCH = 10_000  # rows per insert and per read
SHOW = 32 << 20  # bytes to parse before a progress bar is worth showing

# The record's fields have no declared type: SQLite keeps what JSON gave (45 stays 45).
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (line INTEGER PRIMARY KEY, offset INTEGER NOT NULL, {fields});
CREATE INDEX IF NOT EXISTS records_folder ON records (split, country);
CREATE INDEX IF NOT EXISTS records_file ON records (file);
CREATE INDEX IF NOT EXISTS records_source ON records (source, source_id);
"""
_STATE = ("size", "mtime_ns", "inode", "head", "tail", "next_line", "open_end")


class ManifestIndex:
    """The index of one JSONL manifest. ``parse(raw, number)`` makes a record of a line or
    raises the manifest's DataError; ``make(*fields)`` makes one of a row's fields."""

    def __init__(self, jsonl: Path, fields: tuple[str, ...], parse: Callable, make: Callable,
                 writable: bool = True):
        self.jsonl, self.path = jsonl, jsonl.with_name(NAME)
        self.fields, self._parse, self._make = fields, parse, make
        self.parsed = 0  # lines this object parsed (what an open cost; tests read it)
        self._columns = ", ".join(fields)
        self._db = self._connect(writable)

    # ------------------------------------------------------------ opening

    def _connect(self, writable: bool) -> sqlite3.Connection:
        if not writable or not os.access(self.jsonl.parent, os.W_OK):
            return self._open(":memory:")  # a dry run on a root not made, a read-only root
        try:
            return self._open(self.path)
        except sqlite3.OperationalError as exc:  # locked, or not writable: not its content
            raise DataError(f"{self.path} cannot be used ({exc}); it is only an index of "
                            f"{self.jsonl.name}: move it aside and run again") from None
        except sqlite3.DatabaseError as exc:  # not a database, or of another layout
            aside = set_aside(self.path)
            err_console.print(f"warning: {self.path} is unreadable ({exc}); set aside as "
                              f"{aside.name}; indexing {self.jsonl.name} again",
                              markup=False, soft_wrap=True)
            return self._open(self.path)

    def _open(self, where) -> sqlite3.Connection:
        db = sqlite3.connect(where, timeout=600, isolation_level=None)  # a rebuild takes long
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a power cut loses at most a rebuild
            db.executescript(_TABLES.format(fields=", ".join(self.fields)))
            found = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if found is not None and found[0] != SCHEMA:
                raise sqlite3.DatabaseError(f"layout {found[0]}, not {SCHEMA}")
            columns = [r[1] for r in db.execute("PRAGMA table_info(records)")][2:]
            if tuple(columns) != self.fields:
                raise sqlite3.DatabaseError(f"columns {', '.join(columns)}")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ keeping up with the JSONL

    def sync(self, end: int, show: bool = False) -> None:
        """Make the index cover the JSONL's first ``end`` bytes (its complete lines; the
        last may lack its newline). ``show``: a progress bar for a long parse."""
        stat = _stat(self.jsonl)
        if self._current(end, stat):
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")  # one writer; a second waits, then finds it done
            try:
                if not self._current(end, stat):
                    self._update(end, stat, show)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DataError(f"{self.path} cannot be written ({exc}); it is only an index of "
                            f"{self.jsonl.name}: move it aside and run again") from None

    def _state(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    def _current(self, end: int, stat) -> bool:
        state = self._state()
        return state.get("schema") == SCHEMA and state.get("size") == str(end) and \
            state.get("mtime_ns") == str(stat.st_mtime_ns) and \
            state.get("inode") == str(stat.st_ino) and \
            (state["head"], state["tail"]) == self._hashes(end)

    def _update(self, end: int, stat, show: bool) -> None:
        state = self._state()
        start, line = 0, 1
        if _grown(state, end, stat) and (state["head"], state["tail"]) == self._hashes(
                int(state["size"])):
            start, line = int(state["size"]), int(state["next_line"])
        else:
            self._db.execute("DELETE FROM records")
        line, open_end = self._index_lines(start, end, line, show)
        state = {"schema": SCHEMA, "size": end, "mtime_ns": stat.st_mtime_ns,
                 "inode": stat.st_ino,
                 "head": self._hashes(end)[0], "tail": self._hashes(end)[1],
                 "next_line": line, "open_end": int(open_end)}
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [(k, str(v)) for k, v in state.items()])

    def _index_lines(self, start: int, end: int, line: int, show: bool) -> tuple[int, bool]:
        """Parse and insert the lines of bytes [start, end); the next line's number, and
        whether the last line lacked its newline."""
        if end <= start:
            return line, False
        marks = ",".join("?" * (len(self.fields) + 2))
        insert = f"INSERT INTO records VALUES ({marks})"
        rows, position, raw = [], start, b"\n"
        with _file(self.jsonl) as f, progress_bar(enabled=show and end - start > SHOW) as bar:
            task = add_task(bar, f"Indexing {self.jsonl.name}", end - start, unit="B")
            f.seek(start)
            while position < end:
                raw = f.readline()[:end - position]
                if not raw:
                    break
                if raw.strip():
                    record = self._parse(raw, line)
                    self.parsed += 1
                    rows.append((line, position, *vars(record).values()))  # in field order
                position, line = position + len(raw), line + 1
                if len(rows) >= BATCH:
                    self._db.executemany(insert, rows)
                    bar.update(task, completed=position - start)
                    rows = []
        self._db.executemany(insert, rows)
        return line, not raw.endswith(b"\n")

    def _hashes(self, size: int) -> tuple[str, str]:
        """Hashes of the first and the last ``WINDOW`` bytes of the JSONL's first ``size``."""
        if size <= 0:
            return "", ""
        with _file(self.jsonl) as f:
            head = f.read(min(size, WINDOW))
            f.seek(max(0, size - WINDOW))
            tail = f.read(min(size, WINDOW))
        return _hash(head), _hash(tail)

    # ------------------------------------------------------------ queries

    def _records(self, where: str = "", args: tuple = ()) -> list:
        return [self._make(*row) for row in self._db.execute(
            f"SELECT {self._columns} FROM records {where} ORDER BY line", args)]

    def folder(self, split: str, country: str) -> list:
        """The records of a folder (moved-aside images included), in the manifest's order."""
        return self._records("WHERE split=? AND country=?", (split, country))

    def names(self, split: str, country: str) -> Iterator[str]:
        """The files of a folder's records (moved-aside images included)."""
        return (f for (f,) in self._db.execute(
            "SELECT file FROM records WHERE split=? AND country=?", (split, country)))

    def by_file(self, file: str):
        """The first record of ``file``, or None."""
        found = self._records("WHERE line=(SELECT MIN(line) FROM records WHERE file=?)",
                              (file,))
        return found[0] if found else None

    def has_id(self, source: str, source_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM records WHERE source=? AND source_id=? LIMIT 1",
                                (source, source_id)).fetchone() is not None

    def ids(self, source: str) -> Iterator[str]:
        return (i for (i,) in self._db.execute(
            "SELECT DISTINCT source_id FROM records WHERE source=?", (source,)))

    def count_ids(self, source: str) -> int:
        return self._db.execute("SELECT COUNT(DISTINCT source_id) FROM records WHERE source=?",
                                (source,)).fetchone()[0]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def __iter__(self) -> Iterator:
        """Every record in the manifest's order, ``BATCH`` rows at a time."""
        last = 0
        while True:
            rows = self._db.execute(f"SELECT line, {self._columns} FROM records WHERE line > ? "
                                    f"ORDER BY line LIMIT {BATCH}", (last,)).fetchall()
            if not rows:
                return
            yield from (self._make(*row[1:]) for row in rows)
            last = rows[-1][0]


def _grown(state: dict[str, str], end: int, stat) -> bool:
    """Whether the JSONL may have only grown since the index was made: the same file
    (inode), longer, and not ending in a line without its newline then (an append would
    have continued that line)."""
    return state.get("schema") == SCHEMA and all(k in state for k in _STATE) and \
        state["inode"] == str(stat.st_ino) and int(state["size"]) < end and \
        state["open_end"] == "0"


def _stat(path: Path):
    try:
        return path.stat()
    except FileNotFoundError:
        return os.stat_result((0,) * 10)


def _file(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
