"""``data import``: bring existing datasets into the reference layout.

* ``folders``: a folder per country with any naming (``united_states``, ``South-Korea``,
  ``CIV``...), optionally under ``train/`` and ``test/``. Names are mapped to countries with
  pycountry plus the exceptions of :mod:`geoconvnet.data.countries`; what does not map is
  reported, not guessed. The reference's 85 countries are kept unless ``all_countries``;
  countries with fewer than ``min_per_country`` images are left out. Files are hard-linked
  (copied only across file systems), so an import costs no space, and a second run adds
  only what is new.
* ``osv5m``: OSV-5M (5.1 million street-level images with coordinates), filtered by
  country, with each image's position, date and creator in the manifest.
* ``hf``: a dataset on the Hugging Face Hub in the reference's format (an image column and
  a ClassLabel column): :func:`geoconvnet.data.download.download`.
"""

from __future__ import annotations

import csv
import functools
import os
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..data.countries import REFERENCE_COUNTRIES, resolve
from ..data.layout import SPLITS, image_files
from ..data.manifest import Record, lock_root, open_manifest
from ..utils.errors import ConfigError, DataError
from ..utils.io import write_bytes
from ..utils.progress import add_task, progress_bar
from .moves import free_path


@dataclass
class ImportResult:
    imported: Counter = field(default_factory=Counter)  # country -> new images
    already: Counter = field(default_factory=Counter)  # country -> images there before
    unmapped: dict[str, int] = field(default_factory=dict)  # source folder -> images
    outside: dict[str, int] = field(default_factory=dict)  # mapped, not a reference country
    too_few: dict[str, int] = field(default_factory=dict)  # country -> images (< minimum)
    copied: int = 0  # files copied because a hard link was not possible


def import_folders(src: str | Path, out: str | Path, all_countries: bool = False,
                   min_per_country: int = 1) -> ImportResult:
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"{src}: folder not found")
    result = ImportResult()
    plan = _plan(src, result, all_countries, min_per_country)
    if not plan:
        raise DataError(f"{src}: no country folder could be imported (see what did not map: "
                        f"{', '.join(sorted(result.unmapped)) or 'none'})")
    lock = lock_root(out)
    try:
        manifest = open_manifest(out, ("folders",))
        seen = manifest.source_ids("folders")
        with progress_bar() as bar:
            task = add_task(bar, "Importing", sum(len(files) for files in plan.values()))
            for (split, country), files in plan.items():
                for path in files:
                    source_id = str(Path(path).resolve())  # two sources may share names
                    if source_id in seen:
                        result.already[country] += 1
                    else:
                        relative = _place(path, out, split, country, result)
                        manifest.append(Record(relative, split, country, "folders", source_id))
                        result.imported[country] += 1
                    bar.advance(task)
    finally:
        lock.close()
    return result


def _plan(src: Path, result: ImportResult, all_countries: bool,
          min_per_country: int) -> dict[tuple[str, str], list[str]]:
    """(split, country folder) -> source files, after mapping and the filters."""
    has_splits = any((src / s).is_dir() for s in SPLITS)
    bases = [(s, src / s) for s in SPLITS if (src / s).is_dir()] if has_splits else \
        [("train", src)]
    plan: dict[tuple[str, str], list[str]] = {}
    for split, base in bases:
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            files = image_files(folder)
            country = _folder_of(folder.name) or \
                _folder_of(folder.name.replace("_", " ").replace("-", " "))
            if country is None:
                result.unmapped[folder.name] = result.unmapped.get(folder.name, 0) + len(files)
                continue
            if not all_countries and country not in REFERENCE_COUNTRIES:
                result.outside[country] = result.outside.get(country, 0) + len(files)
                continue
            plan.setdefault((split, country), []).extend(files)
    totals = Counter()
    for (_, country), files in plan.items():
        totals[country] += len(files)
    for country, n in totals.items():
        if n < min_per_country:
            result.too_few[country] = n
    return {key: files for key, files in plan.items() if key[1] not in result.too_few}


def _place(path: str, out: Path, split: str, country: str, result: ImportResult) -> str:
    """Hard-link (or copy) one file into ``out``; a name already taken gets a suffix."""
    folder = out / split / country
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(path).name
    if (folder / name).exists() and os.path.samefile(path, folder / name):
        return f"{split}/{country}/{name}"  # linked by a run that was stopped before its record
    stem, suffix, n = Path(name).stem, Path(name).suffix, 1
    while (folder / name).exists():
        name = f"{stem}-{n}{suffix}"
        n += 1
    try:
        os.link(path, folder / name)
    except OSError:  # another file system, or links not allowed: a copy, then
        shutil.copy2(path, folder / name)
        result.copied += 1
    return f"{split}/{country}/{name}"


# -- OSV-5M ------------------------------------------------------------------------------
OSV5M_LICENCE = "CC BY-SA 4.0"


def import_osv5m(src: str | Path, out: str | Path, all_countries: bool = False,
                 min_per_country: int = 1) -> ImportResult:
    """OSV-5M as published (``osv5m/osv5m`` on the Hub: ``train.csv``, ``test.csv`` and
    ``images/<split>/NN.zip`` of ``<id>.jpg``; already extracted ``.jpg`` files work too).
    Countries come from the CSV's ISO code; position, capture date and creator go to the
    manifest."""
    src, out = Path(src), Path(out)
    csvs = {s: src / f"{s}.csv" for s in SPLITS if (src / f"{s}.csv").is_file()}
    if not csvs:
        raise DataError(f"{src}: no train.csv or test.csv; expected OSV-5M's layout "
                        "(huggingface_hub.snapshot_download('osv5m/osv5m', repo_type='dataset'))")
    result = ImportResult()
    wanted = {s: _osv5m_rows(path, result, all_countries) for s, path in csvs.items()}
    totals = Counter(row["folder"] for rows in wanted.values() for row in rows.values())
    result.too_few = {c: n for c, n in totals.items() if n < min_per_country}
    lock = lock_root(out)
    try:
        manifest = open_manifest(out, ("osv5m",))
        seen = manifest.source_ids("osv5m")
        with progress_bar() as bar:
            task = add_task(bar, "Importing OSV-5M", sum(totals.values()))
            for split, rows in wanted.items():
                for image_id, read in _osv5m_images(src / "images" / split):
                    row = rows.get(image_id)
                    if row is None or row["folder"] in result.too_few:
                        continue
                    if image_id in seen:
                        result.already[row["folder"]] += 1
                    else:
                        _save_osv5m(out, manifest, split, image_id, row, read, result)
                        seen.add(image_id)
                        result.imported[row["folder"]] += 1
                    bar.advance(task)
    finally:
        lock.close()
    return result


def _osv5m_rows(path: Path, result: ImportResult, all_countries: bool) -> dict[str, dict]:
    """id -> row (with its class folder) for the rows of wanted countries; the others are
    counted in ``result.unmapped`` (by code) or ``result.outside`` (by country)."""
    folders: dict[str, str | None] = {}  # ISO code -> class folder (None: no country)
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = row.get("country") or row.get("unique_country") or ""
            if code not in folders:
                folders[code] = _folder_of(code)
            folder = folders[code]
            if folder is None:
                result.unmapped[code] = result.unmapped.get(code, 0) + 1
            elif not all_countries and folder not in REFERENCE_COUNTRIES:
                result.outside[folder] = result.outside.get(folder, 0) + 1
            else:  # only what the manifest keeps: the full CSV has ~30 columns x 5M rows
                rows[row["id"]] = {"folder": folder, "latitude": row.get("latitude"),
                                   "longitude": row.get("longitude"),
                                   "captured_at": row.get("captured_at"),
                                   "creator_username": row.get("creator_username")}
    return rows


def _folder_of(code: str) -> str | None:
    try:
        return resolve(code).folder
    except ConfigError:
        return None


def _osv5m_images(folder: Path):
    """(id, an extracted file or a function returning the bytes) for every image in the
    split's zips and folders."""
    for archive in sorted(folder.glob("*.zip")):
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                if name.lower().endswith(".jpg"):
                    yield Path(name).stem, functools.partial(zipped.read, name)
    for path in sorted(folder.rglob("*.jpg")):
        yield path.stem, path


def _save_osv5m(out: Path, manifest, split: str, image_id: str, row: dict, source,
                result: ImportResult) -> None:
    target = free_path(out / split / row["folder"] / f"{image_id}.jpg")  # never overwrite
    target.parent.mkdir(parents=True, exist_ok=True)
    relative = target.relative_to(out).as_posix()
    if isinstance(source, Path):  # extracted: a hard link where possible
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
            result.copied += 1
    else:
        write_bytes(target, source())
    manifest.append(Record(relative, split, row["folder"], "osv5m", image_id,
                           _float(row.get("latitude")), _float(row.get("longitude")),
                           captured=row.get("captured_at") or None,
                           author=row.get("creator_username") or None, licence=OSV5M_LICENCE))


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
