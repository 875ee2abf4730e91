"""Wiring into the app: /metrics, /readyz, the middleware, the gauges' refresher and tracing."""

from __future__ import annotations

import ipaddress
import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth.principal import PrincipalKind
from app.db.engine import Database
from app.db.replicas import Replicas
from app.observability import metrics, tracing
from app.observability.drain import Drain, DrainMiddleware
from app.observability.gauges import Refresher
from app.observability.readiness import Readiness
from app.response_cache import ResponseCache
from app.settings import Settings
from app.sync.feed import ChangeFeed

log = logging.getLogger("troika.metrics")


def _networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


def install(
    app: FastAPI, *, db: Database, settings: Settings, feed: ChangeFeed, cache: ResponseCache | None
) -> None:
    """Add the operations endpoints, middleware and (when configured) tracing to `app`."""
    metrics.OperationNames.limit = settings.metrics_max_operations
    metrics.OperationNames.seen = set()  # one app a process; tests make several
    networks = _networks(settings.metrics_networks)
    readiness = Readiness(db, settings)
    refresher = Refresher(db, feed, cache, getattr(app.state, "jobs", None))
    db.on_dispose.insert(0, refresher.stop)
    db.on_dispose.append(readiness.close)
    if settings.database_replica_urls:
        db.on_dispose.insert(0, Replicas(db, settings).close)
    stop_tracing = tracing.install(app, db, settings)
    if stop_tracing is not None:

        async def flush() -> None:
            stop_tracing()

        db.on_dispose.append(flush)
    app.add_middleware(metrics.HttpMetrics, on_first=refresher.start)
    app.add_middleware(DrainMiddleware)

    async def may_read_metrics(request: Request) -> bool:
        client = request.client.host if request.client else None
        if client is not None:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                address = None
            if address is not None and any(address in net for net in networks):
                return True
        auth = await app.state.authenticate(request.headers.get("authorization"))
        return auth.principal is not None and auth.principal.kind is PrincipalKind.OPERATOR

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        if not await may_read_metrics(request):
            return JSONResponse(
                {"error": "FORBIDDEN", "message": "for operator keys and TROIKA_METRICS_NETWORKS"},
                status_code=403,
            )
        try:
            await refresher.refresh()
        except Exception:  # a database away: /readyz says so; the scrape keeps the last values  # noqa: BLE001
            log.warning("metrics refresh failed; serving the last values")
        body, media = metrics.exposition()
        return Response(body, media_type=media, headers={"Cache-Control": "no-store"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        if Drain.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        checks = await readiness.run()
        failed = sorted(name for name, state in checks.items() if state != "ok")
        body = {"status": "unavailable" if failed else "ready", "checks": checks, "failed": failed}
        return JSONResponse(body, status_code=503 if failed else 200, headers={"Cache-Control": "no-store"})
