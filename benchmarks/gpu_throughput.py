"""GPU training throughput: end to end vs model-bound, and the reference-style pipeline.

For resnet50 and resnet101 (bf16 autocast, channels_last, batch 64 unless --batch-size):
- model-bound: training steps on random tensors already in GPU memory, as many as an epoch
  has, after as many warm-up steps (a short burst would time the GPU at its boost clock);
- geoconvnet end to end: the real training loop (`Trainer.train_epoch`) reading a cache
  made by `geoconvnet data prepare`, default loader settings, one epoch of --epoch-images
  (the sample images repeated, so an epoch is about as long as the reference's training
  split and the loader's start-of-epoch fill weighs what it weighs in real training);
- reference-style: ImageFolder on the 1600x900 PNGs, RandomCrop(448) -> Resize(224), 4 workers,
  feeding the same training step.
Also measured, to show where time goes and to choose the defaults: the training loop fed by
a loader that costs nothing, resnet50 end to end with 1/2 and 3/4 of the loader workers and
at twice the batch, the cached loader alone (no model), and batched nvJPEG decoding on the GPU
(`torchvision.io.decode_jpeg`).
Prints ratios (end-to-end / model-bound: target >= 85%) and appends to RESULTS.md.

One command on a CUDA machine (draws 800 sample screenshots first):

    python benchmarks/gpu_throughput.py

`--device cpu --images-per-class 4 --epoch-images 64 --steps 2 --batch-size 8` only checks
that the script runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import torch
from _common import record, sample_data
from torch import nn

from geoconvnet.data.cache import prepare
from geoconvnet.data.cachefile import TiledImage, open_cached
from geoconvnet.data.index import index_dataset
from geoconvnet.data.loader import default_workers
from geoconvnet.models.registry import build_model
from geoconvnet.training.config import TrainConfig
from geoconvnet.training.train import Trainer
from geoconvnet.utils.device import autocast


def say(text: str) -> None:
    print(text, flush=True)


def training_step(net, optimizer, images, labels, device):
    with autocast(device):
        loss = nn.functional.cross_entropy(net(images).float(), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def model_bound(arch: str, batch: int, steps: int, device: torch.device, classes: int) -> float:
    net = build_model(arch, classes).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, fused=device.type == "cuda")
    images = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (batch,), device=device)
    for _ in range(steps):  # as long as the measurement: clocks settle as in a real epoch
        training_step(net, optimizer, images, labels, device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        training_step(net, optimizer, images, labels, device)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def make_trainer(arch: str, batch: int, cache: Path, device: torch.device, work: Path,
                 epoch_images: int, workers: int | None) -> Trainer:
    cfg = TrainConfig(data=str(cache), arch=arch, weights="none", batch_size=batch, epochs=2,
                      device=str(device), name=f"bench-{arch}-{workers}-{batch}",
                      runs_dir=str(work / "runs"), num_workers=workers)
    index = index_dataset(cache, scan=False)
    index.train = (index.train * (epoch_images // len(index.train) + 1))[:epoch_images]
    run_dir = work / "runs" / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, run_dir, index, resume=False)


def end_to_end(trainer: Trainer) -> float:
    trainer.train_epoch(1)  # warm-up: cuDNN autotuning, worker start, page cache
    return trainer.train_epoch(2)["train_images_per_s"]


class InstantLoader:
    """Hands the training loop the same pinned batch again and again: the loop's own
    ceiling (copy to the GPU, normalisation, metrics, progress) with a loader that costs 0."""

    def __init__(self, batch, steps: int):
        self.batch, self.steps = batch, steps
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return (self.batch for _ in range(self.steps))


def loop_with_instant_loader(trainer: Trainer) -> float:
    loader = trainer.train_loader()
    trainer._train_loader = InstantLoader(next(iter(loader)), len(loader))
    del loader
    gc.collect()  # ends the real loader's workers: they must not take CPU from the loop
    return end_to_end(trainer)


def loader_alone(trainer: Trainer) -> float:
    """The training loader's own rate: batches pinned and handed over, no model."""
    loader = trainer.train_loader()
    seen, start = 0, time.perf_counter()
    loader.sampler.set_epoch(3)
    for batch in loader:
        seen += len(batch.labels)
    return seen / (time.perf_counter() - start)


def gpu_decode(cache: Path, batch: int, device: torch.device, rounds: int = 20) -> float:
    """Batched nvJPEG decoding of what training crops read (one tile per cache file),
    images/s."""
    from torchvision.io import decode_jpeg

    data = []
    for path in sorted(cache.rglob("*.jpg"))[:batch]:
        image = open_cached(str(path), None)
        tiled = isinstance(image, TiledImage)
        raw = image.data[slice(*image.byte_ranges[0])] if tiled else path.read_bytes()
        data.append(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    decode_jpeg(data, device=device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(rounds):
        decode_jpeg(data, device=device)
    _sync(device)
    return rounds * len(data) / (time.perf_counter() - start)


def reference_style(arch: str, batch: int, root: Path, device: torch.device, steps: int) -> float:
    from loader import reference_loader

    loader = reference_loader(root, workers=4)
    loader = torch.utils.data.DataLoader(loader.dataset, batch_size=batch, shuffle=True,
                                         num_workers=4)
    net = build_model(arch, len(loader.dataset.classes)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    seen, start = 0, None
    for i, (images, labels) in enumerate(_forever(loader)):
        if i == 2:
            _sync(device)
            seen, start = 0, time.perf_counter()
        training_step(net, optimizer, images.to(device), labels.to(device), device)
        seen += len(labels)
        if i >= steps + 2:
            break
    _sync(device)
    return seen / (time.perf_counter() - start)


def _forever(loader):
    """Batches across epochs, so --steps may exceed one epoch (small smoke-test data)."""
    while True:
        yield from loader


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def worker_counts(default: int) -> list[int]:
    """1/2, 3/4 and all of the default loader workers."""
    return sorted({max(1, default // 2), max(1, default * 3 // 4), default})


def resnet50_settings(args, work: Path, device, classes: int, rates) -> list[str]:
    """End to end with 1/2 and 3/4 of the loader workers, and at twice the batch, each
    against the model-bound rate at its batch size."""
    batch, workers = args.batch_size, default_workers()
    bound, e2e = rates
    rows = ["| loader workers | batch | model-bound img/s | end to end img/s | share |",
            "|---:|---:|---:|---:|---:|", f"| {workers} (default) | {batch} | {bound:.0f} | "
            f"{e2e:.0f} | {e2e / bound:.0%} |"]
    steps = args.epoch_images // batch
    fewer = [count for count in worker_counts(workers) if count != workers]
    for count, size in [(count, batch) for count in fewer] + [(workers, 2 * batch)]:
        if size != batch:
            bound = model_bound("resnet50", size, steps // 2, device, classes)
        e2e = end_to_end(make_trainer("resnet50", size, work / "cache", device, work,
                                      args.epoch_images, count))
        rows.append(f"| {count} | {size} | {bound:.0f} | {e2e:.0f} | {e2e / bound:.0%} |")
        say(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images-per-class", type=int, default=100)
    parser.add_argument("--epoch-images", type=int, default=15_000)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        say("No CUDA GPU here: nothing measured. Run this script on a machine with one.")
        return
    torch.backends.cudnn.benchmark = device.type == "cuda"
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    start = time.perf_counter()
    root = sample_data(work, per_class=args.images_per_class, test_per_class=2)
    prepare(root, work / "cache")
    say(f"sample data + cache: {time.perf_counter() - start:.0f} s")
    classes = len(list((root / "train").iterdir()))
    batch, default = args.batch_size, default_workers()

    loader_rows = ["| loader workers | cached loader alone, img/s | per worker |", "|---:|---:|---:|"]
    for workers in worker_counts(default):
        trainer = make_trainer("resnet50", batch, work / "cache", device, work,
                               args.epoch_images // 4, workers)
        loader_alone(trainer)  # first pass: worker start, page cache
        rate = loader_alone(trainer)
        loader_rows.append(f"| {workers}{' (default)' if workers == default else ''} | "
                           f"{rate:.0f} | {rate / workers:.0f} |")
        say(loader_rows[-1])
        del trainer
        gc.collect()  # ends its loader workers before the next count starts

    table = ["| model | model-bound img/s | geoconvnet end-to-end img/s | end-to-end / model-bound "
             "| reference-style img/s | geoconvnet / reference |", "|---|---:|---:|---:|---:|---:|"]
    why = ["| model | model-bound | training loop, loader costing nothing | end to end |",
           "|---|---:|---:|---:|"]
    steps = args.epoch_images // batch  # model-bound over as many steps as an epoch has
    rates = {}  # arch -> (model-bound, end to end) images/s
    for arch in ("resnet50", "resnet101"):
        bound = model_bound(arch, batch, steps, device, classes)
        say(f"{arch} model-bound: {bound:.0f} img/s")
        instant = loop_with_instant_loader(make_trainer(arch, batch, work / "cache", device, work,
                                                        args.epoch_images, None))
        say(f"{arch} training loop, instant loader: {instant:.0f} img/s ({instant / bound:.0%})")
        e2e = end_to_end(make_trainer(arch, batch, work / "cache", device, work,
                                      args.epoch_images, None))
        say(f"{arch} end to end: {e2e:.0f} img/s ({e2e / bound:.0%})")
        rates[arch] = bound, e2e
        why.append(f"| {arch} | {bound:.0f} | {instant:.0f} ({instant / bound:.0%}) | "
                   f"{e2e:.0f} ({e2e / bound:.0%}) |")
        say(why[-1])
        ref = reference_style(arch, batch, root, device, args.steps)
        table.append(f"| {arch} | {bound:.0f} | {e2e:.0f} | {e2e / bound:.0%} | {ref:.0f} | "
                     f"{e2e / ref:.1f}x |")
        say(table[-1])

    settings = resnet50_settings(args, work, device, classes, rates["resnet50"])
    decode = ""
    if device.type == "cuda":
        rate = gpu_decode(work / "cache", batch, device)
        decode += (f" Batched nvJPEG decode of one tile (512x336) of {batch} cache files on the "
                   f"GPU: {rate:.0f} img/s.")
    pngs = len(list(root.rglob("*.png")))
    notes = (f"batch {batch}, bf16 autocast + channels_last, {args.device}, {os.cpu_count()} CPU "
             f"cores; end to end = epoch 2 of {args.epoch_images} images ({pngs} "
             f"sample PNGs, {args.images_per_class} per class, repeated), default loader "
             f"({default} workers). Target: end-to-end >= 85% of model-bound.{decode}")
    tables = table + ["", "Where the time goes, images/s (share of model-bound):", ""] + why + \
        ["", "resnet50 with other loader workers and batch sizes (to choose the defaults):", ""] + \
        settings + [""] + loader_rows
    if device.type == "cuda":
        record("gpu_throughput.py: training images/s", tables, notes)
    else:
        say("\n".join(tables) + f"\n{notes}\n(smoke run off CUDA: not recorded in RESULTS.md)")


if __name__ == "__main__":
    main()
