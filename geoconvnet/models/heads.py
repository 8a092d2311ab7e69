"""A model's named heads: one linear layer whose outputs are cut into named spans.

Every model has the ``country`` head (the class names, first, so a country-only model's
logits are exactly what they always were); a model trained with coordinates adds the
``geocell`` head (its payload: the cells, :class:`~geoconvnet.data.geo.GeoCells`). The
checkpoint lists them (``meta["heads"]``: name, size, payload); the network computes all of
them in one matrix product, so the view pool, DDP, ``torch.compile``, Grad-CAM and the
ONNX graph see one output as before; :func:`split_logits` names its spans. A third head
(the driving side, a region) is one more entry in the list.
"""

from __future__ import annotations

import torch

COUNTRY, GEOCELL = "country", "geocell"


def heads_of(meta: dict) -> list[dict]:
    """The heads a checkpoint lists, in output order; a checkpoint from before heads has
    the country head alone."""
    return meta.get("heads") or [{"name": COUNTRY, "size": int(meta["num_classes"])}]


def output_size(meta: dict) -> int:
    return sum(int(head["size"]) for head in heads_of(meta))


def head(meta: dict, name: str) -> dict | None:
    """The entry of head ``name``, or None when the model has no such head."""
    return next((h for h in heads_of(meta) if h["name"] == name), None)


def split_logits(logits: torch.Tensor, heads: list[dict]) -> dict[str, torch.Tensor]:
    """``[..., total]`` -> {head name: ``[..., size]``}, views of the same tensor."""
    out, start = {}, 0
    for entry in heads:
        out[entry["name"]] = logits[..., start:start + int(entry["size"])]
        start += int(entry["size"])
    return out
