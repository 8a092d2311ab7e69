"""The ASGI middlewares that guard the app before any route runs.

:class:`UploadLimit` refuses request bodies over a size with ``413``, whether the client
announces the size (``Content-Length``) or streams the body in chunks. A body over the limit
is read and dropped (up to a bound) rather than left unread: a client still sending when the
server closes the connection sees a broken pipe instead of the 413 and its message. A client
that waits for ``100 Continue`` gets the 413 before it sends anything.

:class:`HostCheck` refuses requests whose ``Host`` header names another server: an app
listening on loopback only is then out of reach of web pages whose domain is made to resolve
to 127.0.0.1 (DNS rebinding).

:class:`OriginCheck` refuses requests to ``/api/*`` that a browser sends on behalf of a page
from another origin (``Origin`` / ``Sec-Fetch-Site``): a page the user happens to visit could
otherwise make the app decode and predict (a ``no-cors`` form POST needs no permission; only
its answer is unreadable). Clients that are not browsers send neither header and pass.

:class:`Admission` answers ``503`` with ``Retry-After`` at once, before reading the body, while
the requests waiting for the model fill the queue. :class:`BodyTimeout` answers ``408`` to a
client that stops sending the body it promised. :class:`SecurityHeaders` adds
``X-Content-Type-Options`` to every answer and a Content-Security-Policy to every HTML page.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class UploadLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.drain_bytes = max(64 << 20, 4 * max_bytes)  # past this, let the connection close

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            # Reading the body would tell a client that waits for "100 Continue" to send it.
            if headers.get(b"expect", b"").lower() != b"100-continue":
                await _drain(receive, min(int(length), self.drain_bytes))
            return await _answer(send, 413, self._message(int(length)))
        state = {"seen": 0, "refused": False, "started": False}

        async def counting_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request" and not state["started"]:
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    if message.get("more_body"):
                        state["seen"] += await _drain(receive, self.drain_bytes)
                    state["refused"] = True
                    await _answer(send, 413, self._message(state["seen"]))
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def guarded_send(message):
            if state["refused"]:
                return  # the 413 is out; whatever the app says about the cut body is dropped
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    def _message(self, size: int) -> str:
        return (f"upload of {size / (1 << 20):.1f} MB exceeds the limit of "
                f"{self.max_bytes / (1 << 20):.3g} MB (serve --max-upload-mb)")


class HostCheck:
    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = hostname(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                return await _answer(send, 400, f"Host {host!r} is not this server: the app "
                                     "listens on loopback only; open it as http://127.0.0.1"
                                     ":PORT/ (serve --host to listen elsewhere)")
        return await self.app(scope, receive, send)


def hostname(host_header: str) -> str:
    """``[::1]:8000`` -> ``::1``, ``LocalHost:8000`` -> ``localhost``."""
    if host_header.startswith("["):
        return host_header[1:].split("]")[0].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else \
        host_header.lower()


async def _answer(send, status: int, detail: str, extra=()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive, cap: int) -> int:
    """Read and drop the rest of a request body (at most ``cap`` bytes); returns the count."""
    dropped = 0
    while dropped < cap:
        message = await receive()
        if message["type"] != "http.request":
            break
        dropped += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    return dropped


class OriginCheck:
    """Only same-origin pages (and ``allowed`` origins, or any with ``"*"``) may call
    ``/api/*`` from a browser."""

    def __init__(self, app, allowed: frozenset[str] = frozenset()):
        self.app = app
        self.allowed = frozenset(o.rstrip("/").lower() for o in allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
            host = headers.get(b"host", b"").decode("latin-1")
            if not self.admits(origin, site, host):
                who = origin or f"a {site} page"
                return await _answer(send, 403, f"cross-origin request from {who} refused: the "
                                     "API answers this server's own page and clients that are "
                                     "not browsers (serve --allow-origin ORIGIN to let a site "
                                     "embed it)")
        return await self.app(scope, receive, send)

    def admits(self, origin: str, site: str, host: str) -> bool:
        if origin and ("*" in self.allowed or origin in self.allowed):
            return True
        if origin:  # browsers send it on every POST, no-cors included
            return origin != "null" and _authority(origin) == _authority(host)
        return site not in ("cross-site", "same-site")  # same-origin, none (typed URL), absent


def _authority(origin_or_host: str) -> str:
    """``http://LocalHost:80`` and ``localhost`` -> ``localhost``; ``127.0.0.1:8000`` stays."""
    scheme, _, rest = origin_or_host.rpartition("://")
    rest = rest.split("/")[0].lower()
    default = {"http": ":80", "https": ":443", "": ":80"}.get(scheme, "")
    return rest[: -len(default)] if default and rest.endswith(default) else rest


@dataclass
class Load:
    """Requests whose upload has arrived and that use or wait for the model (counted by the
    server around each model call); :class:`Admission` refuses new ones while it is full."""
    capacity: int  # threads + the queue
    threads: int
    active: int = 0
    answered: int = 0
    refused: int = 0
    seconds: float = 1.0  # running mean of one model call's time, queueing included

    @property
    def full(self) -> bool:
        return self.active >= self.capacity

    @property
    def waiting(self) -> int:
        return max(0, self.active - self.threads)

    def retry_after(self) -> int:
        return max(1, math.ceil(self.seconds * self.capacity / self.threads))

    def busy_message(self) -> str:
        return (f"the server is busy: {self.active} screenshots are being analysed or waiting "
                f"(serve --max-queue); try again in {self.retry_after()} s")


class Admission:
    """While the model's queue is full, requests to ``paths`` get 503 with Retry-After at
    once, before their upload is read. (Uploads in progress do not count: a client that
    stalls in its body holds a connection, not a place in the queue.)"""

    def __init__(self, app, paths: frozenset[str], load: Load, drain_bytes: int = 64 << 20):
        self.app, self.paths, self.load, self.drain_bytes = app, paths, load, drain_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths or not self.load.full:
            return await self.app(scope, receive, send)
        self.load.refused += 1
        # Read and drop the body (without keeping it) so that the client, still sending,
        # sees the 503 rather than a broken pipe; one that waits for 100 Continue sends none.
        if dict(scope["headers"]).get(b"expect", b"").lower() != b"100-continue":
            await _drain(receive, self.drain_bytes)
        await _answer(send, 503, self.load.busy_message(),
                      [(b"retry-after", str(self.load.retry_after()).encode())])


class BodyTimeout:
    """A client that sends no part of the request body for ``seconds`` gets 408 and the
    connection is closed; the route sees a disconnect."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = {"timed_out": False, "started": False, "body_done": False}

        async def timed_receive():
            if state["timed_out"]:
                return {"type": "http.disconnect"}
            if state["body_done"]:  # waiting for a disconnect, say, while a response streams
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
                state["body_done"] = not message.get("more_body", False)
                return message
            except asyncio.TimeoutError:
                state["timed_out"] = True
                if not state["started"]:
                    await _answer(send, 408, f"no part of the request body arrived for "
                                  f"{self.seconds:g} s (serve --client-timeout)")
                    state["started"] = True
                return {"type": "http.disconnect"}

        async def guarded_send(message):
            if state["timed_out"]:
                return  # the 408 is out
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, timed_receive, guarded_send)


class SecurityHeaders:
    """``nosniff`` on every answer; on HTML pages a CSP that lets them load only this server's
    files (their own inline scripts by hash) and be framed by no one."""

    POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'{styles}; "
              "script-src 'self'{scripts}; connect-src 'self'; object-src 'none'; "
              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: dict = {}

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"content-security-policy"]
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
                if _is_html(headers):
                    held["start"], held["body"] = message, b""  # the CSP needs the body
                    return
                return await send(message)
            if "start" in held and message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                return await self._send_page(send, held["start"], held["body"],
                                             scope["method"] == "HEAD")
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _send_page(self, send, start, body: bytes, head: bool = False) -> None:
        text = body.decode("utf-8", "replace")
        scripts = "".join(f" '{_hash(s)}'" for s in re.findall(
            r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", text, re.S | re.I))
        styles = "".join(f" '{_hash(s)}'" for s in re.findall(
            r"<style[^>]*>(.*?)</style>", text, re.S | re.I))
        policy = self.POLICY.format(scripts=scripts, styles=styles)
        # A HEAD answer keeps the length of the page it has no body of.
        headers = [(k, v) for k, v in start["headers"]
                   if head or k.lower() != b"content-length"]
        headers += [(b"content-security-policy", policy.encode()), (b"x-frame-options", b"DENY")]
        if not head:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_html(headers) -> bool:
    return any(k.lower() == b"content-type" and v.lower().startswith(b"text/html")
               for k, v in headers)


def _hash(inline: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
