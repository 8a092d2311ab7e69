"""One manifest per collected root: ``ROOT/collect-manifest.jsonl``, a record per image.

Each image is written (atomically) before its record is appended and flushed to disk, so a
killed run loses at most the image in flight: on the next start, :func:`open_manifest`
drops a half-written last line and deletes images of ours that have no record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..data.layout import IMAGE_EXTENSIONS

NAME = "collect-manifest.jsonl"


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
    def __init__(self, root: Path, records: list[Record]):
        self.root, self.records = root, records
        self.path = root / NAME

    def count(self, split: str, country: str) -> int:
        return sum(1 for r in self.records if (r.split, r.country) == (split, country))

    def source_ids(self, source: str) -> set[str]:
        return {r.source_id for r in self.records if r.source == source}

    def next_id(self, source: str, split: str, country: str) -> str:
        """A file stem no record of this folder uses: ``<source>-<n>``."""
        taken = {Path(r.file).stem for r in self.records
                 if (r.split, r.country) == (split, country)}
        n = len(taken)
        while f"{source}-{n:05d}" in taken:
            n += 1
        return f"{source}-{n:05d}"

    def append(self, record: Record) -> None:
        line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)


def open_manifest(root: str | Path, sources: tuple[str, ...] = (),
                  repair: bool = True) -> Manifest:
    """Read (or start) the manifest of ``root``. With ``repair``, undo what a killed run
    left behind: a half-written last line, and images named by one of ``sources`` that
    have no record. Without it nothing is written (a dry run)."""
    root = Path(root)
    path = root / NAME
    records = []
    if path.exists():
        text = path.read_text(encoding="utf-8")
        complete, _, partial = text.rpartition("\n")
        if partial and repair:  # the last write was cut off: keep the complete lines only
            path.write_text(complete + "\n" if complete else "", encoding="utf-8")
        records = [Record(**json.loads(line)) for line in complete.splitlines() if line]
    if repair:
        root.mkdir(parents=True, exist_ok=True)
        _drop_orphans(root, {r.file for r in records}, sources)
    return Manifest(root, records)


def _drop_orphans(root: Path, recorded: set[str], sources: tuple[str, ...]) -> None:
    for source in sources:
        for path in root.glob(f"*/*/{source}-*"):
            relative = path.relative_to(root).as_posix()
            if path.suffix.lower() in IMAGE_EXTENSIONS and relative not in recorded:
                path.unlink()
