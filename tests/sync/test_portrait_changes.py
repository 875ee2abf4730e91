"""A change to a person's traits reaches `userChanged` subscribers and the response cache forgets
the views that showed the old traits: an order paid, a sign-in through Troika."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.identity import link
from tests.factories.wechat import wechat_login
from tests.helpers import Gql
from tests.sync.ws import listening, subscriptions

TRAITS = "traits { paidOrders lifetimeValueCents lastOrderAt lastSeenAt }"
USER_CHANGED = f"""
subscription ($id: ID!) {{ userChanged(userId: $id) {{ topic user {{ id {TRAITS} }} }} }}
"""
VIEW = f"query ($id: ID!) {{ user(id: $id) {{ id {TRAITS} }} }}"


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


async def _cached(app: FastAPI, http: Gql, token: str, user_id: str) -> dict[str, object]:
    """The view, read twice: the second answer comes from the response cache."""
    first = (await http(VIEW, {"id": user_id}, token=token))["user"]
    hits = app.state.response_cache.hits
    second = (await http(VIEW, {"id": user_id}, token=token))["user"]
    assert app.state.response_cache.hits == hits + 1
    assert second == first
    traits: dict[str, object] = second["traits"]
    return traits


async def test_an_order_paid_reaches_subscribers_and_the_cache_with_new_traits(
    app: FastAPI, address: str, http: Gql
) -> None:
    admin = await operator_key(app, "admin")
    user_id = (await link(http, admin, kind="APP_USER_ID", value="traits-1"))["user"]["id"]
    service = await service_key(app, "APP")
    placed = app_order("t-0", app_user("traits-1"), order_no="T-1", status=0, at="2026-11-20T10:00:00Z")
    await ingest(http.client, service, "APP", [placed])
    before = await _cached(app, http, admin, user_id)
    assert (before["paidOrders"], before["lifetimeValueCents"]) == (0, 0)
    async with subscriptions(address, admin) as subs:
        op = await subs.subscribe(USER_CHANGED, {"id": user_id})
        await listening(app.state.feed, 1)
        paid = app_order("t-1", app_user("traits-1"), order_no="T-1", status=1, at="2026-11-21T10:00:00Z")
        await ingest(http.client, service, "APP", [paid])
        event = (await subs.next(op))["userChanged"]
        assert event["topic"] == "ORDER"
        assert event["user"]["traits"]["paidOrders"] == 1
        assert event["user"]["traits"]["lifetimeValueCents"] == 10000
        assert event["user"]["traits"]["lastSeenAt"] == "2026-11-21T10:00:00+00:00"
    after = await _cached(app, http, admin, user_id)
    assert after == event["user"]["traits"]


async def test_a_sign_in_reaches_subscribers_and_the_cache_with_a_new_last_seen(
    app: FastAPI, address: str, http: Gql, fake_wechat: FakeWeChat
) -> None:
    admin = await operator_key(app, "admin")
    user_id = (await wechat_login(http, "MINI_PROGRAM", "traits-2"))["user"]["id"]
    before = await _cached(app, http, admin, user_id)
    assert before["lastSeenAt"] is not None
    async with subscriptions(address, admin) as subs:
        op = await subs.subscribe(USER_CHANGED, {"id": user_id})
        await listening(app.state.feed, 1)
        assert (await wechat_login(http, "MINI_PROGRAM", "traits-2:again"))["user"]["id"] == user_id
        event = (await subs.next(op))["userChanged"]
        assert event["topic"] == "BEHAVIOR"
        assert str(event["user"]["traits"]["lastSeenAt"]) > str(before["lastSeenAt"])
    after = await _cached(app, http, admin, user_id)
    assert after == event["user"]["traits"]
