"""One manifest per root of collected (or imported) images: ``ROOT/collect-manifest.jsonl``,
a record per image: where it came from, and where it was taken when that is known.

A collected image is saved in three steps (:meth:`Manifest.save`): its bytes go to a
temporary name of ours (``.<name>.part``, flushed to disk), then its record is appended and
flushed, then the temporary file is renamed to its final name. So every file with a final
name has a record, and a killed run leaves at most a ``.part`` file: on the next start,
:func:`open_manifest` finishes a rename whose record was written, deletes a ``.part`` file
without one (and the temporary files of older versions), and cuts off a half-written last
line (in place, never rewriting the rest). Those are the only files it ever deletes. An
image with a final name but no record (a lost or damaged manifest, files copied in) is
never deleted: collecting refuses to start until ``geoconvnet data manifest ROOT --rebuild``
has recorded it. A lock on the root keeps a second run off it while one is going.

Every line is checked when read: bad JSON, an unknown or missing field, a wrong type or a
file outside the layout is a one-line :class:`DataError` naming the line. Lines are read
once: an index beside the manifest (:mod:`.manifest_index`) answers the queries, and each
open reads only the lines appended since (or all of them when the file was rewritten).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, MutableSet
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from ..utils.errors import ConfigError, DataError
from ..utils.io import write_text
from .layout import IMAGE_EXTENSIONS, SPLIT_MOVES, SPLITS
from .manifest_index import ManifestIndex

NAME = "collect-manifest.jsonl"
LOCK = ".collect.lock"
PART = ".part"  # suffix of an image being saved, before its record is written
SET_ASIDE = "collect-manifest.set-aside.jsonl"  # bad lines moved out by --rebuild
REBUILD_HINT = "geoconvnet data manifest {root} --rebuild"
# Names a collector gives its images: <source>-<number>, with a suffix a split may add.
COLLECTED_NAME = re.compile(r"^(?P<source>[a-z]+)-\d{5,}(?:-[a-z]+\d*)?$")


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


FIELDS = {f.name: f for f in fields(Record)}
REQUIRED = ("file", "split", "country", "source", "source_id")
NUMBERS = ("lat", "lon", "heading")


class Manifest:
    """The records, answered by the manifest's index (:mod:`.manifest_index`): a folder, a
    file, a source's ids are queries, and no Record is held for the whole manifest.
    ``folder``/``count``/:meth:`iter_records` with ``present`` give the records whose image
    is in the root; one moved aside (by ``data filter`` or ``data dedup``) still counts as
    collected for :meth:`source_ids`, so it is not fetched again, and counts again once an
    undo puts it back. Records appended inside a :meth:`batch` are queried once written."""

    def __init__(self, root: Path, index: ManifestIndex):
        self.root, self.path, self.index = root, root / NAME, index
        self._stems: dict[tuple, set[str]] = {}  # (split, country) -> names taken; lazy
        self._next: dict[tuple, int] = {}  # (source, split, country) -> first number to try
        self._pending: list[str] = []  # lines not yet on disk (see batch)
        self._batch_size = 1

    def iter_records(self, present: bool = False) -> Iterator[Record]:
        """Every record in the manifest's order (with ``present``: those whose image is in
        the root), read from the index a batch at a time: memory does not grow with it."""
        return (r for r in self.index if not present or (self.root / r.file).exists())

    @property
    def records(self) -> list[Record]:
        """The records whose image is in the root, as a list (for small roots and tests;
        :meth:`iter_records` does not hold them all)."""
        return list(self.iter_records(present=True))

    @property
    def all_records(self) -> list[Record]:
        """Every record, moved-aside images included, as a list (see :attr:`records`)."""
        return list(self.iter_records())

    def folder(self, split: str, country: str) -> list[Record]:
        """The records of a folder whose image is there (one listing of the folder)."""
        there = self._listing(split, country)
        return [r for r in self.index.folder(split, country)
                if r.file.rsplit("/", 1)[1] in there]

    def count(self, split: str, country: str) -> int:
        """len(folder(split, country)), from the files' names alone."""
        there = self._listing(split, country)
        return sum(f.rsplit("/", 1)[1] in there for f in self.index.names(split, country))

    def _listing(self, split: str, country: str) -> set[str]:
        place = self.root / split / country
        return set(os.listdir(place)) if place.is_dir() else set()

    def record(self, file: str) -> Record | None:
        """The record of ``file`` (relative to the root), or None."""
        return self.index.by_file(file)

    def source_ids(self, source: str) -> SourceIds:
        return SourceIds(self.index, source)

    def recorded_files(self, extra=()) -> RecordedFiles:
        return RecordedFiles(self.index, extra)

    def by_file(self) -> RecordsByFile:
        return RecordsByFile(self)

    def next_stem(self, source: str, split: str, country: str, ext: str = "") -> str:
        """``<source>-<n>``, n one past the highest of this folder's files from ``source``;
        a name of the manifest (moved-aside images included) or on disk (with ``ext``) is
        never taken, recorded or not. The folder's names are gathered once and the next
        number is remembered, so naming k images costs O(k), not O(k^2)."""
        folder = (split, country)
        if folder not in self._stems:
            self._stems[folder] = {Path(f).stem for f in self.index.names(split, country)}
        taken = self._stems[folder]
        key = (source, split, country)
        if key not in self._next:
            self._next[key] = _highest(self.folder(split, country), source) + 1
        n, place = self._next[key], self.root / split / country
        while f"{source}-{n:05d}" in taken or (place / f"{source}-{n:05d}{ext}").exists():
            n += 1  # renamed by a split, or a file we do not know: never reuse a name
        self._next[key] = n  # still free until a record takes it: asked again, the same
        return f"{source}-{n:05d}"

    def append(self, record: Record) -> None:
        """Add a record, on disk before this returns (inside :meth:`batch`: by its end). A
        record the reader would refuse (a NaN, a position off the globe, a file outside the
        layout) is refused here, so no writer can spoil a manifest."""
        line = json.dumps(asdict(record), ensure_ascii=False)
        problem = _problem(line)
        if problem:
            raise DataError(f"{self.path}: refusing a bad record for {record.file!r} "
                            f"({problem})")
        self._pending.append(line + "\n")
        folder = (record.split, record.country)
        if folder in self._stems:  # a folder being named: its new names are taken too
            self._stems[folder].add(Path(record.file).stem)
        if len(self._pending) >= self._batch_size:
            self._flush()

    @contextlib.contextmanager
    def batch(self, size: int = 1000):
        """Records appended inside are written and synced ``size`` at a time (an import of
        millions would spend most of its time in fsync otherwise). For writers that give an
        image its final name before its record, and recognise it again without its record
        (an import's hard links and copies, by content): a kill then leaves at most one
        batch of images without records, which a rerun records. The images' data is synced
        before their records are written (one sync per batch), so even a power cut leaves
        no record of an image that is not on disk."""
        self._batch_size = size
        try:
            yield self
        finally:
            self._flush()
            self._batch_size = 1

    def _flush(self) -> None:
        """The pending lines to the JSONL (synced), then to the index: a kill between the
        two leaves lines the next open indexes as a grown tail."""
        if not self._pending:
            return
        if self._batch_size > 1:
            os.sync()  # the batch's images first, all at once: never a record without one
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(self._pending))
            f.flush()
            os.fsync(f.fileno())
            end = f.tell()
        self._pending = []
        self.index.sync(end)

    def save(self, record: Record, data: bytes) -> None:
        """Write an image and its record so that a kill at any point leaves either nothing
        with a final name, or the image with its record (see the module doc)."""
        path = self.root / record.file
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise DataError(f"{path}: already there; it would be overwritten")
        part = part_path(path)
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            self.append(record)
        except BaseException:
            part.unlink(missing_ok=True)  # no record was written: nothing to finish later
            raise
        os.replace(part, path)

    def close(self) -> None:
        self.index.close()


class SourceIds(MutableSet):
    """A source's ids as a set, asked of the index one id at a time (never all in memory);
    ids added are kept here (the manifest is not changed)."""

    def __init__(self, index: ManifestIndex, source: str):
        self._index, self._source, self._added = index, source, set()

    def __contains__(self, source_id) -> bool:
        return source_id in self._added or self._index.has_id(self._source, source_id)

    def __iter__(self) -> Iterator[str]:
        yield from self._added
        yield from (i for i in self._index.ids(self._source) if i not in self._added)

    def __len__(self) -> int:
        return self._index.count_ids(self._source) + sum(
            not self._index.has_id(self._source, i) for i in self._added)

    def add(self, source_id: str) -> None:
        self._added.add(source_id)

    def discard(self, source_id: str) -> None:
        raise TypeError("the manifest's ids are not removed")


class RecordsByFile(Mapping):
    """{file: record} of the records whose image is in the root, asked of the index one
    file at a time; ``values()`` reads them lazily."""

    def __init__(self, manifest: Manifest):
        self._manifest = manifest

    def __getitem__(self, file: str) -> Record:
        record = self._manifest.record(file)
        if record is None or not (self._manifest.root / file).exists():
            raise KeyError(file)
        return record

    def __iter__(self) -> Iterator[str]:
        return (r.file for r in self.values())

    def __len__(self) -> int:
        return sum(1 for _ in self.values())

    def values(self) -> Iterator[Record]:
        return self._manifest.iter_records(present=True)


class RecordedFiles:
    """``file in recorded`` and ``recorded[file]`` (its source_id) for every record (and
    the files ``extra``), asked of the index one file at a time; files set or added are
    kept here (the manifest is not changed)."""

    def __init__(self, index: ManifestIndex, extra=()):
        self._index, self._added = index, dict.fromkeys(extra, "")

    def get(self, file: str, default=None):
        if file in self._added:
            return self._added[file]
        record = self._index.by_file(file)
        return default if record is None else record.source_id

    def __contains__(self, file: str) -> bool:
        return self.get(file) is not None

    def __getitem__(self, file: str) -> str:
        found = self.get(file)
        if found is None:
            raise KeyError(file)
        return found

    def __setitem__(self, file: str, source_id: str) -> None:
        self._added[file] = source_id

    def add(self, file: str) -> None:
        self._added[file] = ""


def _highest(records: list[Record], source: str) -> int:
    """The highest number of the names ``<source>-<n>`` among ``records`` (-1 if none)."""
    stems = (Path(r.file).stem for r in records)
    return max((int(s.rsplit("-", 1)[1]) for s in stems
                if s.startswith(f"{source}-") and s.rsplit("-", 1)[1].isdigit()), default=-1)


def part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PART}")


def open_manifest(root: str | Path, sources: tuple[str, ...] = (),
                  repair: bool = True) -> Manifest:
    """Open (or start) the manifest of ``root``: its index is brought up to date (see
    :mod:`.manifest_index`; only what is new is read). With ``repair``, finish or undo what
    a killed run of ``sources`` left behind (see the module doc), and refuse to go on when
    images of ``sources`` have no record. Without it nothing of the dataset is written (a
    dry run; the index may be)."""
    root = Path(root)
    path = root / NAME
    end = _complete_end(path, repair)
    if repair:
        root.mkdir(parents=True, exist_ok=True)
    index = ManifestIndex(path, tuple(FIELDS), _parse_line(path), Record,
                          writable=root.is_dir())
    try:
        index.sync(end, show=True)
        manifest = Manifest(root, index)
        if repair:
            _finish_saves(root, manifest, sources)
            _refuse_unrecorded(root, manifest.recorded_files(_split_moved(root)), sources)
    except BaseException:
        index.close()
        raise
    return manifest


def _parse_line(path: Path):
    def parse(raw: bytes, number: int) -> Record:
        try:
            return parse_record(raw)
        except ValueError as exc:
            raise _bad_line(path, number, exc) from None
    return parse


def _bad_line(path: Path, number: int, exc: ValueError) -> DataError:
    return DataError(f"{path} line {number}: {exc}; fix or delete the line, or set bad lines "
                     f"aside with `{REBUILD_HINT.format(root=path.parent)}`")


def _complete_end(path: Path, repair: bool) -> int:
    """The bytes of the manifest's complete lines, without a cut-off last one (a killed
    append): with ``repair`` it is cut off in place, never rewriting the rest. A last line
    that is a whole record but lacks its newline (an editor dropped it) is kept, and with
    ``repair`` given its newline. Only the last line is read."""
    size = _stat_size(path)
    tail = _last_line(path, size)
    if not tail.strip():
        return size
    try:
        parse_record(tail)
    except ValueError:
        if repair:
            os.truncate(path, size - len(tail))
        return size - len(tail)
    if repair:
        with open(path, "ab") as f:
            f.write(b"\n")
        return size + 1
    return size


def _stat_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _last_line(path: Path, size: int, block: int = 1 << 16) -> bytes:
    """The bytes after the last newline of the file's first ``size`` bytes."""
    if size == 0:
        return b""
    try:
        with open(path, "rb") as f:
            start = size
            while start > 0:
                start = max(0, start - block)
                f.seek(start)
                data = f.read(size - start)
                if b"\n" in data:
                    return data[data.rfind(b"\n") + 1:]
                block *= 2
            return data
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes() if path.exists() else b""
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def parse_lines(path: Path, data: bytes, bad: list | None = None) -> list[Record]:
    """The records of a manifest's complete lines. A bad line raises a one-line DataError,
    or, with ``bad`` given, is appended there as (line number, text, problem)."""
    records = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            records.append(parse_record(raw))
        except ValueError as exc:
            if bad is None:
                raise _bad_line(path, number, exc) from None
            bad.append((number, raw, str(exc)))
    return records


def parse_record(raw: bytes) -> Record:
    """One line as a Record; ValueError says what is wrong with it."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    missing = [name for name in REQUIRED if not isinstance(data.get(name), str)
               or not data[name]]
    if missing:
        raise ValueError(f"missing or empty field(s) {', '.join(map(repr, missing))}")
    for name, value in data.items():
        numeric = name in NUMBERS
        if value is not None and not (_is_number(value) if numeric else isinstance(value, str)):
            raise ValueError(f"field {name!r} should be {'a number' if numeric else 'text'}"
                             f" or null, not {value!r}")
    record = Record(**data)
    _check_place(record)
    return record


def _problem(line: str) -> str | None:
    """What the reader would say of a record's line, or None."""
    try:
        parse_record(line.encode())
    except ValueError as exc:
        return str(exc)
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _check_place(record: Record) -> None:
    parts = record.file.split("/")
    if len(parts) != 3 or parts[0] not in SPLITS or any(p in ("", ".", "..") for p in parts) \
            or parts[0] != record.split or parts[1] != record.country:
        raise ValueError(f"file {record.file!r} is not <split>/<country>/<name> of its "
                         f"split {record.split!r} and country {record.country!r}")
    if record.lat is not None and not -90 <= record.lat <= 90 or \
            record.lon is not None and not -180 <= record.lon <= 180:
        raise ValueError(f"position {record.lat}, {record.lon} is not a latitude, longitude")


def _split_moved(root: Path) -> set[str]:
    """Files a ``data split`` moved (old and new names): never taken for unrecorded, even
    if a split was stopped between its moves and its manifest update."""
    log = root / SPLIT_MOVES
    if not log.is_file():
        return set()
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"from", "to"} <= set(rows[0]):
        raise DataError(f"{log}: not a split's record of moves (no from,to columns); restore "
                        "it, or move it away if no split is under way")
    return {name for row in rows for name in (row["from"], row["to"])}


# Folders of the operating system: a dataset root there would scatter train/ and test/
# among system files (or fail half-way through).
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc",
                  "/run", "/sbin", "/sys", "/usr", "/var")
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin",
                "/sys", "/usr/bin", "/usr/lib", "/usr/sbin", "/usr/share")


def check_root_folder(root: str | Path, flag: str) -> None:
    """A one-line ConfigError when ``root`` cannot be a dataset root that this command
    writes: a system folder, a path under a file, or a folder it may not write to."""
    path = Path(os.path.abspath(root))
    posix = path.as_posix()
    if os.name == "posix" and (posix in SYSTEM_FOLDERS or
                               any(posix.startswith(t + "/") for t in SYSTEM_TREES)):
        raise ConfigError(f"{flag} {root}: a system folder; choose a folder of your own, "
                          "e.g. ~/geoconvnet-data")
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {root}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{flag} {root}: {parent} is not writable by you; choose "
                                  "a folder you can write to")
            return


def lock_root(root: str | Path):
    """An exclusive lock on ``root`` for one command that writes there (collect, import,
    split, moves); released when the returned file is closed or the process ends, also
    when it is killed."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / LOCK, "w")
    except OSError as exc:
        raise ConfigError(f"{root}: cannot write there ({_why(root, exc)}); choose a folder "
                          "you can write to") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"{root}: another geoconvnet command is writing there (collect, "
                          "import, split or a move); wait for it to finish") from None
    return handle


def _why(root: Path, exc: OSError) -> str:
    for parent in (root, *root.parents):
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    return exc.strerror or type(exc).__name__


def _finish_saves(root: Path, manifest: Manifest, sources: tuple[str, ...]) -> None:
    """A ``.part`` with a record is renamed to its name; one without a record, and an older
    version's ``.<name>.<random>.tmp``, is deleted: both are temporary names of ours."""
    for source in sources:
        for part in root.glob(f"*/*/.{source}-*{PART}"):
            final = part.with_name(part.name[1:-len(PART)])
            if manifest.record(final.relative_to(root).as_posix()) is not None \
                    and not final.exists():
                os.replace(part, final)
            else:
                part.unlink()
        for temporary in root.glob(f"*/*/.{source}-*.tmp"):
            temporary.unlink()


def unrecorded_images(root: Path, recorded, sources: tuple[str, ...] | None = None
                      ) -> list[str]:
    """Relative paths of images named as a collector names them (of ``sources``, or of any
    source) that have no record."""
    found = []
    for split in SPLITS:
        for path in sorted((root / split).glob("*/*")):
            match = COLLECTED_NAME.match(path.stem)
            relative = path.relative_to(root).as_posix()
            if match and path.suffix.lower() in IMAGE_EXTENSIONS and relative not in recorded \
                    and (sources is None or match["source"] in sources):
                found.append(relative)
    return found


def _refuse_unrecorded(root: Path, recorded, sources: tuple[str, ...]) -> None:
    if not sources:
        return
    lost = unrecorded_images(root, recorded, sources)
    if lost:
        what = "no manifest" if not (root / NAME).exists() else f"no record in {NAME}"
        raise DataError(f"{root}: {len(lost)} collected image(s) have {what} (first: {lost[0]}); "
                        f"nothing was deleted. Record them with "
                        f"`{REBUILD_HINT.format(root=root)}`, then run again")


@dataclass
class RebuildResult:
    records: int  # good records kept
    set_aside: int  # bad lines moved to SET_ASIDE
    added: int  # records made for unrecorded images
    missing: int  # records whose image is not in the root (moved aside, or gone)


def rebuild_manifest(root: str | Path, dry_run: bool = False) -> RebuildResult:
    """Make a root's manifest whole again: bad lines go to ``SET_ASIDE`` (kept, never
    deleted), and every image named as a collector names it (``<source>-NNNNN``) without a
    record gets one of what its path tells (split, country, source; no position). Their ``source_id`` is ``file:<path>``, so a later collect may fetch the
    same place again (``data dedup`` finds such copies)."""
    root = Path(root)
    if not any((root / s).is_dir() for s in SPLITS):
        raise DataError(f"{root}: no train/ or test/ folder; give the dataset root")
    lock = None if dry_run else lock_root(root)  # a check writes nothing, not even a lock
    try:
        path = root / NAME
        data = _read(path)
        bad: list = []
        records = parse_lines(path, data, bad)
        recorded = {r.file for r in records}
        new = [_record_from_path(f) for f in unrecorded_images(root, recorded)]
        missing = sum(1 for r in records if not (root / r.file).exists())
        if not dry_run and (bad or new):
            _write_rebuilt(root, records + new, bad)
        return RebuildResult(len(records), len(bad), len(new), missing)
    finally:
        if lock is not None:
            lock.close()


def _record_from_path(relative: str) -> Record:
    split, country, name = relative.split("/")
    match = COLLECTED_NAME.match(Path(name).stem)
    return Record(relative, split, country, match["source"], f"file:{relative}")


def _write_rebuilt(root: Path, records: list[Record], bad: list) -> None:
    if bad:
        with open(root / SET_ASIDE, "ab") as f:  # appended: earlier set-asides stay
            for _, raw, _ in bad:
                f.write(raw.rstrip(b"\r") + b"\n")
            f.flush()
            os.fsync(f.fileno())
    write_text(root / NAME, "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n"
                                    for r in records))
