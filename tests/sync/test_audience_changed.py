"""audienceChanged over a real WebSocket and uvicorn: entries and exits arrive as the membership
follower records them; operators only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.entitlements import set_consent
from tests.factories.identity import link
from tests.helpers import Gql
from tests.sync.ws import listening, subscriptions

AUDIENCE_CHANGED = """
subscription ($name: String!) { audienceChanged(name: $name) { audience userId entered at } }
"""
SAVE = (
    "mutation ($name: String!, $c: AudienceCondition!) { saveAudience(name: $name, condition: $c) { size } }"
)
PAID_AND_CONSENTING = {
    "all": [{"orders": {"channel": "APP", "statuses": ["PAID"]}}, {"consent": {"purpose": "MARKETING"}}]
}


@pytest.fixture
async def client(address: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        yield http


@pytest.fixture
async def live(app: FastAPI) -> None:
    """The membership follower, as `troika serve`'s lifespan starts it (the test server has none)."""
    app.state.live_audiences.start()


@pytest.mark.usefixtures("live")
async def test_entries_and_exits_arrive_live(app: FastAPI, address: str, client: httpx.AsyncClient) -> None:
    gql = Gql(client)
    op = await operator_key(app, "operator")
    await gql(SAVE, {"name": "paid", "c": PAID_AND_CONSENTING}, token=op)
    buyer: str = (await link(gql, op, kind="APP_USER_ID", value="U-ws-1"))["user"]["id"]
    await set_consent(gql, user_token(app, buyer), "MARKETING", granted=True, source="APP")
    async with subscriptions(address, op) as subs:
        sub = await subs.subscribe(AUDIENCE_CHANGED, {"name": "paid"})
        await listening(app.state.feed, 1)
        await ingest(
            client, await service_key(app, "APP"), "APP", [app_order("W1", app_user("U-ws-1"), order_no="W1")]
        )
        entered = (await subs.next(sub))["audienceChanged"]
        assert (entered["audience"], entered["userId"], entered["entered"]) == ("paid", buyer, True)
        await set_consent(gql, op, "MARKETING", granted=False, source="APP", channel="APP", user_id=buyer)
        left = (await subs.next(sub))["audienceChanged"]
        assert (left["userId"], left["entered"]) == (buyer, False)
        assert left["at"] >= entered["at"]


async def test_only_operators_follow_audiences(app: FastAPI, address: str, client: httpx.AsyncClient) -> None:
    gql = Gql(client)
    op = await operator_key(app, "operator")
    await gql(SAVE, {"name": "paid", "c": PAID_AND_CONSENTING}, token=op)
    user: str = (await link(gql, op, kind="APP_USER_ID", value="U-ws-2"))["user"]["id"]
    for token in (
        await service_key(app, "APP"),
        user_token(app, user),
        await operator_key(app, "pii_reader"),
    ):
        async with subscriptions(address, token) as subs:
            assert (
                await subs.error_code(await subs.subscribe(AUDIENCE_CHANGED, {"name": "paid"})) == "FORBIDDEN"
            )
    async with subscriptions(address, await operator_key(app, "viewer")) as subs:
        unknown = await subs.subscribe(AUDIENCE_CHANGED, {"name": "nobody-saved-this"})
        assert await subs.error_code(unknown) == "BAD_USER_INPUT"
