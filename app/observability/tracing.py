"""OpenTelemetry traces, exported by OTLP/HTTP when TROIKA_OTLP_ENDPOINT is set (off otherwise).

The maintained instrumentations do the work: FastAPI/ASGI for each request's server span,
SQLAlchemy for every statement on every engine, redis for each command, and strawberry's own
extension for one span per GraphQL operation (its per-field spans are left out: one a field would
drown the trace). Errors' `traceId` is the current trace's id (app/context.py asks here).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace import format_trace_id
from strawberry.extensions import SchemaExtension
from strawberry.extensions.tracing import OpenTelemetryExtension

from app.db.engine import Database
from app.settings import Settings


class OperationSpans(OpenTelemetryExtension):
    """strawberry's OpenTelemetry extension at operation level only (parse, validate, operation),
    and only while tracing is on: left in place untraced, its hooks held back a subscription's
    delivery after a Redis restart (tests/sync/test_multi_instance.py)."""

    enabled = False
    resolve = SchemaExtension.resolve  # type: ignore[assignment]

    def on_operation(self) -> Generator[None, None, None]:
        if self.enabled:
            yield from super().on_operation()
        else:
            yield

    def on_validate(self) -> Generator[None, None, None]:
        if self.enabled:
            yield from super().on_validate()
        else:
            yield

    def on_parse(self) -> Generator[None, None, None]:
        if self.enabled:
            yield from super().on_parse()
        else:
            yield


def current_trace_id() -> str | None:
    """The active span's trace id (32 hex digits), or None when nothing is traced."""
    if not OperationSpans.enabled:  # no tracer provider installed: no span to ask (~1 µs a request)
        return None
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else None


def install(app: FastAPI, db: Database, settings: Settings) -> Callable[[], Any] | None:
    """Trace this app when an endpoint is configured; returns the flush-and-stop to run at exit."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "troika"}))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)  # strawberry's extension asks the global provider
    OperationSpans.enabled = True
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")
    every = [db, *(s.engines for s in db.stores if not s.shares_hub)]
    engines = [e.write_engine for e in every] + [
        e.read_engine
        for e in every
        if e.read_engine.pool is not e.write_engine.pool  # SQLite's reader
    ]
    # Its declared range ends before SQLAlchemy 2.1; the engine events it uses are unchanged in 2.1
    # (tests/observability/test_tracing.py checks the SQL spans arrive).
    SQLAlchemyInstrumentor().instrument(
        engines=[e.sync_engine for e in engines],
        tracer_provider=provider,
        enable_commenter=False,
        skip_dep_check=True,
    )
    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument(tracer_provider=provider)
    return provider.shutdown
