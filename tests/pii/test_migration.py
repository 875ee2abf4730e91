"""The PII migrations encrypt what earlier versions kept in clear, and the downgrade gives it back."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import alembic_config
from app.db.types import UTCDateTime
from app.main import create_app
from app.pii import PHONE
from app.sealing import keyring_for
from app.services.accounts import SESSION_KEY
from app.settings import Settings
from tests.conftest import pg_admin, pg_database_url, run_in_thread, settings_for
from tests.factories.auth import operator_key
from tests.helpers import Gql
from tests.pii.raw import dump, places

NUMBER = "+8613800138555"
OLD_REF = f"PHONE||{NUMBER}"
AT = datetime(2026, 11, 20, 10, tzinfo=UTC)
VIEW = """
query ($phone: String!) {
  user(identity: {kind: PHONE, value: $phone}) {
    id phone orders { nodes { sourceId } } cart { items { sku } }
  }
}
"""


@pytest.fixture
def empty_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet, on the backend of this test."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"troika_old_{uuid.uuid4().hex[:10]}"
    run_in_thread(pg_admin(f'CREATE DATABASE "{name}"'))
    yield pg_database_url(name)
    run_in_thread(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _migrate(url: str, settings: Settings, target: str, *, down: bool = False) -> None:
    cfg = alembic_config(url, settings)
    step = command.downgrade if down else command.upgrade
    with ThreadPoolExecutor(1) as pool:
        pool.submit(step, cfg, target).result()


def _legacy_seal(secret: str, plaintext: str) -> str:
    """How 20261125_0006's code sealed a WeChat session key."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SESSION_KEY.encode()).derive(
        secret.encode()
    )
    nonce = os.urandom(12)
    return base64.urlsafe_b64encode(
        nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), SESSION_KEY.encode())
    ).decode()


def _table(name: str, *columns: str, at: tuple[str, ...] = ()) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns), *(sa.column(c, UTCDateTime) for c in at))


async def _write_old_rows(url: str, settings: Settings) -> None:
    """What a database of 20261125_0006 / 0002 held: phones in clear."""
    payload = {"id": "o1", "type": "order", "identity": {"kind": "PHONE", "value": NUMBER}, "data": {}}
    rows: list[tuple[sa.TableClause, dict[str, Any]]] = [
        (_table("users", "id", at=("created_at",)), {"id": 1, "created_at": AT}),
        (
            _table(
                "identities",
                "id",
                "user_id",
                "kind",
                "namespace",
                "value",
                "verified",
                "rule",
                "source",
                "actor",
                at=("linked_at",),
            ),
            {
                "id": 1,
                "user_id": 1,
                "kind": "PHONE",
                "namespace": "",
                "value": NUMBER,
                "verified": True,
                "rule": "verified",
                "source": "sms",
                "actor": "phone-login",
                "linked_at": AT,
            },
        ),
        (
            _table(
                "identity_edges",
                "id",
                "action",
                "user_id",
                "identity_id",
                "kind",
                "namespace",
                "value",
                "rule",
                "source",
                "actor",
                at=("at",),
            ),
            {
                "id": 1,
                "action": "link",
                "user_id": 1,
                "identity_id": 1,
                "kind": "PHONE",
                "namespace": "",
                "value": NUMBER,
                "rule": "verified",
                "source": "sms",
                "actor": "phone-login",
                "at": AT,
            },
        ),
        (
            _table(
                "ch_orders",
                "channel",
                "order_id",
                "identity_ref",
                "status_code",
                "total_cents",
                "currency",
                "items",
                at=("placed_at", "updated_at"),
            ),
            {
                "channel": "APP",
                "order_id": "A-1",
                "identity_ref": OLD_REF,
                "status_code": 1,
                "total_cents": 100,
                "currency": "CNY",
                "items": "[]",
                "placed_at": AT,
                "updated_at": AT,
            },
        ),
        (
            _table("ch_cart_items", "channel", "identity_ref", "sku", "quantity", at=("updated_at",)),
            {"channel": "APP", "identity_ref": OLD_REF, "sku": "S1", "quantity": 2, "updated_at": AT},
        ),
        (
            _table(
                "ch_records",
                "channel",
                "source_id",
                "type",
                "identity_ref",
                "payload",
                "dictionary_version",
                at=("occurred_at", "received_at"),
            ),
            {
                "channel": "APP",
                "source_id": "o1",
                "type": "order",
                "identity_ref": OLD_REF,
                "payload": json.dumps(payload),
                "dictionary_version": "1",
                "occurred_at": AT,
                "received_at": AT,
            },
        ),
        (
            _table("ch_dead_letters", "channel", "source_id", "payload", "reason", at=("received_at",)),
            {
                "channel": "APP",
                "source_id": "o2",
                "payload": json.dumps({**payload, "id": "o2"}),
                "reason": f"data.status: unknown status for {NUMBER}",
                "received_at": AT,
            },
        ),
        (
            _table("wechat_sessions", "appid", "openid", "sealed_key", at=("updated_at",)),
            {
                "appid": "wx-mp",
                "openid": "o-old",
                "sealed_key": _legacy_seal(settings.secret("pii_key"), "k3y"),
                "updated_at": AT,
            },
        ),
        (
            _table("phone_codes", "phone_hash", "code_hash", "requested_by", at=("created_at", "expires_at")),
            {
                "phone_hash": "old",
                "code_hash": "old",
                "requested_by": "ip:1",
                "created_at": AT,
                "expires_at": AT,
            },
        ),
    ]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for table, row in rows:
                await conn.execute(sa.insert(table).values(**row))
    finally:
        await engine.dispose()


async def test_plaintext_phones_are_sealed_and_come_back_on_downgrade(empty_url: str, tmp_path: Path) -> None:
    settings = settings_for(empty_url, tmp_path / "var")
    _migrate(empty_url, settings, "20261125_0006")
    _migrate(empty_url, settings, "20261125_0002")
    await _write_old_rows(empty_url, settings)
    _migrate(empty_url, settings, "heads")

    tables = await dump(empty_url)
    assert places(tables, "13800138555") == []
    keyring = keyring_for(settings)
    index = keyring.index(NUMBER, purpose=PHONE)
    assert {(r["value"], keyring.unseal(r["sealed"], purpose=PHONE)) for r in tables["identities"]} == {
        (index, NUMBER)
    }
    assert [keyring.unseal(r["sealed"], purpose=PHONE) for r in tables["identity_edges"]] == [NUMBER]
    assert {r["identity_ref"] for t in ("ch_orders", "ch_cart_items", "ch_records") for r in tables[t]} == {
        f"PHONE||{index}"
    }
    [letter] = tables["ch_dead_letters"]
    assert letter["identity_ref"] == f"PHONE||{index}"
    assert letter["reason"] == "data.status: unknown status for 138****8555"
    [session_key] = tables["wechat_sessions"]
    assert keyring.unseal(session_key["sealed_key"], purpose=SESSION_KEY) == "k3y"
    assert tables["phone_codes"] == []  # hashed with the old key: a new code is one request away

    # The app reads what the migration wrote: found by the number, its channel data with it.
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            reader = await operator_key(app, "admin", "pii_reader")
            user = (await Gql(client)(VIEW, {"phone": "13800138555"}, token=reader))["user"]
    finally:
        await app.state.db.dispose()
    assert user == {
        "id": "1",
        "phone": NUMBER,
        "orders": {"nodes": [{"sourceId": "A-1"}]},
        "cart": {"items": [{"sku": "S1"}]},
    }

    _migrate(empty_url, settings, "20261125_0006", down=True)
    _migrate(empty_url, settings, "20261125_0002", down=True)
    tables = await dump(empty_url)
    assert [r["value"] for r in tables["identities"]] == [NUMBER]
    assert {r["identity_ref"] for t in ("ch_orders", "ch_cart_items", "ch_records") for r in tables[t]} == {
        OLD_REF
    }
    assert json.loads(tables["ch_dead_letters"][0]["payload"])["identity"]["value"] == NUMBER
