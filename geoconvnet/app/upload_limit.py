"""An ASGI middleware that refuses request bodies over a size with ``413``, whether the
client announces the size (``Content-Length``) or streams the body in chunks.

The body over the limit is read and dropped (up to :data:`DRAIN_BYTES`) rather than left
unread: a client still sending when the server closes the connection sees a broken pipe
instead of the 413 and its message.
"""

from __future__ import annotations

import json

DRAIN_BYTES = 1 << 30  # past this, stop reading and let the connection close


class UploadLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await _drain(receive, int(length))
            return await self._refuse(send, int(length))
        seen, exceeded, started = 0, False, False

        async def counting_receive():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not exceeded:
                    exceeded = True
                    if message.get("more_body"):
                        seen += await _drain(receive, DRAIN_BYTES)
                    # The app sees a cut body (a parse error); its answer is replaced below.
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replacing_send(message):
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, seen)
                return  # the app's own answer to the cut body is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, replacing_send)

    async def _refuse(self, send, size: int) -> None:
        limit_mb = self.max_bytes / (1024 * 1024)
        body = json.dumps({"detail": f"upload of {size / (1024 * 1024):.1f} MB exceeds the "
                           f"limit of {limit_mb:.3g} MB (serve --max-upload-mb)"}).encode()
        await send({"type": "http.response.start", "status": 413,
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
