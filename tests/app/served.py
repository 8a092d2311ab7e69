"""Helpers for the app tests: a real `geoconvnet serve` process on a free loopback port, and
screenshots to send it."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geoconvnet.app.serve import wait_until_healthy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model, *options: str, timeout: float = 90.0):
    """(base URL, process) once /api/health answers; the process's output goes to a file so a
    failed start shows it."""
    port = free_port()
    log = open(f"{model}.serve-{port}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "geoconvnet", "serve", str(model),
                             "--port", str(port), *options], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its workers die with it (killpg)
    url = f"http://127.0.0.1:{port}"
    if wait_until_healthy(url, timeout, proc):
        log.close()  # the process keeps its own handle
        return url, proc
    _kill_group(proc)
    log.seek(0)
    output = log.read()[-3000:]
    log.close()
    pytest.fail(f"the server did not start:\n{output}")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        _kill_group(proc)


def _kill_group(proc) -> None:
    """The server and every worker process it started (a failed start left ~1 GB ones)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def screenshots(n: int, size=(1600, 900), seed: int = 0) -> list[bytes]:
    """``n`` different noisy screenshots (PNG bytes) of full size, so that requests take time."""
    rng = np.random.default_rng(seed)
    return [png_bytes(Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)))
            for _ in range(n)]


def keep(page, name: str) -> None:
    """A screenshot of the page for people to look at, when GEOCONVNET_SCREENSHOTS names a
    folder (`GEOCONVNET_SCREENSHOTS=shots pytest tests/app`)."""
    folder = os.environ.get("GEOCONVNET_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
