"""Who may follow what: credentials at connection_init, per-subscription checks, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.sync.ws import PROTOCOL, listening, subscriptions

USER_CHANGED = "subscription ($id: ID!) { userChanged(userId: $id) { userId topic } }"
CHANGES = "subscription { changes { userId topic } }"


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


@pytest.mark.parametrize("token", [None, "trk_op_unknown", "not-a-session-token"])
async def test_a_connection_without_valid_credentials_is_refused(address: str, token: str | None) -> None:
    async with connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_an_end_user_follows_only_themselves(app: FastAPI, address: str, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    mine = await new_user(http, admin, phone="+8613800140601")
    other = await new_user(http, admin, phone="+8613800140602")
    async with subscriptions(address, user_token(app, mine)) as subs:
        refused = await subs.subscribe(USER_CHANGED, {"id": other})
        assert await subs.error_code(refused) == "FORBIDDEN"
        own = await subs.subscribe(USER_CHANGED, {"id": mine})
        feed = await subs.subscribe(CHANGES)
        await listening(app.state.feed, 2)
        await link(http, admin, kind="APP_USER_ID", value="auth-other", user_id=other)
        await link(http, admin, kind="APP_USER_ID", value="auth-mine", user_id=mine)
        assert (await subs.next(own))["userChanged"]["userId"] == mine
        # In cursor order: had the other user's change been delivered, it would have come first.
        assert (await subs.next(feed))["changes"]["userId"] == mine
        await link(http, admin, kind="EXTERNAL", namespace="qq", value="auth-other-2", user_id=other)
        await link(http, admin, kind="EXTERNAL", namespace="qq", value="auth-mine-2", user_id=mine)
        assert (await subs.next(feed))["changes"] == {"userId": mine, "topic": "IDENTITY"}


async def test_a_service_follows_the_users_of_its_channel(app: FastAPI, address: str, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    app_user_id = await new_user(http, admin, phone="+8613800140611")
    await link(http, admin, kind="APP_USER_ID", value="auth-app", user_id=app_user_id)
    outsider = await new_user(http, admin, phone="+8613800140612")
    async with subscriptions(address, await service_key(app, "APP")) as subs:
        assert await subs.error_code(await subs.subscribe(USER_CHANGED, {"id": outsider})) == "FORBIDDEN"
        own = await subs.subscribe(USER_CHANGED, {"id": app_user_id})
        feed = await subs.subscribe(CHANGES)
        await listening(app.state.feed, 2)
        await link(http, admin, kind="EXTERNAL", namespace="qq", value="auth-q1", user_id=outsider)
        await link(http, admin, kind="EXTERNAL", namespace="qq", value="auth-q2", user_id=app_user_id)
        assert (await subs.next(own))["userChanged"]["userId"] == app_user_id
        assert (await subs.next(feed))["changes"]["userId"] == app_user_id  # the outsider's came first
        await link(http, admin, kind="EXTERNAL", namespace="wb", value="auth-q3", user_id=outsider)
        await link(http, admin, kind="EXTERNAL", namespace="wb", value="auth-q4", user_id=app_user_id)
        assert (await subs.next(feed))["changes"] == {"userId": app_user_id, "topic": "IDENTITY"}


async def test_viewers_may_follow_everything_but_need_a_role(app: FastAPI, address: str) -> None:
    async with subscriptions(address, await operator_key(app, "pii_reader")) as subs:
        assert await subs.error_code(await subs.subscribe(CHANGES)) == "FORBIDDEN"


async def test_subscriptions_per_connection_are_limited(app: FastAPI, address: str) -> None:
    limit = app.state.settings.subscriptions_per_connection
    async with subscriptions(address, await operator_key(app, "viewer")) as subs:
        for _ in range(limit):
            await subs.subscribe(CHANGES)
        over = await subs.subscribe(CHANGES)
        message = await subs.message(over)
        assert message["type"] == "error"
        assert "limit" in message["payload"][0]["message"]
