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
from ..data.preprocessing import Preprocessing
from ..utils.errors import ConfigError
from ..utils.io import write_text

OPTIMIZERS = ("adam", "adamw")
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
    val_fraction: float = 0.1
    seed: int = 0
    crop_size: int = Preprocessing.crop_size
    image_size: int = Preprocessing.image_size
    hflip: bool = Preprocessing.hflip
    augment: str = Preprocessing.augment
    eval_view: str = Preprocessing.eval_view
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
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        self.preprocessing()  # validates crop/view/augment choices

    def preprocessing(self, mean=None, std=None) -> Preprocessing:
        extra = {"mean": mean, "std": std} if mean is not None else {}
        return Preprocessing(crop_size=self.crop_size, image_size=self.image_size,
                             eval_view=self.eval_view, hflip=self.hflip, augment=self.augment,
                             **extra)

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
