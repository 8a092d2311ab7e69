"""The web app: FastAPI routes over :class:`~.service.Service`, the page's static files and
the guards of :mod:`.guards` (security headers, Host and Origin checks, body timeout,
the model queue's bound, upload limit).

Model work (reading the upload, decoding, the forward pass, the pin, heat maps) runs in a
small thread pool of its own, never on the event loop, so ``/api/health`` and the page's
files answer while predictions run. At most ``max_queue`` requests wait for the pool's
threads (the rest get 503 at once), and a waiting upload stays where the form parser spooled
it (on disk beyond 1 MB), not in memory: memory does not grow with bursts. Everything the page
and the API docs load is served from the package (``fastapi-offline`` ships Swagger UI), so
the app works without internet.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from urllib.parse import quote

from fastapi import File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware

from .. import __version__
from ..data.countries import display_name, shapes_for_map
from ..utils.errors import DataError, GeoconvnetError, ImageTooLargeError
from .guards import (Admission, BodyTimeout, HostCheck, Load, OriginCheck, SecurityHeaders,
                     UploadLimit)
from .schemas import Error, Health, ModelInfo, PredictResponse
from .service import HeatMapsUnavailableError, Service, UnknownClassError

STATIC = resources.files("geoconvnet.app") / "static"
DEFAULT_MAX_UPLOAD_MB = 25.0  # a 4K PNG screenshot is about 15 MB
DEFAULT_MAX_QUEUE = 16  # ~2 s of waiting for a resnet50 on 2 CPU cores
DEFAULT_CLIENT_TIMEOUT = 15.0  # seconds without a byte of a request (head or body)
MODEL_PATHS = frozenset({"/api/predict", "/api/heatmap"})
UPLOAD_ERRORS = {400: {"model": Error, "description": "empty or malformed request"},
                 413: {"model": Error, "description": "file or image too large"},
                 415: {"model": Error, "description": "not an image, or not multipart/form-data"}}


def create_app(service: Service, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               threads: int = 1, allowed_hosts: frozenset[str] | None = None,
               max_queue: int = DEFAULT_MAX_QUEUE,
               client_timeout: float = DEFAULT_CLIENT_TIMEOUT,
               allow_origins: tuple[str, ...] = ()) -> FastAPIOffline:
    """The ASGI app serving ``service``. ``threads``: model calls run at once (one uses
    every core already on a CPU; more only help on a GPU or with many cores); ``max_queue``:
    requests that may wait for them. ``allowed_hosts``: the only ``Host`` names answered
    (serve passes the loopback names when it listens on loopback); None answers any.
    ``allow_origins``: other web origins whose pages may call the API (``*``: any)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="geoconvnet-model")
    state = {"started": time.time()}
    load = Load(capacity=threads + max_queue, threads=threads)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPIOffline(title="geoconvnet", version=__version__, lifespan=lifespan,
                         description="Which country is this street-view screenshot from, why, "
                                     "and where to put the GeoGuessr pin.")
    _add_guards(app, load, int(max_upload_mb * 1024 * 1024), allowed_hosts, client_timeout,
                allow_origins)

    async def off_loop(fn):
        """``fn()`` in the model's pool, or 503 when the queue is full (uploads that arrived
        together, after Admission let them in)."""
        if load.full:
            load.refused += 1
            raise BusyError(load.busy_message())
        load.active += 1
        started = time.monotonic()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        finally:
            load.active -= 1
            load.answered += 1
            load.seconds = 0.8 * load.seconds + 0.2 * (time.monotonic() - started)

    @app.exception_handler(GeoconvnetError)
    async def user_error(_request: Request, exc: GeoconvnetError) -> JSONResponse:
        headers = {"Retry-After": str(load.retry_after())} if isinstance(exc, BusyError) else None
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_form(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer is a list of dicts; every other refusal is one sentence.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'request'}: {e['msg']}"
                             for e in exc.errors())
        return JSONResponse({"detail": f"{problems} (send the screenshot as the 'file' field "
                             "of a multipart/form-data form: curl -F file=@shot.png URL)"},
                            status_code=400)

    @app.get("/api/health", response_model=Health, tags=["service"])
    async def health() -> dict:
        """Answers at once, even while predictions run."""
        return {"status": "ok", "model": service.name, "in_flight": load.active,
                "waiting": load.waiting, "max_queue": load.capacity - load.threads,
                "answered": load.answered, "refused_busy": load.refused,
                "uptime_s": round(time.time() - state["started"], 1)}

    @app.get("/api/model", response_model=ModelInfo, tags=["service"])
    async def model() -> dict:
        """Architecture, class names (with ISO codes), preprocessing and calibration."""
        return service.info()

    shapes = shapes_for_map()
    world = json.dumps({code: [[[round(x, 2), round(y, 2)] for x, y in ring] for ring in rings]
                        for code, rings in shapes.items()}, separators=(",", ":"))
    names = json.dumps({code: display_name(code) for code in shapes})

    @app.get("/api/world", tags=["service"])
    async def world_shapes() -> Response:
        """Country outlines ({ISO-3: [[[lon, lat], ...], ...]}, Natural Earth 1:110m)."""
        return Response(world, media_type="application/json",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/countries", tags=["service"])
    async def country_names() -> Response:
        """Every country on the map by its ISO-3 code, as people write it ({"ESP": "Spain"})."""
        return Response(names, media_type="application/json",
                        headers={"Cache-Control": "max-age=86400"})

    @app.post("/api/predict", response_model=PredictResponse, tags=["predict"],
              responses=UPLOAD_ERRORS)
    async def predict(request: Request, file: UploadFile | None = File(
            None, description="the screenshot (PNG, JPEG, WebP...)")) -> dict:
        """The top guesses, every class's probability and the GeoGuessr pin for one
        screenshot sent as the ``file`` field of a ``multipart/form-data`` form."""
        name = _upload(request, file)
        return await off_loop(lambda: service.analyse(_contents(file), name))

    @app.post("/api/heatmap", tags=["predict"], response_class=Response,
              responses={200: {"content": {"image/jpeg": {}},
                               "description": "the screenshot with the heat map over it"},
                         **UPLOAD_ERRORS,
                         409: {"model": Error, "description": "an ONNX model: no gradients"},
                         422: {"model": Error, "description": "not one of the model's classes"}})
    async def heat_map(request: Request, file: UploadFile | None = File(
            None, description="the screenshot"), country: str | None = Form(
            None, description="the guess to explain: a class name, e.g. from /api/predict")
            ) -> Response:
        """What drove the model towards ``country`` in the screenshot: Grad-CAM over the
        whole image, as a JPEG of the screenshot with the heat map over it (warm = decisive).
        Send the same form as to /api/predict plus ``country``."""
        name = _upload(request, file)
        if not country:
            raise BadRequestError("the form has no 'country' field: name the guess to explain "
                                  "(curl -F file=@shot.png -F country=Norway URL)")
        jpeg = await off_loop(lambda: service.heat_map(_contents(file), name, country))
        return Response(jpeg, media_type="image/jpeg",
                        headers={"X-Country": quote(country), "Cache-Control": "no-store"})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))  # its CSP: guards.SecurityHeaders

    app.mount("/static", StaticFiles(packages=[("geoconvnet.app", "static")]), name="static")
    return app


def _add_guards(app, load: Load, max_bytes: int, allowed_hosts: frozenset[str] | None,
                client_timeout: float, allow_origins: tuple[str, ...]) -> None:
    """The middlewares of :mod:`.guards`. The last added runs first: headers on every
    answer, then Host, body pace, Origin, CORS for --allow-origin, the queue's bound and
    the upload limit."""
    app.add_middleware(UploadLimit, max_bytes=max_bytes)
    app.add_middleware(Admission, paths=MODEL_PATHS, load=load, drain_bytes=max_bytes)
    if allow_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(allow_origins),
                           allow_methods=["GET", "POST"], expose_headers=["X-Country"])
    app.add_middleware(OriginCheck, allowed=frozenset(allow_origins))
    app.add_middleware(BodyTimeout, seconds=client_timeout)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    app.add_middleware(SecurityHeaders)


class BadRequestError(GeoconvnetError):
    """An empty upload or a form without the file."""


class UnsupportedMediaError(GeoconvnetError):
    """A body that is not a multipart form."""


class BusyError(GeoconvnetError):
    """The model's queue is full."""


# Most specific first: ImageTooLargeError is a DataError (a file that is not a usable image).
# Anything else is the server's problem, not the request's: 500.
STATUS = ((ImageTooLargeError, 413), (DataError, 415), (UnsupportedMediaError, 415),
          (BadRequestError, 400), (UnknownClassError, 422), (HeatMapsUnavailableError, 409),
          (BusyError, 503))


def _upload(request: Request, file: UploadFile | None) -> str:
    """The file name of the form's ``file``, or the error that says what was wrong."""
    if file is None:
        raise _no_file(request.headers.get("content-type", ""))
    name = file.filename or "upload"
    if not file.size:
        raise BadRequestError(f"{name}: empty file (0 bytes)")
    return name


def _contents(file: UploadFile) -> bytes:
    """The upload's bytes, read in the model's thread: until then they stay spooled."""
    file.file.seek(0)
    return file.file.read()


def _status(exc: GeoconvnetError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def _no_file(content_type: str) -> GeoconvnetError:
    kind = content_type.split(";")[0].strip() or "none"
    if kind != "multipart/form-data":
        return UnsupportedMediaError(f"content type {kind!r}: send the screenshot as the "
                                     "'file' field of a multipart/form-data form "
                                     "(curl -F file=@shot.png URL)")
    return BadRequestError("the form has no 'file' field: send the screenshot as 'file' "
                           "(curl -F file=@shot.png URL)")
