"""Subscriptions over a real WebSocket: delivery with a fresh view, replay from a cursor, no gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, ingest
from tests.factories.identity import link, new_user
from tests.helpers import Gql
from tests.sync.ws import listening, subscriptions

USER_CHANGED = """
subscription ($id: ID!) {
  userChanged(userId: $id) {
    userId topic cursor at
    user { id identities { kind value } orders { totalCount } }
  }
}
"""
CHANGES = """
subscription ($after: String, $topics: [String!]) {
  changes(after: $after, topics: $topics) { userId topic cursor }
}
"""
CURSOR = "query ($id: ID!) { user(id: $id) { id } }"


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


async def last_cursor(app: FastAPI) -> str:
    return str(await app.state.feed.last_cursor())


async def test_user_changed_delivers_the_change_and_the_fresh_user(
    app: FastAPI, address: str, http: Gql
) -> None:
    admin = await operator_key(app, "admin", "pii_reader")
    user_id = await new_user(http, admin, phone="+8613800140001")
    async with subscriptions(address, admin) as subs:
        op = await subs.subscribe(USER_CHANGED, {"id": user_id})
        await listening(app.state.feed, 1)
        await link(http, admin, kind="APP_USER_ID", value="sync-1", user_id=user_id)
        event = (await subs.next(op))["userChanged"]
        assert (event["userId"], event["topic"]) == (user_id, "IDENTITY")
        assert {"kind": "APP_USER_ID", "value": "sync-1"} in event["user"]["identities"]
        # An order ingested for the APP identity reaches the same subscriber, with the new total.
        service = await service_key(app, "APP")
        await ingest(http.client, service, "APP", [app_order("s-1", app_user("sync-1"), order_no="S-1")])
        event = (await subs.next(op))["userChanged"]
        assert event["topic"] == "ORDER"
        assert event["user"]["orders"]["totalCount"] == 1
        # Nothing else came for that batch: the next event is the next change, made now.
        await link(http, admin, kind="EXTERNAL", namespace="qq", value="sync-next", user_id=user_id)
        event = (await subs.next(op))["userChanged"]
        assert (event["topic"], event["cursor"]) == ("IDENTITY", await last_cursor(app))


async def test_a_merged_user_is_followed_into_its_survivor(app: FastAPI, address: str, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    older = await new_user(http, admin, phone="+8613800140011")
    younger = (await link(http, admin, kind="APP_USER_ID", value="sync-2"))["user"]["id"]
    async with subscriptions(address, admin) as subs:
        op = await subs.subscribe(USER_CHANGED, {"id": younger})
        await listening(app.state.feed, 1)
        await link(http, admin, kind="APP_USER_ID", value="sync-2", user_id=older)
        merged = [(await subs.next(op))["userChanged"] for _ in range(1)]
        assert merged[0]["topic"] == "MERGE"
        assert merged[0]["user"]["id"] == older
        await link(http, admin, kind="EXTERNAL", namespace="qq", value="sync-qq", user_id=older)
        later = (await subs.next(op))["userChanged"]
        assert (later["userId"], later["topic"]) == (older, "IDENTITY")


async def test_changes_replays_after_a_cursor_then_follows_live_without_gap_or_duplicate(
    app: FastAPI, address: str, http: Gql
) -> None:
    admin = await operator_key(app, "admin")
    start = await last_cursor(app)
    first = [await new_user(http, admin, phone=f"+86138001402{i:02d}") for i in range(3)]

    async def more() -> list[str]:
        return [await new_user(http, admin, phone=f"+86138001403{i:02d}") for i in range(20)]

    async with subscriptions(address, admin) as subs:
        op = await subs.subscribe(CHANGES, {"after": start})
        writer = asyncio.create_task(more())  # changes committed while the replay runs
        later = await writer
        seen = [(await subs.next(op))["changes"] for _ in range(23)]
        # No duplicate followed: the next event is the next change, made now.
        marker = await new_user(http, admin, phone="+8613800140399")
        assert (await subs.next(op))["changes"]["userId"] == marker
    cursors = [int(c["cursor"]) for c in seen]
    assert cursors == list(range(int(start) + 1, int(start) + 24)), "gap-free, in order, once each"
    assert [c["userId"] for c in seen] == first + later
    assert {c["topic"] for c in seen} == {"IDENTITY"}


async def test_changes_filters_topics_and_a_slow_listener_catches_up(
    app: FastAPI, address: str, http: Gql
) -> None:
    admin = await operator_key(app, "admin")
    service = await service_key(app, "APP")
    app.state.feed.queue_size = 2  # the live queue overflows at once: delivery falls back to the outbox
    user_id = await new_user(http, admin, phone="+8613800140401")
    await link(http, admin, kind="APP_USER_ID", value="sync-4", user_id=user_id)
    async with subscriptions(address, admin) as subs:
        op = await subs.subscribe(CHANGES, {"topics": ["ORDER"]})
        await listening(app.state.feed, 1)
        records = [app_order(f"o-{i}", app_user("sync-4"), order_no=f"SO-{i}") for i in range(12)]
        for i in range(0, 12, 3):
            await ingest(http.client, service, "APP", records[i : i + 3])
            await link(http, admin, kind="EXTERNAL", namespace="x", value=f"sync-x{i}", user_id=None)
        seen = [(await subs.next(op))["changes"] for _ in range(4)]
        # Nothing else passed the filter: the next event is the next ORDER change, made now.
        await ingest(http.client, service, "APP", [app_order("o-12", app_user("sync-4"), order_no="SO-12")])
        assert (await subs.next(op))["changes"]["cursor"] == await last_cursor(app)
    assert [c["topic"] for c in seen] == ["ORDER"] * 4  # one ORDER change per batch, identities filtered
    assert [int(c["cursor"]) for c in seen] == sorted(int(c["cursor"]) for c in seen)


async def test_a_cursor_the_outbox_no_longer_holds_is_expired(app: FastAPI, address: str, http: Gql) -> None:
    from datetime import timedelta

    from app.db.types import utcnow
    from app.stores import changes as outbox

    admin = await operator_key(app, "admin")
    for i in range(3):
        await new_user(http, admin, phone=f"+86138001405{i:02d}")
    async with app.state.db.write_sessions() as session, session.begin():
        assert await outbox.prune(session, older_than=utcnow() + timedelta(days=1)) == 2
    async with subscriptions(address, admin) as subs:
        assert await subs.error_code(await subs.subscribe(CHANGES, {"after": "0"})) == "CURSOR_EXPIRED"
        assert await subs.error_code(await subs.subscribe(CHANGES, {"after": "x"})) == "BAD_USER_INPUT"
        bad_topic = await subs.subscribe(CHANGES, {"topics": ["NOPE"]})
        assert await subs.error_code(bad_topic) == "BAD_USER_INPUT"
        # The newest change is kept, so following from just before it still works.
        newest = int(await last_cursor(app))
        op = await subs.subscribe(CHANGES, {"after": str(newest - 1)})
        assert int((await subs.next(op))["changes"]["cursor"]) == newest
