"""Start the app with uvicorn: one process, or ``workers`` processes that each load the model
(uvicorn re-imports the app in each, so the settings travel in an environment variable)."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from ..models.checkpoint import resolve_checkpoint
from ..utils.errors import ConfigError
from ..utils.progress import console
from .guards import LOOPBACK_HOSTS
from .server import (DEFAULT_CLIENT_TIMEOUT, DEFAULT_MAX_QUEUE, DEFAULT_MAX_UPLOAD_MB,
                     create_app)
from .service import Service

SETTINGS_ENV = "GEOCONVNET_SERVE_SETTINGS"
DEFAULT_MAX_CONNECTIONS = 64  # open connections; requests beyond get 503 from uvicorn


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
    max_queue: int = DEFAULT_MAX_QUEUE
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    allow_origins: list[str] = field(default_factory=list)


def build_app(settings: Settings):
    """The app with its model loaded and warmed up (one per worker process)."""
    if settings.workers > 1:
        _share_cores(settings.workers)
    service = Service(settings.model, settings.device, settings.top_k)
    service.warm_up()
    hosts = LOOPBACK_HOSTS if _is_loopback(settings.host) else None
    return create_app(service, settings.max_upload_mb, settings.threads, hosts,
                      settings.max_queue, settings.client_timeout,
                      tuple(settings.allow_origins))


def app_from_env():
    """uvicorn's factory in each worker process."""
    return build_app(Settings(**json.loads(os.environ[SETTINGS_ENV])))


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          threads: int = 1, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          device: str | None = None, top_k: int = 5, **limits) -> None:
    """Serve ``model`` (checkpoint, run folder or ``.onnx``) until interrupted. ``limits``:
    the other fields of :class:`Settings` (max_queue, client_timeout, max_connections,
    allow_origins)."""
    import uvicorn  # lazy: only this command runs a server

    settings = Settings(str(model), host, port, workers, threads, max_upload_mb, device, top_k,
                        **limits)
    _check(settings)
    from .protocol import DeadlineH11Protocol  # lazy: imports uvicorn

    server_options = {"host": host, "port": port, "log_level": "info",
                      "limit_concurrency": settings.max_connections,
                      "http": partial(DeadlineH11Protocol,
                                      header_timeout=settings.client_timeout)}
    if not _is_loopback(host):
        console.print(f"[yellow]Listening on {host}: other machines can reach the app, and it "
                      "has no authentication.[/]")
    announce = (f"Serving [bold]{Path(model).name}[/] at http://{_shown(host)}:{port}/ "
                "(API docs: /docs); Ctrl+C stops it")
    if workers == 1:
        app = build_app(settings)
        console.print(announce)
        uvicorn.run(app, **server_options)
    else:
        # A model that cannot load fails here, once, with its one-line error; inside the
        # workers it would be a traceback per process, restarted for ever.
        Service(settings.model, settings.device, settings.top_k)
        console.print(announce)
        os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
        uvicorn.run("geoconvnet.app.serve:app_from_env", factory=True, workers=workers,
                    **server_options)


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
    for name in ("workers", "threads", "top_k", "max_connections"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, "
                              f"got {getattr(settings, name)}")
    if settings.max_queue < 0:
        raise ConfigError(f"--max-queue must be 0 or more, got {settings.max_queue}")
    for name in ("max_upload_mb", "client_timeout"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, "
                              f"got {value}")
    for origin in settings.allow_origins:
        _check_origin(origin)
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {settings.port}")
    _check_port_free(settings.host, settings.port)


def _check_origin(origin: str) -> None:
    """``*`` or ``scheme://host[:port]``, as browsers send it in ``Origin``."""
    parts = urlsplit(origin)
    if origin != "*" and not (parts.scheme in ("http", "https") and parts.hostname
                              and parts.path in ("", "/") and not parts.query):
        raise ConfigError(f"--allow-origin {origin!r}: give an origin as browsers send it, "
                          "e.g. https://example.org or http://localhost:3000 (or * for any)")


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
