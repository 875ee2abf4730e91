"""A WebSocket connection counts as a request of its address and caller, and so does each of
its operations."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.settings import Settings
from tests.factories.auth import operator_key
from tests.sync.ws import PROTOCOL, listening, subscriptions

CHANGES = "subscription { changes { userId topic } }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_principal": "3/minute"})


async def test_connections_and_operations_are_counted(app: FastAPI, address: str) -> None:
    admin = await operator_key(app, "admin")
    async with subscriptions(address, admin) as subs:  # 1
        await subs.subscribe(CHANGES)  # 2
        await listening(app.state.feed, 1)  # accepted: it listens
        await subs.subscribe(CHANGES)  # 3
        await listening(app.state.feed, 2)
        assert await subs.error_code(await subs.subscribe(CHANGES)) == "RATE_LIMITED"
    async with connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {admin}"}})
        )
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
