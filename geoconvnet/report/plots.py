"""Figures of the report (matplotlib, headless). Each function takes plain data and writes
one PNG; nothing here reads a model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def training_curves(rows: list[dict], path: Path, title: str = "") -> Path:
    """Loss and top-1/3/5 per epoch, train (dashed) vs validation (solid)."""
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "--"), ("val", "-")):
        axes[0].plot(epochs, [float(r[f"{split}_loss"]) for r in rows], style, marker="o",
                     label=split)
        for k, color in zip((1, 3, 5), ("C0", "C1", "C2")):
            axes[1].plot(epochs, [float(r[f"{split}_top{k}"]) for r in rows], style, color=color,
                         marker="o", label=f"{split} top-{k}")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    if max(float(r["val_loss"]) for r in rows) > 20 * min(float(r["val_loss"]) for r in rows):
        axes[0].set_yscale("log")  # early from-scratch epochs can be orders of magnitude off
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="Top-k accuracy", ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def compare_curves(series: list[tuple[str, list[int], list[float], str]], path: Path,
                   metric: str) -> Path:
    """Overlay one accuracy curve per (label, epochs, values, linestyle)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, epochs, values, style in series:
        ax.plot(epochs, values, style, marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch", ylim=(0, 1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def f1_bars(names: list[str], f1: list[float], path: Path, reference: dict | None = None) -> Path:
    """Horizontal bars of F1 by country, best on top; reference F1 as black ticks."""
    order = np.argsort(f1)
    height = max(2.5, 0.22 * len(names) + 1)
    fig, ax = plt.subplots(figsize=(7, height))
    y = np.arange(len(names))
    ax.barh(y, np.asarray(f1)[order], color=plt.cm.viridis(np.asarray(f1)[order]))
    if reference:
        ref = [reference.get(names[i], np.nan) for i in order]
        ax.scatter(ref, y, marker="|", color="black", s=120, label="reference F1", zorder=3)
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, [names[i] for i in order], fontsize=8 if len(names) < 40 else 6)
    ax.set(xlim=(0, 1), xlabel="F1", title="F1 by country")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def confusion_heatmap(matrix: np.ndarray, names: list[str], path: Path) -> Path:
    """Row-normalised confusion matrix; ``matrix`` and ``names`` already in display order."""
    n = len(names)
    # 0.2 inch per country at 110 dpi = 22 px rows: 85 labels stay legible at 7 pt when
    # the page shows the image at full size (it scrolls).
    size = max(5.0, 0.2 * n + 3)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(matrix, cmap="magma_r", vmin=0, vmax=1)
    fontsize = 9 if n <= 20 else 7
    ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    ax.set(xlabel="predicted", ylabel="truth", title="Confusion (row-normalised, clustered)")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                if matrix[i, j] >= 0.01:
                    ax.text(j, i, f"{matrix[i, j]:.0%}", ha="center", va="center", fontsize=8,
                            color="white" if matrix[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.03, label="share of the true country's images")
    return _save(fig, path)


def embedding_scatter(points: np.ndarray, names: list[str], path: Path, title: str,
                      colors: np.ndarray | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(9, 7))
    ax.scatter(points[:, 0], points[:, 1], c=colors if colors is not None else "C0",
               cmap="viridis", vmin=0, vmax=1, s=30)
    for (x, y), name in zip(points, names):
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set(title=title, xticks=[], yticks=[])
    return _save(fig, path)


def reliability_diagram(bins: list[dict], ece: float, path: Path) -> Path:
    """Accuracy vs confidence per bin; the gap to the diagonal is miscalibration."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), height_ratios=(3, 1), sharex=True)
    centers = [(b["low"] + b["high"]) / 2 for b in bins if b["count"]]
    width = bins[0]["high"] - bins[0]["low"]
    ax.bar(centers, [b["accuracy"] for b in bins if b["count"]], width=width * 0.95,
           color="C0", edgecolor="white", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(ylabel="accuracy", title=f"Reliability (ECE {ece:.3f})", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    hist.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["count"] for b in bins],
             width=width * 0.95, color="gray")
    hist.set(xlabel="confidence (top-1 probability)", ylabel="images")
    return _save(fig, path)


def prediction_card(image, top: list[tuple[str, float]], truth: str, path: Path) -> Path:
    """One screenshot with its top guesses as bars; the true country in green."""
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(10, 3.2), width_ratios=(2.2, 1))
    ax_img.imshow(image)
    ax_img.set_axis_off()
    correct = top[0][0] == truth
    ax_img.set_title(f"guess: {top[0][0]} ({top[0][1]:.0%})   truth: {truth}",
                     color="green" if correct else "firebrick", fontsize=10)
    names = [c for c, _ in top][::-1]
    probs = [p for _, p in top][::-1]
    ax_bar.barh(names, probs, color=["green" if c == truth else "gray" for c in names])
    ax_bar.set(xlim=(0, 1), xlabel="probability")
    return _save(fig, path)


def prediction_grid(items: list[tuple], path: Path, title: str, columns: int = 4) -> Path:
    """Thumbnails with guess, probability and truth; items = (image, guess, prob, truth)."""
    rows = max(1, int(np.ceil(len(items) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (image, guess, prob, truth) in zip(axes.flat, items):
        ax.imshow(image)
        ax.set_title(f"{guess} {prob:.0%}\ntruth: {truth}", fontsize=8,
                     color="green" if guess == truth else "firebrick")
    fig.suptitle(title)
    return _save(fig, path)


def world_map(shapes: dict[str, list], values: dict[str, float], path: Path, title: str,
              label: str) -> Path:
    """Choropleth: ``shapes`` maps ISO-3 codes to lists of (lon, lat) rings."""
    from matplotlib.collections import PolyCollection

    fig, ax = plt.subplots(figsize=(12, 6))
    cmap = plt.cm.viridis
    background, colored, colors = [], [], []
    for code, rings in shapes.items():
        if code in values:
            colored.extend(rings)
            colors.extend([values[code]] * len(rings))
        else:
            background.extend(rings)
    ax.add_collection(PolyCollection(background, facecolor="#e6e6e6", edgecolor="white",
                                     linewidth=0.3))
    collection = PolyCollection(colored, array=np.asarray(colors), cmap=cmap, edgecolor="white",
                                linewidth=0.3)
    collection.set_clim(0, 1)
    ax.add_collection(collection)
    fig.colorbar(collection, ax=ax, fraction=0.025, label=label)
    ax.set(xlim=(-180, 180), ylim=(-60, 85), title=title, aspect="equal")
    ax.set_axis_off()
    return _save(fig, path)


def split_bars(names: list[str], counts: dict[str, list[int]], path: Path, title: str) -> Path:
    """Stacked horizontal bars: images per country, one colour per split."""
    height = max(2.5, 0.22 * len(names) + 1)
    fig, ax = plt.subplots(figsize=(8, height))
    left = np.zeros(len(names))
    for split, values in counts.items():
        ax.barh(names, values, left=left, label=split)
        left += np.asarray(values)
    ax.invert_yaxis()
    ax.set(xlabel="images", title=title)
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def points_map(shapes: dict[str, list], points: list[tuple[float, float]], path: Path,
               title: str) -> Path:
    """Country outlines in grey and one dot per (lat, lon)."""
    from matplotlib.collections import PolyCollection

    fig, ax = plt.subplots(figsize=(12, 6))
    rings = [ring for country in shapes.values() for ring in country]
    ax.add_collection(PolyCollection(rings, facecolor="#e6e6e6", edgecolor="white",
                                     linewidth=0.3))
    if points:
        lat, lon = zip(*points)
        ax.scatter(lon, lat, s=4, color="C3", alpha=0.6)
    ax.set(xlim=(-180, 180), ylim=(-60, 85), title=title, aspect="equal")
    ax.set_axis_off()
    return _save(fig, path)


def distance_cdf(series: dict[str, np.ndarray], guides, path: Path) -> Path:
    """Share of images within d km, one curve per (label, distances in km); a log distance
    axis from 1 to 20,000 km (half the Earth's circumference) with dotted guides at
    ``guides`` km. Distances under 1 km count at 1 km; NaN ones (no place) are left out."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, km in series.items():
        km = np.sort(np.asarray(km, dtype=float)[np.isfinite(km)])
        if not km.size:
            continue
        x = np.concatenate([[1.0], np.clip(km, 1.0, 20000.0), [20000.0]])
        y = np.concatenate([[0.0], np.arange(1, km.size + 1) / km.size, [1.0]])
        ax.step(x, y, where="post", label=label)
    for g in guides:
        ax.axvline(g, color="gray", linestyle=":", linewidth=1)
        ax.text(g, 1.01, f"{g:,} km", ha="center", va="bottom", fontsize=7, color="gray",
                transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set(xlim=(1, 20000), ylim=(0, 1), xlabel="distance from the true place (km)",
           ylabel="share of images within d km")
    ax.set_title("How far the pins land", pad=16)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def km_bars(names: list[str], series: dict[str, list], path: Path) -> Path:
    """Grouped horizontal bars of median km per country (log scale), one colour per
    (label, medians); ``names`` in display order, top to bottom; None = no bar."""
    n, k = len(names), max(1, len(series))
    height = max(2.5, (0.16 + 0.1 * k) * n + 1)
    fig, ax = plt.subplots(figsize=(7, height))
    y = np.arange(n)
    width = 0.8 / k
    top = 1.0
    for j, (label, values) in enumerate(series.items()):
        v = np.array([np.nan if x is None else max(float(x), 1.0) for x in values])
        top = max(top, np.nanmax(v) if np.isfinite(v).any() else 1.0)
        ax.barh(y - 0.4 + width * (j + 0.5), v, height=width, color=f"C{j}", label=label)
    ax.set_yticks(y, names, fontsize=8 if n < 40 else 6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set(xlim=(1, max(20000, top * 1.2)), xlabel="median distance (km, log scale)",
           title="Median km by country")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _great_circle(a: tuple[float, float], b: tuple[float, float], steps: int = 32) -> list:
    """(lon, lat) pieces of the great circle from a to b ((lat, lon) in degrees), split
    where it crosses the antimeridian so that no piece runs across the whole map."""
    def unit(lat, lon):
        phi, lam = np.radians(lat), np.radians(lon)
        return np.array([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])

    p, q = unit(*a), unit(*b)
    omega = np.arccos(np.clip(p @ q, -1.0, 1.0))
    t = np.linspace(0, 1, steps)[:, None]
    if omega < 1e-9:
        points = np.repeat(p[None], steps, axis=0)
    else:
        points = (np.sin((1 - t) * omega) * p + np.sin(t * omega) * q) / np.sin(omega)
    lat = np.degrees(np.arcsin(np.clip(points[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    cuts = np.flatnonzero(np.abs(np.diff(lon)) > 180) + 1
    return [np.column_stack([lo, la]) for lo, la in zip(np.split(lon, cuts), np.split(lat, cuts))
            if len(lo) > 1]


def error_map(shapes: dict[str, list], places: np.ndarray, pins: np.ndarray, km: np.ndarray,
              path: Path, title: str) -> Path:
    """Country outlines in grey; per image a dot at the true place ``places`` ([n, 2] lat,
    lon) and a great-circle line to its pin, coloured by the distance ``km`` (log scale,
    1 to 20,000 km); the longest lines drawn first so the short ones stay visible."""
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import ListedColormap, LogNorm

    fig, ax = plt.subplots(figsize=(12, 6))
    rings = [ring for country in shapes.values() for ring in country]
    ax.add_collection(PolyCollection(rings, facecolor="#e6e6e6", edgecolor="white",
                                     linewidth=0.3))
    norm = LogNorm(vmin=1, vmax=20000)
    cmap = ListedColormap(plt.cm.plasma_r(np.linspace(0.15, 1, 256)))  # no pale yellow on grey
    order = np.argsort(-np.nan_to_num(np.asarray(km, dtype=float), nan=0.0))
    segments, values = [], []
    for i in order:
        pieces = _great_circle(tuple(places[i]), tuple(pins[i]))
        segments += pieces
        values += [max(float(km[i]), 1.0)] * len(pieces)
    lines = LineCollection(segments, array=np.asarray(values), cmap=cmap, norm=norm,
                           linewidth=1.1, alpha=0.9)
    ax.add_collection(lines)
    if len(places):
        ax.scatter(places[:, 1], places[:, 0], s=4, color="black", zorder=3, label="true place")
        ax.scatter(pins[order, 1], pins[order, 0], s=12, marker="x", linewidths=0.8, zorder=4,
                   c=np.clip(np.asarray(km, dtype=float)[order], 1, None), cmap=cmap, norm=norm,
                   label="pin")
        ax.legend(fontsize=8, loc="lower left")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.025,
                 label="km from the true place")
    ax.set(xlim=(-180, 180), ylim=(-60, 85), title=title, aspect="equal")
    ax.set_axis_off()
    return _save(fig, path)
