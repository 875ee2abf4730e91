"""End-user sessions: a short-lived access token and a refresh token that rotates.

The access token (a signed JWT, TROIKA_SESSION_TTL_SECONDS) is checked without the database; the
refresh token (TROIKA_REFRESH_TTL_SECONDS) is random, stored as its SHA-256, and good for one
refresh: `refresh` replaces it with the next token of its family. Presenting a used token again
revokes the whole family (whoever holds either copy must sign in again), and a family can be
revoked by its holder (sign-out) or by an operator for all of a user's sessions.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tokens import mint_session
from app.db.types import utcnow
from app.settings import Settings
from app.stores import sessions as store

log = logging.getLogger("troika.sessions")
REFRESH_PREFIX = "trr_"


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """What a sign-in or a refresh hands the client; the refresh token is shown this once."""

    user_id: int
    token: str
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a refresh token does not refresh (its family may have been revoked meanwhile)."""

    reason: str


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def issue(
    session: AsyncSession, user_id: int, settings: Settings, *, family: str | None = None
) -> IssuedSession:
    """A new session for `user_id` (sign-ins call this), or the next token of `family`."""
    now = utcnow()
    token, expires_at = mint_session(
        user_id, secret=settings.secret("token_secret"), ttl_seconds=settings.session_ttl_seconds
    )
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    refresh_expires_at = now + timedelta(seconds=settings.refresh_ttl_seconds)
    await store.add(
        session,
        token_hash=_digest(raw),
        family=family or secrets.token_hex(16),
        user_id=user_id,
        at=now,
        expires_at=refresh_expires_at,
    )
    return IssuedSession(user_id, token, expires_at, raw, refresh_expires_at)


async def refresh(session: AsyncSession, raw: str, settings: Settings) -> IssuedSession | Refused:
    """Rotate: the next session of the token's family, or why not (the caller commits either way,
    so a replayed token's family stays revoked)."""
    row = await store.by_hash_for_update(session, _digest(raw))
    now = utcnow()
    if row is None:
        return Refused("unknown refresh token")
    if row.revoked_at is not None:
        return Refused("this session was ended; sign in again")
    if row.used_at is not None:
        await store.revoke_family(session, row.family, now)
        log.warning("a refresh token of user %s was used twice: its session is revoked", row.user_id)
        return Refused("this refresh token was already used; the session is ended, sign in again")
    if row.expires_at <= now:
        return Refused("the refresh token has expired; sign in again")
    await store.mark_used(session, row.id, now)
    return await issue(session, row.user_id, settings, family=row.family)


async def revoke(session: AsyncSession, raw: str) -> bool:
    """Sign-out: end the token's session (its whole family). False for an unknown token."""
    row = await store.by_hash_for_update(session, _digest(raw))
    if row is None:
        return False
    await store.revoke_family(session, row.family, utcnow())
    return True


async def revoke_user(session: AsyncSession, user_id: int) -> int:
    """End every session of a user (their access tokens lapse within TROIKA_SESSION_TTL_SECONDS)."""
    return await store.revoke_user(session, user_id, utcnow())
