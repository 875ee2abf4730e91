"""Opaque keyset cursors: (time, channel, row id) of the last item of a page, newest-first lists."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from app.errors import InvalidInput

Position = tuple[datetime, str, int]


def encode_cursor(at: datetime, channel: str, row_id: int) -> str:
    raw = json.dumps([at.isoformat(), channel, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position after which a page starts, or BAD_USER_INPUT for a cursor we did not make."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, channel, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(at), str(channel), int(row_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidInput(f"{cursor!r} is not a cursor from this API", field="after") from None
