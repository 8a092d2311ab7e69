"""Latency of the app (`geoconvnet serve`, a real server process) per request, for ResNet-18
and ResNet-50 in PyTorch and in ONNX Runtime: the prediction alone (POST /api/predict: upload,
decode, forward pass, pin), the prediction followed by the Grad-CAM heat map of the top guess
(what the page shows first), and requests per second with 4 concurrent clients.

The clients run on the same machine as the server; every request sends a different 1600x900
PNG (about 1 MB), so no heat map comes from the server's cache; the heat map's request sends
the screenshot again (the API is stateless). Weights are random (speed does
not depend on them); classes are 8 reference countries.

    python benchmarks/serve_latency.py [--requests 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import torch
from _common import record, sample_data

from geoconvnet.app.serve import wait_until_healthy
from geoconvnet.data.preprocessing import Preprocessing
from geoconvnet.models.checkpoint import make_meta, save_checkpoint
from geoconvnet.models.onnx import export_onnx
from geoconvnet.models.registry import build_model

CLIENTS = 4


def start(model: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "geoconvnet", "serve", str(model), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    if wait_until_healthy(url, 120, proc):
        return url, proc
    proc.kill()
    raise RuntimeError(f"serve {model} did not start")


def predict(url: str, png: bytes) -> dict:
    response = requests.post(f"{url}/api/predict", files={"file": ("shot.png", png)}, timeout=120)
    response.raise_for_status()
    return response.json()


def with_heat_map(url: str, png: bytes) -> None:
    """What the page does: the guesses, then the heat map of the top one."""
    top = predict(url, png)["top"][0]["country"]
    requests.post(f"{url}/api/heatmap", files={"file": ("shot.png", png)},
                  data={"country": top}, timeout=120).raise_for_status()


def latencies(fn, url: str, pngs: list[bytes]) -> tuple[float, float]:
    fn(url, pngs[-1])  # warm-up (not timed)
    times = []
    for png in pngs[:-1]:
        start = time.perf_counter()
        fn(url, png)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(0.9 * len(times)) - 1)]


def throughput(url: str, pngs: list[bytes]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda png: predict(url, png), pngs))
    return len(pngs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per row")
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work, test_per_class=max(6, (2 * args.requests + 8) // 8 + 1))
    classes = sorted(p.name for p in (root / "train").iterdir())
    pngs = [p.read_bytes() for p in sorted((root / "test").rglob("*.png"))]
    table = ["| model | runtime | predict median ms | p90 ms | predict + heat map of #1 median "
             "ms | p90 ms | requests/s, 4 clients |", "|---|---|---:|---:|---:|---:|---:|"]
    for arch in ("resnet18", "resnet50"):
        checkpoint = work / f"{arch}.safetensors"
        save_checkpoint(checkpoint, build_model(arch, len(classes)).state_dict(),
                        make_meta(arch, classes, 0.4, Preprocessing()))
        for runtime, model in (("PyTorch", checkpoint),
                               ("ONNX Runtime", export_onnx(checkpoint, work / f"{arch}.onnx"))):
            url, proc = start(model)
            try:
                n = args.requests + 1
                p_med, p_90 = latencies(predict, url, pngs[:n])
                cam = (latencies(with_heat_map, url, pngs[n:2 * n]) if runtime == "PyTorch"
                       else None)
                rate = throughput(url, pngs[:2 * n])
            finally:
                proc.terminate()
                proc.wait()
            cams = f"{cam[0]:.0f} | {cam[1]:.0f}" if cam else "n/a (no gradients) | n/a"
            table.append(f"| {arch} | {runtime} | {p_med:.0f} | {p_90:.0f} | {cams} | {rate:.1f} |")
            print(table[-1], flush=True)
    record("serve_latency.py: the app's latency per request and requests/s on the CPU", table,
           f"{os.cpu_count()} cores shared by the server (torch threads: "
           f"{torch.get_num_threads()}) and the clients; one server process, one model thread "
           f"(`serve` defaults); {args.requests} timed requests per latency, each a different "
           "1600x900 PNG; the pin spreads 8 countries over their land; the heat map is "
           "Grad-CAM over the whole screenshot (the `full` view at the training scale).")


if __name__ == "__main__":
    main()
