"""The HTTP surface a browser and a load balancer see."""

from __future__ import annotations

import httpx


async def test_graphiql_is_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "GraphiQL" in response.text


async def test_health_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}


async def test_unknown_fields_are_validation_errors(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ nope }"})
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
