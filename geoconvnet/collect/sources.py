"""The sources by name, and :func:`collect_from`: the ``geoconvnet collect`` command as a
function."""

from __future__ import annotations

import math
from pathlib import Path

from ..data.countries import REFERENCE_COUNTRIES, resolve
from ..utils.errors import ConfigError
from .collector import CollectResult, collect
from .geoguessr import GeoGuessr
from .mapillary import Mapillary
from .streetview import StreetView

SOURCES = {"geoguessr": GeoGuessr, "streetview": StreetView, "mapillary": Mapillary}
DEFAULT_DELAY = {"geoguessr": 2.0, "streetview": 0.0, "mapillary": 0.0}  # seconds per image


def collect_from(source: str, out: str | Path, countries: list[str] | None, per_country: int,
                 *, split: str = "train", delay: float | None = None, dry_run: bool = False,
                 max_misses: int = 200, **options) -> CollectResult:
    """Collect ``per_country`` images of each country (names as pycountry knows them, or
    None for the reference's 85; an empty list is an error) from ``source`` into ``out``. ``options`` go to the
    source (a key or token, URLs, browser settings); with ``dry_run`` no source is opened
    and nothing is written."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    for flag in ("backoff", "max_wait", "round_timeout", "settle"):
        value, least = options.get(flag), 0 if flag != "round_timeout" else 1
        if value is not None and not (math.isfinite(value) and value >= least):
            raise ConfigError(f"--{flag.replace('_', '-')} must be {least} or more seconds, "
                              f"got {value}")
    names = REFERENCE_COUNTRIES if countries is None else \
        [name.strip() for name in countries if name.strip()]
    if not names:  # an empty list must never mean "all 85" against a billed API
        raise ConfigError("no countries given: name them with --countries (e.g. "
                          "'Norway,Japan') or take the reference's 85 with --all")
    resolved = list(dict.fromkeys(resolve(name) for name in names))  # each country once
    opened = _DryRun(source) if dry_run else SOURCES[source](**options)
    return collect(opened, out, resolved, per_country, split=split, dry_run=dry_run,
                   delay=DEFAULT_DELAY[source] if delay is None else delay,
                   max_misses=max_misses)


class _DryRun:
    """Stands for a source in a dry run: it is never asked for a capture."""

    def __init__(self, name: str):
        self.name = name

    def close(self) -> None:
        pass
