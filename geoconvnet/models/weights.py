"""Reading weights without ever running pickled code: safetensors files and tensors-only
torch files, and initialising a backbone from them (``--weights PATH``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..utils.errors import CheckpointError, WeightsUnavailableError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a tensors-only torch file; never runs pickled code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused -- the file contains pickled Python objects that would run code "
            "when loaded. Only safetensors files and tensors-only torch files are accepted; "
            "re-save the weights with safetensors.") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable weights file ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def load_backbone_weights(model: nn.Module, path: Path) -> None:
    """Initialise the backbone from a weights file: a geoconvnet checkpoint, or a plain
    state dict (safetensors, or a tensors-only torch file) of the architecture."""
    if not path.is_file():
        raise WeightsUnavailableError(f"--weights {path}: no such file; use imagenet, none or "
                                      "the path of a weights file")
    state = read_state_dict(path)
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    own = model.backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise CheckpointError(f"--weights {path}: none of its {len(state)} tensors match the "
                              f"backbone ({len(own)} tensors); is it for another architecture?")
    model.backbone.load_state_dict(usable, strict=False)
