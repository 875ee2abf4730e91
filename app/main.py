"""The ASGI application: GraphQL (GraphiQL in the browser) over FastAPI."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app import logscrub
from app.auth.authenticate import Authenticator, AuthResult
from app.context import RequestContext
from app.db.engine import Database, make_database
from app.entitlements.catalogue import catalogue_for
from app.ingest.dictionary import DataDictionary, load_dictionary
from app.ingest.http import ingest_router
from app.integrations import Integrations
from app.response_cache import SCOPE_AUTH, SCOPE_CONTEXT, ResponseCache, ResponseCacheMiddleware
from app.services.changes import ON_COMMITTED
from app.settings import Settings, get_settings
from app.stores.versions import VersionReader
from app.sync.bus import Doorbell
from app.sync.feed import ChangeFeed
from app.wechat.fake import fake_wechat_for
from app.wechat.inbox import OfficialAccountInbox
from app.wechat.webhook import official_account_router
from graphql_schema.schema import schema


class GraphQLApp(GraphQL[RequestContext, None]):
    """strawberry's plain ASGI app (its FastAPI router's dependency injection cost ~0.3 ms a request)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        dictionary: DataDictionary,
        authenticate: Authenticator,
        feed: ChangeFeed,
    ) -> None:
        super().__init__(
            schema,
            allow_queries_via_get=False,
            # The current protocol only; its keep-alive is the WebSocket ping uvicorn sends
            # (`troika serve`: TROIKA_WS_PING_SECONDS), and the protocol's own ping/pong.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.subscriptions_per_connection,
        )
        self.db, self.settings, self.dictionary, self.authenticate = db, settings, dictionary, authenticate
        self.feed = feed

    def encode_json(self, data: object) -> bytes:
        # UTF-8 as is: Chinese names and tags stay readable and a third the size of \u escapes.
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        auth = request.scope.get(SCOPE_AUTH)  # already known when the response cache ran
        if not isinstance(auth, AuthResult):
            auth = await self.authenticate(request.headers.get("authorization"))
        ctx = RequestContext(
            db=self.db,
            settings=self.settings,
            auth=auth,
            dictionary=self.dictionary,
            integrations=request.app.state.integrations,
            client=request.client.host if request.client else None,
            feed=self.feed,
        )
        request.scope[SCOPE_CONTEXT] = ctx
        return ctx

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | None | dict[str, object]:
        """graphql-transport-ws: the credentials come in `connection_init`'s payload
        ({"Authorization": "Bearer …"}), or else in the upgrade request's header."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if isinstance(header, str):
            context.auth = await self.authenticate(header)
        if context.auth.principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED", "message": context.auth.error or ""})
        acknowledged: UnsetType = UNSET  # a plain connection_ack
        return acknowledged


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
    feed = ChangeFeed(
        db,
        doorbell,
        poll_seconds=settings.changes_poll_seconds,
        retention=timedelta(days=settings.changes_retention_days),
    )
    db.on_dispose.insert(0, feed.stop)

    integrations = Integrations.from_settings(settings)
    db.on_dispose.append(integrations.close)

    inbox = OfficialAccountInbox(db, settings, dictionary, integrations.wechat)
    db.on_dispose.insert(0, inbox.close)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What exists now lives as long as the process: keep it out of the collector's full passes,
        # which a batch of ingestion (hundreds of thousands of objects) would otherwise trigger.
        gc.freeze()
        # Young collections every 20,000 allocations rather than 700: most objects of a request
        # die by reference counting before a pass would look at them (ingestion: -10% CPU).
        gc.set_threshold(20_000, 10, 10)
        await feed.start()  # follow the outbox from now; listeners would also start it
        inbox.start()  # finish pushes a previous run stored but did not process
        yield
        await db.dispose()

    app = FastAPI(title="Troika", lifespan=lifespan)
    graphql_app = GraphQLApp(
        db=db, settings=settings, dictionary=dictionary, authenticate=authenticate, feed=feed
    )
    app.router.routes += [
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
    ]
    cache = None
    if settings.response_cache_bytes > 0:
        cache = ResponseCache(
            max_bytes=settings.response_cache_bytes,
            ttl=settings.response_cache_seconds,
            versions_of=VersionReader(db),
        )
        db.on_dispose.append(cache.versions_of.close)
        app.add_middleware(ResponseCacheMiddleware, cache=cache, authenticate=authenticate)
    app.state.response_cache = cache
    app.state.feed = feed
    app.state.db = db
    app.state.settings = settings
    app.state.dictionary = dictionary
    app.state.integrations = integrations
    app.include_router(
        ingest_router(db=db, settings=settings, dictionary=dictionary, authenticate=authenticate)
    )
    app.include_router(official_account_router(settings, inbox))
    app.state.wechat_inbox = inbox

    if settings.wechat_fake:
        app.mount("/fake-wechat", fake_wechat_for(settings).asgi())

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
