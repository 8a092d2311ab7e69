"""How a model pools what it sees: over the positions of a feature map (``--pool``) and over
the crops of a view made of several crops (``--view-pool``).

A backbone's global average pool mixes a small object's few activations with the whole sky
and road; averaging the logits of 12 crops outvotes the one crop that saw the plate. The
alternatives here let the strongest evidence speak:

* ``--pool``: ``avg`` (the backbone's own), ``max`` and ``avgmax`` (timm's
  ``SelectAdaptivePool2d``), ``gem`` (generalised mean with a learned exponent, as landmark
  retrieval pools) and ``attn`` (a small gated attention over positions);
* ``--view-pool``: ``mean`` of the crops' logits (what grid evaluation always did), ``lse``
  (log-sum-exp of the logits: a smooth max over crops, as multiple-instance learning pools)
  and ``attn`` (gated attention over the crops' features, Ilse et al. 2018).

Attention starts as the average (its scoring layer starts at zero), so a model that adds it
begins where average pooling begins. Modules here hold their own parameters and export to
ONNX with dynamic sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from .choices import check_pool, check_view_pool

TIMM_POOLS = ("avg", "max", "avgmax")  # those timm's SelectAdaptivePool2d provides


class GeM(nn.Module):
    """Generalised mean over positions, ``(mean x^p)^(1/p)`` with a learned ``p`` (3 at the
    start; p = 1 is the average, p -> inf the maximum). Features are clamped at ``eps``
    first: made for the non-negative maps of ReLU networks."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, flatten: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([p]))
        self.eps, self.flatten = eps, flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)  # below 1 it is no longer a mean of the evidence
        # float32: x^3 of bf16 activations loses most of its digits
        pooled = x.float().clamp(min=self.eps).pow(p).mean(dim=(-2, -1), keepdim=True)
        pooled = pooled.pow(1.0 / p).to(x.dtype)
        return pooled.flatten(1) if self.flatten else pooled


class GatedAttention(nn.Module):
    """Attention-based multiple-instance pooling of ``[B, N, C]`` instances into ``[B, C]``:
    weights ``softmax_n(w . (tanh(V h) * sigmoid(U h)))`` (Ilse, Tomczak & Welling 2018).
    ``w`` starts at zero, so the pool starts as the mean."""

    def __init__(self, channels: int, hidden: int = 128):
        super().__init__()
        self.value = nn.Linear(channels, hidden)
        self.gate = nn.Linear(channels, hidden)
        self.score = nn.Linear(hidden, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def weights(self, instances: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` attention weights, summing to 1 over the instances."""
        h = instances.float()
        scores = self.score(torch.tanh(self.value(h)) * torch.sigmoid(self.gate(h)))
        return scores.squeeze(-1).softmax(dim=1)

    def forward(self, instances: torch.Tensor) -> torch.Tensor:
        weights = self.weights(instances)
        return (weights.unsqueeze(-1) * instances.float()).sum(dim=1).to(instances.dtype)


class AttentionPool2d(nn.Module):
    """:class:`GatedAttention` over the positions of a ``[B, C, H, W]`` feature map."""

    def __init__(self, channels: int, hidden: int = 128, flatten: bool = True):
        super().__init__()
        self.attention = GatedAttention(channels, hidden)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.attention(x.flatten(2).transpose(1, 2))  # [B, H*W, C] -> [B, C]
        return pooled if self.flatten else pooled[:, :, None, None]


def spatial_pool(kind: str, channels: int, flatten: bool = True) -> nn.Module:
    """The pooling layer ``kind`` for ``channels``-wide feature maps; ``flatten``: return
    ``[B, C]`` (else ``[B, C, 1, 1]``, for heads that normalise before flattening)."""
    check_pool(kind)
    if kind in TIMM_POOLS:
        from timm.layers import SelectAdaptivePool2d  # lazy: timm's import costs ~1 s

        return SelectAdaptivePool2d(pool_type=kind, flatten=flatten)
    if kind == "gem":
        return GeM(flatten=flatten)
    return AttentionPool2d(channels, flatten=flatten)


class ViewPool(nn.Module):
    """Combines the V crops of each image: ``[B, V, C]`` features and the head -> ``[B, K]``
    logits. ``mean`` and ``lse`` pool the crops' logits, ``attn`` their features."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        check_view_pool(kind)
        self.kind = kind
        self.attention = GatedAttention(channels) if kind == "attn" else None

    def forward(self, features: torch.Tensor, head: nn.Module) -> torch.Tensor:
        if self.attention is not None:
            return head(self.attention(features))
        logits = head(features).float()  # [B, V, K]
        if self.kind == "lse":
            # log(mean(exp)): a smooth maximum that equals the logit when all crops agree.
            # Written with mean(), not logsumexp - log(V): V stays a dynamic size in ONNX.
            top = logits.amax(dim=1, keepdim=True)
            return (top + (logits - top).exp().mean(dim=1, keepdim=True).log()).squeeze(1)
        return logits.mean(dim=1)
