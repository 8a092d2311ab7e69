"""CPU latency of one 1600x900 screenshot through `predict`, for ResNet-18 and ResNet-50:
the prediction alone in PyTorch and in ONNX Runtime (an exported model), the prediction
with the GeoGuessr pin, and the Grad-CAM heat maps of the top 3 guesses.

Weights are random (speed does not depend on them); classes are 8 reference countries.

    python benchmarks/inference_cpu.py [--repeats 15] [--work DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import record, sample_data
from PIL import Image

from geoconvnet.data.preprocessing import Preprocessing
from geoconvnet.inference.explain import explain
from geoconvnet.inference.predict import predict
from geoconvnet.models.checkpoint import load_checkpoint, make_meta, save_checkpoint
from geoconvnet.models.load import load_model
from geoconvnet.models.onnx import export_onnx
from geoconvnet.models.registry import build_model


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(0.9 * len(times)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    root = sample_data(work)
    classes = sorted(p.name for p in (root / "train").iterdir())
    image_path = str(next((root / "test").rglob("*.png")))
    image = Image.open(image_path).convert("RGB")
    table = ["| model | what | median ms | p90 ms |", "|---|---|---:|---:|"]
    for arch in ("resnet18", "resnet50"):
        checkpoint = work / f"{arch}.safetensors"
        net = build_model(arch, len(classes))
        save_checkpoint(checkpoint, net.state_dict(),
                        make_meta(arch, classes, 0.4, Preprocessing()))
        onnx_file = export_onnx(checkpoint, work / f"{arch}.onnx")
        torch_model, onnx_model = load_checkpoint(checkpoint), load_model(onnx_file)
        runs = {
            "predict, PyTorch": lambda: predict(torch_model, [image_path]),
            "predict, ONNX Runtime": lambda: predict(onnx_model, [image_path]),
            "predict + pin, PyTorch": lambda: predict(torch_model, [image_path], pin=True),
            "Grad-CAM of the top 3 guesses (whole image)": lambda: explain(
                torch_model, image, [0, 1, 2]),
        }
        for what, fn in runs.items():
            median, p90 = timed(fn, args.repeats)
            table.append(f"| {arch} | {what} | {median:.0f} | {p90:.0f} |")
    record("inference_cpu.py: CPU latency per screenshot, PyTorch vs ONNX Runtime, pin and "
           "Grad-CAM", table, f"torch threads: {torch.get_num_threads()}; one 1600x900 PNG, "
           "decode included for predict; center view; the pin spreads the 8 countries over "
           "their land (300 samples each, cached after the first call).")


if __name__ == "__main__":
    main()
