"""Turn an Authorization header into a principal."""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TTLCache

from app.auth.keys import hash_key, principal_for_key
from app.auth.principal import Principal, PrincipalKind
from app.auth.tokens import verify_session
from app.db.engine import Database
from app.settings import Settings


@dataclass(frozen=True)
class AuthResult:
    principal: Principal | None
    error: str | None = None


class Authenticator:
    """Bearer API key (trk_…) or end-user session token; no header is an anonymous caller.

    Live API keys are remembered for `api_key_cache_seconds` (a revoked key keeps working at most
    that long) so a request does not pay a database round trip to say who it is.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        ttl = settings.api_key_cache_seconds
        self.keys: TTLCache[str, Principal] | None = TTLCache(maxsize=10_000, ttl=ttl) if ttl > 0 else None

    async def __call__(self, header: str | None) -> AuthResult:
        if not header:
            return AuthResult(None)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return AuthResult(None, "the Authorization header must be 'Bearer <key or token>'")
        if token.startswith("trk_"):
            principal = await self._key(token)
            return AuthResult(principal, None if principal else "unknown or revoked API key")
        user_id = verify_session(token, secret=self.settings.secret("token_secret"))
        if user_id is None:
            return AuthResult(None, "invalid or expired session token")
        return AuthResult(Principal(kind=PrincipalKind.END_USER, user_id=user_id))

    async def _key(self, raw: str) -> Principal | None:
        digest = hash_key(raw)
        if self.keys is not None and (hit := self.keys.get(digest)) is not None:
            return hit
        async with self.db.read_sessions() as session:
            principal = await principal_for_key(session, raw)
        if principal is not None and self.keys is not None:
            self.keys[digest] = principal  # unknown keys are not remembered: nothing to fill up
        return principal
