"""Start the app with uvicorn: one process, or ``workers`` processes that each load the model
(uvicorn re-imports the app in each, so the settings travel in an environment variable)."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..models.checkpoint import resolve_checkpoint
from ..utils.errors import ConfigError
from ..utils.progress import console
from .guards import LOOPBACK_HOSTS
from .server import DEFAULT_MAX_UPLOAD_MB, create_app
from .service import Service

SETTINGS_ENV = "GEOCONVNET_SERVE_SETTINGS"


@dataclass
class Settings:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 1
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    device: str | None = None
    top_k: int = 5


def build_app(settings: Settings):
    """The app with its model loaded and warmed up (one per worker process)."""
    if settings.workers > 1:
        _share_cores(settings.workers)
    service = Service(settings.model, settings.device, settings.top_k)
    service.warm_up()
    hosts = LOOPBACK_HOSTS if _is_loopback(settings.host) else None
    return create_app(service, settings.max_upload_mb, settings.threads, hosts)


def app_from_env():
    """uvicorn's factory in each worker process."""
    return build_app(Settings(**json.loads(os.environ[SETTINGS_ENV])))


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          threads: int = 1, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          device: str | None = None, top_k: int = 5) -> None:
    """Serve ``model`` (checkpoint, run folder or ``.onnx``) until interrupted."""
    import uvicorn  # lazy: only this command runs a server

    settings = Settings(str(model), host, port, workers, threads, max_upload_mb, device, top_k)
    _check(settings)
    if not _is_loopback(host):
        console.print(f"[yellow]Listening on {host}: other machines can reach the app, and it "
                      "has no authentication.[/]")
    announce = (f"Serving [bold]{Path(model).name}[/] at http://{_shown(host)}:{port}/ "
                "(API docs: /docs); Ctrl+C stops it")
    if workers == 1:
        app = build_app(settings)
        console.print(announce)
        uvicorn.run(app, host=host, port=port, log_level="info")
    else:
        # A model that cannot load fails here, once, with its one-line error; inside the
        # workers it would be a traceback per process, restarted for ever.
        Service(settings.model, settings.device, settings.top_k)
        console.print(announce)
        os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
        uvicorn.run("geoconvnet.app.serve:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="info")


def wait_until_healthy(url: str, timeout: float = 120.0, process=None) -> bool:
    """Poll ``url``/api/health until it answers 200 (True), ``timeout`` seconds pass or
    ``process`` (a ``subprocess.Popen`` running the server) exits (False). For scripts and
    health checks that start `geoconvnet serve` and wait for its model to load."""
    import requests  # lazy: only scripts that wait for a server need it

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        try:
            if requests.get(f"{url.rstrip('/')}/api/health", timeout=2).ok:
                return True
        except requests.RequestException:  # not listening yet, or busy loading
            pass
        time.sleep(0.1)
    return False


def _check(settings: Settings) -> None:
    if not str(settings.model).lower().endswith(".onnx"):
        resolve_checkpoint(settings.model)  # a clear error before any worker starts
    elif not Path(settings.model).is_file():
        raise ConfigError(f"{settings.model}: no such ONNX file")
    for name in ("workers", "threads", "top_k"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, "
                              f"got {getattr(settings, name)}")
    if not (math.isfinite(settings.max_upload_mb) and settings.max_upload_mb > 0):
        raise ConfigError(f"--max-upload-mb must be a positive number, got "
                          f"{settings.max_upload_mb}")
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {settings.port}")
    _check_port_free(settings.host, settings.port)


def _check_port_free(host: str, port: int) -> None:
    """A clear error before the model loads, rather than uvicorn's after it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): another "
                              "program uses the port, or the address is not this machine's; "
                              "choose another with --port / --host") from None


def _share_cores(workers: int) -> None:
    """Each worker process gets its share of the cores instead of all of them (N processes
    each running N-thread matrix products would fight over the same cores)."""
    import torch  # lazy: keeps `serve --help` fast

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(host: str) -> str:
    """How to write the address in a URL."""
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
