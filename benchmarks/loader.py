"""Loader throughput: the reference's pipeline on PNGs vs the geoconvnet cache, same images.

Reference-style: torchvision ImageFolder on the 1600x900 PNGs, RandomCrop(448) -> Resize(224)
-> flip -> ToTensor -> Normalize, as the reference trained. Cache: `geoconvnet data prepare`
output read by geoconvnet's training loader (checksum + decoding the JPEG tile that holds
the crop + the same crop at half scale). Each is run in the main process (0 workers:
images/s of one core) and with 4 workers (the reference's setting). Also reports the cache's
size against the PNGs. The cache pipeline stops at uint8 tensors: geoconvnet normalises
batched on the model's device.

    python benchmarks/loader.py [--work DIR] [--images-per-class N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from _common import record, sample_data
from torchvision import datasets
from torchvision import transforms as T

from geoconvnet.data.cache import prepare
from geoconvnet.data.index import index_dataset
from geoconvnet.data.loader import make_loader
from geoconvnet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from geoconvnet.data.transforms import train_transform


def reference_loader(root: Path, workers: int):
    transform = T.Compose([T.RandomCrop(448), T.Resize(224), T.RandomHorizontalFlip(),
                           T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = datasets.ImageFolder(str(root / "train"), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers)


def cache_loader(cache: Path, workers: int):
    index = index_dataset(cache, scan=False)
    samples = index.train + index.val
    return make_loader(samples, train_transform(Preprocessing(), index.data.scale), 32,
                       torch.device("cpu"), shuffle=True, num_workers=workers,
                       read=index.data.read)


def throughput(loader, epochs: int = 2) -> float:
    count, start = 0, None
    for epoch in range(epochs + 1):  # epoch 0 warms up (worker start, file cache)
        if epoch == 1:
            count, start = 0, time.perf_counter()
        for batch in loader:
            count += len(batch[1])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", help="working folder (default: temporary)")
    parser.add_argument("--images-per-class", type=int, default=24)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work, per_class=args.images_per_class)
    start = time.perf_counter()
    summary = prepare(root, work / "cache")
    prepare_seconds = time.perf_counter() - start
    rows = {}
    for workers in (0, 4):
        rows[("reference-style PNG", workers)] = throughput(reference_loader(root, workers))
        rows[("geoconvnet cache", workers)] = throughput(cache_loader(work / "cache", workers))
    table = ["| pipeline | workers | images/s | images/s per core |", "|---|---:|---:|---:|"]
    cores = min(4, os.cpu_count() or 1)  # 4 workers can use at most this many cores
    for (name, workers), speed in rows.items():
        per_core = speed if workers == 0 else speed / cores
        table.append(f"| {name} | {workers} | {speed:.1f} | {per_core:.1f} |")
    ratio = rows[("geoconvnet cache", 0)] / rows[("reference-style PNG", 0)]
    ratio4 = rows[("geoconvnet cache", 4)] / rows[("reference-style PNG", 4)]
    size = summary["cache_bytes"] / summary["source_bytes"]
    table += ["", "| measure | value | target |", "|---|---:|---:|",
              f"| cache / reference loader, per core (0 workers) | {ratio:.1f}x | >= 15x |",
              f"| cache / reference loader, 4 workers | {ratio4:.1f}x | |",
              f"| cache size / PNG size | {size:.2%} ({summary['cache_bytes'] / 2**20:.1f} of "
              f"{summary['source_bytes'] / 2**20:.1f} MiB) | <= 5% |",
              f"| `data prepare` time | {prepare_seconds:.1f} s for {summary['converted']} images"
              + (" (cache already there: incremental run)" if not summary["converted"] else "")
              + " | |"]
    record("loader.py: reference-style PNG pipeline vs cache", table,
           f"{len(list((root / 'train').rglob('*.png')))} train PNGs of 1600x900 (sample data, "
           "with photographic grain so they compress like screenshots: "
           f"{summary['source_bytes'] / max(1, len(list(root.rglob('*.png')))) / 2**20:.1f} "
           "MiB each).")


if __name__ == "__main__":
    main()
