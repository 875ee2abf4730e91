"""What the app talks to outside its databases, built once per app: WeChat, SMS, rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.phone_codes import PhoneCodes
from app.services.ratelimit import RateLimiter, limiter_for
from app.services.sms import sender_for
from app.settings import Settings
from app.wechat.api import WeChatApi


@dataclass
class Integrations:
    wechat: WeChatApi
    limiter: RateLimiter
    phone_codes: PhoneCodes

    @classmethod
    def from_settings(cls, settings: Settings) -> Integrations:
        limiter = limiter_for(settings.redis_url)
        return cls(
            wechat=WeChatApi(settings),
            limiter=limiter,
            phone_codes=PhoneCodes(settings, limiter, sender_for(settings)),
        )

    async def close(self) -> None:
        self.wechat.close()
        await self.limiter.close()
