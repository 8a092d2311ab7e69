"""Numbers behind the report, computed from plain data (no model, no images)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_confusion(path: Path) -> tuple[np.ndarray, list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    return np.array([[int(v) for v in row[1:]] for row in rows[1:]], dtype=float), names


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix, dtype=float), where=totals > 0)


def top_confused_pairs(matrix: np.ndarray, names: list[str], k: int = 20) -> list[dict]:
    """Off-diagonal cells ranked by the share of the true country's images they hold."""
    shares = row_normalize(matrix)
    pairs = [{"truth": names[i], "predicted": names[j], "share": float(shares[i, j]),
              "count": int(matrix[i, j])}
             for i in range(len(names)) for j in range(len(names))
             if i != j and matrix[i, j] > 0]
    pairs.sort(key=lambda p: (-p["share"], -p["count"], p["truth"], p["predicted"]))
    return pairs[:k]


def cluster_order(matrix: np.ndarray) -> list[int]:
    """Order countries so that the ones confused with each other sit together: hierarchical
    clustering (average linkage, optimal leaf order) of the symmetrised confusion rows."""
    n = len(matrix)
    if n < 3:
        return list(range(n))
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    shares = row_normalize(matrix)
    similarity = (shares + shares.T) / 2
    np.fill_diagonal(similarity, 0)
    distance = 1 - similarity / max(similarity.max(), 1e-12)
    np.fill_diagonal(distance, 0)
    tree = linkage(squareform(distance, checks=False), method="average", optimal_ordering=True)
    return leaves_list(tree).tolist()


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15):
    """Expected calibration error and per-bin stats (equal-width bins on (0, 1]).

    ECE = sum over bins of (bin size / n) * |accuracy(bin) - mean confidence(bin)|.
    """
    edges = np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece, n = [], 0.0, len(confidence)
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        acc = float(correct[mask].mean()) if count else 0.0
        conf = float(confidence[mask].mean()) if count else 0.0
        ece += count / max(n, 1) * abs(acc - conf)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "accuracy": acc, "confidence": conf})
    return float(ece), bins


def embed(matrix: np.ndarray, method: str, metric: str, seed: int = 0) -> np.ndarray | None:
    """2-D map of countries from their confusion rows (t-SNE or UMAP; euclidean on the
    row-normalised rows, or cosine distance between them). None below 4 countries."""
    n = len(matrix)
    if n < 4:
        return None
    rows = row_normalize(matrix)
    if metric == "cosine":
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        unit = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
        features = np.clip(1 - unit @ unit.T, 0, 2)  # cosine distance
        np.fill_diagonal(features, 0)
    else:
        features = rows
    if method == "tsne":
        from sklearn.manifold import TSNE

        kwargs = {"metric": "precomputed", "init": "random"} if metric == "cosine" else {"init": "pca"}
        return TSNE(2, perplexity=min(30.0, (n - 1) / 3), random_state=seed, **kwargs).fit_transform(features)
    import warnings

    import umap

    kwargs = {"metric": "precomputed"} if metric == "cosine" else {}
    reducer = umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed, init="random", n_jobs=1,
                        **kwargs)
    with warnings.catch_warnings():  # "inverse_transform will be unavailable": not needed
        warnings.filterwarnings("ignore", message=".*precomputed metric.*")
        return reducer.fit_transform(features)
