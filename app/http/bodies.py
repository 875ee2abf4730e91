"""GraphQL request parameters from a POST body or a GET query string, or a clear 4xx.

Only JSON bodies are read (form and multipart bodies are what a cross-site form can send without
a CORS preflight), at most TROIKA_GRAPHQL_MAX_BODY_BYTES, in UTF-8, nested at most
TROIKA_GRAPHQL_MAX_JSON_DEPTH deep (measured before parsing, so 20,000 nested brackets cost one
linear scan and no recursion).
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from app.http.negotiation import JSON, media_type


class HttpError(Exception):
    """A request refused before GraphQL sees it: status, stable code, message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> HttpError:
    return HttpError(400, "BAD_REQUEST", message)


@dataclass(frozen=True, slots=True)
class Params:
    """One GraphQL request (spec: query, operationName, variables, extensions)."""

    query: str
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = field(default=None)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_LONG_RUN = 19
_LONG_DIGITS = re.compile(rf"\d{{{_LONG_RUN}}}")
_DIGITS = b"0123456789"


def nesting_depth(text: str) -> int:
    """How deeply JSON arrays and objects nest, brackets inside strings left out (C-speed scan)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    steps = brackets.encode("ascii").translate(_STEP)  # 2 opens, 0 closes: depth = sum(step - 1)
    depth: int = max(map(operator.sub, itertools.accumulate(steps), itertools.count(1)))
    return depth


def _long_digits(text: str) -> bool:
    """Whether `_LONG_DIGITS` is found in `text`; an ASCII text with fewer than 19 digits in all
    cannot hold such a run, and counting them is a tenth of the regular expression's search."""
    if text.isascii():
        raw = text.encode("ascii")
        if len(raw) - len(raw.translate(None, _DIGITS)) < _LONG_RUN:
            return False
    return _LONG_DIGITS.search(text) is not None


def parse_json(text: str, *, what: str, max_depth: int) -> Any:
    """JSON of at most `max_depth` levels (400 otherwise, and for anything that is not JSON)."""
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise bad_request(f"{what} nests deeper than {max_depth} levels")
    if not _long_digits(text):
        try:
            # orjson first (a tenth of the time). What it refuses (NaN, lone surrogates, malformed
            # text) goes to the standard library, which accepts it or words the error; so does any
            # run of 19 digits, since orjson reads an integer past 64 bits as a float.
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"{what} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise bad_request(f"{what} is not JSON we can read: {exc}") from None


async def read_body(receive: Receive, *, declared: str | None, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes without reading the rest; read from the ASGI
    messages as Starlette's `Request.stream()` reads them (a disconnect is ClientDisconnect),
    without an async generator around each message."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if chunk:
                received.append(chunk)
            if not message.get("more_body", False):
                return b"".join(received)
        elif kind == "http.disconnect":
            raise ClientDisconnect


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes")


def check_content_type(header: str | None) -> None:
    """POST bodies are application/json in UTF-8 (415 otherwise, and when there is no type)."""
    name, params = media_type(header)
    if name != JSON:
        sent = f"{name!r}" if name else "no Content-Type"
        raise HttpError(415, "UNSUPPORTED_MEDIA_TYPE", f"send application/json bodies, not {sent}")
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise HttpError(415, "UNSUPPORTED_MEDIA_TYPE", f"send UTF-8 bodies, not {charset}")


def decode(body: bytes) -> str:
    if not body:
        raise bad_request("the body is empty; send a JSON object with a `query`")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"the body is not UTF-8 (byte {exc.start})") from None


def params_of(data: object) -> Params:
    """The spec's request parameters, each of its type (400 otherwise)."""
    if not isinstance(data, dict):
        raise bad_request("a GraphQL request is a JSON object with a `query` string")
    query = data.get("query")
    extensions = data.get("extensions")
    # A persisted query names its document by hash (app/http/persisted.py): no `query` needed.
    hashed = isinstance(extensions, dict) and extensions.get("persistedQuery") is not None
    if query is None and hashed:
        query = ""
    if query is None:
        raise bad_request("the request has no `query`")
    if not isinstance(query, str):
        raise bad_request("`query` must be a string")
    if not query.strip() and not hashed:
        raise bad_request("`query` is empty")
    name = data.get("operationName")
    if name is not None and not isinstance(name, str):
        raise bad_request("`operationName` must be a string or null")
    for key in ("variables", "extensions"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise bad_request(f"`{key}` must be an object or null")
    return Params(query, name, data.get("variables"), data.get("extensions"))


def params_of_query_string(values: Mapping[str, str], *, max_depth: int) -> Params:
    """GET: `query` and `operationName` as they are, `variables` and `extensions` as JSON text."""
    data: dict[str, object] = {k: values[k] for k in ("query", "operationName") if k in values}
    for key in ("variables", "extensions"):
        text = values.get(key)
        if text:
            data[key] = parse_json(text, what=f"`{key}`", max_depth=max_depth)
    return params_of(data)
