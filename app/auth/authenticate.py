"""Turn an Authorization header into a principal."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from cachetools import TTLCache

from app.auth.keys import hash_key, principal_for_key, revoked_since
from app.auth.principal import Principal, PrincipalKind
from app.auth.tokens import verify_session
from app.db.engine import Database
from app.db.types import utcnow
from app.settings import Settings


@dataclass(frozen=True)
class AuthResult:
    principal: Principal | None
    error: str | None = None


class Authenticator:
    """Bearer API key (trk_…) or end-user session token; no header is an anonymous caller.

    Live API keys are remembered for `api_key_cache_seconds` so a request does not pay a database
    round trip to say who it is. Revocations reach the remembered keys sooner: at most every
    `api_key_revocation_check_seconds` one request asks which keys were revoked lately (by
    `troika keys revoke`, in any process) and they are forgotten; `forget` does it at once.
    """

    # Revocations are looked for back to this long before the last look (clock differences
    # between hosts, transactions committing late).
    REVOCATION_MARGIN = timedelta(minutes=5)

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        ttl = settings.api_key_cache_seconds
        self.keys: TTLCache[str, Principal] | None = TTLCache(maxsize=10_000, ttl=ttl) if ttl > 0 else None
        self.next_revocation_check = time.monotonic() + settings.api_key_revocation_check_seconds
        self.revocations_checked_at = utcnow()

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

    def forget(self, key_id: int) -> None:
        """A revoked key stops working in this process now."""
        if self.keys is not None:
            for digest, principal in list(self.keys.items()):
                if principal.key_id == key_id:
                    self.keys.pop(digest, None)

    async def _forget_revoked(self) -> None:
        now = time.monotonic()
        if not self.keys or now < self.next_revocation_check:
            return
        self.next_revocation_check = now + self.settings.api_key_revocation_check_seconds
        since, self.revocations_checked_at = self.revocations_checked_at - self.REVOCATION_MARGIN, utcnow()
        async with self.db.read_sessions() as session:
            for key_id in await revoked_since(session, since):
                self.forget(key_id)

    async def _key(self, raw: str) -> Principal | None:
        digest = hash_key(raw)
        if self.keys is not None:
            await self._forget_revoked()
            if (hit := self.keys.get(digest)) is not None:
                return hit
        async with self.db.read_sessions() as session:
            principal = await principal_for_key(session, raw)
        if principal is not None and self.keys is not None:
            self.keys[digest] = principal  # unknown keys are not remembered: nothing to fill up
        return principal
