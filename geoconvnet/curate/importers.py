"""``data import``: bring existing datasets into the reference layout.

* ``folders``: a folder per country with any naming (``united_states``, ``South-Korea``,
  ``CIV``...), optionally under ``train/`` and ``test/``. Names are mapped to countries with
  pycountry plus the exceptions of :mod:`geoconvnet.data.countries`; what does not map is
  reported, not guessed. The reference's 85 countries are kept unless ``all_countries``;
  countries with fewer than ``min_per_country`` images are left out. Files are hard-linked
  (copied only across file systems), so an import costs no space, and a second run adds
  only what is new.
* ``hf``: a dataset on the Hugging Face Hub in the reference's format (an image column and
  a ClassLabel column): :func:`geoconvnet.data.download.download`.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..data.countries import REFERENCE_COUNTRIES, resolve
from ..data.layout import SPLITS, image_files
from ..data.manifest import Record, lock_root, open_manifest
from ..utils.errors import ConfigError, DataError
from ..utils.progress import add_task, progress_bar


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
                    source_id = Path(path).relative_to(src).as_posix()
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
            try:
                country = resolve(folder.name.replace("_", " ").replace("-", " ")).folder
            except ConfigError:
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
