"""What a model's preprocessing is, as plain data (no torch): saved in every checkpoint and
read by the CLI at start-up. :mod:`geoconvnet.data.transforms` turns it into the train/eval
transform pair."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..utils.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_VIEWS = ("full", "grid", "center", "random")
AUTO_VIEWS = ("center", "grid", "full")  # what --eval-view auto compares (random is not repeatable)
TRAIN_VIEWS = ("crop", "full", "grid")
AUGMENTATIONS = ("reference", "strong")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
DEFAULT_FULL_WIDTH = 448  # --train-view full: 448x252 for a 16:9 screenshot


@dataclass
class Preprocessing:
    crop_size: int = 448
    image_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    eval_view: str = "center"
    hflip: bool = True
    augment: str = "reference"
    train_view: str = "crop"  # crop: one random crop; full: the whole image; grid: all crops
    full_width: int = 0  # the full view's width (aspect kept); 0: the image at ``scale``
    interpolation: str = "bilinear"  # of every resize (timm models say theirs)

    def __post_init__(self):
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        check_choice("eval view", self.eval_view, EVAL_VIEWS)
        check_choice("train view", self.train_view, TRAIN_VIEWS)
        check_choice("augmentation", self.augment, AUGMENTATIONS)
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        if self.crop_size < 8 or self.image_size < 8:
            raise ConfigError(f"crop_size and image_size must be >= 8, got {self.crop_size}, "
                              f"{self.image_size}")

    @property
    def scale(self) -> float:
        """How much the training view shrinks the source image (0.5 for 448 -> 224)."""
        return self.image_size / self.crop_size

    def full_size(self, height: int, width: int, source_scale: float = 1.0) -> list[int]:
        """[h, w] of the ``full`` view of an image stored at ``source_scale``: ``full_width``
        wide with the aspect kept, or (full_width 0) the image at ``scale``."""
        if self.full_width:
            return [max(1, round(height * self.full_width / width)), self.full_width]
        factor = self.scale / source_scale
        return [max(1, round(height * factor)), max(1, round(width * factor))]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def check_choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
