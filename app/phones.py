"""Phone numbers: parse national or E.164 input to E.164, and mask for display."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from app.errors import InvalidPhone


def normalize_phone(raw: str, *, default_region: str) -> str:
    """Return the E.164 form of `raw`, or raise INVALID_PHONE."""
    try:
        parsed = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{raw!r} is not a phone number: {exc}", value=raw) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"{raw!r} is not a valid phone number", value=raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=8192)
def mask_phone(e164: str) -> str:
    """138****5678 for Chinese numbers; other countries keep their +code in front.

    Memoised: parsing is most of the cost, an answer masks the same number more than once
    (identities and `phone`), and the result depends on the string alone.
    """
    try:
        parsed = phonenumbers.parse(e164, None)
        national = str(parsed.national_number)
        prefix = "" if parsed.country_code == 86 else f"+{parsed.country_code} "
    except phonenumbers.NumberParseException:
        national, prefix = e164.lstrip("+"), ""
    if len(national) <= 7:
        return prefix + national[:2] + "*" * max(len(national) - 4, 1) + national[-2:]
    return prefix + national[:3] + "****" + national[-4:]
