"""End-user session tokens: signed (HS256), short-lived, naming one user."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

from app.db.types import utcnow

_AUDIENCE = "troika:session"


def mint_session(user_id: int, *, secret: str, ttl_seconds: int) -> tuple[str, datetime]:
    """A token for one user and how long it lives."""
    expires = utcnow() + timedelta(seconds=ttl_seconds)
    claims = {"sub": str(user_id), "aud": _AUDIENCE, "exp": expires, "iat": utcnow()}
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def verify_session(token: str, *, secret: str) -> int | None:
    """The user id of a valid, unexpired token, else None."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=_AUDIENCE)
        return int(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
