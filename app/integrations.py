"""What the app talks to outside its databases, built once per app: WeChat, SMS, rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from app.ratelimit import Limiter, MemoryLimiter, RedisLimiter
from app.services.phone_codes import PhoneCodes
from app.services.sms import sender_for
from app.settings import Settings
from app.wechat.api import WeChatApi


@dataclass
class Integrations:
    wechat: WeChatApi
    limiter: Limiter
    phone_codes: PhoneCodes
    owns_limiter: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, *, limiter: Limiter | None = None) -> Integrations:
        """`limiter`: the app's rate-limit buckets (one Redis pool), else one of its own."""
        own = limiter or (RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter())
        return cls(
            wechat=WeChatApi(settings),
            limiter=own,
            phone_codes=PhoneCodes(settings, own, sender_for(settings)),
            owns_limiter=limiter is None,
        )

    async def close(self) -> None:
        self.wechat.close()
        if self.owns_limiter:
            await self.limiter.close()
