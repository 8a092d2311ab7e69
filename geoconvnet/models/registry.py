"""Model registry: architecture name -> builder of a feature backbone.

Every model is ``GeoNet(backbone, head)`` with head = Dropout + Linear (Xavier init, as in
the reference), so the head learning-rate multiplier and checkpoints work the same for
every architecture. Names: the torchvision models in :data:`REGISTRY` and any timm model
as ``timm:<name>``. The backbone's spatial pool (``pool``) and the pooling of a view's
crops (``view_pool``) are chosen per model (:mod:`.pooling`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from ..data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from ..utils.errors import ConfigError, WeightsUnavailableError
from .choices import check_pool
from .pooling import AttentionPool2d, GeM, ViewPool, spatial_pool
from .weights import load_backbone_weights


@dataclass
class Backbone:
    module: nn.Module  # images -> pooled features [B, num_features]
    num_features: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    fixed_size: int | None = None  # input side the model requires (ViT), else any size
    input_size: int | None = None  # the pretrained configuration's input side (timm)
    interpolation: str = "bilinear"  # the pretrained configuration's resize (timm)


def _torchvision(name: str, head_attr: str, features: Callable[[nn.Module], int],
                 fixed_size: int | None = None):
    def build(pretrained: bool) -> Backbone:
        weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
        model = torchvision.models.get_model(name, weights=weights)
        num_features = features(model)
        setattr(model, head_attr, nn.Identity())
        return Backbone(model, num_features, fixed_size=fixed_size)

    return build


def _resnet(name):
    return _torchvision(name, "fc", lambda m: m.fc.in_features)


def _efficientnet(name):
    return _torchvision(name, "classifier", lambda m: m.classifier[-1].in_features)


REGISTRY: dict[str, Callable[[bool], Backbone]] = {
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
    "resnet101": _resnet("resnet101"),
    "resnet152": _resnet("resnet152"),
    "efficientnet_b0": _efficientnet("efficientnet_b0"),
    "efficientnet_b1": _efficientnet("efficientnet_b1"),
    "efficientnet_b2": _efficientnet("efficientnet_b2"),
    "vit_b_16": _torchvision("vit_b_16", "heads", lambda m: m.heads[-1].in_features,
                             fixed_size=224),
}


def _timm(name: str, pretrained: bool) -> Backbone:
    import timm  # lazy: about 1 s of imports that only timm: architectures need

    model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    # The pretrained configuration (known even without downloading the weights) drives the
    # transforms: CLIP models, for one, want their own mean/std, bicubic resizing, 224 or 336.
    cfg = model.pretrained_cfg or {}
    side = cfg.get("input_size", (3, 224, 224))[-1]
    fixed = side if cfg.get("fixed_input_size", False) else None  # ViTs, Swin, EVA...
    interpolation = cfg.get("interpolation", "bilinear")
    return Backbone(model, model.num_features, tuple(cfg.get("mean", IMAGENET_MEAN)),
                    tuple(cfg.get("std", IMAGENET_STD)), fixed, side,
                    interpolation if interpolation in ("bilinear", "bicubic", "nearest")
                    else "bilinear")


def available_architectures() -> list[str]:
    return sorted(REGISTRY) + ["timm:<name>"]


def install_pool(module: nn.Module, kind: str, channels: int, arch: str) -> None:
    """Replace the backbone's global average pool by ``kind`` (``avg`` keeps it as it is, so
    checkpoints from before ``--pool`` load unchanged). torchvision CNNs pool in
    ``avgpool``; timm models in ``global_pool`` (``head.global_pool`` where a norm follows
    the pool, as in ConvNeXt), whose flattening the new pool copies."""
    check_pool(kind)
    if kind == "avg":
        return
    if isinstance(getattr(module, "avgpool", None), nn.AdaptiveAvgPool2d):  # torchvision
        module.avgpool = spatial_pool(kind, channels, flatten=True)
        return
    for owner in (module, getattr(module, "head", None)):
        flatten = _average_pool_flattens(getattr(owner, "global_pool", None))
        if flatten is not None:
            owner.global_pool = spatial_pool(kind, channels, flatten=flatten)
            return
    raise ConfigError(f"--pool {kind}: {arch} has no average pool over an NCHW feature map to "
                      "replace (a vision transformer pools its class token, Swin pools NHWC "
                      "maps); use --pool avg")


def _average_pool_flattens(pool) -> bool | None:
    """Whether timm's average pool ``pool`` (a SelectAdaptivePool2d) returns ``[B, C]``;
    None if it is not an average over NCHW maps, which is all the new pools can replace."""
    inner = getattr(pool, "pool", None)
    if isinstance(inner, nn.AdaptiveAvgPool2d):
        return isinstance(pool.flatten, nn.Flatten)
    if type(inner).__name__ == "FastAdaptiveAvgPool" and tuple(inner.dim) == (2, 3):
        return bool(inner.flatten)  # the fast pool flattens itself
    return None


class GeoNet(nn.Module):
    """``num_classes``: the head's outputs, every named head's together (:mod:`.heads`)."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float,
                 view_pool: str = "mean"):
        super().__init__()
        self.backbone = backbone.module
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.num_features, num_classes))
        nn.init.xavier_uniform_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)
        self.view_pool = ViewPool(view_pool, backbone.num_features)
        self.mean, self.std, self.fixed_size = backbone.mean, backbone.std, backbone.fixed_size
        self.input_size, self.interpolation = backbone.input_size, backbone.interpolation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` -> logits per image, or ``[B, V, 3, H, W]`` (V crops of each of B
        images) -> ``[B, K]`` logits, the crops combined by the view pool. One entry point
        for both, so a DDP-wrapped or compiled model and the ONNX export see the same."""
        if images.dim() == 5:
            b, v = images.shape[:2]
            features = self.backbone(images.flatten(0, 1))
            return self.view_pool(features.reshape(b, v, features.shape[-1]), self.head)
        return self.head(self.backbone(images))

    def param_groups(self, lr: float, head_lr_mult: float, weight_decay: float,
                     layer_decay: float = 0.0) -> list[dict]:
        """The backbone at ``lr`` (with ``layer_decay``: each block of a timm model at
        ``lr * layer_decay ** depth-from-the-top``, timm's layer-wise decay), the head at
        ``lr * head_lr_mult``."""
        # The pooling layers are new, trained from their initial values: they learn at the
        # head's rate, and without weight decay (which would pull GeM's exponent to 0).
        pooling = self.pooling_parameters()
        new = {id(p) for p in pooling}
        head = {"params": list(self.head.parameters()), "lr": lr * head_lr_mult,
                "weight_decay": weight_decay}
        head = [head] + ([{"params": pooling, "lr": lr * head_lr_mult, "weight_decay": 0.0}]
                         if pooling else [])
        if not layer_decay:
            return [{"params": [p for p in self.backbone.parameters() if id(p) not in new],
                     "lr": lr, "weight_decay": weight_decay}] + head
        if not hasattr(self.backbone, "group_matcher"):
            raise ConfigError("--layer-decay needs a timm model (timm:<name>), whose blocks "
                              "timm can number")
        from timm.optim import param_groups_layer_decay  # lazy: timm models only

        no_decay = getattr(self.backbone, "no_weight_decay", lambda: ())()  # pos_embed, cls
        groups = param_groups_layer_decay(self.backbone, weight_decay=weight_decay,
                                          no_weight_decay_list=no_decay,
                                          layer_decay=layer_decay)
        for group in groups:
            group["lr"] = lr * group.pop("lr_scale", 1.0)
            group["params"] = [p for p in group["params"] if id(p) not in new]
        return [g for g in groups if g["params"]] + head

    def pooling_parameters(self) -> list[nn.Parameter]:
        """The parameters of the spatial pool (GeM, attention) and of the view pool."""
        layers = [m for m in self.backbone.modules() if isinstance(m, (GeM, AttentionPool2d))]
        return [p for m in layers + [self.view_pool] for p in m.parameters()]


def check_input_size(net: GeoNet, arch: str, image_size: int, view: str) -> None:
    """Models with a fixed input size (ViT) cannot take other sizes or the ``full`` view."""
    if net.fixed_size is None:
        return
    if image_size != net.fixed_size:
        raise ConfigError(f"{arch} needs {net.fixed_size}x{net.fixed_size} inputs; use "
                          f"--image-size {net.fixed_size}")
    if view == "full":
        raise ConfigError(f"{arch} needs {net.fixed_size}x{net.fixed_size} inputs, so the 'full' "
                          "view cannot be used; choose center or grid")


def check_train_view(net: GeoNet, arch: str, train_view: str) -> None:
    if net.fixed_size is not None and train_view == "full":
        raise ConfigError(f"{arch} needs {net.fixed_size}x{net.fixed_size} inputs, so it cannot "
                          "train on the whole screenshot; use --train-view crop or grid")


def builder_for(arch: str) -> Callable[[bool], Backbone]:
    """The builder of an architecture name, or a ConfigError naming the choices: cheap, so
    ``train`` checks the name before it makes a run folder."""
    if arch.startswith("timm:"):
        import timm  # lazy: as in _timm

        name = arch.removeprefix("timm:")
        if not timm.is_model(name):
            raise ConfigError(f"unknown timm model {name!r}; see timm.list_models()")
        return functools.partial(_timm, name)
    if arch in REGISTRY:
        return REGISTRY[arch]
    raise ConfigError(f"unknown architecture {arch!r}; choose one of "
                      f"{', '.join(available_architectures())}")


def build_backbone(arch: str, pretrained: bool) -> Backbone:
    builder = builder_for(arch)
    if not pretrained:
        return builder(False)
    try:
        return builder(True)
    except Exception as exc:  # urllib, hub and huggingface_hub raise many kinds
        raise WeightsUnavailableError(
            f"could not download ImageNet weights for {arch} ({type(exc).__name__}: {exc}). "
            "Check the internet connection, or train from scratch with --weights none, or "
            "pass a local weights file with --weights PATH.") from exc


PRETRAINED = ("imagenet", "pretrained")


def build_model(arch: str, num_classes: int, weights: str = "none", dropout: float = 0.4,
                pool: str = "avg", view_pool: str = "mean") -> GeoNet:
    """``weights``: ``imagenet`` or its alias ``pretrained`` (the library's pretrained weights,
    downloaded and cached: ImageNet for torchvision, the model's tag for timm, e.g. OpenAI
    CLIP for ``timm:vit_base_patch16_clip_224.openai``), ``none`` or a file path.
    ``pool`` and ``view_pool``: see :mod:`.pooling`."""
    pretrained = weights in PRETRAINED
    backbone = build_backbone(arch, pretrained=pretrained)
    install_pool(backbone.module, pool, backbone.num_features, arch)
    model = GeoNet(backbone, num_classes, dropout, view_pool)
    if not pretrained and weights != "none":
        load_backbone_weights(model, Path(weights))
    return model


def cam_layer(net: GeoNet) -> nn.Module:
    """The last convolutional block, whose activations Grad-CAM weighs."""
    backbone = net.backbone
    for name in ("layer4", "features", "stages", "blocks"):  # resnet, efficientnet, timm
        block = getattr(backbone, name, None)
        if isinstance(block, nn.Sequential) and len(block):
            return block[-1]
    raise ConfigError("heat maps are available for convolutional backbones (ResNet, "
                      "EfficientNet and timm CNNs); this architecture has no last "
                      "convolutional block to explain")
