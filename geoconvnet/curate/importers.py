"""``data import``: bring existing datasets into the reference layout.

* ``folders``: a folder per country with any naming (``united_states``, ``South-Korea``,
  ``CIV``...), optionally under ``train/`` and ``test/``. Names are mapped to countries by
  :func:`geoconvnet.data.countries.candidates`; a name that is not exactly one country
  (``XX``, ``Korea``) is reported with its image count, never guessed. The reference's 85
  countries are kept unless ``all_countries``; countries with fewer than
  ``min_per_country`` images are left out. Files are hard-linked (copied only across file
  systems), so an import costs no space, and a second run adds only what is new.
* ``osv5m``: OSV-5M (5.1 million street-level images with coordinates), filtered by
  country, with each image's position, date and creator in the manifest. Images are found
  by their id in every layout it ships or extracts to (see :func:`import_osv5m`); rows
  whose image is missing are counted and the first ids listed.
* ``hf``: a dataset on the Hugging Face Hub in the reference's format (an image column and
  a ClassLabel column): :func:`geoconvnet.data.download.download`.

An import that would bring in nothing (no folder, no image, no row of a kept country, no
row with an image) is a one-line DataError that says what was expected, before anything
is written.
"""

from __future__ import annotations

import csv
import filecmp
import functools
import math
import os
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..data.countries import REFERENCE_COUNTRIES, candidates, country_of
from ..data.layout import IMAGE_EXTENSIONS, SPLITS, image_files
from ..data.manifest import Record, lock_root, open_manifest, part_path
from ..utils.errors import DataError
from ..utils.progress import add_task, progress_bar

SHOWN = 5  # names or ids quoted in a message or kept as examples
BATCH = 1000  # records written (and their images synced) together: see Manifest.batch


@dataclass
class ImportResult:
    imported: Counter = field(default_factory=Counter)  # country -> new images
    already: Counter = field(default_factory=Counter)  # country -> images there before
    unmapped: dict[str, int] = field(default_factory=dict)  # source name/code -> images (rows)
    ambiguous: dict[str, tuple] = field(default_factory=dict)  # unmapped name -> candidates
    outside: dict[str, int] = field(default_factory=dict)  # mapped, not a reference country
    too_few: dict[str, int] = field(default_factory=dict)  # country -> images (< minimum)
    copied: int = 0  # files copied because a hard link was not possible
    missing: Counter = field(default_factory=Counter)  # osv5m: split -> rows without image
    missing_ids: list[str] = field(default_factory=list)  # osv5m: the first of them
    unreadable: list[str] = field(default_factory=list)  # osv5m: ids whose zip member is bad
    rows: int = 0  # osv5m: rows of kept countries


def _country(name: str, all_countries: bool) -> tuple[str, str, tuple]:
    """(what happens to a folder name or country code, under which name, the candidates):
    ``"kept"`` with its class folder; ``"outside"`` (not a reference country) with its
    class folder; ``"unmapped"`` (not exactly one country) with the name itself and, when
    ambiguous, the class folders it could be."""
    found = candidates(name)
    if len(found) != 1:
        return "unmapped", name, tuple(country_of(c).folder for c in found)
    folder = country_of(found[0]).folder
    return ("kept" if all_countries or folder in REFERENCE_COUNTRIES else "outside"), folder, ()


def _keep(mapping: tuple[str, str, tuple], n: int, result: ImportResult) -> str | None:
    """The class folder of a kept country, or None with its ``n`` images (rows) counted
    where the result says why they were left out."""
    kind, name, options = mapping
    if kind == "kept":
        return name
    table = result.unmapped if kind == "unmapped" else result.outside
    table[name] = table.get(name, 0) + n
    if options:
        result.ambiguous[name] = options
    return None


def _shown(counts: dict) -> str:
    """``'XX' (3), 'Korea' (2)...``: the biggest first."""
    items = sorted(counts.items(), key=lambda item: -item[1])
    text = ", ".join(f"{name!r} ({n})" for name, n in items[:SHOWN])
    return text + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _why_nothing(result: ImportResult, min_per_country: int, rename: bool = True) -> str:
    """What left everything out, for the error of an import of nothing."""
    parts = []
    if result.unmapped:
        parts.append(f"not one country: {_shown(result.unmapped)}" +
                     (" (rename them to a country name or ISO code)" if rename else ""))
    if result.outside:
        parts.append(f"not among the reference's 85: {_shown(result.outside)} "
                     "(--all-countries keeps them)")
    if result.too_few:
        parts.append(f"fewer than --min-per-country {min_per_country}: "
                     f"{_shown(result.too_few)}")
    return "; ".join(parts)


# -- folders -----------------------------------------------------------------------------
def import_folders(src: str | Path, out: str | Path, all_countries: bool = False,
                   min_per_country: int = 1) -> ImportResult:
    """Import ``src``'s country folders into ``out`` (see the module doc)."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"{src}: folder not found")
    result = ImportResult()
    plan = _plan(src, result, all_countries, min_per_country)
    if not any(plan.values()):
        raise DataError(_nothing_in_folders(src, result, min_per_country))
    lock = lock_root(out)
    try:
        manifest = open_manifest(out, ("folders",))
        seen = manifest.source_ids("folders")
        recorded = manifest.recorded_files()  # asked of the manifest's index per file
        with progress_bar() as bar, manifest.batch(BATCH):
            task = add_task(bar, "Importing", sum(len(files) for files in plan.values()))
            for (split, country), files in plan.items():
                for path in files:
                    source_id = str(Path(path).resolve())  # two sources may share names
                    relative = None if source_id in seen else \
                        _place(path, out, split, country, result, recorded)
                    if relative is None or relative in recorded:  # e.g. the source moved
                        result.already[country] += 1
                    else:
                        manifest.append(Record(relative, split, country, "folders", source_id))
                        recorded[relative] = source_id
                        result.imported[country] += 1
                    bar.advance(task)
    finally:
        lock.close()
    return result


def _nothing_in_folders(src: Path, result: ImportResult, min_per_country: int) -> str:
    why = _why_nothing(result, min_per_country)
    if why:
        return f"{src}: no image could be imported; its folders are {why}"
    return (f"{src}: no images to import; expected {src}/<Country>/<image> or "
            f"{src}/train/<Country>/<image> ({', '.join(IMAGE_EXTENSIONS)} files)")


def _plan(src: Path, result: ImportResult, all_countries: bool,
          min_per_country: int) -> dict[tuple[str, str], list[str]]:
    """(split, country folder) -> source files, after mapping and the filters."""
    has_splits = any((src / s).is_dir() for s in SPLITS)
    bases = [(s, src / s) for s in SPLITS if (src / s).is_dir()] if has_splits else \
        [("train", src)]
    plan: dict[tuple[str, str], list[str]] = {}
    for split, base in bases:
        for folder in sorted(p for p in base.iterdir() if p.is_dir()
                             and not p.name.startswith(".")):
            files = image_files(folder)
            if not files:
                continue  # an empty folder: nothing to map or to report
            country = _keep(_country(folder.name, all_countries), len(files), result)
            if country is not None:
                plan.setdefault((split, country), []).extend(files)
    totals = Counter()
    for (_, country), files in plan.items():
        totals[country] += len(files)
    for country, n in totals.items():
        if n < min_per_country:
            result.too_few[country] = n
    return {key: files for key, files in plan.items() if key[1] not in result.too_few}


def _place(path: str, out: Path, split: str, country: str, result: ImportResult,
           recorded: dict[str, str]) -> str:
    """Hard-link (or copy) one file into ``out``; a name already taken gets a suffix. A
    file already there with the same content is taken as it is when no record holds it (a
    run stopped before its record) or its record's source is gone (the source folder
    moved): never linked or copied twice."""
    folder = out / split / country
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(path).name
    stem, suffix, n = Path(name).stem, Path(name).suffix, 1
    while (folder / name).exists():
        relative = f"{split}/{country}/{name}"
        if (relative not in recorded or not Path(recorded[relative]).exists()) and \
                _same_file(folder / name, Path(path)):
            return relative
        name = f"{stem}-{n}{suffix}"
        n += 1
    _link_or_copy(Path(path), folder / name, result)
    return f"{split}/{country}/{name}"


def _link_or_copy(source: Path, target: Path, result: ImportResult) -> None:
    """A hard link (one step, never half-made), else a copy under our temporary name
    renamed when whole: a kill never leaves a cut image under a final name. A temporary
    file of a killed run is overwritten by the rerun, which writes the same name again."""
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: a copy, then
        _write_whole(target, lambda part: shutil.copy2(source, part))
        result.copied += 1


def _write_whole(target: Path, write) -> None:
    part = part_path(target)
    write(part)
    os.replace(part, target)


# -- OSV-5M ------------------------------------------------------------------------------
OSV5M_LICENCE = "CC BY-SA 4.0"
OSV5M_COUNTRY_COLUMNS = ("country", "unique_country")  # ISO alpha-2 codes
OSV5M_LAYOUTS = ("images/<split>/NN.zip (as osv5m/osv5m ships them), or extracted "
                 "images/<split>/<id>.jpg, images/<split>/NN/<id>.jpg or images/<id>.jpg")


def import_osv5m(src: str | Path, out: str | Path, all_countries: bool = False,
                 min_per_country: int = 1) -> ImportResult:
    """OSV-5M as published (``osv5m/osv5m`` on the Hub: ``train.csv``, ``test.csv`` and
    ``images/<split>/NN.zip``), or with its zips extracted. Images are found by id (the
    file name ``<id>.jpg``) in every zip and folder under ``src`` whatever their inner
    layout; the split comes from the CSV that lists the id. Countries come from the CSV's
    ISO code (``country``, else ``unique_country``); position, capture date and creator go
    to the manifest. ``min_per_country`` counts the images found."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"{src}: " + ("a file; give the folder that holds train.csv and "
                                      "test.csv" if src.is_file() else "folder not found"))
    csvs = {s: src / f"{s}.csv" for s in SPLITS if (src / f"{s}.csv").is_file()}
    if not csvs:
        raise DataError(f"{src}: no train.csv or test.csv; expected OSV-5M's layout "
                        "(huggingface_hub.snapshot_download('osv5m/osv5m', repo_type='dataset'))")
    result = ImportResult()
    wanted = {s: _osv5m_rows(path, result, all_countries) for s, path in csvs.items()}
    result.rows = sum(len(rows) for rows in wanted.values())
    if not result.rows:
        why = _why_nothing(result, min_per_country, rename=False)
        raise DataError(f"{src}: no row of {' or '.join(p.name for p in csvs.values())} to "
                        "import; " + (f"its countries are {why}" if why else "they are empty"))
    images = _OsvImages(src, out)
    found = _osv5m_found(images, wanted, result)
    if not found:
        raise DataError(_nothing_found(src, csvs, result.rows, images))
    totals = Counter(wanted[split][image_id]["folder"] for image_id, split in found.items())
    result.too_few = {c: n for c, n in totals.items() if n < min_per_country}
    if all(c in result.too_few for c in totals):
        raise DataError(f"{src}: no country has --min-per-country {min_per_country} images: "
                        f"{_shown(result.too_few)}")
    _write_osv5m(images, found, wanted, out, result)
    return result


def _write_osv5m(images, found: dict[str, str], wanted: dict[str, dict], out: Path,
                 result: ImportResult) -> None:
    """Import the images ``found`` ({id: split}) of the countries kept; one recorded by an
    earlier run counts as already there."""
    lock = lock_root(out)
    try:
        manifest = open_manifest(out, ("osv5m",))
        seen = manifest.source_ids("osv5m")
        recorded = manifest.recorded_files()  # asked of the manifest's index per file
        total = sum(wanted[split][i]["folder"] not in result.too_few for i, split in found.items())
        with progress_bar() as bar, manifest.batch(BATCH):
            task = add_task(bar, "Importing OSV-5M", total)
            for image_id, read in images:
                split = found.pop(image_id, None)  # popped: a second copy is not imported
                row = wanted[split][image_id] if split else None
                if row is None or row["folder"] in result.too_few:
                    continue
                if image_id in seen:
                    result.already[row["folder"]] += 1
                else:
                    try:
                        _save_osv5m(out, manifest, split, image_id, row, read, result,
                                    recorded)
                        result.imported[row["folder"]] += 1
                    except (zipfile.BadZipFile, OSError):  # a member that fails its CRC
                        result.unreadable.append(image_id)
                bar.advance(task)
    finally:
        lock.close()


def _osv5m_rows(path: Path, result: ImportResult, all_countries: bool) -> dict[str, dict]:
    """id -> row (with its class folder) for the rows of wanted countries; the others are
    counted in ``result.unmapped`` (by code) or ``result.outside`` (by country)."""
    mappings: dict[str, tuple] = {}  # ISO code -> _country(code)
    rows = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            reader = csv.DictReader(f)
            _check_columns(path, reader.fieldnames or [])
            for row in reader:
                _keep_row(row, mappings, rows, result, all_countries)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable UTF-8 CSV ({type(exc).__name__}, line "
                            f"{reader.line_num}); save it as UTF-8 CSV") from None
    return rows


def _keep_row(row: dict, mappings: dict, rows: dict, result: ImportResult,
              all_countries: bool) -> None:
    code = next((row[c].strip() for c in OSV5M_COUNTRY_COLUMNS if row.get(c)), "")
    if code not in mappings:
        mappings[code] = _country(code, all_countries)
    folder = _keep(mappings[code], 1, result)
    if folder is not None:  # only what the manifest keeps: ~30 columns x 5M rows
        rows[row["id"]] = {"folder": folder, "latitude": row.get("latitude"),
                           "longitude": row.get("longitude"),
                           "captured_at": row.get("captured_at"),
                           "creator_username": row.get("creator_username")}


def _check_columns(path: Path, columns: list[str]) -> None:
    """A one-line error when the CSV lacks what an import needs."""
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "") or "nothing"
    if "id" not in columns:
        raise DataError(f"{path}: no 'id' column (found: {shown}); expected OSV-5M's CSV "
                        "(id, latitude, longitude, country, ...)")
    if not any(c in columns for c in OSV5M_COUNTRY_COLUMNS):
        raise DataError(f"{path}: no 'country' or 'unique_country' column (found: {shown}); "
                        "expected OSV-5M's CSV, whose 'country' column holds ISO codes")


def _osv5m_found(images, wanted: dict[str, dict], result: ImportResult) -> dict[str, str]:
    """{id: split} of the wanted rows that have an image; the rows without one are counted
    in ``result.missing`` and the first ids kept in ``result.missing_ids``."""
    found: dict[str, str] = {}
    with progress_bar(transient=True) as bar:
        task = add_task(bar, "Finding OSV-5M images", None)
        for image_id, _ in images:
            split = next((s for s in wanted if image_id in wanted[s]), None)
            if split is not None:
                found.setdefault(image_id, split)
            bar.advance(task)
    for split, rows in wanted.items():
        lost = [image_id for image_id in rows if image_id not in found]
        result.missing[split] = len(lost)
        result.missing_ids += lost[:SHOWN - len(result.missing_ids)]
    result.missing = +result.missing  # drop the splits without missing rows
    return found


def _nothing_found(src: Path, csvs: dict, rows: int, images) -> str:
    names = " and ".join(p.name for p in csvs.values())
    seen = (f"found {images.count} images, none named after an id of the CSV (e.g. "
            f"{images.example!r})" if images.count else "found no .jpg file or .zip archive")
    return (f"{src}: 0 of {rows} rows of {names} had an image; expected {OSV5M_LAYOUTS}, "
            f"each image named <id>.jpg after the CSV's 'id' column; {seen}")


class _OsvImages:
    """Every ``.jpg`` under ``src`` (not under ``out``), extracted or in a ``.zip``, at any
    depth and whatever the zip's inner folders: iterating gives (id, the file or a function
    returning its bytes), and counts them for the error of an import of nothing."""

    def __init__(self, src: Path, out: Path):
        self.src, self.out = src, out.resolve()
        self.count, self.example = 0, None

    def __iter__(self):
        self.count = 0
        for folder, dirs, files in os.walk(self.src):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and Path(folder, d).resolve() != self.out)
            for name in sorted(files):
                path = Path(folder, name)
                if name.lower().endswith(".zip"):
                    yield from self._counted(self._archive(path))
                elif _is_jpeg(name):
                    yield from self._counted([(path.stem, path)])

    def _counted(self, items):
        for image_id, source in items:
            self.count += 1
            self.example = self.example or (source.name if isinstance(source, Path)
                                            else source.args[0])
            yield image_id, source

    @staticmethod
    def _archive(path: Path):
        try:
            with zipfile.ZipFile(path) as zipped:
                for name in zipped.namelist():
                    if _is_jpeg(name):
                        yield Path(name).stem, functools.partial(zipped.read, name)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc}); download it again "
                            "(huggingface_hub.snapshot_download checks and resumes)") from None


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith((".jpg", ".jpeg"))


def _save_osv5m(out: Path, manifest, split: str, image_id: str, row: dict, source,
                result: ImportResult, recorded: set[str]) -> None:
    target = _osv5m_target(out / split / row["folder"] / f"{image_id}.jpg", source, recorded)
    if not target.exists():  # else: written by a run stopped before its record
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):  # extracted: a hard link where possible
            _link_or_copy(source, target, result)
        else:
            data = source()
            _write_whole(target, lambda part: part.write_bytes(data))
    recorded.add(target.relative_to(out).as_posix())
    manifest.append(Record(target.relative_to(out).as_posix(), split, row["folder"], "osv5m",
                           image_id, *_position(row.get("latitude"), row.get("longitude")),
                           captured=row.get("captured_at") or None,
                           author=row.get("creator_username") or None, licence=OSV5M_LICENCE))


def _osv5m_target(path: Path, source, recorded: set[str]) -> Path:
    """``path``, or ``path`` with a number added when another file has it (nothing is
    overwritten); a name that holds this image without a record (a run stopped before its
    record) is taken as it is, so a rerun never writes an image twice."""
    candidate, n = path, 1
    while candidate.exists():
        relative = "/".join(candidate.parts[-3:])
        if relative not in recorded and _same_file(candidate, source):
            break
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _same_file(target: Path, source) -> bool:
    """Whether ``target`` already holds this image (a link to it, or the same bytes)."""
    if not target.is_file():
        return False
    if isinstance(source, Path):
        return filecmp.cmp(source, target, shallow=False)  # a link, or a copy
    return target.read_bytes() == source()


def _position(lat, lon) -> tuple[float | None, float | None]:
    """(latitude, longitude) of a CSV row, or (None, None) unless both are real
    coordinates: a NaN, an empty cell or 95 degrees is no position, never a wrong one."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None, None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
            and -180 <= lon <= 180):
        return None, None
    return lat, lon
