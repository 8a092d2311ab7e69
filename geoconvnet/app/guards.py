"""Two ASGI middlewares that guard the app before any route runs.

:class:`UploadLimit` refuses request bodies over a size with ``413``, whether the client
announces the size (``Content-Length``) or streams the body in chunks. A body over the limit
is read and dropped (up to a bound) rather than left unread: a client still sending when the
server closes the connection sees a broken pipe instead of the 413 and its message. A client
that waits for ``100 Continue`` gets the 413 before it sends anything.

:class:`HostCheck` refuses requests whose ``Host`` header names another server: an app
listening on loopback only is then out of reach of web pages whose domain is made to resolve
to 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import json

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


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
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
