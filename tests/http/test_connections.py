"""A request's reads share one connection per database, however many loader batches it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from app.db.shared import SharedReads
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import cart, ingest, mp_order, openid
from tests.helpers import Gql

USERS = """
query ($first: Int!) {
  users(first: $first) {
    nodes {
      id identities { kind value }
      orders(first: 5) { totalCount nodes { sourceId items { sku } } }
      cart { items { sku quantity } }
      consents { purpose granted }
      membership { tier points }
      roles { role }
    }
  }
}
"""


@contextmanager
def checkouts(app: FastAPI) -> Iterator[list[object]]:
    """Every connection taken from the read pools (on PostgreSQL, the one pool) while inside, and
    those of the compiled reads' own connections (app/db/direct.py), counted when it ends."""
    taken: list[object] = []
    pools = {app.state.db.read_engine.pool, *(s.engines.read_engine.pool for s in app.state.db.stores)}
    engines = (app.state.db, *(s.engines for s in app.state.db.stores))
    direct = {id(e.direct): e.direct for e in engines if e.direct is not None}  # each database once
    before = {k: d.taken for k, d in direct.items()}

    def record(_dbapi: Any, _record: Any, _proxy: Any) -> None:
        taken.append(_record)

    for pool in pools:
        event.listen(pool, "checkout", record)
    try:
        yield taken
    finally:
        for pool in pools:
            event.remove(pool, "checkout", record)
        for k, d in direct.items():
            taken += [f"direct {n}" for n in range(d.taken - before[k])]


async def test_one_read_connection_per_request(app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
    appid = app.state.settings.mini_program_appid
    key = await service_key(app, "MINI_PROGRAM")
    records = []
    for n in range(5):
        who = openid(appid, f"o-c{n}")
        records += [mp_order(f"o{n}", who, order_id=f"MP-C{n}"), cart(f"c{n}", who, sku=f"S{n}", quantity=1)]
    assert (await ingest(client, key, "MINI_PROGRAM", records))["accepted"] == 10
    token = await operator_key(app, "viewer")
    await gql(USERS, {"first": 1}, token=token)  # the key is looked up once, then remembered
    with checkouts(app) as taken:
        nodes = (await gql(USERS, {"first": 5}, token=token))["users"]["nodes"]
    assert [len(u["orders"]["nodes"]) for u in nodes] == [1] * 5
    # Six relations, the page and its count, in several loader batches: one connection.
    assert len(taken) == 1, taken


async def test_a_failed_statement_leaves_the_next_read_a_fresh_session(app: FastAPI) -> None:
    reads = SharedReads(shared=True)
    db = app.state.db
    try:
        with pytest.raises(DBAPIError):
            async with reads.session(db) as session:
                await session.execute(text("SELECT * FROM no_such_table"))
        async with reads.session(db) as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await reads.close()
