"""Bytes to records, for `POST /ingest` and `troika import`: what cannot be read becomes a REJECTED
record kept as a dead letter, with its reason, and never costs its neighbours.

A record must be UTF-8, and JSON the codecs can read: orjson reads 1,024 levels of nesting (the
Ingestor refuses, per record, what it cannot write: more than 254). A JSON array too deep to read
whole is cut into its elements, each judged alone; NDJSON is judged line by line. The usual body
costs one strict UTF-8 decode and one orjson parse, as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from app.ingest.service import Unparsable
from app.jsoncodec import TOO_DEEP, TooDeep, loads

Parsed = object | Unparsable


@dataclass(frozen=True, slots=True)
class BodyRefused(Exception):
    """A body that holds no records at all (not UTF-8, not JSON): kept whole as one dead letter."""

    text: str
    reason: str


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _not_utf8(data: bytes, what: str) -> tuple[str, str]:
    """The text kept for a dead letter (bad bytes as \\xNN) and the reason, naming the first bad byte."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"{what} is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        return data.decode("utf-8", "backslashreplace"), reason
    raise ValueError("valid UTF-8")  # pragma: no cover - callers only ask about bad bytes


def record_of(text: str, what: str) -> Parsed:
    """One record's text parsed, or Unparsable with the reason it is not a record."""
    try:
        record: object = loads(text)
    except TooDeep:
        return Unparsable(text, f"{what} {TOO_DEEP}")
    except json.JSONDecodeError as exc:
        return Unparsable(text, f"{what} is not JSON: {exc.msg}")
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return Unparsable(text, f"{what} is not JSON we can read: {exc}")
    return record


def record_of_line(n: int, line: bytes) -> Parsed:
    """NDJSON line `n` (its newline removed) as a record."""
    text = _utf8(line)
    if text is None:
        return Unparsable(*_not_utf8(line, f"line {n}"))
    return record_of(text, f"line {n}")


def parse_ndjson(body: bytes) -> list[Parsed]:
    """One record per non-empty line (\\n or \\r\\n ends a line; JSON text may hold U+2028)."""
    return [record_of_line(n, line) for n, line in enumerate(body.splitlines(), start=1) if line.strip()]


def parse_json(body: bytes) -> list[Parsed]:
    """A JSON array of records, or one record; BodyRefused when the body is no JSON at all."""
    text = _utf8(body)
    if text is None:
        raise BodyRefused(*_not_utf8(body, "the body"))
    try:
        parsed = loads(text)
    except TooDeep:
        elements = split_array(text)
        if elements is not None:
            return [record_of(element, f"record {n}") for n, element in enumerate(elements, start=1)]
        if text.lstrip().startswith("{"):
            return [Unparsable(text, f"the record {TOO_DEEP}")]
        raise BodyRefused(text, f"the body {TOO_DEEP}") from None
    except json.JSONDecodeError as exc:
        raise BodyRefused(text, f"the body is not JSON: {exc.msg}") from None
    except ValueError as exc:
        raise BodyRefused(text, f"the body is not JSON we can read: {exc}") from None
    return parsed if isinstance(parsed, list) else [parsed]


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


def split_array(text: str) -> list[str] | None:
    """The texts of a JSON array's elements, by its top-level commas (strings skipped), without
    parsing them; None when `text` is not one array. Each element is judged later on its own."""
    start, end = text.find("["), len(text.rstrip())
    if start < 0 or text[:start].strip() or not text[:end].endswith("]"):
        return None
    elements: list[str] = []
    depth, begin = 0, start + 1
    for token in _TOKEN.finditer(text, start, end):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
        elif mark in ("]", "}"):
            depth -= 1
            if depth == 0 and token.end() != end:
                return None  # the array closed before the text did
        elif mark == "," and depth == 1:
            elements.append(text[begin : token.start()].strip())
            begin = token.end()
        if depth < 0:
            return None
    if depth != 0:
        return None
    last = text[begin : end - 1].strip()
    if last or elements:
        elements.append(last)
    return elements
