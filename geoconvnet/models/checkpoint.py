"""Self-describing checkpoints: safetensors weights + JSON metadata in the same file.

The metadata (architecture, class names, preprocessing, config, metrics, version) is all
that is needed to rebuild the model and its eval transform -- no dataset, no pickled code.
Torch files (``.pt``/``.pth``) are read with ``weights_only=True`` only, and a file that
would need arbitrary unpickling is refused.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import __version__
from ..data.geo import GeoCells
from ..data.preprocessing import Preprocessing
from ..utils.errors import CheckpointError, ConfigError
from ..utils.io import atomic_path
from .heads import COUNTRY, GEOCELL, head, heads_of, output_size
from .registry import GeoNet, build_model
from .weights import read_state_dict

META_KEY = "geoconvnet"
FORMAT_VERSION = 1
BEST_NAME = "best.safetensors"


@dataclass
class LoadedModel:
    """A model ready for inference plus everything its checkpoint says about it."""

    net: GeoNet
    meta: dict

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.meta["preprocessing"])

    @property
    def temperature(self) -> float:
        return float(self.meta.get("temperature", 1.0))

    @functools.cached_property
    def geocells(self) -> GeoCells | None:
        """The location head's cells, or None for a country-only model."""
        entry = head(self.meta, GEOCELL)
        return GeoCells.from_dict(entry["cells"]) if entry is not None else None


def make_meta(arch: str, class_names: list[str], dropout: float, preprocessing: Preprocessing,
              config: dict | None = None, metrics: dict | None = None, pool: str = "avg",
              view_pool: str = "mean", extra_heads: list[dict] | None = None) -> dict:
    """``extra_heads``: heads after the country head (:mod:`.heads`), e.g. the geocells."""
    heads = [{"name": COUNTRY, "size": len(class_names)}] + list(extra_heads or [])
    return {"format": FORMAT_VERSION, "geoconvnet_version": __version__, "arch": arch,
            "num_classes": len(class_names), "class_names": list(class_names), "dropout": dropout,
            "pool": pool, "view_pool": view_pool, "heads": heads,
            "preprocessing": preprocessing.to_dict(), "config": config or {},
            "metrics": metrics or {}}


def model_options(meta: dict) -> dict:
    """How to rebuild a checkpoint's model; checkpoints from before ``--pool`` pooled
    with the average."""
    return {"dropout": meta["dropout"], "pool": meta.get("pool", "avg"),
            "view_pool": meta.get("view_pool", "mean")}


def save_checkpoint(path: str | Path, state_dict: dict, meta: dict) -> Path:
    """Write weights + metadata atomically (temp file, then rename)."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:  # written straight to disk: no second copy in memory
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder stands for its best checkpoint."""
    path = Path(path)
    if path.is_dir():
        best = path / BEST_NAME
        if not best.is_file():
            raise CheckpointError(f"{path}: run folder has no {BEST_NAME} yet (has training "
                                  "finished an epoch?)")
        return best
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run folder")
    return path


def read_meta(path: str | Path) -> dict:
    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc})") from exc
    if meta is None:
        raise CheckpointError(f"{path}: safetensors file without geoconvnet metadata; it holds "
                              "bare weights -- use it for training with --weights PATH")
    return json.loads(meta)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model described by a checkpoint (file or run folder), in eval mode."""
    path = resolve_checkpoint(path)
    if path.suffix != ".safetensors":
        read_state_dict(path)  # refuses pickle payloads with a clear message
        raise CheckpointError(f"{path}: a bare state dict does not describe its model; train with "
                              "--weights PATH to start from it")
    meta = read_meta(path)
    options = model_options(meta)
    try:
        net = build_model(meta["arch"], output_size(meta), weights="none", **options)
    except ConfigError as exc:  # metadata written by another version, or edited
        raise CheckpointError(f"{path}: its metadata describes a model this version cannot "
                              f"build ({exc})") from None
    try:
        missing, unexpected = net.load_state_dict(read_state_dict(path), strict=False)
    except RuntimeError as exc:  # a tensor of another shape: weights and metadata disagree
        raise CheckpointError(f"{path}: weights do not match its metadata ({str(exc)[:300]})"
                              ) from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match {meta['arch']} with pool "
                              f"{options['pool']} and view pool {options['view_pool']} (missing "
                              f"{len(missing)}, unexpected {len(unexpected)} tensors)")
    return LoadedModel(net.to(device).eval(), meta)


def load_all_weights(net: GeoNet, path: str | Path, class_names: list[str],
                     pool: str = "avg", extra_heads: list[dict] | None = None) -> None:
    """Every weight of a checkpoint (file or run folder), head included, into ``net``: to
    go on training from it, e.g. fine-tuning after a linear probe (``--init-from``). The
    spatial pool must be the checkpoint's; a view pool may be added (its attention starts
    as the mean, which is what the checkpoint's crops were combined with). When this run's
    heads after the country head (``extra_heads``: its geocells) differ from the
    checkpoint's, only the country head's rows are taken and the others start fresh."""
    path = resolve_checkpoint(path)
    meta = read_meta(path)
    if meta["class_names"] != list(class_names):
        raise CheckpointError(f"--init-from {path}: its classes differ from the dataset's; "
                              "start from its backbone only with --weights PATH")
    if meta.get("pool", "avg") != pool:
        raise CheckpointError(f"--init-from {path}: it pools with --pool "
                              f"{meta.get('pool', 'avg')}, this run with --pool {pool}; use "
                              "the same, or start from its backbone only with --weights PATH")
    state = read_state_dict(path)
    if heads_of(meta)[1:] != list(extra_heads or []):
        country = len(class_names)
        for name, tensor in net.head.named_parameters():
            saved = state.pop(f"head.{name}")
            with torch.no_grad():
                tensor[:country] = saved[:country]
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("view_pool.", "head."))]
    if missing or unexpected:
        raise CheckpointError(f"--init-from {path}: a {meta['arch']} checkpoint does not fit "
                              "this --arch")


def update_meta(path: str | Path, **changes) -> dict:
    """Rewrite a checkpoint's metadata (the weights stay), atomically; returns the new one."""
    path = resolve_checkpoint(path)
    meta = {**read_meta(path), **changes}
    save_checkpoint(path, read_state_dict(path), meta)
    return meta
