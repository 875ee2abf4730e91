"""Short-lived access tokens, refresh tokens that rotate, replays that end the session, sign-out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.settings import Settings
from tests.factories.auth import operator_key, user_token
from tests.factories.identity import new_user
from tests.factories.sessions import signed_in
from tests.helpers import Gql, served

ME = "{ me { id } }"
REFRESH = """
mutation ($t: String!) {
  refreshSession(refreshToken: $t) { token expiresAt refreshToken refreshExpiresAt user { id } }
}
"""
REVOKE = "mutation ($t: String!) { revokeSession(refreshToken: $t) }"


async def refresh(gql: Gql, refresh_token: str) -> dict[str, Any]:
    session: dict[str, Any] = (await gql(REFRESH, {"t": refresh_token}, token=None))["refreshSession"]
    return session


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_refresh_rotates_and_the_new_token_signs_in(app: FastAPI, gql: Gql) -> None:
    user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170001")
    issued = await signed_in(app, user_id)
    assert issued.expires_at - datetime.now(UTC) <= timedelta(minutes=15)  # short-lived
    assert (await gql(ME, token=issued.token))["me"]["id"] == user_id
    fresh = await refresh(gql, issued.refresh_token)
    assert fresh["user"]["id"] == user_id
    assert fresh["refreshToken"] != issued.refresh_token
    assert timedelta(minutes=14) < at(fresh["expiresAt"]) - datetime.now(UTC) <= timedelta(minutes=15)
    assert at(fresh["refreshExpiresAt"]) - datetime.now(UTC) > timedelta(days=29)
    assert (await gql(ME, token=fresh["token"]))["me"]["id"] == user_id
    again = await refresh(gql, fresh["refreshToken"])  # the family goes on
    assert (await gql(ME, token=again["token"]))["me"]["id"] == user_id


async def test_a_replayed_refresh_token_ends_the_session(app: FastAPI, gql: Gql) -> None:
    user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170002")
    issued = await signed_in(app, user_id)
    other = await signed_in(app, user_id)  # another device: a family of its own
    fresh = await refresh(gql, issued.refresh_token)
    error = await gql.error(REFRESH, {"t": issued.refresh_token}, token=None, code="UNAUTHENTICATED")
    assert "already used" in error["message"]
    # The thief's copy and the rightful one alike: the whole family is gone.
    error = await gql.error(REFRESH, {"t": fresh["refreshToken"]}, token=None, code="UNAUTHENTICATED")
    assert "ended" in error["message"]
    assert await refresh(gql, other.refresh_token)


async def test_sign_out(app: FastAPI, gql: Gql) -> None:
    user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170003")
    issued = await signed_in(app, user_id)
    assert (await gql(REVOKE, {"t": issued.refresh_token}, token=None))["revokeSession"] is True
    await gql.error(REFRESH, {"t": issued.refresh_token}, token=None, code="UNAUTHENTICATED")
    assert (await gql(REVOKE, {"t": "trr_unknown"}, token=None))["revokeSession"] is False
    error = await gql.error(REFRESH, {"t": "trr_unknown"}, token=None, code="UNAUTHENTICATED")
    assert error["message"] == "unknown refresh token"


async def test_expired_tokens(settings: Settings) -> None:
    async with served(settings, refresh_ttl_seconds=0) as (app, client):
        gql = Gql(client)
        user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170004")
        issued = await signed_in(app, user_id)
        error = await gql.error(REFRESH, {"t": issued.refresh_token}, token=None, code="UNAUTHENTICATED")
        assert "expired" in error["message"]
        expired_access = user_token(app, user_id, ttl_seconds=-1)
        error = await gql.error(ME, token=expired_access, code="UNAUTHENTICATED")
        assert error["message"] == "invalid or expired session token"


async def test_only_digests_are_stored(app: FastAPI, gql: Gql) -> None:
    user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170005")
    issued = await signed_in(app, user_id)
    fresh = await refresh(gql, issued.refresh_token)
    async with app.state.db.read_sessions() as session:
        rows = [tuple(r) for r in await session.execute(text("SELECT * FROM refresh_tokens"))]
    assert len(rows) == 2
    stored = str(rows)
    for raw in (issued.refresh_token, fresh["refreshToken"]):
        assert raw not in stored
        assert hashlib.sha256(raw.encode()).hexdigest() in stored


async def test_refreshing_is_rate_limited_like_a_sign_in(settings: Settings) -> None:
    async with served(settings, rate_limit_login="1/minute") as (app, client):
        gql = Gql(client)
        user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170006")
        issued = await signed_in(app, user_id)
        fresh = await refresh(gql, issued.refresh_token)
        response = await client.post(
            "/graphql", json={"query": REFRESH, "variables": {"t": fresh["refreshToken"]}}
        )
        assert response.status_code == 429
        assert response.headers["retry-after"]


async def test_the_refresh_mutation_needs_no_authorization_header(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    gql = Gql(client)
    user_id = await new_user(gql, await operator_key(app, "admin"), phone="+8613800170007")
    issued = await signed_in(app, user_id)
    expired = user_token(app, user_id, ttl_seconds=-1)
    fresh = (await gql(REFRESH, {"t": issued.refresh_token}, token=expired))["refreshSession"]
    assert fresh["user"]["id"] == user_id
