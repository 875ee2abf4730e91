"""A channel store in a database of its own: same API, data where the configuration says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import alembic_config
from app.db.channel_models import ChannelOrder
from app.main import create_app
from tests.conftest import pg_admin, pg_database_url, run_in_thread, settings_for
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, event, ingest, mp_order, openid
from tests.factories.identity import link
from tests.helpers import Gql

FUNNEL = """
query ($steps: [FunnelStep!]!, $from: DateTime!, $to: DateTime!) {
  funnel(steps: $steps, from: $from, to: $to) { steps { persons } }
}
"""
TRAITS = "query ($i: IdentityInput!) { user(identity: $i) { traits { paidOrders lifetimeValueCents } } }"
ORDERS = "query ($i: IdentityInput!) { user(identity: $i) { orders { nodes { sourceId channel } } } }"


@pytest.fixture
def app_store_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database holding only the channel-store tables (the `channel` migration branch)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'app-store.db'}"
        name = None
    else:
        name = f"troika_store_{uuid.uuid4().hex[:10]}"
        run_in_thread(pg_admin(f'CREATE DATABASE "{name}"'))
        url = pg_database_url(name)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(url), "channel@head").result()
    yield url
    if name:
        run_in_thread(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def split_client(
    database_url: str, app_store_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(database_url, tmp_path / "var").model_copy(
        update={"app_database_url": app_store_url}
    )
    application = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://t"
    ) as client:
        client.app = application  # type: ignore[attr-defined]
        yield client
    await application.state.db.dispose()


async def _orders_in(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(ChannelOrder))).scalar_one()
    await engine.dispose()
    return int(count)


async def test_app_store_in_its_own_database(
    split_client: httpx.AsyncClient, database_url: str, app_store_url: str
) -> None:
    app = split_client.app  # type: ignore[attr-defined]
    assert [len(s.channels) for s in app.state.db.stores] == [2, 1]
    key = await service_key(app, "APP")
    report = await ingest(split_client, key, "APP", [app_order("x1", app_user("U-x"), order_no="A-x")])
    assert report["accepted"] == 1
    orders = (await Gql(split_client)(ORDERS, {"i": app_user("U-x")}, token=key))["user"]["orders"]["nodes"]
    assert orders == [{"sourceId": "A-x", "channel": "APP"}]
    assert await _orders_in(app_store_url) == 1
    assert await _orders_in(database_url) == 0


async def test_funnel_and_portrait_span_a_store_of_its_own(split_client: httpx.AsyncClient) -> None:
    """The APP's records live in another database: the funnel and the traits still join them."""
    app = split_client.app  # type: ignore[attr-defined]
    gql = Gql(split_client)
    s = app.state.settings
    operator = await operator_key(app, "operator")
    mp = openid(s.mini_program_appid, "mp-split")
    user = (await link(gql, operator, kind="OPENID", namespace=mp["namespace"], value="mp-split"))["user"]
    await link(gql, operator, kind="APP_USER_ID", value="U-split", user_id=user["id"])
    mp_key, app_key = await service_key(app, "MINI_PROGRAM"), await service_key(app, "APP")
    paid = mp_order("m1", mp, order_id="MP-1", status="已支付", at="2026-11-03T10:00:00Z")
    await ingest(split_client, mp_key, "MINI_PROGRAM", [paid])
    login = event("l1", app_user("U-split"), name="login", at="2026-11-04T10:00:00Z")
    await ingest(split_client, app_key, "APP", [login, app_order("a1", app_user("U-split"), order_no="A-1")])
    steps = [{"channel": "MINI_PROGRAM", "action": "PAID"}, {"channel": "APP", "action": "LOGGED_IN"}]
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-10T00:00:00Z"}
    found = (await gql(FUNNEL, {"steps": steps, **window}, token=operator))["funnel"]
    assert [x["persons"] for x in found["steps"]] == [1, 1]
    traits = (await gql(TRAITS, {"i": mp}, token=operator))["user"]["traits"]
    assert (traits["paidOrders"], traits["lifetimeValueCents"]) == (2, 20000)
