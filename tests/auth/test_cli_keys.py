"""`troika keys create` prints the key alone, once, and keeps only its hash."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth.keys import hash_key
from app.cli import cli_actor, main
from app.db.models import ApiKey, AuditEntry


async def _stored(url: str) -> list[tuple[str, str, str | None, str]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ApiKey.key_hash, ApiKey.kind, ApiKey.channel, ApiKey.roles))).all()
    await engine.dispose()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def _audited(url: str) -> list[tuple[str, str, str, dict[str, object]]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        stmt = select(AuditEntry.action, AuditEntry.actor, AuditEntry.principal_kind, AuditEntry.details)
        rows = (await conn.execute(stmt.order_by(AuditEntry.id))).all()
    await engine.dispose()
    return [(r.action, r.actor, r.principal_kind, r.details) for r in rows]


def test_service_and_operator_keys(cli_env: str) -> None:
    runner = CliRunner()
    svc = runner.invoke(main, ["keys", "create", "--kind", "service", "--channel", "APP"])
    op = runner.invoke(
        main, ["keys", "create", "--kind", "operator", "--role", "admin", "--role", "pii_reader"]
    )
    assert svc.exit_code == 0, svc.output
    assert op.exit_code == 0, op.output
    svc_key, op_key = svc.stdout.strip(), op.stdout.strip()
    assert svc.stdout == svc_key + "\n"
    assert svc_key.startswith("trk_svc_")
    assert op.stdout == op_key + "\n"
    assert op_key.startswith("trk_op_")
    stored = asyncio.run(_stored(cli_env))
    assert stored == [
        (hash_key(svc_key), "service", "APP", ""),
        (hash_key(op_key), "operator", None, "admin,pii_reader"),
    ]
    assert all(svc_key not in str(row) and op_key not in str(row) for row in stored)
    # Each creation is audited: who ran the command, what kind of key, never the key.
    audited = asyncio.run(_audited(cli_env))
    assert [(a, actor, kind) for a, actor, kind, _ in audited] == [("key.create", cli_actor(), "system")] * 2
    assert [d for *_, d in audited] == [
        {"keyId": 1, "kind": "service", "channel": "APP", "roles": [], "name": ""},
        {"keyId": 2, "kind": "operator", "channel": None, "roles": ["admin", "pii_reader"], "name": ""},
    ]
    assert svc_key not in str(audited)
    assert op_key not in str(audited)


def test_bad_key_requests_fail_clearly(cli_env: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "create", "--kind", "service"])
    assert result.exit_code == 2
    assert "needs a channel" in result.output
    result = runner.invoke(main, ["keys", "create", "--kind", "operator"])
    assert result.exit_code == 2
    assert "at least one role" in result.output
