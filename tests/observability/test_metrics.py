"""/metrics: request and operation counts with bounded labels, errors by code, ingestion, access."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, app_user, ingest
from tests.helpers import served

FIRST = "query First { __typename }"
SECOND = "query Second { __typename }"
THIRD = "query Third { __typename }"
INVALID = "query Invalid { noSuchField }"
ANONYMOUS = "{ __typename }"


async def scrape(
    client: httpx.AsyncClient, **headers: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_operations_errors_and_requests_are_counted_with_bounded_labels(settings: Settings) -> None:
    async with served(settings, metrics_max_operations=2) as (app, client):
        admin = await operator_key(app, "admin")
        auth = {"Authorization": f"Bearer {admin}"}
        before = await scrape(client)
        for query in (FIRST, FIRST, SECOND, THIRD, INVALID, ANONYMOUS):
            await client.post("/graphql", json={"query": query}, headers=auth)
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ops = "troika_graphql_operations_total"
    assert delta(ops, operation="First", type="query", outcome="ok") == 2
    assert delta(ops, operation="Second", type="query", outcome="ok") == 1
    # The process had room for two names (First, Second): the rest share `other`.
    assert delta(ops, operation="other", type="query", outcome="ok") == 1
    assert delta(ops, operation="other", type="query", outcome="error") == 1  # parsed, then refused
    assert delta(ops, operation="anonymous", type="query", outcome="ok") == 1
    assert delta("troika_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert delta("troika_graphql_operation_duration_seconds_count", operation="First", type="query") == 2
    requests = "troika_http_requests_total"
    assert delta(requests, route="/graphql", method="POST", status="200") == 6
    assert delta("troika_http_request_duration_seconds_count", route="/graphql", method="POST") == 6
    # Operation names only: a route label is a template such as /ingest/{channel}.
    labels = {value for (_name, pairs) in after for (key, value) in pairs if key == "operation"}
    assert not any("__typename" in label or "{" in label for label in labels), "no documents in labels"
    assert value(after, "troika_db_pool_size", pool="hub") > 0
    assert ("troika_outbox_lag", frozenset()) in after


async def test_ingested_records_are_counted_by_channel_and_status(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = await service_key(app, "APP")
    before = await scrape(client)
    records = [app_order(f"m-{i}", app_user("metrics-1"), order_no=f"M-{i}") for i in range(3)]
    await ingest(client, key, "APP", [*records, records[0], {"not": "an envelope"}])
    after = await scrape(client)
    name = "troika_ingest_records_total"
    assert (
        value(after, name, channel="APP", status="accepted")
        - value(before, name, channel="APP", status="accepted")
        == 3
    )
    assert (
        value(after, name, channel="APP", status="duplicate")
        - value(before, name, channel="APP", status="duplicate")
        == 1
    )
    assert (
        value(after, name, channel="APP", status="rejected")
        - value(before, name, channel="APP", status="rejected")
        == 1
    )


async def test_only_operators_and_configured_networks_read_metrics(settings: Settings) -> None:
    async with served(settings, address="203.0.113.9", metrics_networks="10.0.0.0/8") as (app, client):
        assert (await client.get("/metrics")).status_code == 403
        service = await service_key(app, "APP")
        assert (
            await client.get("/metrics", headers={"Authorization": f"Bearer {service}"})
        ).status_code == 403
        admin = await operator_key(app, "viewer")
        await scrape(client, Authorization=f"Bearer {admin}")
    async with served(settings, address="10.1.2.3", metrics_networks="10.0.0.0/8") as (_app, client):
        await scrape(client)


async def test_job_queue_depth_is_exposed(app: FastAPI, client: httpx.AsyncClient) -> None:
    await app.state.jobs.defer_push(1)  # queued; no worker runs in this test
    samples = await scrape(client)
    todo = [
        v for (name, labels), v in samples.items() if name == "troika_jobs" and ("status", "todo") in labels
    ]
    assert todo, "a troika_jobs sample per queue and status"
    assert sum(todo) >= 1
