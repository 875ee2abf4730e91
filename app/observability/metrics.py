"""Prometheus metrics: definitions, the GraphQL extension and the HTTP middleware that feed them.

Under `troika serve --workers N` every worker writes its values to PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode) and `/metrics` sums them; one process keeps them in memory.
Labels are bounded: route templates, operation names (at most TROIKA_METRICS_MAX_OPERATIONS
distinct ones a process, then `other`), error codes, channels and statuses; never ids or documents.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "troika_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "troika_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
    buckets=LATENCY,
)
GRAPHQL_OPERATIONS = Counter(
    "troika_graphql_operations",
    "GraphQL operations by name, type and outcome (ok or error).",
    ["operation", "type", "outcome"],
)
GRAPHQL_DURATION = Histogram(
    "troika_graphql_operation_duration_seconds",
    "GraphQL operation latency by name and type.",
    ["operation", "type"],
    buckets=LATENCY,
)
GRAPHQL_ERRORS = Counter("troika_graphql_errors", "GraphQL errors by extensions.code.", ["code"])
INGEST_RECORDS = Counter(
    "troika_ingest_records",
    "Ingested records by channel and status (accepted, duplicate, rejected…).",
    ["channel", "status"],
)
OUTBOX_LAG = Gauge(
    "troika_outbox_lag",
    "Newest outbox cursor minus the cursor this instance has delivered (worst worker).",
    multiprocess_mode="livemax",
)
WEBSOCKETS_OPEN = Gauge("troika_websockets_open", "Open WebSocket connections.", multiprocess_mode="livesum")
SUBSCRIPTIONS_ACTIVE = Gauge(
    "troika_subscriptions_active",
    "Active subscriptions (feed listeners).",
    multiprocess_mode="livesum",
)
CACHE_HITS = Counter("troika_response_cache_hits", "Response-cache hits.")
CACHE_MISSES = Counter("troika_response_cache_misses", "Response-cache misses.")
POOL_IN_USE = Gauge(
    "troika_db_pool_in_use",
    "Connections checked out, by pool.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "troika_db_pool_waiting",
    "Tasks waiting for a database connection, by pool.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "troika_db_pool_size",
    "Connections a pool keeps open at most (without overflow), by pool.",
    ["pool"],
    multiprocess_mode="livesum",
)
JOBS = Gauge(
    "troika_jobs",
    "Background jobs by queue and status (todo is the queue's depth).",
    ["queue", "status"],
    multiprocess_mode="livemax",
)
DRAINING = Gauge("troika_draining", "1 while draining after SIGTERM.", multiprocess_mode="livemax")

_CHILDREN: dict[tuple[object, tuple[str, ...]], object] = {}
M = TypeVar("M", Counter, Histogram)


def child(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, kept: the same child every time, without its lock and checks
    on every request (the label values are bounded, and the metric keeps its children anyway)."""
    key = (metric, values)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*values)
    return found  # type: ignore[return-value]


def exposition() -> tuple[bytes, str]:
    """The scrape's body: every worker's values when PROMETHEUS_MULTIPROC_DIR is set, else ours."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class OperationNames:
    """Bounds the `operation` label: the first `limit` names a process sees, then `other`."""

    limit = 200
    seen: set[str] = set()

    @classmethod
    def label(cls, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in cls.seen:
            return name
        if len(cls.seen) >= cls.limit or len(name) > 64:
            return "other"
        cls.seen.add(name)
        return name


class OperationMetrics(SchemaExtension):
    """Counts each GraphQL operation, its latency and its errors by code (after ErrorCodes ran)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # an unparsable document has no type  # noqa: BLE001
            kind = "unknown"
        name = OperationNames.label(context.operation_name)
        result = context.result
        errors = list(getattr(result, "errors", None) or [])
        for error in errors:
            code = error.extensions.get("code") if isinstance(error.extensions, dict) else None
            child(GRAPHQL_ERRORS, str(code or "INTERNAL_SERVER_ERROR")).inc()
        outcome = "error" if errors else "ok"
        child(GRAPHQL_OPERATIONS, name, kind, outcome).inc()
        if kind != "subscription":  # a subscription's length is the client's, not a latency
            child(GRAPHQL_DURATION, name, kind).observe(time.perf_counter() - started)


class HttpMetrics:
    """Pure ASGI: HTTP requests by route template and status, their latency, open WebSockets."""

    def __init__(self, app: ASGIApp, *, on_first: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_first = on_first  # starts the gauges' refresher inside the server's event loop
        self.exact: set[str] | None = None
        self.mounts: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_first is not None and scope["type"] in ("http", "websocket"):
            start, self.on_first = self.on_first, None
            start()
        if scope["type"] == "websocket":
            WEBSOCKETS_OPEN.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                WEBSOCKETS_OPEN.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = self._route(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            child(HTTP_REQUESTS, route, method, str(status)).inc()
            child(HTTP_DURATION, route, method).observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        """The route's template (`/ingest/{channel}`), a mount's prefix, or `unmatched`."""
        template = getattr(scope.get("route"), "path", None)  # FastAPI's own routes say it
        if isinstance(template, str):
            return template
        if self.exact is None:  # plain Starlette routes (/graphql) and mounts: known once routed
            routes = getattr(scope.get("app"), "routes", [])
            self.exact = {r.path for r in routes if isinstance(r, Route | WebSocketRoute)}
            self.mounts = [r.path for r in routes if isinstance(r, Mount)]
        path: str = scope["path"]
        if path in self.exact:
            return path
        return next((m for m in self.mounts if path.startswith(m + "/")), "unmatched")


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def count_ingested(channel: str, statuses: Iterable[str]) -> None:
    """One batch's records into `troika_ingest_records` (one increment per status, not per record)."""
    for status, n in collections.Counter(statuses).items():
        INGEST_RECORDS.labels(channel=channel, status=status.lower()).inc(n)
