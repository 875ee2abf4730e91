"""Concurrent ingests that share identities, orders and cart lines: no deadlock, one user, newest wins."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.db.channel_models import ChannelCartItem, ChannelOrder, DeadLetter, RawRecord
from app.db.models import Identity, IdentityEdge, User
from app.domain import IdentityKind
from app.services.identity import IdentityGraph
from app.services.identity_rules import make_key
from app.settings import Settings
from tests.conftest import by_nature, settings_for
from tests.factories.auth import service_key
from tests.factories.channel_data import app_order, app_user, cart, event, ingest

PEOPLE = 300  # identities every batch shares, none of which has a user yet
SHARED_EVENTS = 40  # the same record ids in every batch: exactly one batch may accept each
BATCHES = 4
ORDERS = """
query ($identity: IdentityInput!) {
  user(identity: $identity) { orders { nodes { sourceId status updatedAt } } cart { items { sku quantity } } }
}
"""


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Settings:
    """Room for batches of a few hundred records; a test may change more through `indirect`."""
    more: dict[str, Any] = getattr(request, "param", {})
    return settings_for(database_url, tmp_path / "var").model_copy(
        update={"ingest_max_records": 1000, "ingest_max_body_bytes": 4 * 1024 * 1024, **more}
    )


def _at(batch: int) -> str:
    return f"2026-11-20T10:{batch:02d}:00+08:00"


def _batch(b: int) -> list[dict[str, Any]]:
    """One record per identity for an order and a cart line, in an order that differs per batch.

    Even batches go forward, odd ones backward, each rotated: overlapping writers meet head-on.
    """
    people = list(range(PEOPLE))
    people = people[b * 37 :] + people[: b * 37]
    if b % 2:
        people.reverse()
    records: list[dict[str, Any]] = []
    for i in people:
        who = app_user(f"U-{i}")
        records.append(app_order(f"b{b}-o{i}", who, order_no=f"O-{i}", status=b % 5, at=_at(b)))
        records.append(cart(f"b{b}-c{i}", who, sku=f"S{i % 7}", quantity=b + 1, at=_at(b)))
    shared = [event(f"e{n}", app_user(f"U-{n}"), name="click") for n in range(SHARED_EVENTS)]
    return records + (shared if b % 2 else shared[::-1])


async def test_overlapping_batches_end_consistent(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await service_key(app, "APP")
    batches = [_batch(b) for b in range(BATCHES)]
    # Newest last in the list, but sent together: arrival order is up to the scheduler.
    reports = await asyncio.gather(*(ingest(client, key, "APP", records) for records in batches))

    for b, report in enumerate(reports):
        statuses = {r["id"]: r["status"] for r in report["results"]}
        own = [s for rid, s in statuses.items() if rid.startswith(f"b{b}-")]
        assert own == ["ACCEPTED"] * (2 * PEOPLE), f"batch {b}"
        assert report["rejected"] == 0
    for n in range(SHARED_EVENTS):
        per_batch = [next(x["status"] for x in r["results"] if x["id"] == f"e{n}") for r in reports]
        assert sorted(per_batch) == ["ACCEPTED"] + ["DUPLICATE"] * (BATCHES - 1), f"e{n}: {per_batch}"

    newest = BATCHES - 1
    async with app.state.db.read_sessions() as session:
        users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        owners = (await session.execute(select(Identity.value, Identity.user_id))).all()
        orders = (await session.execute(select(ChannelOrder.order_id, ChannelOrder.status_code))).all()
        lines = (await session.execute(select(ChannelCartItem.sku, ChannelCartItem.quantity))).all()
        kept = (await session.execute(select(func.count()).select_from(RawRecord))).scalar_one()
        dead = (await session.execute(select(func.count()).select_from(DeadLetter))).scalar_one()
        edges = (
            await session.execute(select(IdentityEdge.action, IdentityEdge.user_id, IdentityEdge.value))
        ).all()
    assert users == PEOPLE
    assert sorted((a, u, v) for a, u, v in edges) == sorted(
        ("link", u, v) for v, u in owners
    )  # one link each
    assert len(owners) == PEOPLE
    assert len({user_id for _, user_id in owners}) == PEOPLE
    assert sorted(v for v, _ in owners) == sorted(f"U-{i}" for i in range(PEOPLE))
    assert len(orders) == PEOPLE
    assert {status for _, status in orders} == {newest % 5}
    assert {quantity for _, quantity in lines} == {newest + 1}
    assert kept == BATCHES * 2 * PEOPLE + SHARED_EVENTS
    assert dead == 0


async def _post(client: httpx.AsyncClient, key: str, records: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/ingest/APP", json=records, headers={"Authorization": f"Bearer {key}"})


async def until_a_writer_waits(app: FastAPI) -> None:
    """Poll PostgreSQL until some transaction of this database waits for a lock."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        async with app.state.db.read_sessions() as session:
            if (await session.execute(waiting)).scalar_one():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("no writer ever waited for the other")


@pytest.mark.parametrize(
    ("settings", "retried"),
    [({"ingest_max_attempts": 3}, True), ({"ingest_max_attempts": 1}, False)],
    indirect=["settings"],
)
async def test_a_deadlocked_batch_is_retried_whole_or_refused_clearly(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, retried: bool
) -> None:
    if settings.is_sqlite:
        by_nature("deadlocks are PostgreSQL's: SQLite write transactions queue (BEGIN IMMEDIATE)")
    key = await service_key(app, "APP")
    first, second = (make_key(IdentityKind.APP_USER_ID, v, None, phone_region="CN") for v in ("U-a", "U-b"))
    records = [
        cart("d1", app_user("U-b"), sku="S", quantity=1),
        cart("d2", app_user("U-a"), sku="S", quantity=2),
    ]
    async with app.state.db.write_sessions() as other, other.begin():
        # A writer that ignores the global order (U-b, then U-a) and waits long before it checks for
        # deadlocks, so PostgreSQL aborts the ingest's transaction, not this one.
        await other.execute(text("SET LOCAL deadlock_timeout = '30s'"))
        graph = IdentityGraph(other)
        mine = (await graph.ensure_users([second], actor="test", rule="test", source="test")).owners
        sending = asyncio.create_task(_post(client, key, records))
        await until_a_writer_waits(app)  # the ingest holds U-a and waits for U-b
        mine |= (await graph.ensure_users([first], actor="test", rule="test", source="test")).owners
    response = await sending

    async with app.state.db.read_sessions() as session:
        owners = dict((await session.execute(select(Identity.value, Identity.user_id))).all())
        kept = (await session.execute(select(func.count()).select_from(RawRecord))).scalar_one()
        dead = (await session.execute(select(func.count()).select_from(DeadLetter))).scalar_one()
    assert owners == {"U-a": mine[first], "U-b": mine[second]}
    assert dead == 0
    if retried:
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == ["ACCEPTED", "ACCEPTED"]
        assert kept == 2
        return
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "INGEST_CONTENTION"
    assert "deadlock detected" in error["message"]
    assert "none of its records were stored" in error["message"]
    assert kept == 0
    again = await ingest(client, key, "APP", records)
    assert again["accepted"] == 2


@pytest.mark.parametrize("settings", [{"sqlite_busy_timeout_ms": 100}], indirect=True)
async def test_a_locked_sqlite_database_is_a_clear_error(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    if not settings.is_sqlite:
        by_nature("SQLite's busy timeout; PostgreSQL writers wait for row locks instead")
    key = await service_key(app, "APP")
    holder = sqlite3.connect(make_url(settings.database_url).database or "", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock past the timeout
        response = await _post(client, key, [cart("l1", app_user("U-l"), sku="S", quantity=1)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "INGEST_CONTENTION"
    assert (await ingest(client, key, "APP", [cart("l1", app_user("U-l"), sku="S", quantity=1)]))[
        "accepted"
    ] == 1
