"""Keys and tokens for tests, made through the same code the CLI uses."""

from __future__ import annotations

from fastapi import FastAPI

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.auth.tokens import mint_session
from app.domain import Channel


async def operator_key(app: FastAPI, *roles: str) -> str:
    async with app.state.db.write_sessions() as session, session.begin():
        new = await create_key(
            session, kind=PrincipalKind.OPERATOR, roles=frozenset(Role(r) for r in roles or ("admin",))
        )
    return new.raw


async def service_key(app: FastAPI, channel: str) -> str:
    async with app.state.db.write_sessions() as session, session.begin():
        new = await create_key(session, kind=PrincipalKind.SERVICE, channel=Channel(channel))
    return new.raw


def user_token(app: FastAPI, user_id: int | str, *, ttl_seconds: int = 3600) -> str:
    settings = app.state.settings
    token, _ = mint_session(int(user_id), secret=settings.secret("token_secret"), ttl_seconds=ttl_seconds)
    return token
