"""ONNX export, and running an exported model with onnxruntime wherever a checkpoint runs.

The exported file holds the same metadata as the checkpoint (architecture, class names,
preprocessing, temperature...), in the ONNX model's ``metadata_props`` under
``geoconvnet``, so ``predict`` and ``evaluate`` build the same eval transform from it. The
input is ``[batch, views, 3, height, width]`` (the crops of a view, combined inside the
graph by the model's view pool) with every dimension dynamic: every eval view (``full``
included) runs. Files exported before the view pool took ``[batch, 3, height, width]``;
they still load, their views averaged outside the graph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..utils.errors import CheckpointError, ConfigError
from ..utils.io import atomic_path
from .checkpoint import META_KEY, LoadedModel, load_checkpoint


def _onnx_modules():
    try:
        import onnx  # lazy: optional dependencies (pip install 'geoconvnet[onnx]')
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX needs `onnx` and `onnxruntime`: pip install "
                          "'geoconvnet[onnx]'") from None
    return onnx, onnxruntime


def export_onnx(checkpoint, out: str | Path) -> Path:
    """Export a checkpoint (file or run folder) to ``out`` (``.onnx``)."""
    onnx, _ = _onnx_modules()
    model = load_checkpoint(checkpoint, "cpu")
    size = model.preprocessing.image_size
    example = torch.zeros(2, 3, 3, size, size)
    fixed = model.net.fixed_size is not None  # ViT: only its input size
    dims = {} if fixed else {3: torch.export.Dim("height", min=32),
                             4: torch.export.Dim("width", min=32)}
    shapes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("views", max=256), **dims}
    program = torch.onnx.export(model.net, (example,), dynamo=True, input_names=["images"],
                                output_names=["logits"], dynamic_shapes={"images": shapes})
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(model.meta)
    out = Path(out)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return out


class OnnxNet(nn.Module):
    """An onnxruntime session behind the interface the inference core uses (a module that
    takes a float tensor of images and returns logits)."""

    def __init__(self, session, fixed_size: int | None):
        super().__init__()
        self.session, self.fixed_size = session, fixed_size
        self.takes_views = len(session.get_inputs()[0].shape) == 5
        self._marker = nn.Parameter(torch.empty(0), requires_grad=False)  # says the device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` or ``[B, V, 3, H, W]``, as :class:`~.registry.GeoNet` takes them."""
        views = images.dim() == 5
        if views != self.takes_views:
            if not views:  # one view per image
                return self.forward(images[:, None])
            # a file from before the view pool: the views' logits averaged, as then
            b, v = images.shape[:2]
            return self.forward(images.flatten(0, 1)).view(b, v, -1).mean(dim=1)
        logits = self.session.run(None, {"images": images.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(logits)


def session_options(onnxruntime, threads: int | None = None, spin: bool = False):
    """ONNX Runtime's options for one process: ``threads`` for one operator (default: the
    threads torch uses here, which `serve --workers` sets to the process's share of the
    cores), operators one after another, and no spinning. By default ORT's idle threads
    spin for a while after each operator, waiting for the next: that gains a little on an
    idle machine and loses a lot when other processes want the cores (the spinning threads
    take their time slices)."""
    options = onnxruntime.SessionOptions()
    spin = spin or os.environ.get("GEOCONVNET_ORT_SPIN") == "1"  # a machine of its own
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def load_onnx(path: str | Path, device: str | torch.device = "cpu", threads: int | None = None,
              spin: bool = False) -> LoadedModel:
    """An exported model, ready for the inference core (onnxruntime on the CPU); ``threads``
    and ``spin``: see :func:`session_options`."""
    _, onnxruntime = _onnx_modules()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such ONNX file")
    try:
        session = onnxruntime.InferenceSession(str(path), session_options(onnxruntime, threads,
                                                                          spin),
                                               providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types for bad files
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc)[:200]})") from None
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if meta is None:
        raise CheckpointError(f"{path}: an ONNX model without geoconvnet metadata; export it "
                              "with `geoconvnet export`")
    meta = json.loads(meta)
    # A model exported with a fixed input side (ViTs) has numbers where others have names.
    side = session.get_inputs()[0].shape[-1]
    fixed = side if isinstance(side, int) else None
    return LoadedModel(OnnxNet(session, fixed).eval(), meta)
