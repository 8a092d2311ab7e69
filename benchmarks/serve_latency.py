"""The app (`geoconvnet serve`, a real server process) where users run it: latency per request
for ResNet-18 and ResNet-50 in PyTorch and in ONNX Runtime, on an idle machine and next to a
competing CPU load (one busy process per core), and the server's memory across bursts.

Latency rows: POST /api/predict (upload, decode, forward pass, pin), median and p90 over
different 1600x900 PNGs (about 1 MB each); for PyTorch also the prediction followed by the
Grad-CAM heat map of the top guess (what the page shows first). ONNX Runtime runs with the
session options of `geoconvnet.models.onnx.session_options` (threads = the process's share
of the cores, no spinning); `--onnx-spin` adds rows with ORT's spinning on (its default).

Memory rows: the server's RSS when ready and after each of 3 bursts of 20 concurrent 20 MB
uploads (the excess over `--max-queue` gets 503 at once).

    python benchmarks/serve_latency.py [--requests 20] [--archs resnet18,resnet50]
        [--onnx-spin] [--bursts-only] [--server-path DIR] [--work DIR]

`--server-path DIR` runs the server from another checkout (PYTHONPATH=DIR), to compare with
an older version; weights are random (speed does not depend on them), classes are 8
reference countries.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import requests
import torch
from _common import record, sample_data
from PIL import Image

from geoconvnet.app.serve import wait_until_healthy
from geoconvnet.data.preprocessing import Preprocessing
from geoconvnet.models.checkpoint import make_meta, save_checkpoint
from geoconvnet.models.onnx import export_onnx
from geoconvnet.models.registry import build_model


def start(model: Path, server_path: str | None, env: dict | None = None,
          *options: str) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **(env or {})}
    if server_path:
        env["PYTHONPATH"] = server_path
    proc = subprocess.Popen([sys.executable, "-m", "geoconvnet", "serve", str(model), "--port",
                             str(port), *options], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    if wait_until_healthy(url, 120, proc):
        return url, proc
    proc.kill()
    raise RuntimeError(f"serve {model} did not start")


def predict(url: str, png: bytes) -> requests.Response:
    return requests.post(f"{url}/api/predict", files={"file": ("shot.png", png)}, timeout=300)


def with_heat_map(url: str, png: bytes) -> None:
    """What the page does: the guesses, then the heat map of the top one."""
    top = predict(url, png).json()["top"][0]["country"]
    requests.post(f"{url}/api/heatmap", files={"file": ("shot.png", png)},
                  data={"country": top}, timeout=300).raise_for_status()


def latencies(fn, url: str, pngs: list[bytes]) -> tuple[float, float]:
    fn(url, pngs[-1])  # warm-up (not timed)
    times = []
    for png in pngs[:-1]:
        start = time.perf_counter()
        fn(url, png)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(0.9 * len(times)) - 1)]


class BusyCores:
    """One busy-looping process per core while the block runs: other work on the machine."""

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(os.cpu_count() or 1)]
        time.sleep(1)
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big_png(seed: int, megabytes: float = 20) -> bytes:
    """A noise PNG of about ``megabytes`` (noise does not compress)."""
    side = int((megabytes * 1e6 / 3) ** 0.5)
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def latency_rows(work: Path, archs: list[str], classes: list[str], pngs: list[bytes],
                 requests_n: int, onnx_spin: bool, server_path: str | None) -> list[str]:
    table = ["| model | runtime | machine | predict median ms | p90 ms | predict + heat map "
             "of #1 median ms | p90 ms |", "|---|---|---|---:|---:|---:|---:|"]
    n = requests_n + 1
    for arch in archs:
        checkpoint = work / f"{arch}.safetensors"
        save_checkpoint(checkpoint, build_model(arch, len(classes)).state_dict(),
                        make_meta(arch, classes, 0.4, Preprocessing()))
        onnx = export_onnx(checkpoint, work / f"{arch}.onnx")
        runtimes = [("PyTorch", checkpoint, {}), ("ONNX Runtime", onnx, {})]
        if onnx_spin:
            runtimes.append(("ONNX Runtime, spinning on", onnx, {"GEOCONVNET_ORT_SPIN": "1"}))
        for runtime, model, env in runtimes:
            url, proc = start(model, server_path, env)
            try:
                for row, machine in enumerate(("idle", "busy")):
                    # Other screenshots in each row: none of its heat maps is in the cache.
                    shots = pngs[2 * n * row:2 * n * (row + 1)]
                    with BusyCores() if machine == "busy" else nullcontext():
                        p_med, p_90 = latencies(predict, url, shots[:n])
                        cam = (latencies(with_heat_map, url, shots[n:])
                               if runtime == "PyTorch" else None)
                    cams = f"{cam[0]:.0f} | {cam[1]:.0f}" if cam else "n/a | n/a"
                    label = "idle" if machine == "idle" else \
                        f"{os.cpu_count()} busy processes"
                    table.append(f"| {arch} | {runtime} | {label} | {p_med:.0f} | {p_90:.0f} "
                                 f"| {cams} |")
                    print(table[-1], flush=True)
            finally:
                proc.terminate()
                proc.wait()
    return table


def burst_rows(work: Path, classes: list[str], server_path: str | None,
               clients: int = 20) -> list[str]:
    checkpoint = work / "resnet50.safetensors"
    if not checkpoint.exists():
        save_checkpoint(checkpoint, build_model("resnet50", len(classes)).state_dict(),
                        make_meta("resnet50", classes, 0.4, Preprocessing()))
    uploads = [big_png(seed) for seed in range(clients)]
    url, proc = start(checkpoint, server_path)
    table = ["| moment | server RSS MB | answered 200 | 503 (busy) | other | seconds |",
             "|---|---:|---:|---:|---:|---:|",
             f"| ready | {rss_mb(proc.pid):.0f} | | | | |"]
    print(table[-1], flush=True)
    try:
        for burst in range(1, 4):
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                codes = [r.status_code for r in pool.map(lambda png: predict(url, png), uploads)]
            seconds = time.perf_counter() - started
            time.sleep(1)
            ok, busy = codes.count(200), codes.count(503)
            table.append(f"| after burst {burst} | {rss_mb(proc.pid):.0f} | {ok} | {busy} | "
                         f"{len(codes) - ok - busy} | {seconds:.1f} |")
            print(table[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return table


def _commit(path: str) -> str:
    """Which code a server from ``path`` runs (never the path: it is this machine's)."""
    head = subprocess.run(["git", "-C", path, "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True).stdout.strip()
    return f"commit {head[:60]}" if head else "another checkout"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per row")
    parser.add_argument("--archs", default="resnet18,resnet50")
    parser.add_argument("--onnx-spin", action="store_true",
                        help="also ONNX Runtime with spinning on (its default)")
    parser.add_argument("--bursts-only", action="store_true")
    parser.add_argument("--server-path", help="run the server from this checkout")
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work, test_per_class=max(6, (4 * args.requests + 4) // 8 + 1))
    classes = sorted(p.name for p in (root / "train").iterdir())
    pngs = [p.read_bytes() for p in sorted((root / "test").rglob("*.png"))]
    if len(pngs) < 4 * (args.requests + 1):
        parser.error(f"{root} holds {len(pngs)} test screenshots, fewer than the "
                     f"{4 * (args.requests + 1)} needed: give another --work folder")
    load = os.getloadavg()[0]
    version = f" (server: {_commit(args.server_path)})" if args.server_path else ""
    if not args.bursts_only:
        table = latency_rows(work, args.archs.split(","), classes, pngs, args.requests,
                             args.onnx_spin, args.server_path)
        record(f"serve_latency.py: the app's latency, idle and next to a CPU load{version}",
               table,
               f"{os.cpu_count()} cores shared by the server (torch threads: "
               f"{torch.get_num_threads()}), the clients and, in the busy rows, one "
               f"busy-looping process per core; one server process, one model thread (`serve` "
               f"defaults); {args.requests} timed requests per row, each a different 1600x900 "
               f"PNG; the heat map is Grad-CAM over the whole screenshot. Load average at the "
               f"start: {load:.1f}.")
    table = burst_rows(work, classes, args.server_path)
    record(f"serve_latency.py: server memory across bursts of 20 concurrent 20 MB uploads"
           f"{version}", table,
           f"resnet50, `serve` defaults (one process, one model thread"
           f"{'' if args.server_path else ', --max-queue 16'}); each "
           "burst sends 20 different noise PNGs of about 20 MB (2582x2582) at once from 20 "
           "client threads on the same machine; RSS read from /proc one second after the "
           "burst.")


if __name__ == "__main__":
    main()
