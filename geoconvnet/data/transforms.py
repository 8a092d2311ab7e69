"""Preprocessing, defined once as a train/eval pair.

Training sees the reference's view: a random ``crop_size`` square of the full screenshot,
resized to ``image_size`` (448 -> 224: the image at half scale), randomly flipped. Every
evaluation view keeps that same scale, so the model sees objects at the size it learned:

* ``center`` -- one center crop (about 14% of a 1600x900 screenshot);
* ``grid``   -- overlapping crops tiling the whole image, logits averaged;
* ``full``   -- the whole image resized by ``image_size / crop_size`` (800x450), aspect
  ratio kept; convolutional networks pool over any size;
* ``random`` -- the reference's random crop + flip, for comparison only (not repeatable).

Training can also see the whole screenshot (``train_view`` ``full`` or ``grid``, see
:func:`train_transform`), and ``--eval-view auto`` (the default) picks the eval view on the
validation split after training (:mod:`geoconvnet.training.views`): on the sample data the
centre crop tends to win, on screenshots with clues across the width the whole image.
Evaluate, predict and the app build their transform from a checkpoint's ``preprocessing``
entry via :func:`eval_transform`.
"""

from __future__ import annotations

import functools
import math

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .preprocessing import EVAL_VIEWS, Preprocessing, check_choice


def normalize(images: torch.Tensor, pp: Preprocessing) -> torch.Tensor:
    """uint8 ``[..., 3, H, W]`` -> float32, ImageNet-normalised, on the images' device.

    Transforms stop at uint8: loaders move a quarter of the bytes, and this step runs
    batched where the model runs (on the GPU it costs nothing)."""
    mean, std = _mean_std(pp.mean, pp.std, images.device)
    return (images.float() - mean) / std


@functools.lru_cache(maxsize=8)
def _mean_std(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Made once per device: building them from Python lists every step would copy them to
    # the GPU synchronously, so the CPU could never queue the next step ahead of the GPU.
    def column(values):
        return (torch.tensor(values) * 255).view(3, 1, 1).to(device)

    return column(mean), column(std)


def to_uint8_tensor(image) -> torch.Tensor:
    """PIL image, ``[3, H, W]`` uint8 tensor or tiled cache image -> uint8 tensor."""
    if isinstance(image, torch.Tensor):
        return image
    return F.pil_to_tensor(image.to_pil() if hasattr(image, "to_pil") else image)


def source_crop(pp: Preprocessing, source_scale: float) -> int:
    """The training crop in the pixels of an image stored at ``source_scale`` of the original
    (a cache stores screenshots at half size, where a 448 crop is 224 pixels)."""
    return max(1, round(pp.crop_size * source_scale))


def train_transform(pp: Preprocessing, source_scale: float = 1.0):
    """Image (PIL, uint8 tensor or tiled cache image) -> uint8 tensor for training
    (:func:`normalize` follows on the model's device); ``source_scale``: how much the stored
    images were already shrunk. By ``pp.train_view``:

    * ``crop`` -> ``[3, image_size, image_size]``: one random crop (the reference). The crop
      comes first, so only the crop is decoded (from a tiled cache), converted and resized;
      from a half-scale cache the 224 crop needs no resize at all;
    * ``full`` -> ``[3, h, full_width]``: the whole image, aspect kept, with a small random
      zoom and shift (:class:`RandomFull`);
    * ``grid`` -> ``[K, 3, image_size, image_size]``: the crops of the ``grid`` eval view, each
      shifted a little (:class:`RandomGrid`); the model pools them into one prediction."""
    # Note: a flip mirrors the driving side and any text; on by default only for crop
    # training, as in the reference recipe (--hflip / --no-hflip).
    if pp.train_view == "full":
        view = RandomFull(pp, source_scale)
    elif pp.train_view == "grid":
        view = RandomGrid(pp, source_scale)
    else:
        view = RandomCropFlip(source_crop(pp, source_scale), pp.image_size, pp.hflip,
                              _interpolation(pp))
    if pp.augment != "strong" and pp.train_view == "crop":
        return view
    # No hue jitter: line and sign colours are country cues.
    jitter = 0.3 if pp.augment == "strong" else 0.15
    steps = [view, v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter)]
    if pp.augment == "strong":
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2))
    return v2.Compose(steps)


def _interpolation(pp: Preprocessing) -> v2.InterpolationMode:
    return v2.InterpolationMode(pp.interpolation)


def _whole(image) -> torch.Tensor:
    """A tiled cache image decodes all its tiles; other images as uint8 tensors."""
    return to_uint8_tensor(image.to_pil() if hasattr(image, "to_pil") else image)


class RandomFull:
    """The whole screenshot at the ``full`` view's size, zoomed in by up to 10% and shifted
    by up to 5% (what a slightly different camera position would show); flipped only with
    ``pp.hflip``."""

    def __init__(self, pp: Preprocessing, source_scale: float = 1.0):
        self.pp, self.source_scale = pp, source_scale

    def __call__(self, image) -> torch.Tensor:
        img = _whole(image)
        h, w = img.shape[-2:]
        zoom = float(torch.empty(()).uniform_(0.9, 1.0))
        ch, cw = max(1, round(h * zoom)), max(1, round(w * zoom))
        top = int(torch.randint(0, h - ch + 1, ()))
        left = int(torch.randint(0, w - cw + 1, ()))
        size = self.pp.full_size(h, w, self.source_scale)
        out = F.resized_crop(img, top, left, ch, cw, size, _interpolation(self.pp),
                             antialias=True)
        return out.flip(-1) if self.pp.hflip and torch.rand(1) < 0.5 else out


class RandomGrid:
    """The ``grid`` eval view's crops, each moved by up to an eighth of a crop, as one
    ``[K, 3, s, s]`` stack; flipped (as a whole image) only with ``pp.hflip``."""

    def __init__(self, pp: Preprocessing, source_scale: float = 1.0):
        self.pp, self.crop = pp, source_crop(pp, source_scale)

    def __call__(self, image) -> torch.Tensor:
        img, crop, size = _whole(image), self.crop, [self.pp.image_size] * 2
        h, w = img.shape[-2:]
        if self.pp.hflip and torch.rand(1) < 0.5:
            img = img.flip(-1)
        shift = max(1, crop // 8)
        views = []
        for top in grid_positions(h, crop):
            for left in grid_positions(w, crop):
                dy, dx = (int(torch.randint(-shift, shift + 1, ())) for _ in range(2))
                y, x = min(max(0, top + dy), max(0, h - crop)), min(max(0, left + dx), max(0, w - crop))
                views.append(F.resize(F.crop(img, y, x, min(h, crop), min(w, crop)), size,
                                      _interpolation(self.pp), antialias=True))
        return torch.stack(views)


class RandomCropFlip:
    """torchvision's ``RandomCrop(crop, pad_if_needed=True)`` [-> ``Resize(size)``] ->
    ``RandomHorizontalFlip()`` -> uint8 tensor, drawing the same random numbers in the same
    order (same crops and flips for a seed: tests/data/test_transforms.py).

    One step because the crop must be known before decoding: a tiled cache image
    (:class:`geoconvnet.data.cachefile.TiledImage`) then decodes only the tile holding it."""

    def __init__(self, crop: int, size: int, hflip: bool = True,
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR):
        self.crop, self.size, self.hflip, self.interpolation = crop, size, hflip, interpolation
        self.padded = v2.RandomCrop(crop, pad_if_needed=True)  # images smaller than a crop

    def __call__(self, image) -> torch.Tensor:
        tiled = hasattr(image, "to_pil")
        height, width = (image.height, image.width) if tiled else F.get_size(image)
        if height < self.crop or width < self.crop:
            image = self.padded(image.to_pil() if tiled else image)
        else:
            top = int(torch.randint(0, height - self.crop + 1, size=()))
            left = int(torch.randint(0, width - self.crop + 1, size=()))
            image = (image.region(top, left, self.crop, self.crop) if tiled
                     else F.crop(image, top, left, self.crop, self.crop))
        if self.crop != self.size:
            image = F.resize(image, [self.size, self.size], self.interpolation, antialias=True)
        tensor = to_uint8_tensor(image)
        if self.hflip and torch.rand(1) < 0.5:
            tensor = tensor.flip(-1)
        return tensor


def grid_positions(length: int, crop: int) -> list[int]:
    """Start offsets of overlapping crops covering ``length`` (one if it fits in a crop)."""
    if length <= crop:
        return [0]
    count = math.ceil(length / crop) + (1 if length % crop == 0 else 0)
    step = (length - crop) / (count - 1)
    return [round(i * step) for i in range(count)]


class EvalView:
    """PIL image -> uint8 ``[V, 3, H, W]`` tensor of V views whose logits are averaged."""

    def __init__(self, pp: Preprocessing, view: str, source_scale: float = 1.0):
        check_choice("eval view", view, EVAL_VIEWS)
        self.pp, self.view, self.source_scale = pp, view, source_scale
        self.crop = source_crop(pp, source_scale)
        self.random = v2.Compose([v2.RandomCrop(self.crop, pad_if_needed=True),
                                  v2.RandomHorizontalFlip()])

    def __call__(self, image) -> torch.Tensor:
        pp, img, crop = self.pp, to_uint8_tensor(image), self.crop
        size, mode = [pp.image_size, pp.image_size], _interpolation(pp)
        if self.view == "full":
            h, w = img.shape[-2:]
            new = pp.full_size(h, w, self.source_scale)
            views = [img if new == [h, w] else F.resize(img, new, mode, antialias=True)]
        elif self.view == "center":
            views = [F.resize(F.center_crop(img, [crop]), size, mode, antialias=True)]
        elif self.view == "grid":
            h, w = img.shape[-2:]
            views = [F.resize(F.crop(img, top, left, min(h, crop), min(w, crop)), size, mode,
                              antialias=True)
                     for top in grid_positions(h, crop) for left in grid_positions(w, crop)]
        else:
            views = [F.resize(self.random(img), size, mode, antialias=True)]
        return torch.stack(views)


def eval_transform(pp: Preprocessing, view: str | None = None, source_scale: float = 1.0) -> EvalView:
    return EvalView(pp, view or pp.eval_view, source_scale)
