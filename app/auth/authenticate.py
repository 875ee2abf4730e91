"""Turn an Authorization header into a principal."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.keys import principal_for_key
from app.auth.principal import Principal, PrincipalKind
from app.auth.tokens import verify_session
from app.db.engine import Database
from app.settings import Settings


@dataclass(frozen=True)
class AuthResult:
    principal: Principal | None
    error: str | None = None


async def authenticate(header: str | None, *, db: Database, settings: Settings) -> AuthResult:
    """Bearer API key (trk_…) or end-user session token; no header is an anonymous caller."""
    if not header:
        return AuthResult(None)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return AuthResult(None, "the Authorization header must be 'Bearer <key or token>'")
    if token.startswith("trk_"):
        async with db.read_sessions() as session:
            principal = await principal_for_key(session, token)
        return AuthResult(principal, None if principal else "unknown or revoked API key")
    user_id = verify_session(token, secret=settings.secret("token_secret"))
    if user_id is None:
        return AuthResult(None, "invalid or expired session token")
    return AuthResult(Principal(kind=PrincipalKind.END_USER, user_id=user_id))
