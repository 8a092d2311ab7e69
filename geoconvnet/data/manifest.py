"""One manifest per root of collected (or imported) images: ``ROOT/collect-manifest.jsonl``,
a record per image: where it came from, and where it was taken when that is known.

Each image is written (atomically) before its record is appended and flushed to disk, so a
killed run loses at most the image in flight: on the next start, :func:`open_manifest`
cuts off a half-written last line (in place, never rewriting the rest) and deletes images
of ours that have no record, and their temporary files. A lock on the root keeps a second
run off it while one is going.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..utils.errors import ConfigError
from .layout import IMAGE_EXTENSIONS, SPLIT_MOVES

NAME = "collect-manifest.jsonl"
LOCK = ".collect.lock"


@dataclass
class Record:
    file: str  # relative to the root: <split>/<Country>/<id>.<ext>
    split: str
    country: str
    source: str
    source_id: str
    lat: float | None = None
    lon: float | None = None
    heading: float | None = None
    captured: str | None = None  # capture date as the source gives it
    author: str | None = None
    licence: str | None = None
    collected: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="seconds"))


class Manifest:
    """The records, indexed by folder and by source (each lookup is O(1)). ``records``
    are those whose image is in the root; one moved aside (by ``data filter`` or ``data
    dedup``) still counts as collected for :meth:`source_ids`, so it is not fetched again,
    and counts again once an undo puts it back."""

    def __init__(self, root: Path, records: list[Record]):
        self.root, self.path = root, root / NAME
        self.all_records = list(records)  # the whole file, moved-aside images included
        self.records: list[Record] = []
        self._folders: dict[tuple, list[Record]] = defaultdict(list)
        self._ids: dict[str, set[str]] = defaultdict(set)
        for record in records:
            self._index(record, (root / record.file).exists())

    def _index(self, record: Record, present: bool = True) -> None:
        self._ids[record.source].add(record.source_id)
        if present:
            self.records.append(record)
            self._folders[(record.split, record.country)].append(record)

    def folder(self, split: str, country: str) -> list[Record]:
        return self._folders[(split, country)]

    def count(self, split: str, country: str) -> int:
        return len(self._folders[(split, country)])

    def source_ids(self, source: str) -> set[str]:
        return set(self._ids[source])

    def next_stem(self, source: str, split: str, country: str) -> str:
        """``<source>-<n>``, n one past the highest of this folder's files from ``source``."""
        stems = [Path(r.file).stem for r in self.folder(split, country)]
        taken = set(stems)
        numbers = [int(s.rsplit("-", 1)[1]) for s in stems
                   if s.startswith(f"{source}-") and s.rsplit("-", 1)[1].isdigit()]
        n = max(numbers, default=-1) + 1
        while f"{source}-{n:05d}" in taken:  # renamed by a split: never reuse a name
            n += 1
        return f"{source}-{n:05d}"

    def append(self, record: Record) -> None:
        line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.all_records.append(record)
        self._index(record)


def open_manifest(root: str | Path, sources: tuple[str, ...] = (),
                  repair: bool = True) -> Manifest:
    """Read (or start) the manifest of ``root``. With ``repair``, undo what a killed run
    left behind (see the module doc). Without it nothing is written (a dry run)."""
    root = Path(root)
    path = root / NAME
    data = path.read_bytes() if path.exists() else b""
    complete = data[:data.rfind(b"\n") + 1]
    if repair and len(complete) < len(data):
        os.truncate(path, len(complete))  # drop the cut-off line, keep every byte before it
    records = [Record(**json.loads(line)) for line in complete.decode("utf-8").splitlines()
               if line]
    if repair:
        root.mkdir(parents=True, exist_ok=True)
        _drop_orphans(root, {r.file for r in records} | _split_moved(root), sources)
    return Manifest(root, records)


def _split_moved(root: Path) -> set[str]:
    """Files a ``data split`` moved (old and new names): never taken for orphans, even
    if a split was stopped between its moves and its manifest update."""
    log = root / SPLIT_MOVES
    if not log.is_file():
        return set()
    with open(log, newline="") as f:
        return {name for row in csv.DictReader(f) for name in (row["from"], row["to"])}


def lock_root(root: str | Path):
    """An exclusive lock on ``root`` for one command that writes there (collect, import,
    split, moves); released when the returned file is closed or the process ends, also
    when it is killed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / LOCK, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"{root}: another geoconvnet command is writing there (collect, "
                          "import, split or a move); wait for it to finish") from None
    return handle


def _drop_orphans(root: Path, recorded: set[str], sources: tuple[str, ...]) -> None:
    for source in sources:
        for path in root.glob(f"*/*/{source}-*"):
            if path.suffix.lower() in IMAGE_EXTENSIONS and \
                    path.relative_to(root).as_posix() not in recorded:
                path.unlink()
        for path in root.glob(f"*/*/.{source}-*.tmp"):  # a write cut off by a kill
            path.unlink()
