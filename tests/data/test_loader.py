import torch
from PIL import Image

from geoconvnet.data.loader import EpochSampler, ImageDataset, collate


def test_a_file_broken_after_the_scan_is_set_aside_and_named(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 36)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    ds = ImageDataset([(str(good), 0), (str(broken), 1)], lambda img: torch.zeros(3, 4, 4))
    batch = collate([ds[0], ds[1]])
    assert batch.images.shape == (1, 3, 4, 4)
    assert batch.labels.tolist() == [0] and batch.indices.tolist() == [0]
    assert [f.index for f in batch.failed] == [1] and "broken.png" in batch.failed[0].reason
    assert collate([ds[1]]).images is None


def test_in_memory_images_need_no_file():
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    ds = ImageDataset([(image, 3)], lambda img: torch.tensor(img.getpixel((0, 0))),
                      read=lambda source: source)
    values, label, index = ds[0]
    assert values.tolist() == [255, 0, 0] and (label, index) == (3, 0)


def test_epoch_order_depends_on_seed_and_epoch_only():
    sampler = EpochSampler(10, seed=1, shuffle=True)
    first = list(sampler)
    assert sorted(k % 10 for k in first) == list(range(10))
    sampler.set_epoch(1)
    second = list(sampler)
    assert [k % 10 for k in second] != [k % 10 for k in first] and min(second) >= 10
    assert list(EpochSampler(10, seed=1, shuffle=True)) == first
