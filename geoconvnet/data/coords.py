"""Where each image was taken: the coordinates a root gives its images.

A dataset folder gives them in its collect manifest (``collect-manifest.jsonl``: Street
View, Mapillary and OSV-5M records carry ``lat``/``lon``) or, without a manifest, in a CSV
beside the splits (``coordinates.csv``, columns ``file,lat,lon``, ``file`` relative to the
root as ``train/<Country>/<name>``). Both are read when both exist (the CSV wins for a file
both name). A training cache carries the coordinates of its source (``data prepare``).

Images without coordinates are fine: they train the country head only.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..utils.errors import DataError
from .manifest import NAME as MANIFEST_NAME
from .manifest import open_manifest

COORDS_CSV = "coordinates.csv"
Coordinates = dict[str, tuple[float, float]]  # source-relative file -> (lat, lon)


def read_coordinates(root: str | Path) -> Coordinates:
    """The coordinates of a dataset folder's images (see the module doc); {} if none."""
    root = Path(root)
    found: Coordinates = {}
    if (root / MANIFEST_NAME).is_file():
        manifest = open_manifest(root, repair=False)
        try:
            found.update((r.file, (float(r.lat), float(r.lon))) for r in manifest.iter_records()
                         if r.lat is not None and r.lon is not None)
        finally:
            manifest.index.close()
    if (root / COORDS_CSV).is_file():
        found.update(read_coordinates_csv(root / COORDS_CSV))
    return found


def read_coordinates_csv(path: str | Path) -> Coordinates:
    """``file,lat,lon`` rows; a bad row is a DataError naming the file and line."""
    path = Path(path)
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable coordinates file ({exc})") from None
    if not rows or [c.strip() for c in rows[0][:3]] != ["file", "lat", "lon"]:
        raise DataError(f"{path}: the first line must be the header file,lat,lon")
    found: Coordinates = {}
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        found[_file(path, number, row)] = _place(path, number, row)
    return found


def _file(path: Path, number: int, row: list[str]) -> str:
    name = row[0].strip().replace("\\", "/")
    parts = name.split("/")
    if len(parts) != 3 or parts[0] not in ("train", "test") or "" in parts or ".." in parts:
        raise DataError(f"{path} line {number}: file {name!r} is not <split>/<Country>/<name> "
                        "relative to the root")
    return name


def _place(path: Path, number: int, row: list[str]) -> tuple[float, float]:
    if len(row) != 3 and any(cell.strip() for cell in row[3:]):
        raise DataError(f"{path} line {number}: {len(row)} columns, expected file,lat,lon "
                        "(decimal commas? write 41.3, not 41,3)")
    try:
        lat, lon = float(row[1]), float(row[2])
    except (IndexError, ValueError):
        raise DataError(f"{path} line {number}: lat and lon must be numbers, got "
                        f"{row[1:3]!r}") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
            and -180 <= lon <= 180):
        raise DataError(f"{path} line {number}: {lat}, {lon} is not a latitude (-90..90), "
                        "longitude (-180..180)")
    return lat, lon


def as_array(keys, table: Coordinates) -> np.ndarray:
    """``[len(keys), 2]`` (lat, lon) of each key, NaN where ``table`` has none."""
    out = np.full((len(keys), 2), np.nan)
    for i, key in enumerate(keys):
        place = table.get(key)
        if place is not None:
            out[i] = place
    return out
