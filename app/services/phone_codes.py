"""SMS codes that prove a phone: six digits, hashed at rest, expiring, single-use, rate limited."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.db.types import utcnow
from app.domain import IdentityKey, IdentityKind
from app.errors import DomainError
from app.sealing import keyring_for
from app.services.ratelimit import RateLimited, RateLimiter, enforce
from app.services.sms import SmsSender
from app.settings import Settings
from app.stores import wechat as store

VERIFY_WINDOW = 15 * 60


class PhoneCodeInvalid(DomainError):
    code = "PHONE_CODE_INVALID"


class PhoneCodes:
    """Issue and consume codes; limits count in the limiter (this process, or Redis)."""

    def __init__(self, settings: Settings, limiter: RateLimiter, sender: SmsSender) -> None:
        self.settings = settings
        self.limiter = limiter
        self.sender = sender

    def _phone_hash(self, phone: IdentityKey) -> str:
        """The phone's blind index, as the identity graph keeps it (so erasure finds its codes)."""
        return pii.stored_value(keyring_for(self.settings), IdentityKind.PHONE, phone.value)

    def _code_hash(self, phone: IdentityKey, code: str) -> str:
        return keyring_for(self.settings).index(f"{phone.value}:{code}", purpose="sms-code")

    async def issue(self, session: AsyncSession, phone: IdentityKey, *, requester: str) -> str:
        """A new code for `phone` (it supersedes any earlier one); send it after the commit."""
        s = self.settings
        phone_hash = self._phone_hash(phone)
        await enforce(
            self.limiter,
            f"sms:client:{requester}",
            limit=s.sms_per_client_per_hour,
            window=3600,
            what="codes requested from here",
        )
        await enforce(
            self.limiter,
            f"sms:gap:{phone_hash}",
            limit=1,
            window=s.sms_min_interval_seconds,
            what="codes for this phone",
        )
        await enforce(
            self.limiter,
            f"sms:hour:{phone_hash}",
            limit=s.sms_per_phone_per_hour,
            window=3600,
            what="codes for this phone this hour",
        )
        code = f"{secrets.randbelow(10**6):06d}"
        at = utcnow()
        await store.insert_code(
            session,
            phone_hash=phone_hash,
            code_hash=self._code_hash(phone, code),
            at=at,
            expires_at=at + timedelta(seconds=s.sms_code_ttl_seconds),
            requested_by=requester[:64],
        )
        return code

    async def deliver(self, phone: IdentityKey, code: str) -> None:
        await self.sender.send_code(phone.value, code, ttl_seconds=self.settings.sms_code_ttl_seconds)

    async def consume(self, session: AsyncSession, phone: IdentityKey, code: str) -> None:
        """Accept the newest unexpired, unused code for `phone` once; count every wrong guess."""
        phone_hash = self._phone_hash(phone)
        attempts = f"sms:verify:{phone_hash}"
        limit = self.settings.sms_verify_attempts_per_15_minutes
        if await self.limiter.count(attempts, window=VERIFY_WINDOW) >= limit:
            raise RateLimited(
                "too many wrong codes for this phone; request a new code later",
                retryAfterSeconds=VERIFY_WINDOW,
            )
        row = await store.latest_code(session, phone_hash=phone_hash)
        given = self._code_hash(phone, code.strip())
        if row is None or not hmac.compare_digest(row.code_hash, given):
            await self.limiter.hit(attempts, limit=limit, window=VERIFY_WINDOW)
            raise PhoneCodeInvalid("the code is wrong, or was not sent to this phone")
        if row.used_at is not None:
            raise PhoneCodeInvalid("the code was already used; request a new one")
        if row.expires_at <= utcnow():
            raise PhoneCodeInvalid("the code has expired; request a new one")
        if not await store.use_code(session, row.id, at=utcnow()):
            raise PhoneCodeInvalid("the code was already used; request a new one")
