"""The one GraphQL helper tests use: POST over HTTP, assert on errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings


def untraced(body: Any) -> Any:
    """`body` without the errors' `traceId`s (random per request), to compare two answers."""
    if isinstance(body, dict):
        return {k: untraced(v) for k, v in body.items() if k != "traceId"}
    if isinstance(body, list):
        return [untraced(v) for v in body]
    return body


class Gql:
    """`await gql(Q, vars, token=…)` returns `data` and fails on any error; `gql.error` expects one."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, query: str, variables: dict[str, Any] | None, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None
    ) -> dict[str, Any]:
        body = await self.post(query, variables, token)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def error(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None, code: str
    ) -> dict[str, Any]:
        """The first error, asserting its `extensions.code`."""
        body = await self.post(query, variables, token)
        errors = body.get("errors") or []
        assert errors, f"expected {code}, got data {body.get('data')}"
        assert errors[0]["extensions"]["code"] == code, errors
        first: dict[str, Any] = errors[0]
        return first


@asynccontextmanager
async def served(
    settings: Settings, *, address: str = "127.0.0.1", **update: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of its own, with some settings changed, and an HTTP client calling from `address`."""
    app = create_app(settings.model_copy(update=update))
    try:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as client:
            yield app, client
    finally:
        await app.state.db.dispose()


@asynccontextmanager
async def lane_and_full(
    settings: Settings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, httpx.AsyncClient]]:
    """Two apps on one database, with the fast lanes and without (cache and rate limits off), so
    the same operations can be compared; the lane's app and both clients."""
    base = settings.model_copy(update={"response_cache_bytes": 0, "rate_limit_enabled": False})
    lane = create_app(base)
    full = create_app(base.model_copy(update={"graphql_fast_lane": False}))
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=lane), base_url="http://lane") as lane_client,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=full), base_url="http://full") as full_client,
        ):
            yield lane, lane_client, full_client
    finally:
        await lane.state.db.dispose()
        await full.state.db.dispose()
