"""Shared by the benchmark scripts: machine facts and appending a table to RESULTS.md."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    import numpy
    import PIL
    import torch
    import torchvision

    from geoconvnet import __version__

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {gpu}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}, Pillow {PIL.__version__}, numpy {numpy.__version__}, "
            f"geoconvnet {__version__}")


def record(title: str, table: list[str], notes: str = "") -> None:
    """Print the table and append it, with machine, versions and date, to RESULTS.md."""
    text = (f"\n## {title} — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n"
            f"Machine: {machine()}\n\n" + "\n".join(table) + "\n" + (f"\n{notes}\n" if notes else ""))
    print(text)
    with open(RESULTS, "a") as f:
        f.write(text)


def sample_data(work: Path, classes: int = 8, per_class: int = 24, test_per_class: int = 6) -> Path:
    """1600x900 sample screenshots (drawn once per work folder)."""
    from geoconvnet.data.synth import synth

    root = work / "sample"
    if not (root / "train").exists():
        synth(root, classes=classes, per_class=per_class, test_per_class=test_per_class)
    return root
