"""``geoconvnet data geocells``: the geocells a root's training coordinates give (the same
build as training's, with its settings), or those a checkpoint stores, as a map and a table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.countries import iso3, outline
from ..data.geo import GeoCells
from ..data.root import DataRoot
from ..models.checkpoint import read_meta, resolve_checkpoint
from ..models.heads import GEOCELL, head
from ..utils.errors import DataError
from ..utils.io import atomic_path


@dataclass
class CellsView:
    cells: GeoCells
    places: np.ndarray  # [n, 2] the training places (from a root; a checkpoint's kept ones)
    assignment: np.ndarray  # [n] their cells
    source: str

    def table(self) -> list[dict]:
        """Per country: cells and places per cell (min, median, max)."""
        rows = []
        for country in sorted(set(self.cells.countries)):
            ids = [i for i, c in enumerate(self.cells.countries) if c == country]
            counts = self.cells.counts[ids]
            rows.append({"country": country, "cells": len(ids), "places": int(counts.sum()),
                         "min": int(counts.min()), "median": float(np.median(counts)),
                         "max": int(counts.max())})
        return rows


def geocells(source: str | Path, *, cells: int = 512, min_size: int = 10,
             seed: int = 0) -> CellsView:
    """The cells of a run folder or checkpoint (as stored), or of a data root's training
    split (built as ``train`` would, with these settings)."""
    source = Path(source)
    if source.suffix == ".safetensors" or (source / "best.safetensors").is_file():
        entry = head(read_meta(source), GEOCELL)
        if entry is None:
            raise DataError(f"{source}: the model has no location head (it was trained "
                            "without coordinates)")
        stored = GeoCells.from_dict(entry["cells"])
        places = np.vstack(stored.places)
        assignment = np.repeat(np.arange(len(stored)), [len(p) for p in stored.places])
        return CellsView(stored, places, assignment, str(resolve_checkpoint(source)))
    data = DataRoot.open(source)
    classes = data.classes()
    samples = data.samples("train", classes)
    latlon = data.coordinates([s for s, _ in samples])
    known = np.isfinite(latlon).all(axis=1)
    if not known.any():
        raise DataError(f"{source}: no coordinates for its training images (a "
                        "collect-manifest.jsonl with lat/lon, or a coordinates.csv of "
                        "file,lat,lon)")
    countries = [classes[label] for (_, label), k in zip(samples, known) if k]
    built, assignment = GeoCells.build(latlon[known], countries, cells=cells,
                                       min_size=min_size, seed=seed)
    return CellsView(built, latlon[known], assignment, data.location)


def draw(view: CellsView, out: str | Path) -> Path:
    """A PNG (or any format matplotlib writes, by suffix) of the places coloured by cell,
    the cells' centres and the countries' outlines."""
    import matplotlib  # lazy: only this command draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 7), dpi=110)
    for country in sorted(set(view.cells.countries)):
        code = iso3(country)
        for ring in outline(code) if code else []:
            ring = np.asarray(ring)
            ax.plot(ring[:, 0], ring[:, 1], color="#888", linewidth=0.5)
    colours = plt.get_cmap("tab20")(view.assignment % 20)
    ax.scatter(view.places[:, 1], view.places[:, 0], s=4, c=colours, linewidths=0)
    ax.scatter(view.cells.centres[:, 1], view.cells.centres[:, 0], s=18, marker="x",
               color="black", linewidths=0.8, label="cell centres")
    ax.set_title(f"{len(view.cells)} geocells of {view.source} ({len(view.places)} places)")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="lower left")
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)
    return out
