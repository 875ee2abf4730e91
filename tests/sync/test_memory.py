"""Delivering subscription events retains no memory, and an ended subscription releases what it held.

A real uvicorn server and a real WebSocket client share this process, so tracemalloc's traced size
(after a full collection) covers both; the client keeps only the last event. After a warm-up
(SQLAlchemy's, strawberry's and the loaders' caches filled), more events may grow it by at most
SLACK plus PER_EVENT bytes per event. 100 B is about one dict entry with its key tuple: a leak of any
structure per event fails. The leak of issue 19 (graphql-core's memo of collected subfields, shared
by every event of a subscription) kept 1,373 B per `changes` event and 3,529 B per `userChanged {
user { consents } }` event: nine- to elevenfold the bound at these counts. Fixed: −34 to +10 B per
event, and ≤ 52 KB above the baseline once ended. SLACK covers what does not grow with the events
(a buffer resized, a cache entry, each pooled connection's last result). The counts keep the test
short: `userChanged` reads the user and its consents for every event.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.db.types import utcnow
from app.services.changes import Topic
from app.stores import changes as outbox
from tests.factories.auth import operator_key, user_token
from tests.factories.entitlements import SET_CONSENT, consent_input
from tests.factories.identity import new_user
from tests.helpers import Gql
from tests.sync.ws import Subscriptions, listening, subscriptions

CHANGES = """
subscription {
  changes { userId topic cursor at }
}
"""
USER_CHANGED = """
subscription ($id: ID!) {
  userChanged(userId: $id) {
    userId topic cursor
    user { id consents { purpose channel granted sourceChannel policyVersion } }
  }
}
"""
WARM_UP = 100  # events
PER_EVENT = 100  # bytes
SLACK = 128 * 1024  # bytes

# The executor is what leaked, not the database: SQLite only (it needs no server to run).
pytestmark = [
    pytest.mark.usefixtures("traced"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


@pytest.fixture
async def http(address: str) -> AsyncIterator[Gql]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        yield Gql(client)


def retained() -> int:
    """Bytes still allocated (traced) after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def append_changes(app: FastAPI, user_id: int, n: int) -> None:
    """`n` outbox rows for this user in one commit (as a batch of ingestion would announce)."""
    async with app.state.db.write_sessions() as session, session.begin():
        cursors = await session.run_sync(
            lambda s: outbox.append(s, [(user_id, Topic.CONSENT.value)] * n, at=utcnow())
        )
    app.state.feed.doorbell.ring(cursors[-1])


async def baseline(
    app: FastAPI, subs: Subscriptions, query: str, variables: dict[str, Any], user_id: int
) -> int:
    """Retained bytes after a first such subscription ran through some events and ended (caches
    filled, each pooled connection's last result kept): what a later one must come back to."""
    op = await subs.subscribe(query, variables)
    await deliver(app, subs, op, user_id, events=WARM_UP)
    await subs.complete(op)
    await listening(app.state.feed, 0)
    return retained()


async def deliver(app: FastAPI, subs: Subscriptions, op: str, user_id: int, *, events: int) -> dict[str, Any]:
    """Deliver `events` changes to the subscription `op`; the last one's data."""
    await listening(app.state.feed, 1)
    await append_changes(app, user_id, events)
    return await subs.drain(op, events)


async def retains_nothing(
    app: FastAPI, subs: Subscriptions, op: str, user_id: int, *, events: int
) -> dict[str, Any]:
    """After a warm-up, `events` more changes keep less than PER_EVENT bytes each (and SLACK)."""
    await deliver(app, subs, op, user_id, events=WARM_UP)
    warm = retained()  # nothing in flight: every change appended has been received
    last = await deliver(app, subs, op, user_id, events=events)
    grown = retained() - warm
    assert grown < SLACK + events * PER_EVENT, f"{grown / events:.0f} bytes kept per event"
    return last


async def ended(app: FastAPI, subs: Subscriptions, op: str, before: int) -> None:
    """`complete` ends the subscription and releases what it held."""
    await subs.complete(op)
    await listening(app.state.feed, 0)
    released = retained() - before
    assert released < SLACK, f"{released} bytes kept after the subscription ended"


async def test_changes_retains_nothing_per_event(app: FastAPI, address: str, http: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = int(await new_user(http, admin, phone="+8613800149001"))
    async with subscriptions(address, admin) as subs:
        before = await baseline(app, subs, CHANGES, {}, user_id)
        op = await subs.subscribe(CHANGES)
        last = await retains_nothing(app, subs, op, user_id, events=3_000)
        assert last["changes"]["cursor"] == str(await app.state.feed.last_cursor())
        await ended(app, subs, op, before)


async def test_user_changed_with_consents_retains_nothing_per_event(
    app: FastAPI, address: str, http: Gql
) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(http, admin, phone="+8613800149002")
    for purpose in ("PUSH", "MARKETING"):
        consent = consent_input(purpose, granted=True, source="APP", channel="APP", user_id=user_id)
        await http(SET_CONSENT, {"input": consent}, token=user_token(app, user_id))
    async with subscriptions(address, admin) as subs:
        before = await baseline(app, subs, USER_CHANGED, {"id": user_id}, int(user_id))
        op = await subs.subscribe(USER_CHANGED, {"id": user_id})
        last = (await retains_nothing(app, subs, op, int(user_id), events=600))["userChanged"]
        assert {c["purpose"] for c in last["user"]["consents"]} == {"PUSH", "MARKETING"}
        await ended(app, subs, op, before)
