"""JSON for the ingestion hot path: orjson's speed, the standard library's answers at the edges."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON; what orjson refuses (NaN, integers past 64 bits) the standard library decides.

    Either it parses there too, or its `json.JSONDecodeError` names the problem as before.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:  # orjson stops at 1,024 levels; the standard library would overflow
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            raise json.JSONDecodeError("JSON nested too deeply", text, 0) from None


def dumps(value: Any) -> str:
    """Serialize JSON data as text (non-ASCII kept as is)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer past 64 bits, which only the standard library reads and writes
        return json.dumps(value, ensure_ascii=False)


def dumps_bytes(value: Any) -> bytes:
    """Serialize JSON data straight to the bytes of an HTTP body (escaped ASCII when orjson refuses)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # a lone surrogate travels back escaped, as it came
        return json.dumps(value).encode()


def unstorable(values: Sequence[Any]) -> set[int]:
    """Positions of values holding text that is not Unicode (a lone surrogate, as the standard
    library reads "\\ud800"): neither PostgreSQL's text nor its json can keep it.

    One orjson pass over the whole list when all is well, which is nearly always.
    """
    try:
        orjson.dumps(values)
        return set()
    except TypeError:
        pass
    bad = set()
    for i, value in enumerate(values):
        try:
            orjson.dumps(value)
        except TypeError:
            try:  # orjson also refuses integers past 64 bits, which are fine
                json.dumps(value, ensure_ascii=False, default=str).encode()
            except (UnicodeEncodeError, ValueError):
                bad.add(i)
    return bad
