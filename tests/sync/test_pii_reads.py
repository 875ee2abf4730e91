"""A subscription that shows a phone unmasked audits each event it delivers, like a query."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.sync.ws import listening, subscriptions

WATCH = "subscription ($id: ID!) { userChanged(userId: $id) { topic user { phone } } }"
READS = '{ auditLog(first: 10, action: "pii.read") { nodes { userId actor details traceId } } }'


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


async def test_each_delivered_phone_is_an_audited_read(app: FastAPI, address: str, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(http, admin, phone="+8613800140701")
    async with subscriptions(address, await operator_key(app, "viewer", "pii_reader")) as subs:
        watching = await subs.subscribe(WATCH, {"id": user_id})
        await listening(app.state.feed, 1)
        for n in (1, 2):
            provider = ("qq", "weibo")[n - 1]
            await link(http, admin, kind="EXTERNAL", namespace=provider, value=f"sub-{n}", user_id=user_id)
            event = (await subs.next(watching))["userChanged"]
            assert event["user"]["phone"] == "+8613800140701"
    reads = (await http(READS, token=admin))["auditLog"]["nodes"]
    assert [(r["userId"], r["details"]) for r in reads] == [(user_id, {"fields": ["phone"]})] * 2
    assert reads[0]["actor"].startswith("operator:")
