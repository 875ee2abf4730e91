"""Sending SMS codes, behind one small interface; development only logs them (phones masked)."""

from __future__ import annotations

import importlib
import logging
from typing import Protocol

from app.errors import DomainError
from app.phones import mask_phone
from app.settings import Environment, Settings

log = logging.getLogger("troika.sms")


class SmsSender(Protocol):
    async def send_code(self, phone: str, code: str, *, ttl_seconds: int) -> None:
        """Deliver `code` to `phone` (E.164); raise to report that it could not be sent."""


class LogSmsSender:
    """Development: the code goes to the log, the number masked, so no SMS provider is needed."""

    async def send_code(self, phone: str, code: str, *, ttl_seconds: int) -> None:
        log.warning("SMS to %s: your Troika code is %s (valid %d s)", mask_phone(phone), code, ttl_seconds)


class SmsNotConfigured:
    """Production without a sender: refuse rather than write codes to the log."""

    async def send_code(self, phone: str, code: str, *, ttl_seconds: int) -> None:
        raise DomainError(
            "no SMS sender is configured (TROIKA_SMS_SENDER=module:factory)", code="SMS_NOT_CONFIGURED"
        )


def sender_for(settings: Settings) -> SmsSender:
    """`log` (development), or `package.module:factory` called with the settings."""
    if settings.sms_sender == "log":
        return LogSmsSender() if settings.env is Environment.DEVELOPMENT else SmsNotConfigured()
    module_name, _, attr = settings.sms_sender.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    sender: SmsSender = factory(settings)
    return sender
