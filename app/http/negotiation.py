"""Media types: what a client accepts and what it sent (GraphQL over HTTP, RFC 9110)."""

from __future__ import annotations

from functools import lru_cache

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def _parameters(parts: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in parts:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return params


def media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """`type/subtype` in lower case and its parameters (`charset` …); empty when absent."""
    if not header:
        return "", {}
    parts = header.split(";")
    return parts[0].strip().lower(), _parameters(parts[1:])


@lru_cache(maxsize=256)  # clients send the same few Accept headers; parsing one costs 4-8 µs
def negotiate(accept: str | None) -> str | None:
    """The response type for an Accept header, or None when it accepts neither (406).

    No header, or only wildcards, mean application/json (the spec's default, which every
    legacy client reads); application/graphql-response+json when the client names it at least
    as highly as application/json.
    """
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for candidate in (GRAPHQL_RESPONSE, JSON):
        ctype, csub = candidate.split("/")
        quality, specificity = -1.0, -1
        for item in accept.split(","):
            name, params = media_type(item)
            kind, _, sub = name.partition("/")
            if name == candidate:
                rank = 2
            elif kind == ctype and sub == "*":
                rank = 1
            elif name == "*/*":
                rank = 0
            else:
                continue
            if rank > specificity:  # the most specific range that matches decides the quality
                try:
                    q = float(params.get("q", "1"))
                except ValueError:
                    q = 0.0
                quality, specificity = q, rank
        if quality <= 0:
            continue
        # Named explicitly, the spec's own type wins a tie; reached by wildcards only, JSON does.
        preferred = (candidate == GRAPHQL_RESPONSE) == (specificity == 2)
        key = (quality, specificity, int(preferred))
        if best is None or key > best:
            best, chosen = key, candidate
    return chosen


def accepts_html(accept: str | None) -> bool:
    """A browser navigating to the URL (GraphiQL)."""
    return any(media_type(item)[0] == "text/html" for item in (accept or "").split(","))
