"""JSON for the ingestion hot path: orjson's speed, the standard library's answers at the edges."""

from __future__ import annotations

import itertools
import json
import operator
import re
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


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def nesting_depth(text: str) -> int:
    """How deeply JSON arrays and objects nest, brackets inside strings left out (C-speed scan)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    steps = brackets.encode("ascii").translate(_STEP)  # 2 opens, 0 closes: depth = sum(step - 1)
    depth: int = max(map(operator.sub, itertools.accumulate(steps), itertools.count(1)))
    return depth


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


NOT_UNICODE = "holds text that is not Unicode (a lone surrogate escape)"
TOO_DEEP = "nests too deeply to be stored"


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
