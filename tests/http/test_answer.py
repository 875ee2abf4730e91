"""A GraphQL answer goes straight over ASGI with exactly the headers Starlette's Response writes."""

from __future__ import annotations

import pytest
from starlette.responses import Response
from starlette.types import Message

from app.http.graphql import Answer
from app.http.negotiation import GRAPHQL_RESPONSE, JSON


@pytest.mark.parametrize("media", [JSON, GRAPHQL_RESPONSE])
@pytest.mark.parametrize(
    "headers", [{"Cache-Control": "no-store"}, {"Cache-Control": "no-store", "Retry-After": "3"}, {}]
)
@pytest.mark.parametrize(("status", "body"), [(200, '{"data":{"a":"é"}}'.encode()), (429, b"{}")])
async def test_the_same_bytes_as_starlettes_response(
    media: str, headers: dict[str, str], status: int, body: bytes
) -> None:
    expected = Response(body, status_code=status, headers=headers, media_type=f"{media}; charset=utf-8")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise AssertionError("nothing to read")

    await Answer(body, status, media, headers)({"type": "http"}, receive, send)
    assert sent == [
        {"type": "http.response.start", "status": status, "headers": expected.raw_headers},
        {"type": "http.response.body", "body": body},
    ]
