"""Audience tests run with every channel store in the hub's database, and with the official
account's and the APP's stores in databases of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic import command
from fastapi import FastAPI

from app.cli import alembic_config
from app.main import create_app
from tests.conftest import pg_admin, pg_database_url, run_in_thread, settings_for
from tests.helpers import Gql


def _store(database_url: str, tmp_path: Path, label: str) -> tuple[str, str | None]:
    if database_url.startswith("sqlite"):
        url, name = f"sqlite+aiosqlite:///{tmp_path / f'{label}-store.db'}", None
    else:
        name = f"troika_{label}_{uuid.uuid4().hex[:10]}"
        run_in_thread(pg_admin(f'CREATE DATABASE "{name}"'))
        url = pg_database_url(name)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(url), "channel@head").result()
    return url, name


@pytest.fixture(params=["shared", "split"])
async def aud_app(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[FastAPI]:
    """The app; `split`: the official account's and the APP's stores each in a database of its own."""
    settings = settings_for(database_url, tmp_path / "var")
    made: list[str] = []
    if request.param == "split":
        oa_url, oa_name = _store(database_url, tmp_path, "oa")
        app_url, app_name = _store(database_url, tmp_path, "app")
        made = [n for n in (oa_name, app_name) if n]
        settings = settings.model_copy(
            update={"official_account_database_url": oa_url, "app_database_url": app_url}
        )
    application = create_app(settings)
    yield application
    await application.state.db.dispose()
    for name in made:
        run_in_thread(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def aud_client(aud_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=aud_app), base_url="http://t") as client:
        yield client


@pytest.fixture
def aud_gql(aud_client: httpx.AsyncClient) -> Gql:
    return Gql(aud_client)
