"""The data side from thousands to millions of images: wall time and peak memory of every
step, their growth per 4x more images, and what that means at 5 million.

Per size N (``--sizes``, small generated images: ``--image`` pixels, JPEG, 20 countries, a
folder per country), each step runs as its own command (its peak RSS is that process's,
read with ``os.wait4``; pool workers are separate processes and smaller):

- ``import``: ``data import folders SRC --out ROOT``;
- ``dedup`` first and cached (a second run), ``split``, ``stats --no-page``;
- ``prepare`` into a file cache and into shards, first and incremental (1% new images);
Peak RSS of a finished command is its ``ru_maxrss``, which on Linux also counts the memory
of this script at the fork; the per-size steps run while this script is small (<= ~40 MB),
the grouping and start-up probes report their own peak (``VmHWM``).

- reading 2,000 random samples from each cache (opening it as training does);
- training start-up to the first optimizer step (``train --max-steps 1``; the log line
  "First step ... after start"), from both caches; the process is stopped there.

Index-only (``--index-sizes``, e.g. 1M and 5M): a sharded cache whose index has N entries
and whose shards are hard links of one real shard (the index, table and shard count are
those of N images; the pixels are not), to measure training start-up where it matters,
and the linear split (``assign_folds``) and same-spot grouping (``spot_groups``) on N
generated groups and places.

    python benchmarks/scale.py [--sizes 10000,40000,160000] [--index-sizes 1000000,5000000]
        [--image 96x54] [--work DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import record  # noqa: E402

COUNTRIES = ["France", "Germany", "Japan", "Brazil", "Kenya", "Chile", "Norway", "Spain",
             "Italy", "Poland", "Mexico", "Canada", "Peru", "Ghana", "India", "Thailand",
             "Turkey", "Sweden", "Greece", "Portugal"]
CLI = [sys.executable, "-m", "geoconvnet"]
TRAIN = ["--arch", "resnet18", "--weights", "none", "--epochs", "1", "--max-steps", "1",
         "--batch-size", "32", "--crop-size", "48", "--image-size", "32", "--num-workers", "2",
         "--eval-view", "center"]


def run(cmd: list[str], until: str | None = None, timeout: float = 7200) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a command; with ``until``, stopped once a line of its
    output contains it (timed to that line)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    seen, tail, own = None, [], None
    for line in proc.stdout:
        tail = (tail + [line])[-20:]
        if line.startswith("VmHWM:"):  # the command reported its own peak
            own = int(line.split()[1]) / 1024
        if until and until in line:
            seen = time.perf_counter() - start
            peak = _peak_rss(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            break
        if time.perf_counter() - start > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    _, status, usage = os.wait4(proc.pid, 0)
    if seen is not None:
        return seen, peak
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{''.join(tail)}")
    return time.perf_counter() - start, own if own is not None else usage.ru_maxrss / 1024


def _peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_source(folder: Path, n: int, size: tuple[int, int], start: int = 0) -> None:
    """n distinct small JPEGs, a folder per country (noise over a country's colour)."""
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        country = COUNTRIES[i % len(COUNTRIES)]
        base = np.array([(i % len(COUNTRIES)) * 12, 120, 200 - (i % 7) * 20], np.uint8)
        pixels = np.clip(base + rng.integers(-60, 60, (size[1], size[0], 3)), 0, 255)
        target = folder / country / f"img{i:08d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(target, quality=90)


def per_size(work: Path, n: int, size: tuple[int, int]) -> dict[str, tuple[float, float]]:
    src, root = work / f"src{n}", work / f"root{n}"
    files, shards, runs = work / f"files{n}", work / f"shards{n}", work / f"runs{n}"
    for path in (root, files, shards, runs):
        shutil.rmtree(path, ignore_errors=True)
    if not src.is_dir():
        t = time.perf_counter()
        make_source(src, n, size)
        print(f"generated {n} images in {time.perf_counter() - t:.0f} s", flush=True)
    data = [*CLI, "data"]
    steps = {}
    steps["import folders"] = run([*data, "import", "folders", str(src), "--out", str(root)])
    steps["dedup (first)"] = run([*data, "dedup", str(root)])
    steps["dedup (cached)"] = run([*data, "dedup", str(root)])
    steps["split"] = run([*data, "split", str(root), "--test-fraction", "0.2"])
    steps["stats"] = run([*data, "stats", str(root), "--no-page"])
    for name, out, fmt in (("files", files, "files"), ("shards", shards, "shards")):
        steps[f"prepare {name} (first)"] = run([*data, "prepare", str(root), "--out", str(out),
                                                "--format", fmt])
    extra = work / f"extra{n}"
    shutil.rmtree(extra, ignore_errors=True)
    make_source(extra, max(20, n // 100), size, start=10 ** 9)
    for country in extra.iterdir():  # 1% new images, straight into train/
        for image in country.iterdir():
            shutil.copy(image, root / "train" / country.name / image.name)
    for name, out, fmt in (("files", files, "files"), ("shards", shards, "shards")):
        steps[f"prepare {name} (+1%)"] = run([*data, "prepare", str(root), "--out", str(out),
                                              "--format", fmt])
    for name, out in (("files", files), ("shards", shards)):
        steps[f"read 2,000 random images, {name}"] = _read_probe(work, out)
    for name, out in (("files", files), ("shards", shards)):
        steps[f"train start-up, {name}"] = run(
            [*CLI, "train", "--data", str(out), "--runs-dir", str(runs), *TRAIN],
            until="First step")
    return steps


def index_only(work: Path, n: int) -> dict[str, tuple[float, float]]:
    """Start-up on a sharded cache indexed like n images (see the module doc)."""
    from geoconvnet.data.shards import SPLIT_CODES, TABLE
    from geoconvnet.data.shardwrite import COLUMNS, _write_index, prepare_shards

    seed_root, out = work / "index-seed", work / f"index{n}"
    if not (seed_root / "shard" / TABLE).is_file():
        make_source(work / "index-seed-src", 1000, (96, 54))
        layout = seed_root / "data" / "train"
        shutil.copytree(work / "index-seed-src", layout)
        prepare_shards(seed_root / "data", seed_root / "shard", 0.5, shard_size=1000)
    seed = json.loads((seed_root / "shard" / TABLE).read_text())
    one = seed["shards"][0]
    member = DataRootProbe(seed_root / "shard")
    shutil.rmtree(out, ignore_errors=True)
    (out / "shards").mkdir(parents=True)
    per_shard = one["count"]
    n_shards = -(-n // per_shard)
    for k in range(n_shards):  # the same bytes under every name: hard links, no space
        os.link(seed_root / "shard" / "shards" / f"{one['name']}.tar",
                out / "shards" / f"s{k:06d}.tar")
    ids = np.arange(n)
    rng = np.random.default_rng(0)
    columns = {"shard": ids // per_shard, "offset": member.offset[ids % per_shard],
               "length": member.length[ids % per_shard], "crc32": member.crc32[ids % per_shard],
               "label": ids % len(COUNTRIES),
               "split": np.where(rng.random(n) < 0.1, SPLIT_CODES["test"], SPLIT_CODES["train"]),
               "keyhash": rng.integers(0, 2 ** 63, n)}
    columns = {k: np.asarray(v, dtype=COLUMNS[k]) for k, v in columns.items()}
    split_names = np.array(["train", "test"])[columns["split"]]
    keys = [f"{s}/{COUNTRIES[i % len(COUNTRIES)]}/img{i:08d}.jpg".encode()
            for i, s in zip(range(n), split_names)]
    files = _write_index(out / "index-0001", columns, keys)
    table = {**seed, "generation": 1, "classes": sorted(COUNTRIES), "counts_all": n,
             "counts": {"train": int((columns["split"] == 0).sum()),
                        "test": int((columns["split"] == 1).sum())},
             "shards": [{**one, "name": f"s{k:06d}", "count": per_shard} for k in range(n_shards)],
             "index": {"folder": "index-0001", "files": files}, "bad_files": {}}
    (out / TABLE).write_text(json.dumps(table))
    runs = work / f"index-runs{n}"
    shutil.rmtree(runs, ignore_errors=True)
    startup = run([*CLI, "train", "--data", str(out), "--runs-dir", str(runs), *TRAIN],
                  until="First step")
    steps = {"train start-up, shards": startup}
    steps.update(_grouping(work, n))
    shutil.rmtree(out, ignore_errors=True)
    return steps


class DataRootProbe:
    """Offsets, lengths and checksums of the members of a one-shard cache."""

    def __init__(self, cache: Path):
        from geoconvnet.data.root import DataRoot

        arrays = DataRoot.open(cache).shards.arrays
        self.offset, self.length = np.asarray(arrays["offset"]), np.asarray(arrays["length"])
        self.crc32 = np.asarray(arrays["crc32"])


def _read_probe(work: Path, cache: Path) -> tuple[float, float]:
    """Open a cache as training does and decode 2,000 random samples (the read path alone:
    a file's SHA-256 per read, or a shard's on its first read, then a memory-map slice)."""
    script = work / "read_probe.py"
    script.write_text("""
import sys, numpy as np
from geoconvnet.data.root import DataRoot
root = DataRoot.open(sys.argv[1])
samples = root.samples("train")
rng = np.random.default_rng(0)
for i in rng.integers(0, len(samples), 2000):
    image = root.read(samples[int(i)][0])
    (image.to_pil() if hasattr(image, "to_pil") else image).load()
""")
    return run([sys.executable, str(script), str(cache)])


def _grouping(work: Path, n: int) -> dict[str, tuple[float, float]]:
    code = f"""
import numpy as np, time
from geoconvnet.curate.split import assign_folds
from geoconvnet.curate.spots import spot_groups
rng = np.random.default_rng(0)
n = {n}
countries = np.array({COUNTRIES!r})[rng.integers(0, {len(COUNTRIES)}, n)]
groups = np.minimum(rng.geometric(0.5, n).cumsum(), n)  # runs of 1, 2, 4 ... images
lat = np.concatenate([rng.uniform(-60, 70, n // 2), 48.85 + np.arange(n - n // 2) * 9e-5])
lon = np.concatenate([rng.uniform(-180, 180, n // 2), np.full(n - n // 2, 2.35)])
which = __import__("sys").argv[1]
t = time.perf_counter()
if which == "folds":
    assign_folds(countries, groups, 0.2, 0)
else:
    spot_groups(lat, lon, 50.0)
# This process's own peak: the rusage of a forked child also counts its parent's memory.
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""
    script = work / "grouping.py"
    script.write_text(code)
    return {"split: fold assignment": run([sys.executable, str(script), "folds"]),
            "dedup: same-spot groups": run([sys.executable, str(script), "spots"])}


def table(results: dict[int, dict], sizes: list[int]) -> list[str]:
    steps = list(dict.fromkeys(s for r in results.values() for s in r))
    head = "| step | " + " | ".join(f"{n:,}: s / MiB" for n in sizes) + " | x per 4x | 5M (s) |"
    rows = [head, "|---|" + "---:|" * (len(sizes) + 2)]
    for step in steps:
        cells = [results[n].get(step) for n in sizes]
        shown = [f"{c[0]:.1f} / {c[1]:.0f}" if c else "" for c in cells]
        have = [(n, c) for n, c in zip(sizes, cells) if c]
        growth = extrapolated = ""
        if len(have) >= 2:
            (n1, c1), (n2, c2) = have[-2], have[-1]
            exponent = np.log(c2[0] / c1[0]) / np.log(n2 / n1)  # time ~ n ** exponent
            growth = f"{4 ** exponent:.1f}"
            extrapolated = (f"{c2[0]:.1f} (measured)" if n2 >= 5e6
                            else f"{c2[0] * (5e6 / n2) ** max(exponent, 0):.0f}")
        rows.append(f"| {step} | " + " | ".join(shown) + f" | {growth} | {extrapolated} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,40000,160000")
    parser.add_argument("--index-sizes", default="1000000,5000000")
    parser.add_argument("--image", default="96x54")
    parser.add_argument("--work", help="folder reused between runs (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in args.image.split("x"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    index_sizes = [int(s) for s in args.index_sizes.split(",") if s]
    results = {}
    for n in sizes:
        results[n] = per_size(work, n, size)
        print(json.dumps({n: results[n]}), flush=True)
    for n in index_sizes:
        results[n] = {**results.get(n, {}), **index_only(work, n)}
        print(json.dumps({n: results[n]}), flush=True)
    for n in sizes:
        results[n].update(_grouping(work, n))
    everything = sorted(set(sizes) | set(index_sizes))
    record(f"Scale: data steps at {', '.join(f'{n:,}' for n in everything)} images "
           f"({args.image} JPEG; index-only at {', '.join(f'{n:,}' for n in index_sizes)})",
           table(results, everything),
           notes="Each cell: wall seconds / peak RSS (MiB) of the step's own process. "
                 "'x per 4x': time growth per 4x images between the two largest sizes; "
                 "'5M': the largest size's time grown at that rate (at these small images; "
                 "decode-bound steps cost more per image at 1600x900, see the notes). Index-only "
                 "sizes: hard-linked shards, real index and table.")


if __name__ == "__main__":
    main()
