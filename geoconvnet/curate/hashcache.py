"""The hash cache of ``data dedup``: ``ROOT/.geoconvnet-hashes.sqlite``, one row per image.

SQLite in WAL mode (stdlib), so that it is read in part and written by rows: a run looks up
only the files it hashes (by relative path, or by content SHA-256 for a moved file) and
commits its new rows in batches, so a kill keeps every finished batch (a rerun hashes the
rest). Only the main process opens it; the worker processes return their results to it.

A row is keyed by the relative path and valid while the file's size and modification time
match and its ``format`` is the hasher's (rows of another format are hashed again and
replaced). The verdicts of pixel checks of pairs (:mod:`.nearcopy`) are rows too, keyed by
the two SHA-256s and the check's version.

A file there that SQLite cannot read as a database (or one of another layout) is set aside
(renamed, never deleted: ``....sqlite.unreadable-N``) with a one-line warning, and the cache
rebuilt; damage found later in a run is a DataError naming the file.

SQLite's locks need every process on one machine: keep the root on a local disk or give each
machine its own copy (SQLite over NFS can corrupt a database).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from ..utils.errors import DataError
from ..utils.io import set_aside as _set_aside
from ..utils.progress import err_console

NAME = ".geoconvnet-hashes.sqlite"
SCHEMA = 1  # of the tables; a database of another layout is set aside
COLUMNS = ("path", "nbytes", "mtime_ns", "format", "sha256", "readable", "width", "height",
           "phash", "halves", "thumb", "detail", "from_cache", "error")
LOOKUP = 500  # paths per query (SQLite allows 32,766 parameters; a short statement is cheap)

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, nbytes INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    format INTEGER NOT NULL, sha256 BLOB NOT NULL, readable INTEGER NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, phash BLOB, halves BLOB, thumb BLOB,
    detail REAL NOT NULL, from_cache INTEGER NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS verdicts (
    pair TEXT PRIMARY KEY, version INTEGER NOT NULL, coarse REAL, texture REAL,
    measured INTEGER NOT NULL);
"""


class HashCache:
    """An open hash cache (``with HashCache(root) as cache:``); made when missing."""

    def __init__(self, root: str | Path):
        self.path = Path(root) / NAME
        try:
            self._db = self._open()
        except sqlite3.OperationalError as exc:  # locked, or not writable: not its content
            raise self._error(exc) from None
        except sqlite3.DatabaseError as exc:  # not a database, or of another layout
            aside = _set_aside(self.path)
            err_console.print(f"warning: {self.path} is unreadable ({_why(exc)}); set aside as "
                              f"{aside.name}; it is only a cache: hashing every image again",
                              markup=False, soft_wrap=True)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            # WAL: readers never wait for the writer, and a commit is one append. NORMAL: a
            # power cut may lose the last batches but never breaks the file (a cache).
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                db.executescript(_TABLES)
            with db:
                found = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if found is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                elif found[0] != str(SCHEMA):
                    raise sqlite3.DatabaseError(f"layout {found[0]}, not {SCHEMA}")
        except BaseException:
            db.close()
            raise
        return db

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()  # the last connection checkpoints and removes the -wal file

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> DataError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return DataError(f"{self.path} is in use by another process (another `data dedup` "
                             "of this root?); wait for it to finish")
        if isinstance(exc, sqlite3.OperationalError):
            return DataError(f"{self.path} cannot be used ({_why(exc)})")
        return DataError(f"{self.path} is damaged ({_why(exc)}); it is only a cache: move it "
                         "aside and run again")

    # ------------------------------------------------------------ file rows

    def rows(self, paths: list[str], thumb: bool = True) -> dict[str, tuple]:
        """{relative path: row (in the order of ``COLUMNS``)} of those of ``paths`` it has;
        ``thumb`` False: its thumbnail None (most of a row's bytes, read when needed)."""
        found = {}
        columns = ",".join(c if thumb or c != "thumb" else "NULL" for c in COLUMNS)
        for start in range(0, len(paths), LOOKUP):
            chunk = paths[start:start + LOOKUP]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT {columns} FROM files WHERE path IN ({marks})",
                                   chunk):
                found[row[0]] = row
        return found

    def thumbs(self, paths: list[str]) -> dict[str, tuple[bytes, bytes | None]]:
        """{relative path: (sha256, thumbnail blob)} of those of ``paths`` it has."""
        found = {}
        for start in range(0, len(paths), LOOKUP):
            chunk = paths[start:start + LOOKUP]
            marks = ",".join("?" * len(chunk))
            for path, digest, thumb in self._query(
                    f"SELECT path, sha256, thumb FROM files WHERE path IN ({marks})", chunk):
                found[path] = (digest, thumb)
        return found

    def row_by_sha256(self, digest: bytes, format: int) -> tuple | None:
        """A readable row of that content and format, if any."""
        found = self._query("SELECT * FROM files WHERE sha256=? AND format=? AND readable=1 "
                            "LIMIT 1", (digest, format))
        return found[0] if found else None

    def count(self) -> int:
        return self._query("SELECT COUNT(*) FROM files")[0][0]

    def paths(self) -> Iterator[str]:
        """Every relative path, a batch at a time (never the whole table in memory at once)."""
        last = ""
        while True:
            batch = self._query("SELECT path FROM files WHERE path > ? ORDER BY path LIMIT 10000",
                                (last,))
            if not batch:
                return
            yield from (p for (p,) in batch)
            last = batch[-1][0]

    def put(self, rows: list[tuple]) -> None:
        """Insert or replace ``rows`` in one transaction."""
        marks = ",".join("?" * len(COLUMNS))
        self._write(f"INSERT OR REPLACE INTO files VALUES ({marks})", rows)

    def delete(self, paths: list[str]) -> None:
        self._write("DELETE FROM files WHERE path=?", [(p,) for p in paths])

    def _write(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        try:
            with self._db:
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    # ------------------------------------------------------------ the rest

    def meta(self, key: str) -> str | None:
        found = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return found[0][0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(key, value)])

    def verdict(self, pair: str, version: int) -> tuple[float, float, bool] | None:
        found = self._query("SELECT coarse, texture, measured FROM verdicts WHERE pair=? AND "
                            "version=?", (pair, version))
        if not found:
            return None
        coarse, texture, measured = found[0]
        return _real(coarse), _real(texture), bool(measured)

    def put_verdicts(self, verdicts: Iterable[tuple[str, tuple]], version: int) -> None:
        self._write("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                    [(k, version, float(c), float(t), int(m)) for k, (c, t, m) in verdicts])


class Verdicts:
    """The cached verdicts as a dict (``get``, ``[]``, ``[] =``) that reads a pair's row when
    first asked (never every verdict at once) and remembers what was set, for
    :func:`save_verdicts`."""

    def __init__(self, root: str | Path, version: int):
        self.root, self.version = Path(root), version
        self.known: dict[str, tuple | None] = {}
        self.new: set[str] = set()
        self._cache: HashCache | None = None

    def get(self, pair: str, default=None):
        if pair not in self.known:
            if self._cache is None:
                self._cache = HashCache(self.root)
            self.known[pair] = self._cache.verdict(pair, self.version)
        found = self.known[pair]
        return default if found is None else found

    def __getitem__(self, pair: str) -> tuple:
        found = self.get(pair)
        if found is None:
            raise KeyError(pair)
        return found

    def __setitem__(self, pair: str, verdict: tuple) -> None:
        self.known[pair] = verdict
        self.new.add(pair)

    def __contains__(self, pair: str) -> bool:
        return self.get(pair) is not None

    def flush(self) -> None:
        """Write the verdicts set so far and forget what was read (a pair asked again is
        read again): what is held stays bounded however many pairs a run checks."""
        if self.new:
            if self._cache is None:
                self._cache = HashCache(self.root)
            self._cache.put_verdicts([(k, self.known[k]) for k in sorted(self.new)],
                                     self.version)
        self.known.clear()
        self.new.clear()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def save_verdicts(root: str | Path, verdicts, version: int) -> None:
    """Write the verdicts set since they were read (all of them for a plain dict)."""
    if isinstance(verdicts, Verdicts):
        items = [(k, verdicts.known[k]) for k in sorted(verdicts.new)]
        verdicts.close()
        verdicts.new.clear()
    else:
        items = sorted(verdicts.items())
    with HashCache(root) as cache:
        cache.put_verdicts(items, version)


def _real(value: float | None) -> float:
    return float("nan") if value is None else value  # SQLite stores NaN as NULL


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
