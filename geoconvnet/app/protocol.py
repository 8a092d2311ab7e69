"""uvicorn's HTTP/1.1 protocol with a deadline for a request's headers.

uvicorn times out idle keep-alive connections only after a response, and any byte resets
that timer: a client that opens a connection and sends nothing, or trickles its headers,
holds the connection (and a slot of ``--max-connections``) for ever. Here every connection
must deliver a complete request head within ``header_timeout`` seconds of opening, and of
each response; the body's pace is :class:`~.guards.BodyTimeout`'s business.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class DeadlineH11Protocol(H11Protocol):
    def __init__(self, *args, header_timeout: float = 10.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self._in_request():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request (handle_events)
        if not self.transport.is_closing() and not self._in_request():
            self._arm()

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self._in_request() and not self.transport.is_closing():
            self.logger.info("%s:%d - closed: no complete request head in %g s",
                             *(self.client or ("?", 0)), self.header_timeout)
            self.transport.close()
