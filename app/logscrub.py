"""Logs never hold a full phone number, a token or a key: every record is scrubbed as it is made.

`ScrubFilter` rewrites a record's message and each of its arguments, and its traceback text. It is
installed through the log record factory (`install`), not on handlers, so it holds for every
logger and every handler, including those added later (uvicorn's, a test's capture). Phones are
masked as the API masks them; API keys, session tokens, Authorization values and the configured
secrets are replaced by a marker. `scrub` is the same rewrite for text stored for people to read
(a dead letter's reason).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from app.phones import mask_phone
from app.settings import Settings

REDACTED = "[redacted]"
_PATTERNS = (
    # API keys (trk_op_…, trk_svc_…), refresh tokens (trr_…) and JWT session tokens.
    (re.compile(r"\btrk_[a-z]+_[A-Za-z0-9_-]{8,}"), lambda m: m.group(0)[:8] + "…" + REDACTED),
    (re.compile(r"\btrr_[A-Za-z0-9_-]{8,}"), lambda _m: "trr_…" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), lambda _m: REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+\S+"), lambda m: f"{m.group(1)} {REDACTED}"),
    # Credentials in URLs (WeChat's access_token, secret and login codes travel in query strings).
    (
        re.compile(r"(?i)\b(access_token|refresh_token|secret|js_code|code|key|password)=[^&\s\"']+"),
        lambda m: f"{m.group(1)}={REDACTED}",
    ),
    # E.164 (+ and 8 to 15 digits, spaces or dashes allowed inside) and bare Chinese mobiles.
    (re.compile(r"\+\d(?:[ -]?\d){7,14}(?!\d)"), lambda m: mask_phone(re.sub(r"[ -]", "", m.group(0)))),
    # ASCII-only lookarounds: a Chinese label may touch the number; a hex id (a trace) may not.
    (
        re.compile(r"(?<![0-9A-Za-z_.])(?:86)?1[3-9]\d{9}(?![0-9A-Za-z_])"),
        lambda m: mask_phone(m.group(0)[-11:]),
    ),
)


class ScrubFilter(logging.Filter):
    """Rewrite a record in place so that what any handler formats is already clean."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if len(s) >= 8}

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= 8)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return scrub(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message: str | None = record.getMessage()
        except Exception:  # a malformed call: keep what there is, scrubbed, with no arguments
            message = None
        clean = self.scrub(str(record.msg) if message is None else message)
        if clean != message:
            # The arguments stay arguments, each scrubbed: formatters unpack them (uvicorn's access
            # line takes five). Only a secret split between the text and an argument, which neither
            # shows alone, costs them: then the record carries the scrubbed message alone.
            kept = None
            if message is not None:
                record.msg, record.args = self._scrub_arg(record.msg), self._scrub_args(record.args)
                try:
                    kept = record.getMessage()
                except Exception:
                    kept = None
            if kept != clean:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True

    def _scrub_arg(self, value: object) -> object:
        """A string scrubbed; another value kept, unless its text needs scrubbing."""
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, (int, float)):
            return value
        text = str(value)
        clean = self.scrub(text)
        return value if clean == text else clean

    def _scrub_args(self, args: Any) -> Any:
        if isinstance(args, tuple):
            return tuple(self._scrub_arg(a) for a in args)
        if isinstance(args, Mapping):
            return {k: self._scrub_arg(v) for k, v in args.items()}
        return args


def scrub(text: str) -> str:
    """`text` with phones masked and tokens redacted."""
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text


_FILTER = ScrubFilter()


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the settings hold (the fields kept out of their repr), each key of a list too."""
    values = [getattr(settings, name) for name, field in Settings.model_fields.items() if field.repr is False]
    return [part.strip() for v in values if isinstance(v, str) for part in {v, *v.split(",")} if part.strip()]


def install(settings: Settings | None = None) -> ScrubFilter:
    """Scrub every log record of this process from now on (idempotent); the secrets of `settings`
    are redacted too."""
    if settings is not None:
        _FILTER.add_secrets(secrets_of(settings))
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "troika_scrubs", False):

        def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            _FILTER.filter(record)
            return record

        make.troika_scrubs = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(make)
    return _FILTER
