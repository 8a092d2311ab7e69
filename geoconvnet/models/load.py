"""One way to load a model for inference, whatever its file: a checkpoint (or run folder)
in PyTorch, or an exported ``.onnx`` file in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import LoadedModel, load_checkpoint
from .onnx import load_onnx


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    if str(path).endswith(".onnx"):
        return load_onnx(path, device)
    return load_checkpoint(path, device)
