"""Traces by OTLP to a collector the test runs, and metrics summed over `serve --workers 2`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.factories.auth import operator_key
from tests.observability.server import database, troika_serve

INVALID = "query Invalid { noSuchField }"
TYPENAME = "{ __typename }"


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver on loopback: every span it is sent, as plain dicts."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def in_trace(self, trace_id: str, *, within: float = 60.0) -> list[dict[str, Any]]:
        """The spans of `trace_id` once its SQL, GraphQL and root spans arrived (exports come in batches)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                spans = [s for s in self.spans if s["trace_id"] == trace_id]
            if (
                any("db.system" in s["attributes"] or "db.system.name" in s["attributes"] for s in spans)
                and any(s["name"].startswith("GraphQL") for s in spans)
                and any(not s["parent"] for s in spans)
            ):
                return spans
            time.sleep(0.2)
        raise AssertionError(f"no trace {trace_id} with SQL and GraphQL spans; got {self.spans}")


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.server.spans.append(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": span.kind,
                                "attributes": {a.key for a in span.attributes},
                            }
                        )
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        return


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_an_errors_trace_id_is_its_trace_with_sql_under_the_request(
    sqlite_template: Path, tmp_path: Path, collector: Collector
) -> None:
    _url, settings = database(sqlite_template, tmp_path)
    app = create_app(settings)
    admin = await operator_key(app, "admin")
    await app.state.db.dispose()
    env = {"TROIKA_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with troika_serve(settings, env=env) as (address, _server):
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            response = await http.post(
                "/graphql", json={"query": INVALID}, headers={"Authorization": f"Bearer {admin}"}
            )
        error = response.json()["errors"][0]
        trace_id = error["extensions"]["traceId"]
        assert len(trace_id) == 32, trace_id  # an OpenTelemetry trace id, not a random token
        spans = collector.in_trace(trace_id)
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if not s["parent"]]
    assert len(roots) == 1, roots
    assert roots[0]["kind"] == 2, roots  # SPAN_KIND_SERVER: the HTTP request
    sql = [s for s in spans if "db.system" in s["attributes"] or "db.system.name" in s["attributes"]]

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            chain.append(span["span_id"])
        return chain

    assert all(roots[0]["span_id"] in ancestors(s) for s in sql), "every SQL span under the request's"
    names = {s["name"] for s in spans}
    assert "GraphQL Query: Invalid" in names, names
    assert not any(n.startswith("GraphQL Resolving") for n in names), "operation spans, not field spans"


def test_metrics_are_summed_over_the_workers(sqlite_template: Path, tmp_path: Path) -> None:
    _url, settings = database(sqlite_template, tmp_path)
    with troika_serve(settings, workers=2) as (address, _server):
        for _ in range(10):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=f"http://{address}") as http:
                assert http.post("/graphql", json={"query": TYPENAME}).status_code == 200
        counts = set()
        for _ in range(6):
            with httpx.Client(base_url=f"http://{address}") as http:
                text = http.get("/metrics").text
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            key = (
                "troika_http_requests_total",
                (("method", "POST"), ("route", "/graphql"), ("status", "200")),
            )
            counts.add(samples.get(key))
    assert counts == {10.0}, counts  # whichever worker answers the scrape, it counts every worker's
