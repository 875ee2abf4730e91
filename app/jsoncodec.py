"""JSON for the ingestion hot path: orjson's speed, the standard library's answers at the edges."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson


class TooDeep(json.JSONDecodeError):
    """JSON nested deeper than the codecs read (orjson stops at 1,024 levels, the standard library
    overflows near 1,000)."""


def loads(data: bytes | str) -> Any:
    """Parse JSON; what orjson refuses (NaN, integers past 64 bits) the standard library decides.

    Either it parses there too, or its `json.JSONDecodeError` names the problem as before.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            raise TooDeep("JSON nested too deeply", text, 0) from None


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


class _Token(str):
    """Text already written, on the stack of `dumps_any_depth`."""


def dumps_any_depth(value: Any) -> str:
    """JSON text of data nested to any depth, without recursion: to keep what the codecs refuse."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Token("}"))
            for n, (key, member) in reversed(list(enumerate(item.items()))):
                stack.append(member)
                stack.append(_Token(("," if n else "") + json.dumps(str(key), ensure_ascii=False) + ":"))
        elif isinstance(item, list | tuple):
            out.append("[")
            stack.append(_Token("]"))
            for n, member in reversed(list(enumerate(item))):
                stack.append(member)
                if n:
                    stack.append(_Token(","))
        else:
            out.append(json.dumps(item, ensure_ascii=False, default=str))
    return "".join(out)


NOT_UNICODE = "holds text that is not Unicode (a lone surrogate escape)"
TOO_DEEP = "nests deeper than 254 levels"  # orjson writes no deeper


def unstorable(values: Sequence[Any]) -> dict[int, str]:
    """Positions of values no database can keep, and why: text that is not Unicode (a lone
    surrogate, as the standard library reads "\\ud800"), which neither PostgreSQL's text nor its
    json can keep, or nesting deeper than the codecs go.

    One orjson pass over the whole list when all is well, which is nearly always.
    """
    try:
        orjson.dumps(values)
        return {}
    except TypeError:
        pass
    bad = {}
    for i, value in enumerate(values):
        try:
            orjson.dumps(value)
        except TypeError as exc:
            if "recursion" in str(exc).lower():  # orjson writes 254 levels, not more
                bad[i] = TOO_DEEP
                continue
            try:  # orjson also refuses integers past 64 bits, which are fine
                json.dumps(value, ensure_ascii=False, default=str).encode()
            except (UnicodeEncodeError, ValueError):
                bad[i] = NOT_UNICODE
            except RecursionError:
                bad[i] = TOO_DEEP
    return bad
