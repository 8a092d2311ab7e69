"""``--refine knn``: the location head's pin refined by the nearest training images.

The location head says which cells are likely; within each likely cell, the training images
that look most like the screenshot (cosine similarity of the backbone's embeddings, from the
embedding cache the ``--freeze-backbone`` probe uses) say where in the cell. Each likely
cell's probability is spread over the places of its ``k`` most similar training images
instead of over all its places, and the pin is again the point of highest expected score
(PIGEON refines within its cells in the same spirit).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.geo import GeoCells
from ..data.root import DataRoot
from ..models.checkpoint import LoadedModel
from ..utils.errors import DataError
from .embeddings import EmbeddingCache
from .pin import PinAdvice, best_pin

DEFAULT_K = 16


class KnnRefiner:
    """Training images' embeddings, places and cells, grouped by cell."""

    def __init__(self, cells: GeoCells, vectors: np.ndarray, latlon: np.ndarray,
                 cell: np.ndarray, k: int = DEFAULT_K):
        self.cells, self.k = cells, k
        self.vectors = _normalised(vectors)
        self.latlon = latlon
        order = np.argsort(cell, kind="stable")
        bounds = np.searchsorted(cell[order], np.arange(len(cells) + 1))
        self.members = [order[bounds[c]:bounds[c + 1]] for c in range(len(cells))]

    def advise(self, vector: np.ndarray, cell_probs: np.ndarray,
               min_probability: float = 0.01, top: int = 32) -> PinAdvice:
        """The refined pin of one image (its embedding and its cell probabilities)."""
        query = _normalised(vector[None])[0]
        likely = [c for c in np.argsort(-cell_probs)[:top] if cell_probs[c] >= min_probability]
        likely = likely or [int(np.argmax(cell_probs))]
        clouds = []
        for c in likely:
            members = self.members[c]
            if len(members):
                nearest = members[np.argsort(-(self.vectors[members] @ query))[:self.k]]
                clouds.append((float(cell_probs[c]), self.latlon[nearest]))
            else:  # no embedded training image in the cell: its own places
                clouds.append((float(cell_probs[c]), self.cells.places[c]))
        total = sum(p for p, _ in clouds)
        clouds = [(p / total, pts) for p, pts in clouds]
        advice = best_pin(clouds, clouds[0][1].mean(axis=0))
        advice.source = "geocell+knn"
        return advice


def build_refiner(model: LoadedModel, data: DataRoot, device: torch.device,
                  batch_size: int, num_workers: int | None, cache_dir=None,
                  k: int = DEFAULT_K) -> tuple[KnnRefiner, EmbeddingCache]:
    """A refiner over the training split of ``data`` (its images with coordinates); the
    embedding cache it filled is returned too, to embed the images to refine."""
    cells = model.geocells
    samples = data.samples("train", model.class_names)
    latlon = data.coordinates([s for s, _ in samples])
    known = np.flatnonzero(np.isfinite(latlon).all(axis=1))
    if not len(known):
        raise DataError(f"--refine knn: {data.location} gives no coordinates for its training "
                        "images; pass the root the model was trained on with --refine-data")
    samples = [samples[i] for i in known]
    unreadable = data.scan([s for s, _ in samples])  # as training skipped them
    if unreadable:
        keep = [i for i, (s, _) in enumerate(samples) if s not in unreadable]
        samples, known = [samples[i] for i in keep], known[keep]
    cache = EmbeddingCache(cache_dir, model, model.preprocessing.eval_view)
    vectors = cache.get(data, samples, device, batch_size, num_workers).numpy()
    cell = cells.assign(latlon[known], [model.class_names[label] for _, label in samples])
    keep = cell >= 0
    return KnnRefiner(cells, vectors[keep], latlon[known][keep], cell[keep], k), cache


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
