"""Draining on SIGTERM: stop accepting, close WebSockets with 1001, then finish HTTP requests.

uvicorn alone closes WebSockets with 1012 (service restart) at once and then waits for HTTP
requests. Here the listening sockets close first, `/readyz` answers 503 so a load balancer stops
sending, every open WebSocket gets a close frame with 1001 (going away: graphql-transport-ws
clients reconnect elsewhere and resume by cursor), they get TROIKA_DRAIN_SECONDS to go, and then
uvicorn's own shutdown lets HTTP requests in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import DRAINING

GOING_AWAY = 1001
log = logging.getLogger("troika.drain")


class Drain:
    """This process's open WebSockets, and whether it drains."""

    draining = False
    closers: set[_Closer] = set()

    @classmethod
    async def close_websockets(cls, bound: float) -> None:
        """Close every open WebSocket with 1001; wait at most `bound` seconds for them to end."""
        cls.draining = True
        DRAINING.set(1)
        open_now = list(cls.closers)
        if open_now:
            log.info("draining: closing %d WebSocket(s) with %d", len(open_now), GOING_AWAY)
        await asyncio.gather(*(c.close() for c in open_now), return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while cls.closers and loop.time() < deadline:  # noqa: ASYNC110 (closers end in their own tasks)
            await asyncio.sleep(0.05)


class _Closer:
    """One WebSocket's `send`: after our close frame, the handler's later sends are dropped."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.closed = False
        self.accepted = False

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.close":
            self.closed = True
        await self._send(message)

    async def close(self) -> None:
        if self.closed or not self.accepted:
            return
        self.closed = True
        await self._send({"type": "websocket.close", "code": GOING_AWAY, "reason": "server shutting down"})


class DrainMiddleware:
    """Pure ASGI: keeps each open WebSocket closable by the drain."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        closer = _Closer(send)
        Drain.closers.add(closer)
        try:
            await self.app(scope, receive, closer.send)
        finally:
            Drain.closers.discard(closer)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the drain before its own graceful shutdown."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first; uvicorn's shutdown closing them again is harmless
        for sock in sockets or []:
            sock.close()
        from app.settings import get_settings

        await Drain.close_websockets(get_settings().drain_seconds)
        await super().shutdown(sockets)
