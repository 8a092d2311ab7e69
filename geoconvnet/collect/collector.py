"""The collection loop shared by every source: for each country, ask the source for
captures until the root holds ``per_country`` images of it, saving each image with its
manifest record (:meth:`Manifest.save`: a killed run leaves nothing half-done). A second run
continues where the first stopped. Every capture is decoded in full before it is kept; a
place a source skipped (an HTML page or a cut body after retries) is counted per country,
and too many skips in a row end the run with the reason, rather than a night of retries."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from ..data.countries import Country
from ..data.images import checked_image
from ..data.manifest import Manifest, Record, check_root_folder, lock_root, open_manifest
from ..utils.errors import ConfigError, DataError
from ..utils.progress import add_task, progress_bar
from .http import CollectError

SPLITS = ("train", "test")
SKIPS_IN_A_ROW = 10  # places in a row without a usable image: the service is failing


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


@dataclass
class Skipped:
    """A place a source found but could not save a usable image of after its retries (an
    HTML page or a truncated body instead of an image, a blank capture): counted per
    country with its reason, never written."""

    reason: str


class Source(Protocol):
    name: str

    def captures(self, country: Country, taken: set[str],
                 known: list[tuple[float, float]]) -> Iterator[Capture | Skipped | None]:
        """Captures of ``country`` whose ``source_id`` is not in ``taken``; None for a try
        that found nothing (an empty area), so the collector can give up on a country;
        :class:`Skipped` for a place given up after retries.
        ``known``: (lat, lon) of the images the root already holds (to spread new ones)."""

    def close(self) -> None: ...


@dataclass
class CountryResult:
    country: str
    had: int
    collected: int = 0
    misses: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> places skipped
    gave_up: str = ""  # why the country was given up ("" if it was not)

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
    try:
        _check_settings(out, countries, per_country, split, delay, max_misses)
        lock = None if dry_run else lock_root(out)
    except BaseException:
        source.close()
        raise
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


def _check_settings(out, countries: list[Country], per_country: int, split: str, delay: float,
                    max_misses: int) -> None:
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: choose train or test")
    if not countries:
        raise ConfigError("no countries given: name them with --countries (e.g. "
                          "'Norway,Japan') or take the reference's 85 with --all")
    if per_country < 1:
        raise ConfigError(f"--per-country must be at least 1, got {per_country}")
    if not (math.isfinite(delay) and delay >= 0):
        raise ConfigError(f"--delay must be 0 or more seconds, got {delay}")
    if max_misses < 1:
        raise ConfigError(f"--max-misses must be at least 1, got {max_misses}")
    check_root_folder(out, "--out")


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
    misses = skips = 0
    for capture in source.captures(country, taken, known):
        if isinstance(capture, Capture) and capture.source_id not in taken:
            capture = _usable(capture, source.name)
        if isinstance(capture, Skipped):
            row.skipped[capture.reason] += 1
            skips += 1
            if skips >= SKIPS_IN_A_ROW:
                raise CollectError(f"{source.name}: {skips} places in a row gave no usable "
                                   f"image (last: {capture.reason}); the service may be "
                                   "failing: try again later")
        if not isinstance(capture, Capture) or capture.source_id in taken:
            misses += 1
            row.misses += 1
            if misses >= max_misses:
                row.gave_up = _give_up_reason(misses, row)
                bar.update(task, info=f"gave up: {row.gave_up}")
                return
            continue
        misses = skips = 0
        _save(manifest, capture, source.name, split, country.folder)
        taken.add(capture.source_id)
        row.collected += 1
        bar.advance(task)
        if row.collected >= todo:
            return
        time.sleep(delay)
    raise CollectError(f"{source.name}: the source stopped before {country.folder} had "
                       f"{per_country} images")


def _usable(capture: Capture, source: str) -> Capture | Skipped:
    """The capture with the extension of what it really is, once it decoded in full."""
    try:
        capture.ext = checked_image(capture.data, f"{source} {capture.source_id}")
    except DataError as exc:
        return Skipped(str(exc).split(": ", 1)[-1])
    return capture


def _give_up_reason(misses: int, row: CountryResult) -> str:
    skipped = sum(row.skipped.values())
    if not skipped:
        return f"{misses} tries in a row found nothing new"
    reason, n = row.skipped.most_common(1)[0]
    return f"{misses} tries in a row found nothing new or usable ({skipped} skipped; " \
           f"{n}: {reason})"


def _save(manifest: Manifest, capture: Capture, source: str, split: str, country: str) -> None:
    stem = manifest.next_stem(source, split, country, capture.ext)
    manifest.save(Record(f"{split}/{country}/{stem}{capture.ext}", split, country, source,
                         capture.source_id, capture.lat, capture.lon, capture.heading,
                         capture.captured, capture.author, capture.licence), capture.data)
