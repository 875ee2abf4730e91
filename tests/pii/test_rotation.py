"""Key rotation: old keys decrypt, new writes use the newest, `troika pii re-encrypt` (resumable)
moves everything to the newest, after which the old key can go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI

from app.cli import main
from app.main import create_app
from app.sealing import key_id
from app.settings import Settings, get_settings
from app.stores import sealed as sealed_store
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, ingest
from tests.factories.identity import link, new_user
from tests.factories.wechat import wechat_login
from tests.helpers import Gql
from tests.pii.raw import dump

NEW_KEY = "rotation-newest-key-0123456789abcdef"
PHONE_OF = (
    "query ($p: String!) { user(identity: {kind: PHONE, value: $p}) { id phone orders { totalCount } } }"
)
SEALED = {  # table: sealed column
    "identities": "sealed",
    "identity_edges": "sealed",
    "wechat_sessions": "sealed_key",
    "ch_records": "identity_sealed",
    "ch_dead_letters": "payload",
}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Gql]]:
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield app, client, Gql(client)
    finally:
        await app.state.db.dispose()


async def sealed_kids(url: str) -> dict[str, set[str]]:
    """The key ids of every sealed value, per table."""
    tables = await dump(url)
    return {t: {row[c].split(".")[0] for row in tables[t] if row[c]} for t, c in SEALED.items()}


async def troika(*args: str) -> Result:
    """The command line, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


def phone_order(record_id: str, phone: str, **more: Any) -> dict[str, Any]:
    return app_order(record_id, {"kind": "PHONE", "value": phone}, order_no=f"R-{record_id}", **more)


async def test_old_keys_open_new_writes_use_the_newest_and_reencrypt_moves_the_rest(
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    fake_wechat: FakeWeChat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_key = settings.secret("pii_key")
    old, new = key_id(old_key), key_id(NEW_KEY)
    async with running(settings) as (app, client, gql):
        admin = await operator_key(app, "admin", "pii_reader")
        service = await service_key(app, "APP")
        await new_user(gql, admin, phone="+8613800138601")
        await ingest(
            client, service, "APP", [phone_order("r1", "13800138601"), phone_order("r2", "1380013", status=9)]
        )
        await wechat_login(gql, "MINI_PROGRAM", "rotation")
    assert {k for kids in (await sealed_kids(database_url)).values() for k in kids} == {old}

    # Rotation: the new key first, the old one still listed.
    rotated = settings.model_copy(update={"pii_key": None, "pii_keys": f"{NEW_KEY},{old_key}"})
    async with running(rotated) as (app, client, gql):
        assert (await gql(PHONE_OF, {"p": "13800138601"}, token=admin))["user"]["phone"] == "+8613800138601"
        await link(gql, admin, kind="PHONE", value="+8613800138602")
        await ingest(client, service, "APP", [phone_order("r3", "13800138602")])
    kids = await sealed_kids(database_url)
    assert kids["identities"] == {old, new}  # the old value as it was, the new one under the new key
    assert kids["ch_records"] == {old, new}

    # Re-encrypt, interrupted after two batches, then finished by a second run.
    monkeypatch.setenv("TROIKA_DATABASE_URL", database_url)
    monkeypatch.setenv("TROIKA_VAR_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("TROIKA_PII_KEYS", f"{NEW_KEY},{old_key}")
    monkeypatch.setenv("TROIKA_PII_INDEX_KEY", settings.secret("pii_index_key"))
    get_settings.cache_clear()
    counted = await troika("pii", "re-encrypt", "--dry-run")
    assert "identities.sealed: 1 to re-encrypt" in counted.stdout
    total = sum(int(line.split(": ")[1].split()[0]) for line in counted.stdout.splitlines())
    assert total >= 5  # an identity, its history edge, a raw record, a dead letter, a session key
    rewrite = sealed_store.rewrite
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("the machine went away")
        return await rewrite(*args, **kwargs)

    monkeypatch.setattr(sealed_store, "rewrite", failing)
    interrupted = await troika("pii", "re-encrypt", "--batch-size", "1")
    assert interrupted.exit_code != 0
    monkeypatch.setattr(sealed_store, "rewrite", rewrite)
    left = await troika("pii", "re-encrypt", "--dry-run")
    assert sum(int(line.split(": ")[1].split()[0]) for line in left.stdout.splitlines()) == total - 2
    finished = await troika("pii", "re-encrypt", "--batch-size", "2")
    assert finished.exit_code == 0, finished.output
    assert f"now under key {new}" in finished.stdout
    assert set().union(*(await sealed_kids(database_url)).values()) == {new}
    again = await troika("pii", "re-encrypt")
    assert all(line.endswith(": 0 re-encrypted") for line in again.stdout.splitlines()[:-1])
    get_settings.cache_clear()

    # The old key can go: everything opens with the new one alone.
    newest_only = settings.model_copy(update={"pii_key": NEW_KEY})
    async with running(newest_only) as (app, _client, gql):
        reader = await operator_key(app, "admin", "pii_reader")
        first = (await gql(PHONE_OF, {"p": "13800138601"}, token=reader))["user"]
        assert (first["phone"], first["orders"]["totalCount"]) == ("+8613800138601", 1)
        history = "query ($id: ID!) { user(id: $id) { identityHistory { value } } }"
        edges = (await gql(history, {"id": first["id"]}, token=reader))["user"]["identityHistory"]
        assert [e["value"] for e in edges] == ["+8613800138601"]


def test_keys_are_named_by_a_fingerprint_not_by_themselves() -> None:
    named: Callable[[str], str] = key_id
    assert named(NEW_KEY) == named(NEW_KEY)
    assert named(NEW_KEY) != named(NEW_KEY + "x")
    assert len(named(NEW_KEY)) == 8
    assert named(NEW_KEY) not in NEW_KEY
