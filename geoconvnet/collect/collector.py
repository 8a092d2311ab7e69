"""The collection loop shared by every source: for each country, ask the source for
captures until the root holds ``per_country`` images of it, writing each image atomically
and then its manifest record. A second run continues where the first stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from ..data.countries import Country
from ..data.manifest import Manifest, Record, lock_root, open_manifest
from ..utils.errors import ConfigError
from ..utils.io import write_bytes
from ..utils.progress import add_task, progress_bar
from .http import CollectError

SPLITS = ("train", "test")


@dataclass
class Capture:
    """One image a source found, with what it knows of it."""

    data: bytes
    ext: str  # ".jpg" or ".png"
    source_id: str  # panorama id, image id, round id: never collected twice
    lat: float | None = None
    lon: float | None = None
    heading: float | None = None
    captured: str | None = None
    author: str | None = None
    licence: str | None = None


class Source(Protocol):
    name: str

    def captures(self, country: Country, taken: set[str],
                 known: list[tuple[float, float]]) -> Iterator[Capture | None]:
        """Captures of ``country`` whose ``source_id`` is not in ``taken``; None for a try
        that found nothing (an empty area), so the collector can give up on a country.
        ``known``: (lat, lon) of the images the root already holds (to spread new ones)."""

    def close(self) -> None: ...


@dataclass
class CountryResult:
    country: str
    had: int
    collected: int = 0
    misses: int = 0
    gave_up: bool = False

    def to_fetch(self, per_country: int) -> int:
        return max(0, per_country - self.had)


@dataclass
class CollectResult:
    root: Path
    source: str
    split: str
    per_country: int
    countries: list[CountryResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def collected(self) -> int:
        return sum(c.collected for c in self.countries)

    @property
    def images_per_minute(self) -> float:
        return 60 * self.collected / max(self.seconds, 1e-9)


def collect(source: Source, out: str | Path, countries: list[Country], per_country: int, *,
            split: str = "train", delay: float = 0.0, dry_run: bool = False,
            max_misses: int = 200) -> CollectResult:
    """Fill ``out/<split>/<Country>/`` up to ``per_country`` images from ``source``.

    ``delay``: seconds to wait between two captures (politeness towards the site).
    ``max_misses``: tries in a row that find nothing before a country is given up.
    ``dry_run``: only say what would be fetched."""
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: choose train or test")
    if per_country < 1:
        raise ConfigError(f"--per-country must be at least 1, got {per_country}")
    lock = None if dry_run else lock_root(out)
    try:
        manifest = open_manifest(out, (source.name,), repair=not dry_run)
        result = CollectResult(Path(out), source.name, split, per_country, dry_run=dry_run)
        result.countries = [CountryResult(c.folder, manifest.count(split, c.folder))
                            for c in countries]
        if not dry_run:
            _run(source, manifest, countries, result, delay, max_misses)
    finally:
        source.close()
        if lock is not None:
            lock.close()
    return result


def _run(source: Source, manifest: Manifest, countries: list[Country], result: CollectResult,
         delay: float, max_misses: int) -> None:
    start = time.perf_counter()
    try:
        # A rate over minutes, not the default 30 s: a browser source makes an image every
        # few seconds, and the ETA would keep dropping out.
        with progress_bar(speed_estimate_period=600) as bar:
            for country, row in zip(countries, result.countries):
                _fill(source, manifest, country, row, result.per_country, result.split, delay,
                      max_misses, bar)
    finally:
        result.seconds = time.perf_counter() - start


def _fill(source: Source, manifest: Manifest, country: Country, row: CountryResult,
          per_country: int, split: str, delay: float, max_misses: int, bar) -> None:
    todo = row.to_fetch(per_country)
    if not todo:
        return
    task = add_task(bar, country.folder, todo, unit="img", per_minute=True)
    taken = manifest.source_ids(source.name)
    known = [(r.lat, r.lon) for r in manifest.folder(split, country.folder) if r.lat is not None]
    misses = 0
    for capture in source.captures(country, taken, known):
        if capture is None or capture.source_id in taken:
            misses += 1
            row.misses += 1
            if misses >= max_misses:
                row.gave_up = True
                bar.update(task, info=f"gave up: {misses} tries found nothing new")
                return
            continue
        misses = 0
        _save(manifest, capture, source.name, split, country.folder)
        taken.add(capture.source_id)
        row.collected += 1
        bar.advance(task)
        if row.collected >= todo:
            return
        time.sleep(delay)
    raise CollectError(f"{source.name}: the source stopped before {country.folder} had "
                       f"{per_country} images")


def _save(manifest: Manifest, capture: Capture, source: str, split: str, country: str) -> None:
    stem = manifest.next_stem(source, split, country)
    relative = f"{split}/{country}/{stem}{capture.ext}"
    path = manifest.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, capture.data)  # the image first: a record never points at nothing
    manifest.append(Record(relative, split, country, source, capture.source_id, capture.lat,
                           capture.lon, capture.heading, capture.captured, capture.author,
                           capture.licence))
