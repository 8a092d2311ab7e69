"""Embeddings of a backbone, computed once and cached: the ``--freeze-backbone`` linear
probe trains on them and ``--refine knn`` finds visually near training images with them.

``--freeze-backbone``: a linear probe. The backbone's embedding of every image (in one eval
view, its crops pooled) is computed once and kept in an embedding cache; the head then
trains on those vectors, so an epoch takes milliseconds even on a CPU. The checkpoint is the
whole model (frozen backbone + trained head): it predicts like any other, and
``--init-from`` fine-tunes all of it afterwards.

The cache holds one file per (backbone weights, preprocessing, view); an image's entry is
keyed by its path, size and modification time, so a changed file is embedded again and
another run with the same backbone (another head, another seed, a tune trial) embeds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.loader import make_loader
from ..data.root import DataRoot
from ..data.transforms import eval_transform
from ..models.checkpoint import LoadedModel
from ..utils.io import atomic_path
from ..utils.progress import add_task, progress_bar
from .core import forward_views

DEFAULT_CACHE = Path("~/.cache/geoconvnet/embeddings")


class EmbeddingCache:
    """Embeddings of one backbone and view; :meth:`get` computes only what is missing."""

    def __init__(self, folder: str | Path | None, model: LoadedModel, view: str,
                 max_pixels: int | None = None):
        self.model, self.view = model, view
        folder = Path(folder).expanduser() if folder else DEFAULT_CACHE.expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_backbone_key(model, view, max_pixels)}.safetensors"
        self.computed = 0  # embeddings made by this object (the rest came from the file)

    def get(self, data: DataRoot, samples: list, device: torch.device, batch_size: int,
            num_workers: int | None) -> torch.Tensor:
        """[len(samples), features] in the order of ``samples``."""
        rows = self._load()
        wanted = [data.sample_key(path) for path, _ in samples]
        missing = [i for i, key in enumerate(wanted) if key not in rows]
        if missing:
            fresh = self._embed(data, [samples[i] for i in missing], device, batch_size,
                                num_workers)
            new = {wanted[i]: vector for i, vector in zip(missing, fresh)}
            self.computed += len(missing)
            # Another run may have added entries meanwhile (tune workers): merge under a lock.
            with open(f"{self.path}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                rows = {**self._load(), **new}
                self._save(rows)
        return torch.stack([rows[key] for key in wanted])

    @torch.no_grad()
    def _embed(self, data: DataRoot, samples: list, device: torch.device, batch_size: int,
               num_workers: int | None) -> list[torch.Tensor]:
        net, pp = self.model.net.to(device).eval(), self.model.preprocessing
        loader = make_loader(samples, eval_transform(pp, self.view, data.scale), batch_size,
                             device, shuffle=False, read=data.read, num_workers=num_workers)
        out = []
        with progress_bar(transient=True) as bar:
            task = add_task(bar, f"Embedding ({self.view} view)", len(samples))
            for batch in loader:
                if batch.failed:  # the bad-file scan ran before: a file broke since
                    raise RuntimeError(f"cannot embed {batch.failed[0].reason}")
                # The mean of an image's crop features: for a linear head, the mean of the
                # crops' logits (the only view pool a frozen backbone allows).
                out.extend(forward_views(_MeanOfCrops(net.backbone), batch.images, device, pp).cpu())
                bar.advance(task, len(batch.labels))
        return out

    def _load(self) -> dict:
        if not self.path.is_file():
            return {}
        tensors = load_file(str(self.path))
        keys = json.loads(bytes(tensors["keys"].tolist()).decode())
        return dict(zip(keys, tensors["embeddings"]))

    def _save(self, rows: dict) -> None:
        keys = list(rows)
        encoded = torch.tensor(list(json.dumps(keys).encode()), dtype=torch.uint8)
        with atomic_path(self.path) as tmp:
            save_file({"embeddings": torch.stack([rows[k] for k in keys]).contiguous(),
                       "keys": encoded}, str(tmp))


class _MeanOfCrops(torch.nn.Module):
    """A backbone that takes ``[B, V, 3, H, W]`` like a GeoNet: the mean of the crops'
    features, so the inference core's batching and normalisation serve the embedding too."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        b, v = views.shape[:2]
        return self.backbone(views.flatten(0, 1)).float().view(b, v, -1).mean(dim=1)


# The preprocessing that changes what an eval view shows the backbone (not training-only).
VIEW_FIELDS = ("crop_size", "image_size", "mean", "std", "full_width", "interpolation")


def _backbone_key(model: LoadedModel, view: str, max_pixels: int | None) -> str:
    """Names the backbone's weights (hashed), the view and what shapes its input."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.net.backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    pp = {k: model.meta["preprocessing"].get(k) for k in VIEW_FIELDS}
    # The pool kind too: max and avgmax have no weights to tell them from the average.
    pool = model.meta.get("pool", "avg")
    digest.update(json.dumps([model.meta["arch"], pp, view, max_pixels]
                             + ([pool] if pool != "avg" else []), sort_keys=True).encode())
    return f"{model.meta['arch'].replace(':', '-')}-{view}-{digest.hexdigest()[:16]}"
