"""The web app: FastAPI routes over :class:`~.service.Service`, the page's static files and
the guards of :mod:`.guards` (upload limit, Host check).

Model work (decoding, the forward pass, the pin, heat maps) runs in a small thread pool of
its own, never on the event loop, so ``/api/health`` and the page's files answer while
predictions run; requests beyond the pool's threads wait their turn. Everything the page
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

from .. import __version__
from ..data.countries import shapes_for_map
from ..utils.errors import DataError, GeoconvnetError, ImageTooLargeError
from .guards import HostCheck, UploadLimit
from .schemas import Error, Health, ModelInfo, PredictResponse
from .service import HeatMapsUnavailableError, Service, UnknownClassError

STATIC = resources.files("geoconvnet.app") / "static"
# The page may load nothing but this server's files (and the screenshots' blob: previews).
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'"
DEFAULT_MAX_UPLOAD_MB = 25.0  # a 4K PNG screenshot is about 15 MB
UPLOAD_ERRORS = {400: {"model": Error, "description": "empty or malformed request"},
                 413: {"model": Error, "description": "file or image too large"},
                 415: {"model": Error, "description": "not an image, or not multipart/form-data"}}


def create_app(service: Service, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               threads: int = 1, allowed_hosts: frozenset[str] | None = None) -> FastAPIOffline:
    """The ASGI app serving ``service``. ``threads``: model calls run at once (one uses
    every core already on a CPU; more only help on a GPU or with many cores).
    ``allowed_hosts``: the only ``Host`` names answered (serve passes the loopback names
    when it listens on loopback); None answers any."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="geoconvnet-model")
    state = {"in_flight": 0, "started": time.time()}

    @asynccontextmanager
    async def lifespan(_app):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPIOffline(title="geoconvnet", version=__version__, lifespan=lifespan,
                         description="Which country is this street-view screenshot from, why, "
                                     "and where to put the GeoGuessr pin.")
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_mb * 1024 * 1024))
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)  # added last, so it runs first

    async def off_loop(fn, *args):
        state["in_flight"] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        finally:
            state["in_flight"] -= 1

    @app.exception_handler(GeoconvnetError)
    async def user_error(_request: Request, exc: GeoconvnetError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

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
        return {"status": "ok", "model": service.name, "in_flight": state["in_flight"],
                "uptime_s": round(time.time() - state["started"], 1)}

    @app.get("/api/model", response_model=ModelInfo, tags=["service"])
    async def model() -> dict:
        """Architecture, class names (with ISO codes), preprocessing and calibration."""
        return service.info()

    world = json.dumps({code: [[[round(x, 2), round(y, 2)] for x, y in ring] for ring in rings]
                        for code, rings in shapes_for_map().items()}, separators=(",", ":"))

    @app.get("/api/world", tags=["service"])
    async def world_shapes() -> Response:
        """Country outlines ({ISO-3: [[[lon, lat], ...], ...]}, Natural Earth 1:110m)."""
        return Response(world, media_type="application/json",
                        headers={"Cache-Control": "max-age=86400"})

    @app.post("/api/predict", response_model=PredictResponse, tags=["predict"],
              responses=UPLOAD_ERRORS)
    async def predict(request: Request, file: UploadFile | None = File(
            None, description="the screenshot (PNG, JPEG, WebP...)")) -> dict:
        """The top guesses, every class's probability and the GeoGuessr pin for one
        screenshot sent as the ``file`` field of a ``multipart/form-data`` form."""
        name, data = await _upload(request, file)
        return await off_loop(service.analyse, data, name)

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
        name, data = await _upload(request, file)
        if not country:
            raise BadRequestError("the form has no 'country' field: name the guess to explain "
                                  "(curl -F file=@shot.png -F country=Norway URL)")
        jpeg = await off_loop(service.heat_map, data, name, country)
        return Response(jpeg, media_type="image/jpeg",
                        headers={"X-Country": quote(country), "Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), headers={"Content-Security-Policy": CSP})

    app.mount("/static", StaticFiles(packages=[("geoconvnet.app", "static")]), name="static")
    return app


class BadRequestError(GeoconvnetError):
    """An empty upload or a form without the file."""


class UnsupportedMediaError(GeoconvnetError):
    """A body that is not a multipart form."""


# Most specific first: ImageTooLargeError is a DataError (a file that is not a usable image).
# Anything else is the server's problem, not the request's: 500.
STATUS = ((ImageTooLargeError, 413), (DataError, 415), (UnsupportedMediaError, 415),
          (BadRequestError, 400), (UnknownClassError, 422), (HeatMapsUnavailableError, 409))


async def _upload(request: Request, file: UploadFile | None) -> tuple[str, bytes]:
    """(file name, bytes) of the form's ``file``, or the error that says what was wrong."""
    if file is None:
        raise _no_file(request.headers.get("content-type", ""))
    name = file.filename or "upload"
    data = await file.read()
    if not data:
        raise BadRequestError(f"{name}: empty file (0 bytes)")
    return name, data


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
