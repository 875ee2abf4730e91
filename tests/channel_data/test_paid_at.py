"""When an order reached PAID: the earliest paid update's occurredAt, whatever order updates arrive
in; funnel PAID counts at that time, and the migration's backfill rule for older rows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
from alembic import command
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import alembic_config
from app.db.channel_models import ChannelOrder
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import ingest, mp_order, openid
from tests.helpers import Gql

FUNNEL = """
query ($from: DateTime!, $to: DateTime!) {
  funnel(steps: [{ channel: MINI_PROGRAM, action: PAID }], from: $from, to: $to) { steps { persons } }
}
"""
PLACED, PAID, SHIPPED = "2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z", "2026-11-05T10:00:00Z"


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


async def _order(app: FastAPI, order_id: str) -> tuple[int, datetime, datetime | None]:
    async with app.state.db.read_sessions() as s:
        row = (
            await s.execute(
                select(ChannelOrder.status_code, ChannelOrder.updated_at, ChannelOrder.paid_at).where(
                    ChannelOrder.order_id == order_id
                )
            )
        ).one()
    return row[0], row[1], row[2]


async def _paid_persons(gql: Gql, token: str, start: str, end: str) -> int:
    found = await gql(FUNNEL, {"from": start, "to": end}, token=token)
    persons: int = found["funnel"]["steps"][0]["persons"]
    return persons


async def test_paid_at_is_the_earliest_paid_update_whatever_the_arrival_order(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    key = await service_key(app, "MINI_PROGRAM")
    mp = openid(app.state.settings.mini_program_appid, "payer")

    async def send(*records: dict[str, Any]) -> None:
        assert (await ingest(client, key, "MINI_PROGRAM", list(records)))["rejected"] == 0

    # Shipped arrives first, then the payment, then the order as placed: each older than the last.
    await send(mp_order("s", mp, order_id="O1", status="已发货", at=SHIPPED))
    assert await _order(app, "O1") == (2, _utc(SHIPPED), _utc(SHIPPED))
    await send(mp_order("p", mp, order_id="O1", status="已支付", at=PAID))
    assert await _order(app, "O1") == (2, _utc(SHIPPED), _utc(PAID))  # status stays; paid moves back
    await send(mp_order("o", mp, order_id="O1", status="待支付", at=PLACED))
    assert await _order(app, "O1") == (2, _utc(SHIPPED), _utc(PAID))
    # In one batch, the earliest paid update's time is kept too; an unpaid order has none.
    await send(
        mp_order("b2", mp, order_id="O2", status="已完成", at=SHIPPED),
        mp_order("b1", mp, order_id="O2", status="已支付", at=PAID),
        mp_order("c1", mp, order_id="O3", status="待支付", at=PLACED),
    )
    assert (await _order(app, "O2"))[2] == _utc(PAID)
    assert (await _order(app, "O3"))[2] is None
    viewer = await operator_key(app, "viewer")
    # The funnel counts PAID when it was paid: not on the day it was placed.
    assert await _paid_persons(gql, viewer, "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z") == 0
    assert await _paid_persons(gql, viewer, "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z") == 1
    # Cancelled since, it counts no more (it keeps the time it was paid).
    await send(mp_order("x", mp, order_id="O1", status="已取消", at="2026-11-06T10:00:00Z"))
    await send(mp_order("x2", mp, order_id="O2", status="已取消", at="2026-11-06T10:00:00Z"))
    assert (await _order(app, "O1"))[0] == 4
    assert (await _order(app, "O1"))[2] == _utc(PAID)
    assert await _paid_persons(gql, viewer, "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z") == 0


async def test_the_migration_backfills_paid_at_by_its_rule(database_url: str) -> None:
    """PAID: its updated_at; SHIPPED and COMPLETED: its placed_at; others: none."""
    cfg = alembic_config(database_url)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.downgrade, cfg, "20261204_1010_channel").result()
    placed, updated = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    engine = create_async_engine(database_url)
    insert = text(
        "INSERT INTO ch_orders (channel, order_id, identity_ref, status_code, total_cents, currency,"
        " items, placed_at, updated_at) VALUES ('APP', :o, 'APP_USER_ID||u', :s, 100, 'CNY', '[]', :p, :u)"
    )
    async with engine.begin() as conn:
        for status in range(5):
            await conn.execute(insert, {"o": f"O{status}", "s": status, "p": placed, "u": updated})
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, cfg, "heads").result()
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT status_code, paid_at FROM ch_orders ORDER BY 1"))).all()
    await engine.dispose()

    def utc(at: Any) -> datetime | None:
        if at is None:
            return None
        moment: datetime = datetime.fromisoformat(at) if isinstance(at, str) else at
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    assert [(s, utc(at)) for s, at in rows] == [
        (0, None),
        (1, updated),
        (2, placed),
        (3, placed),
        (4, None),
    ]
