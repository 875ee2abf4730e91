"""SMS codes that prove a phone: six digits, hashed at rest, expiring, single-use, rate limited."""

from __future__ import annotations

import hmac
import math
import secrets
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.db.types import utcnow
from app.domain import IdentityKey, IdentityKind
from app.errors import DomainError
from app.ratelimit import Limiter, Rate, RateLimited, bucket
from app.sealing import keyring_for
from app.services.sms import SmsSender
from app.settings import Settings
from app.stores import wechat as store

VERIFY_WINDOW = 15 * 60
HOUR, DAY = 3600.0, 86400.0


class PhoneCodeInvalid(DomainError):
    code = "PHONE_CODE_INVALID"


class PhoneCodes:
    """Issue and consume codes; limits are rate-limit buckets (app/ratelimit.py: here, or in Redis)."""

    def __init__(self, settings: Settings, limiter: Limiter, sender: SmsSender) -> None:
        self.settings = settings
        self.limiter = limiter
        self.sender = sender

    def _phone_hash(self, phone: IdentityKey) -> str:
        """The phone's blind index, as the identity graph keeps it (so erasure finds its codes)."""
        return pii.stored_value(keyring_for(self.settings), IdentityKind.PHONE, phone.value)

    def _code_hash(self, phone: IdentityKey, code: str) -> str:
        return keyring_for(self.settings).index(f"{phone.value}:{code}", purpose="sms-code")

    async def _take(self, policy: str, key: str, rate: Rate) -> float | None:
        """One from `key`'s bucket of `rate`: None, or the seconds to wait."""
        return await self.limiter.hit(bucket(f"sms-{policy}", key), limit=rate.limit, window=rate.period)

    async def _enforce(self, policy: str, key: str, rate: Rate, what: str) -> None:
        wait = await self._take(policy, key, rate)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(f"too many {what}; try again in {seconds} s", retryAfterSeconds=seconds)

    async def issue(self, session: AsyncSession, phone: IdentityKey, *, requester: str) -> str:
        """A new code for `phone` (it supersedes any earlier one); send it after the commit."""
        s = self.settings
        phone_hash = self._phone_hash(phone)
        await self._enforce(
            "client", requester, Rate(s.sms_per_client_per_hour, HOUR), "codes requested from here"
        )
        if s.sms_min_interval_seconds > 0:
            gap = Rate(1, s.sms_min_interval_seconds)
            await self._enforce("gap", phone_hash, gap, "codes for this phone")
        await self._enforce(
            "hour", phone_hash, Rate(s.sms_per_phone_per_hour, HOUR), "codes for this phone this hour"
        )
        await self._enforce(
            "day", phone_hash, Rate(s.sms_per_phone_per_day, DAY), "codes for this phone today"
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
        """Accept the newest unexpired, unused code for `phone` once; count every try."""
        phone_hash = self._phone_hash(phone)
        # Every try counts, so no more than N guesses per phone in 15 minutes whatever they were.
        tries = Rate(self.settings.sms_verify_attempts_per_15_minutes, VERIFY_WINDOW)
        if await self._take("verify", phone_hash, tries) is not None:
            raise RateLimited(
                "too many wrong codes for this phone; request a new code later",
                retryAfterSeconds=VERIFY_WINDOW,
            )
        row = await store.latest_code(session, phone_hash=phone_hash)
        given = self._code_hash(phone, code.strip())
        if row is None or not hmac.compare_digest(row.code_hash, given):
            raise PhoneCodeInvalid("the code is wrong, or was not sent to this phone")
        if row.used_at is not None:
            raise PhoneCodeInvalid("the code was already used; request a new one")
        if row.expires_at <= utcnow():
            raise PhoneCodeInvalid("the code has expired; request a new one")
        if not await store.use_code(session, row.id, at=utcnow()):
            raise PhoneCodeInvalid("the code was already used; request a new one")
