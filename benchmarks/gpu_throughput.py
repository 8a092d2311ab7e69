"""GPU training throughput: end to end vs model-bound, and the reference-style pipeline.

For resnet50 and resnet101 (bf16 autocast, channels_last, batch 64 unless --batch-size):
- model-bound: training steps on random tensors already in GPU memory;
- geoconvnet end to end: the real training loop (`Trainer.train_epoch`) reading a cache
  made by `geoconvnet data prepare`, default loader settings;
- reference-style: ImageFolder on the 1600x900 PNGs, RandomCrop(448) -> Resize(224), 4 workers,
  feeding the same training step.
Prints ratios (end-to-end / model-bound: target >= 85%) and appends to RESULTS.md.

One command on a CUDA machine (draws 1,600 sample screenshots first):

    python benchmarks/gpu_throughput.py

`--device cpu --images-per-class 4 --steps 2 --batch-size 8` only checks that the script runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from _common import record, sample_data
from geoconvnet.cache import prepare
from geoconvnet.config import TrainConfig
from geoconvnet.data import index_dataset
from geoconvnet.models import build_model
from geoconvnet.runtime import autocast
from geoconvnet.train import Trainer


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
    for _ in range(3):
        training_step(net, optimizer, images, labels, device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        training_step(net, optimizer, images, labels, device)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def end_to_end(arch: str, batch: int, cache: Path, device: torch.device, work: Path) -> float:
    cfg = TrainConfig(data=str(cache), arch=arch, weights="none", batch_size=batch, epochs=2,
                      device=str(device), name=f"bench-{arch}", runs_dir=str(work / "runs"))
    index = index_dataset(cache, scan=False)
    run_dir = work / "runs" / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, run_dir, index, resume=False)
    trainer.train_epoch(1)  # warm-up: cuDNN autotuning, worker start, page cache
    return trainer.train_epoch(2)["train_images_per_s"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images-per-class", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("No CUDA GPU here: nothing measured. Run this script on a machine with one.")
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work, per_class=args.images_per_class, test_per_class=2)
    prepare(root, work / "cache")
    classes = len(list((root / "train").iterdir()))
    table = ["| model | model-bound img/s | geoconvnet end-to-end img/s | end-to-end / model-bound "
             "| reference-style img/s | geoconvnet / reference |", "|---|---:|---:|---:|---:|---:|"]
    for arch in ("resnet50", "resnet101"):
        bound = model_bound(arch, args.batch_size, args.steps, device, classes)
        e2e = end_to_end(arch, args.batch_size, work / "cache", device, work)
        ref = reference_style(arch, args.batch_size, root, device, args.steps)
        table.append(f"| {arch} | {bound:.0f} | {e2e:.0f} | {e2e / bound:.0%} | {ref:.0f} | "
                     f"{e2e / ref:.1f}x |")
    notes = (f"batch {args.batch_size}, bf16 autocast + channels_last, {args.device}. Target: "
             "end-to-end >= 85% of model-bound.")
    if device.type == "cuda":
        record("gpu_throughput.py: training images/s", table, notes)
    else:
        print("\n".join(table) + "\n(smoke run off CUDA: not recorded in RESULTS.md)")


if __name__ == "__main__":
    main()
