"""Two apps over one database, compiled reads on and off, and people worth reading."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic import command
from fastapi import FastAPI

from app.cli import alembic_config
from app.main import create_app
from app.settings import Settings
from tests.conftest import pg_admin, pg_database_url, run_in_thread
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import app_order, app_user, cart, event, ingest, mp_order, openid
from tests.factories.entitlements import grant_membership, grant_role, person, set_consent
from tests.factories.identity import link
from tests.helpers import Gql

ERASE = "mutation ($id: ID!) { eraseUser(userId: $id) { userId } }"
ADJUST = (
    'mutation ($id: ID!) { adjustPoints(userId: $id, points: 7, reason: "r", sourceChannel: APP) { id } }'
)


@dataclass
class Pair:
    """The same database served twice: `on` compiles what it can, `off` resolves field by field."""

    on: FastAPI
    off: FastAPI
    on_client: httpx.AsyncClient
    off_client: httpx.AsyncClient


@pytest.fixture
def app_store_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[str | None]:
    """For the `split` layout: the APP channel store in a database of its own."""
    if getattr(request, "param", "shared") == "shared":
        yield None
        return
    name = None
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'app-store.db'}"
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
async def pair(settings: Settings, app_store_url: str | None) -> AsyncIterator[Pair]:
    # No response cache (every answer computed) and no rate limits (a window edge falling between
    # the two answers of a pair would tell them apart).
    update = {"response_cache_bytes": 0, "rate_limit_enabled": False, "app_database_url": app_store_url}
    base = settings.model_copy(update=update)
    on = create_app(base.model_copy(update={"compiled_reads": True}))
    off = create_app(base.model_copy(update={"compiled_reads": False}))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=on), base_url="http://on") as on_client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=off), base_url="http://off") as off_client,
    ):
        yield Pair(on, off, on_client, off_client)
    await on.state.db.dispose()
    await off.state.db.dispose()


@dataclass
class World:
    """Who is in the database, and the callers that read them."""

    full: str  # every relation, in all three channels, with a phone
    survivor: str
    absorbed: str
    bare: str  # a user with one identity and nothing else
    erased: str
    callers: dict[str, str | None]
    identities: dict[str, dict[str, str]]


T1, T2, T3 = "2026-11-20T10:00:00+08:00", "2026-11-21T09:30:00+08:00", "2026-11-22T18:05:00+08:00"


async def build_world(app: FastAPI, client: httpx.AsyncClient) -> World:
    """Several people through the public API: orders, carts, behaviour, consents, memberships,
    points, roles, a merge."""
    gql = Gql(client)
    s = app.state.settings
    admin = await operator_key(app, "admin")
    full = await person(app, gql, n=1)
    await link(gql, admin, kind="PHONE", value="13800138000", user_id=full)
    mp_app, oa_app = s.mini_program_appid, s.official_account_appid
    mp, oa = openid(mp_app, f"o-{mp_app[-2:]}-1"), openid(oa_app, f"o-{oa_app[-2:]}-1")  # as person() links
    older = (await link(gql, admin, kind="APP_USER_ID", value="A-old"))["user"]["id"]
    younger = (await link(gql, admin, kind="PHONE", value="13900139000"))["user"]["id"]
    merged = await link(gql, admin, kind="PHONE", value="13900139000", user_id=older)
    assert merged["merge"]["survivorId"] == older
    await link(gql, admin, kind="OPENID", namespace=s.mini_program_appid, value="o-old", user_id=older)
    bare = (await link(gql, admin, kind="EXTERNAL", namespace="crm", value="c-9"))["user"]["id"]
    erased = (await link(gql, admin, kind="APP_USER_ID", value="A-gone"))["user"]["id"]
    await gql(ERASE, {"id": erased}, token=admin)
    mp_key, app_key = await service_key(app, "MINI_PROGRAM"), await service_key(app, "APP")
    mp_records = [
        mp_order("m1", mp, order_id="MP-1", status="待支付", at=T1),
        mp_order("m2", mp, order_id="MP-2", status="已支付", amount="35.5元", at=T2),
        mp_order("m3", mp, order_id="MP-3", status="已完成", at=T3),
        cart("c1", mp, sku="A1", quantity=1, at=T1),
        cart("c2", mp, sku="B2", quantity=2, at=T3),
        event("e1", mp, name="article_read", properties={"tags": ["母婴知识", "育儿"]}, at=T1),
        event("e2", mp, name="article_read", properties={"tags": ["育儿"]}, at=T3),
        event("e3", mp, name="page_view", properties={"page": "/home"}, at=T2),
    ]
    assert (await ingest(client, mp_key, "MINI_PROGRAM", mp_records))["rejected"] == 0
    a1, a_old = app_user("A-P1"), app_user("A-old")
    app_records = [
        app_order("a1", a1, order_no="AP-1", status=1, at=T2),
        app_order("a2", a1, order_no="AP-2", status=3, total_fen=990, at=T3),
        app_order("a3", a_old, order_no="AP-3", status=2, at=T1),
        cart("c3", a1, sku="A1", quantity=3, at=T2),
        cart("c4", a1, sku="B2", quantity=0, at=T2),
        cart("c5", a_old, sku="Z9", quantity=4, at=T1),
        event("e4", a1, name="article_read", properties={"tags": ["育儿"]}, at=T2),
        event("e5", a_old, name="page_view", properties={"page": "/x"}, at=T2),
    ]
    assert (await ingest(client, app_key, "APP", app_records))["rejected"] == 0
    for uid in (full, older):
        await set_consent(
            gql, mp_key, "PUSH", granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM", user_id=uid
        )
    await set_consent(gql, app_key, "LOCATION", granted=True, source="APP", user_id=full, policy_version="v2")
    await set_consent(gql, app_key, "MARKETING", granted=False, channel="APP", source="APP", user_id=full)
    await grant_membership(gql, mp_key, user_id=full, tier="GOLD", source="MINI_PROGRAM")
    await grant_membership(
        gql, app_key, user_id=older, tier="SILVER", source="APP", expires_at="2099-01-01T00:00:00Z"
    )
    await gql(ADJUST, {"id": full}, token=app_key)
    await grant_role(gql, admin, user_id=full, role="store_order_manager", scope="store:12")
    await grant_role(gql, admin, user_id=older, role="customer_service")
    callers: dict[str, str | None] = {
        "admin": admin,
        "pii": await operator_key(app, "viewer", "pii_reader"),
        "viewer": await operator_key(app, "viewer"),
        "mp": mp_key,
        "app": app_key,
        "oa": await service_key(app, "OFFICIAL_ACCOUNT"),
        "self": user_token(app, full),
        "absorbed": user_token(app, younger),
        "nobody": None,
    }
    identities = {
        "app": a1,
        "mp": mp,
        "oa": oa,
        "phone": {"kind": "PHONE", "value": "138 0013 8000"},
        "old": a_old,
        "bare": {"kind": "EXTERNAL", "namespace": "crm", "value": "c-9"},
        "unknown": app_user("nobody"),
        "erased": app_user("A-gone"),
        "with unionid": {**mp, "unionid": "u-1"},
        "bad": {"kind": "PHONE", "value": "not a phone"},
    }
    return World(full, older, younger, bare, erased, callers, identities)
