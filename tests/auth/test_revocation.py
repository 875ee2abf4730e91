"""Revoked API keys stop working within seconds, in every process; ended sessions at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner
from fastapi import FastAPI

from app.auth.keys import revoke_key
from app.cli import main
from tests.conftest import settings_for
from tests.factories.auth import operator_key
from tests.factories.identity import new_user
from tests.factories.sessions import signed_in
from tests.helpers import Gql, served

USERS = "{ users { totalCount } }"
REFRESH = "mutation ($t: String!) { refreshSession(refreshToken: $t) { token } }"


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_a_key_revoked_by_another_process_is_refused_within_the_check_interval(
    cli_env: str, tmp_path: Path
) -> None:
    key = (await asyncio.to_thread(cli, "keys", "create", "--kind", "operator", "--role", "viewer")).strip()
    settings = settings_for(cli_env, tmp_path / "app")
    async with served(settings, api_key_revocation_check_seconds=0.2) as (_app, client):
        gql = Gql(client)
        assert await gql(USERS, token=key)  # now remembered for TROIKA_API_KEY_CACHE_SECONDS (30)
        listed = await asyncio.to_thread(cli, "keys", "list")
        [line] = listed.splitlines()
        key_id, prefix = line.split("\t")[:2]
        assert prefix == key[:11] + "…"
        assert key not in listed
        said = await asyncio.to_thread(cli, "keys", "revoke", key[:11])
        assert said.startswith(f"revoked key {key_id} ")
        await asyncio.sleep(0.25)
        error = await gql.error(USERS, token=key, code="UNAUTHENTICATED")
        assert error["message"] == "unknown or revoked API key"
        assert "revoked" in await asyncio.to_thread(cli, "keys", "list")


def test_keys_are_found_by_id_prefix_or_key(cli_env: str) -> None:
    one = cli("keys", "create", "--kind", "service", "--channel", "APP").strip()
    two = cli("keys", "create", "--kind", "service", "--channel", "APP").strip()
    assert cli("keys", "revoke", two).startswith("revoked key 2 ")
    assert "was revoked already" in cli("keys", "revoke", "2")
    assert cli("keys", "revoke", "1").startswith("revoked key 1 ")
    runner = CliRunner()
    for ref, says in (("99", "no key matches"), ("trk_op_", "no key matches")):
        result = runner.invoke(main, ["keys", "revoke", ref])
        assert result.exit_code == 2
        assert says in result.output
    assert one != two


def test_an_ambiguous_prefix_is_refused(cli_env: str) -> None:
    for _ in range(2):
        cli("keys", "create", "--kind", "operator", "--role", "viewer")
    result = CliRunner().invoke(main, ["keys", "revoke", "trk_op_"])
    assert result.exit_code == 2
    assert "matches several live keys (1, 2)" in result.output


async def test_forget_is_immediate_in_this_process(app: FastAPI, gql: Gql) -> None:
    key = await operator_key(app, "viewer")
    assert await gql(USERS, token=key)
    principal = await app.state.authenticate(f"Bearer {key}")
    async with app.state.db.write_sessions() as session, session.begin():
        assert await revoke_key(session, principal.principal.key_id, actor="operator:test")
        assert not await revoke_key(session, principal.principal.key_id)  # once
    app.state.authenticate.forget(principal.principal.key_id)
    await gql.error(USERS, token=key, code="UNAUTHENTICATED")
    admin = await operator_key(app, "admin")
    entries = await gql('{ auditLog(first: 5, action: "key.revoke") { nodes { actor } } }', token=admin)
    assert [e["actor"] for e in entries["auditLog"]["nodes"]] == ["operator:test"]


async def test_ending_a_users_sessions(cli_env: str, tmp_path: Path) -> None:
    settings = settings_for(cli_env, tmp_path / "app")
    async with served(settings) as (app, client):
        gql = Gql(client)
        user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800180001")
        phone, laptop = await signed_in(app, user_id), await signed_in(app, user_id)
        said = await asyncio.to_thread(cli, "sessions", "revoke", "--user-id", user_id)
        assert said == f"ended 2 session(s) of user {user_id}\n"
        for issued in (phone, laptop):
            await gql.error(REFRESH, {"t": issued.refresh_token}, token=None, code="UNAUTHENTICATED")
