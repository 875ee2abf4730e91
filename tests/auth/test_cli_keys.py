"""`troika keys create` prints the key alone, once, and keeps only its hash."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth.keys import hash_key
from app.cli import main
from app.db.models import ApiKey


async def _stored(url: str) -> list[tuple[str, str, str | None, str]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ApiKey.key_hash, ApiKey.kind, ApiKey.channel, ApiKey.roles))).all()
    await engine.dispose()
    return [tuple(r) for r in rows]  # type: ignore[misc]


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


def test_bad_key_requests_fail_clearly(cli_env: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "create", "--kind", "service"])
    assert result.exit_code == 2
    assert "needs a channel" in result.output
    result = runner.invoke(main, ["keys", "create", "--kind", "operator"])
    assert result.exit_code == 2
    assert "at least one role" in result.output
