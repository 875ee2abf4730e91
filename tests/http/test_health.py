"""What a load balancer sees."""

from __future__ import annotations

import httpx


async def test_health_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}
