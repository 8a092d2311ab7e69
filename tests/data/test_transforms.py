import pytest
import torch
from PIL import Image

from geoconvnet.data.transforms import (
    Preprocessing,
    eval_transform,
    grid_positions,
    normalize,
    train_transform,
)
from geoconvnet.utils.errors import ConfigError

SCREEN = Image.new("RGB", (1600, 900), (120, 60, 30))


def test_train_view_is_reference_crop_resized():
    out = train_transform(Preprocessing())(SCREEN)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    assert out[0].float().mean().item() == pytest.approx(120, abs=0.5)
    # ImageNet normalisation happens batched on the model's device.
    normed = normalize(out[None], Preprocessing())
    assert normed.dtype == torch.float32
    assert normed[0, 0].mean().item() == pytest.approx((120 / 255 - 0.485) / 0.229, abs=1e-3)


@pytest.mark.parametrize("view, shape", [("center", (1, 3, 224, 224)),
                                         ("grid", (12, 3, 224, 224)),
                                         ("full", (1, 3, 450, 800)),
                                         ("random", (1, 3, 224, 224))])
def test_eval_views_shapes(view, shape):
    assert tuple(eval_transform(Preprocessing(), view)(SCREEN).shape) == shape


def test_grid_covers_whole_image_with_overlap():
    for length, crop in [(1600, 448), (900, 448), (896, 448), (300, 448)]:
        starts = grid_positions(length, crop)
        assert starts[0] == 0 and starts[-1] + min(crop, length) == length
        assert all(b - a < crop for a, b in zip(starts, starts[1:]))  # overlap, no gaps


def test_center_view_is_deterministic_random_is_not():
    img = Image.effect_noise((1600, 900), 60).convert("RGB")
    center = eval_transform(Preprocessing(), "center")
    assert torch.equal(center(img), center(img))
    rand = eval_transform(Preprocessing(), "random")
    assert not torch.equal(rand(img), rand(img))


def test_unknown_view_is_rejected():
    with pytest.raises(ConfigError, match="eval view 'tiles'"):
        Preprocessing(eval_view="tiles")


def test_preprocessing_round_trip():
    pp = Preprocessing(crop_size=300, image_size=150, eval_view="grid", hflip=False)
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    assert pp.scale == 0.5


@pytest.mark.parametrize("crop, size, source", [(224, 224, "pil"), (448, 224, "pil"),
                                                (224, 224, "tensor"), (448, 224, "tensor"),
                                                (1000, 224, "pil")])
def test_train_crop_flip_matches_torchvision_draw_for_draw(crop, size, source):
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    from geoconvnet.data.transforms import RandomCropFlip

    image = Image.effect_noise((800, 450), 60).convert("RGB")
    image = F.pil_to_tensor(image) if source == "tensor" else image
    steps = [v2.RandomCrop(crop, pad_if_needed=True)]
    steps += [v2.Resize((size, size), antialias=True)] if crop != size else []
    steps += [v2.Lambda(lambda x: x if isinstance(x, torch.Tensor) else F.pil_to_tensor(x)),
              v2.RandomHorizontalFlip()]
    composed, fast = v2.Compose(steps), RandomCropFlip(crop, size)
    for seed in range(12):  # about half of them flip
        torch.manual_seed(seed)
        expected = composed(image)
        torch.manual_seed(seed)
        got = fast(image)
        assert got.dtype == torch.uint8 and got.shape == (3, size, size)
        assert torch.equal(got, expected), f"seed {seed}"
