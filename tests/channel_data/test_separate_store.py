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
from tests.factories.auth import service_key
from tests.factories.channel_data import app_order, app_user, ingest
from tests.helpers import Gql

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
