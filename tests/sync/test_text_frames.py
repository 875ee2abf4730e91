"""Every graphql-transport-ws message leaves as a TEXT frame (browsers and `wx.connectSocket` reject
binary ones); `websockets` tells them apart: `recv()` returns `str` for text, `bytes` for binary."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from tests.factories.auth import operator_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.sync.ws import PROTOCOL

USER_CHANGED = """
subscription ($id: ID!) {
  userChanged(userId: $id) { userId topic user { identities { kind value } } }
}
"""
BROKEN = "subscription { noSuchField }"


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


async def text(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, which must be text holding one JSON object."""
    frame = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(frame, str), f"a binary frame: {frame!r}"
    message: dict[str, Any] = json.loads(frame)
    return message


async def test_every_message_is_a_text_frame(app: FastAPI, address: str, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(http, admin, phone="+8613800150001")
    async with connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {admin}"}}
        await ws.send(json.dumps(init))
        assert (await text(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await text(ws))["type"] == "pong"

        payload = {"query": USER_CHANGED, "variables": {"id": user_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        await asyncio.sleep(0.1)  # the subscription is listening once its resolver has started
        await link(http, admin, kind="APP_USER_ID", value="会员-甲", user_id=user_id)
        event = await text(ws)
        assert event["type"] == "next", event
        identities = event["payload"]["data"]["userChanged"]["user"]["identities"]
        assert {"kind": "APP_USER_ID", "value": "会员-甲"} in identities  # UTF-8 as is, in a str

        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": BROKEN}}))
        error = await text(ws)
        assert (error["type"], error["id"]) == ("error", "2")

        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await ws.send(json.dumps({"type": "ping"}))
        assert (await text(ws))["type"] == "pong"


async def test_http_answers_keep_their_utf8_bytes(app: FastAPI, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    response = await http.client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert response.headers["content-type"].endswith("charset=utf-8")
    assert response.json() == {"data": {"__typename": "Query"}}
