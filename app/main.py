"""The ASGI application: GraphQL over HTTP and WebSocket (app/http/graphql.py), ingestion, WeChat, health."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from app import gcpause, logscrub
from app.auth.authenticate import Authenticator
from app.db.engine import make_database
from app.entitlements.catalogue import catalogue_for
from app.http.graphql import GraphQLApp
from app.http.pages import page, static_files
from app.http.ratelimit import RateLimitMiddleware
from app.ingest.dictionary import load_dictionary
from app.ingest.http import ingest_router
from app.integrations import Integrations
from app.jobs.runner import Jobs
from app.jobs.tasks import Runtime
from app.observability.setup import install as install_observability
from app.ratelimit import RateLimits
from app.response_cache import ResponseCache, ResponseCacheMiddleware
from app.response_store import SharedStore
from app.services.audience_live import LiveAudiences
from app.services.changes import ON_COMMITTED
from app.settings import Settings, get_settings
from app.stores.versions import VersionReader
from app.sync.bus import Doorbell
from app.sync.feed import ChangeFeed
from app.wechat.fake import fake_wechat_for
from app.wechat.inbox import OfficialAccountInbox
from app.wechat.webhook import official_account_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings`; engines are created here and disposed on shutdown."""
    settings = settings or get_settings()
    logscrub.install(settings)  # no phone, token or key reaches a log from here on
    catalogue_for(settings)  # a broken tier or role catalogue fails here, not on a request
    db = make_database(settings)
    dictionary = load_dictionary(settings.data_dictionary_path)

    authenticate = Authenticator(db, settings)
    doorbell = Doorbell(settings.redis_url)
    db.write_sessions.configure(info={**db.write_sessions.kw["info"], ON_COMMITTED: [doorbell.ring]})
    feed = ChangeFeed(db, doorbell, poll_seconds=settings.changes_poll_seconds)
    db.on_dispose.insert(0, feed.stop)
    live_audiences = LiveAudiences(db, dictionary, settings, feed)
    db.on_dispose.insert(0, live_audiences.stop)

    limits = RateLimits(settings)  # the one rate limiter: requests, logins, SMS codes
    integrations = Integrations.from_settings(settings, limiter=limits.limiter)
    db.on_dispose.append(integrations.close)

    inbox = OfficialAccountInbox(db, settings, dictionary, integrations.wechat)
    jobs = Jobs(Runtime(db, settings, inbox))
    inbox.jobs = jobs
    db.on_dispose.insert(0, jobs.close)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What exists now lives as long as the process: keep it out of the collector's full passes,
        # which a batch of ingestion (hundreds of thousands of objects) would otherwise trigger.
        gc.freeze()
        # Young collections every 20,000 allocations rather than 700: most objects of a request
        # die by reference counting before a pass would look at them (ingestion: -10% CPU).
        gc.set_threshold(20_000, 10, 10)
        gcpause.install(settings.gc_pause_log_ms)
        await feed.start()  # follow the outbox from now; listeners would also start it
        live_audiences.start()  # keeps saved audiences' members, one instance at a time
        await jobs.start()  # the in-process worker (TROIKA_JOBS_IN_PROCESS), what a restart left queued
        yield
        await db.dispose()

    # FastAPI's native OpenTelemetry asks on every request whether a provider was configured
    # (~25 µs, a tenth of a cache hit); Troika configures none.
    no_telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="Troika", lifespan=lifespan, telemetry=no_telemetry)
    db.on_dispose.append(limits.close)
    graphql_app = GraphQLApp(
        db=db, settings=settings, dictionary=dictionary, authenticate=authenticate, feed=feed, limits=limits
    )
    # First in the router: most requests are GraphQL's, matched before FastAPI's docs routes.
    app.router.routes[:0] = [
        Route("/graphql", graphql_app),  # every method: the view answers 405 with Allow itself
        WebSocketRoute("/graphql", graphql_app),
    ]
    cache = None
    if settings.response_cache_bytes > 0:
        cache = ResponseCache(
            max_bytes=settings.response_cache_bytes,
            ttl=settings.response_cache_seconds,
            versions_of=VersionReader(db),
            store=(
                SharedStore(settings.response_cache_dir, settings.response_cache_bytes)
                if settings.response_cache_dir
                else None  # this process's own
            ),
        )
        db.on_dispose.append(cache.close)
        app.add_middleware(ResponseCacheMiddleware, cache=cache, authenticate=authenticate)
    # Outermost: a refused request costs nothing further, cache hits included. With the limits
    # off it is left out, and a cache hit pays for no layer it does not use.
    if settings.rate_limit_enabled:
        app.add_middleware(RateLimitMiddleware, limits=limits, authenticate=authenticate)
    app.state.rate_limits = limits
    app.state.authenticate = authenticate
    app.state.response_cache = cache
    app.state.feed = feed
    app.state.live_audiences = live_audiences
    app.state.db = db
    app.state.settings = settings
    app.state.dictionary = dictionary
    app.state.integrations = integrations
    app.include_router(
        ingest_router(db=db, settings=settings, dictionary=dictionary, authenticate=authenticate)
    )
    app.include_router(official_account_router(settings, inbox))
    app.state.wechat_inbox = inbox
    app.state.jobs = jobs

    if settings.wechat_fake:
        app.mount("/fake-wechat", fake_wechat_for(settings).asgi())

    app.mount("/static", static_files(), name="static")

    @app.get("/console", include_in_schema=False)
    async def console() -> Response:
        return page("console.html")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_observability(app, db=db, settings=settings, feed=feed, cache=cache)  # /metrics, /readyz, traces
    return app
