"""A graphql-transport-ws client over a real WebSocket (the `websockets` library), for tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from app.sync.feed import ChangeFeed

PROTOCOL = "graphql-transport-ws"


class Subscriptions:
    """One connection: `subscribe` sends an operation, `next` waits for its next message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = 0
        self.inbox: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            assert isinstance(raw, str), f"a binary frame: {raw!r}"  # browsers reject binary ones
            message = json.loads(raw)
            if message.get("type") == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            if "id" in message:
                self.inbox.setdefault(message["id"], asyncio.Queue()).put_nowait(message)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.ids += 1
        op = str(self.ids)
        self.inbox.setdefault(op, asyncio.Queue())
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
        return op

    async def message(self, op: str, within: float = 30.0) -> dict[str, Any]:
        """The next message of operation `op` (next, error or complete)."""
        return await asyncio.wait_for(self.inbox[op].get(), within)

    async def next(self, op: str, within: float = 30.0) -> dict[str, Any]:
        """The next result's data; fails on errors or anything but `next`."""
        message = await self.message(op, within)
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message["payload"]["errors"]
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def drain(self, op: str, n: int, within: float = 30.0) -> dict[str, Any]:
        """Take the next `n` results of `op` (each without errors), keeping only the last one's data."""
        data: dict[str, Any] = {}
        for _ in range(n):
            message = await asyncio.wait_for(self.inbox[op].get(), within)
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message["payload"]["errors"]
            data = message["payload"]["data"]
        return data

    async def complete(self, op: str) -> None:
        """End operation `op` from the client's side."""
        await self.ws.send(json.dumps({"id": op, "type": "complete"}))

    async def error_code(self, op: str, within: float = 30.0) -> str:
        """The `extensions.code` of the operation's error."""
        message = await self.message(op, within)
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors, message
        code: str = errors[0].get("extensions", {}).get("code", errors[0]["message"])
        return code


async def listening(feed: ChangeFeed, n: int, within: float = 30.0) -> None:
    """Wait until `feed` has exactly `n` listeners: from then on, every change reaches them.

    A subscription's resolver registers its listener before it follows the outbox, so a change
    committed after this returns is delivered; no sleep guesses how long that takes.
    """
    async with asyncio.timeout(within):
        while feed.stats()["listeners"] != n:
            feed.listeners_changed.clear()
            await feed.listeners_changed.wait()


@asynccontextmanager
async def subscriptions(address: str, token: str | None) -> AsyncIterator[Subscriptions]:
    """Connect, send `connection_init` with the token, and expect `connection_ack`."""
    async with connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        frame = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(frame, str), f"a binary frame: {frame!r}"
        ack = json.loads(frame)
        assert ack["type"] == "connection_ack", ack
        subs = Subscriptions(ws)
        try:
            yield subs
        finally:
            subs.reader.cancel()
