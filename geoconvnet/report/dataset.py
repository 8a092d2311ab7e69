"""``data stats``: what a dataset root holds, from its files alone: images per country and
split, sizes, formats, sources (the manifest), duplicates and leakage (``data dedup``'s
report), rejects (``data filter``'s), and where the images were taken when known. A table
for the terminal, and ``ROOT/stats/stats.html`` with the bar chart and the map.

The reports of ``dedup`` and ``filter`` are findings of a moment: each comes with the time
it was made, and is marked stale when the data changed since (a split folder or an image
newer than the report, or a file it names gone), so a count is never shown as current when
it is not."""

from __future__ import annotations

import base64
import csv
from collections import Counter
import os
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

import jinja2
from PIL import Image

from ..data.countries import world_shapes
from ..data.layout import DEDUP_REPORT, FILTER_REPORT, SPLITS, split_files
from ..data.manifest import NAME as MANIFEST
from ..data.manifest import open_manifest
from ..utils.io import read_csv, write_text
from . import plots


@dataclass
class Finding:
    """When a report was made, and whether the data changed since."""

    made: datetime
    stale: str = ""  # why it no longer describes the data ("" while it does)

    def describe(self, command: str, root: Path) -> str:
        when = f"as of {self.made:%Y-%m-%d %H:%M}"
        if not self.stale:
            return when
        return f"{when}; STALE: {self.stale} (run `geoconvnet data {command} {root}` again)"


@dataclass
class DatasetStats:
    root: Path
    counts: dict[str, dict[str, int]]  # country -> split -> images
    sizes: Counter = field(default_factory=Counter)  # "WxH" -> images
    formats: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    licences: Counter = field(default_factory=Counter)
    places: list[tuple[float, float]] = field(default_factory=list)
    duplicate_groups: int | None = None  # None: `data dedup` has not run
    leakage_groups: int | None = None
    conflict_groups: int | None = None  # one image under two countries
    rejected: int | None = None  # None: `data filter` has not run
    findings: dict[str, "Finding"] = field(default_factory=dict)  # "dedup", "filter"
    page: Path | None = None

    @property
    def images(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def dataset_stats(root: str | Path, page: bool = True) -> DatasetStats:
    root = Path(root)
    files = split_files(root)
    counts: dict[str, dict[str, int]] = {}
    stats = DatasetStats(root, counts)
    for split, paths in files.items():
        for path in paths:
            counts.setdefault(Path(path).parent.name, {s: 0 for s in SPLITS})[split] += 1
            try:
                with Image.open(path) as image:  # the header only
                    stats.sizes[f"{image.width}x{image.height}"] += 1
                    stats.formats[image.format or Path(path).suffix] += 1
            except (OSError, ValueError):  # what `data filter` is for: counted, not fatal
                stats.sizes["unreadable"] += 1
                stats.formats["unreadable"] += 1
    if (root / MANIFEST).is_file():
        for r in open_manifest(root, repair=False).iter_records(present=True):  # lazily
            stats.sources[r.source] += 1
            if r.licence:
                stats.licences[r.licence] += 1
            if r.lat is not None:
                stats.places.append((r.lat, r.lon))
    newest = _newest_change(root, files)
    rows = _report_rows(root / DEDUP_REPORT, ("group", "file"))
    if rows is not None:
        stats.duplicate_groups = len({r["group"] for r in rows})
        stats.leakage_groups = len({r["group"] for r in rows
                                    if str(r.get("leakage")).lower() == "true"})
        stats.conflict_groups = len({r["group"] for r in rows if r.get("conflict")})
        stats.findings["dedup"] = _finding(root, root / DEDUP_REPORT, rows, newest)
    rows = _report_rows(root / FILTER_REPORT, ("file",))
    if rows is not None:
        stats.rejected = len(rows)
        stats.findings["filter"] = _finding(root, root / FILTER_REPORT, [], newest)
    if page:
        stats.page = write_page(stats, root / "stats")
    return stats


def _report_rows(path: Path, columns: tuple[str, ...]) -> list[dict] | None:
    """A report's rows; None when there is none, or it is not one of ours (edited by hand,
    cut short): a count from it would be a guess."""
    try:
        rows = read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if rows and not set(columns) <= set(rows[0]):
        return None
    return rows


def _newest_change(root: Path, files: dict[str, list[str]]) -> int:
    """The latest modification time (ns) of the split and country folders (a file added,
    moved or removed) and of the images (a file changed in place)."""
    folders = [root / s for s in files] + [p for s in files for p in (root / s).iterdir()
                                           if p.is_dir()]
    times = [os.stat(p).st_mtime_ns for p in folders]
    times += [os.stat(f).st_mtime_ns for paths in files.values() for f in paths]
    return max(times, default=0)


def _finding(root: Path, report: Path, rows: list[dict], newest: int) -> Finding:
    made = os.stat(report).st_mtime_ns
    gone = [r["file"] for r in rows if r.get("file") and not (root / r["file"]).exists()]
    stale = (f"{len(gone)} file(s) it names are gone, e.g. {gone[0]}" if gone else
             "the images changed since" if newest > made else "")
    return Finding(datetime.fromtimestamp(made / 1e9), stale)


def write_page(stats: DatasetStats, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(stats.counts, key=lambda c: -sum(stats.counts[c].values()))
    bars = plots.split_bars(names, {s: [stats.counts[c][s] for c in names] for s in SPLITS},
                            out / "countries.png", f"Images per country ({stats.root.name})")
    figures = {"countries": bars}
    if stats.places:
        figures["map"] = plots.points_map(world_shapes(), stats.places, out / "places.png",
                                          f"Where {len(stats.places)} images were taken")
    template = jinja2.Environment(autoescape=True).from_string(
        resources.files("geoconvnet.resources").joinpath("dataset.html.j2").read_text())
    html = template.render(stats=stats, names=names, splits=SPLITS, fig={
        k: "data:image/png;base64," + base64.b64encode(v.read_bytes()).decode()
        for k, v in figures.items()})
    write_text(out / "stats.html", html)
    return out / "stats.html"
