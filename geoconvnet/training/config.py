"""Training configuration: code defaults < YAML file < explicit arguments.

Defaults follow the reference recipe (Adam, lr 5.27e-5 with a 10x head, weight decay 2e-6,
StepLR(5, 0.815), dropout 0.4, batch 64, up to 25 epochs, patience 3, 448 -> 224 crops).
The resolved config is saved as ``config.yaml`` in every run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from ..data.images import DEFAULT_MAX_PIXELS
from ..data.preprocessing import (
    DEFAULT_FULL_WIDTH,
    EVAL_VIEWS,
    TRAIN_VIEWS,
    Preprocessing,
    check_choice,
)
from ..models.choices import check_pool, check_view_pool
from ..utils.errors import ConfigError
from ..utils.io import write_text

OPTIMIZERS = ("adam", "adamw")
GEO_MODES = ("auto", "on", "off")
SCHEDULERS = ("step", "cosine", "none")


@dataclass
class TrainConfig:
    data: str = ""
    arch: str = "resnet50"
    weights: str = "imagenet"
    epochs: int = 25
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 5.27e-5
    head_lr_mult: float = 10.0
    weight_decay: float = 2.0e-6
    scheduler: str = "step"
    step_size: int = 5
    gamma: float = 0.815
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    dropout: float = 0.4
    patience: int = 3
    max_steps: int = 0  # 0: no limit; else stop after this many optimizer steps
    val_fraction: float = 0.1
    seed: int = 0
    crop_size: int = Preprocessing.crop_size
    image_size: int | None = None  # None: the model's pretrained input size (timm), else 224
    train_view: str = Preprocessing.train_view
    full_width: int = 0  # 0: 448 for --train-view full, else the image at the crop's scale
    hflip: bool | None = None  # None: on for crop training (the reference), off otherwise
    augment: str = Preprocessing.augment
    pool: str = "avg"
    view_pool: str = "mean"
    progressive: float = 0.0  # 0: off; 0.5: the first epochs at half the resolution
    eval_view: str = "auto"
    # The location head (geocells): "auto" trains it when the root has coordinates.
    geo: str = "auto"
    geo_weight: float = 1.0  # its loss's weight beside the country loss
    geocells: int = 512  # at most this many cells (fewer where the data cannot fill them)
    geocell_min: int = 10  # training places a cell needs to be split off
    geo_tau: float = 75.0  # km: the haversine label smoothing's decay (PIGEON's 75)
    layer_decay: float = 0.0
    ema_decay: float = 0.0
    freeze_backbone: bool = False
    embedding_cache: str | None = None
    init_from: str | None = None
    num_workers: int | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    name: str | None = None
    runs_dir: str = "runs"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise ConfigError(f"max_steps must be 0 (no limit) or positive, got {self.max_steps}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        check_choice("eval view", self.eval_view, EVAL_VIEWS + ("auto",))
        check_choice("geo", self.geo, GEO_MODES)
        if self.geo_weight < 0 or self.geocells < 1 or self.geocell_min < 1 or self.geo_tau <= 0:
            raise ConfigError(f"geo_weight must be >= 0, geocells and geocell_min >= 1 and "
                              f"geo_tau > 0 km; got {self.geo_weight}, {self.geocells}, "
                              f"{self.geocell_min}, {self.geo_tau}")
        check_choice("train view", self.train_view, TRAIN_VIEWS)
        for name in ("layer_decay", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1) (0 switches it off), got "
                                  f"{getattr(self, name)}")
        check_pool(self.pool)
        check_view_pool(self.view_pool)
        if self.freeze_backbone and self.view_pool != "mean":
            raise ConfigError(f"--view-pool {self.view_pool} is trained with the backbone's "
                              "crops; --freeze-backbone embeds each image once with the mean: "
                              "use --view-pool mean")
        if self.freeze_backbone and (self.progressive or self.pool in ("gem", "attn")):
            raise ConfigError("--freeze-backbone trains the head alone on embeddings computed "
                              "once: --progressive and a --pool with weights (gem, attn) "
                              "would never train. Leave them out, or use --pool max/avgmax")
        if self.view_pool == "attn" and self.train_view != "grid":
            raise ConfigError("--view-pool attn learns which crops to trust from grid training "
                              f"(--train-view grid); with --train-view {self.train_view} it "
                              "would never train. Use --view-pool mean or lse")
        if not (self.progressive == 0 or 0.25 <= self.progressive <= 1):
            raise ConfigError(f"progressive must be 0 (off) or a resolution fraction in "
                              f"[0.25, 1], got {self.progressive}")
        if self.freeze_backbone and self.ema_decay:
            raise ConfigError("--ema-decay averages weights that change; with "
                              "--freeze-backbone only the head trains: drop one of them")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"image_size must be >= 8 (or left out for the model's own), "
                              f"got {self.image_size}")
        self.preprocessing()  # validates crop/view/augment choices

    @property
    def first_view(self) -> str:
        """The view of the per-epoch validation: the eval view asked for, or with ``auto``
        the one that matches the training view (``auto`` decides after training)."""
        if self.eval_view != "auto":
            return self.eval_view
        return {"crop": "center", "full": "full", "grid": "grid"}[self.train_view]

    def preprocessing(self, mean=None, std=None, input_size: int | None = None,
                      interpolation: str = "bilinear") -> Preprocessing:
        """The checkpoint's preprocessing; ``mean``, ``std``, ``input_size`` and
        ``interpolation`` come from the model's pretrained configuration (timm)."""
        extra = {"mean": mean, "std": std} if mean is not None else {}
        hflip = self.train_view == "crop" if self.hflip is None else self.hflip
        full_width = self.full_width or (DEFAULT_FULL_WIDTH if self.train_view == "full" else 0)
        return Preprocessing(crop_size=self.crop_size,
                             image_size=self.image_size or input_size or 224,
                             eval_view=self.first_view, hflip=hflip, augment=self.augment,
                             train_view=self.train_view, full_width=full_width,
                             interpolation=interpolation, **extra)

    def to_dict(self) -> dict:
        return asdict(self)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
    return data


def resolve_config(config_file: str | Path | None = None, **overrides) -> TrainConfig:
    """Defaults, then the YAML file, then every override that is not None."""
    known = {f.name: f for f in fields(TrainConfig)}
    values = load_yaml(config_file) if config_file else {}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f" in {config_file}" if config_file else ""
        raise ConfigError(f"unknown option(s){where}: {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}")
    values = {k: coerce(k, v, known[k].type) for k, v in values.items()}
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def coerce(name: str, value, type_name: str):
    """YAML reads ``1e-4`` as a string and users write ``"8"``; convert to the field's type."""
    if value is None or type_name in ("str", "str | None"):
        return value
    base = type_name.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "yes", "1")
            return bool(value)
        return {"int": int, "float": float}[base](value)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"option {name}: cannot read {value!r} as {base}") from exc


def save_config(config: TrainConfig, path: Path) -> None:
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
