"""JSON for the ingestion hot path: orjson's speed, the standard library's answers at the edges."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON; what orjson refuses (NaN, integers past 64 bits) the standard library decides.

    Either it parses there too, or its `json.JSONDecodeError` names the problem as before.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """Serialize JSON data as text (non-ASCII kept as is)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer past 64 bits, which only the standard library reads and writes
        return json.dumps(value, ensure_ascii=False)


def dumps_bytes(value: Any) -> bytes:
    """Serialize JSON data straight to the bytes of an HTTP body."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False).encode()
