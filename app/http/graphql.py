"""GraphQL over HTTP as the spec says (graphql-over-http), on strawberry's plain ASGI app.

- POST with an application/json body; GET only for queries, and only with
  TROIKA_GRAPHQL_GET_QUERIES (mutations over GET: 405). Form and multipart bodies: 415.
- The answer is application/graphql-response+json when the client accepts it: a request error
  (parse, validation, variable coercion, operation resolution; no `data`) is then a 400. For
  application/json (the default, legacy clients) every well-formed request answers 200.
- Malformed, non-UTF-8, oversized or too deeply nested bodies: 4xx with a code, never a 500.
- A browser's GET (HTML accepted, no query) gets GraphiQL, a static page served from the package
  (app/http/pages.py) to anyone: the schema and data stay for the key pasted into it.
WebSockets (graphql-transport-ws) stay with strawberry's handler, every message a text frame.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from app.auth.authenticate import Authenticator, AuthResult
from app.context import RequestContext, new_trace_id
from app.db.engine import Database
from app.http.bodies import (
    HttpError,
    Params,
    bad_request,
    check_content_type,
    decode,
    params_of,
    params_of_query_string,
    parse_json,
    read_body,
)
from app.http.lane import Lane
from app.http.mutation_lane import MutationLane
from app.http.negotiation import GRAPHQL_RESPONSE, JSON, accepts_html, negotiate
from app.http.pages import page
from app.http.persisted import PersistedQueries, PersistedQueryMissing
from app.http.ratelimit import client_address
from app.ingest.dictionary import DataDictionary
from app.ratelimit import RateLimits, address_key, principal_key, rate_limited
from app.response_cache import SCOPE_AUTH, SCOPE_CONTEXT
from app.settings import Settings
from app.sync.feed import ChangeFeed
from graphql_schema.schema import schema

log = logging.getLogger("troika.http")
NO_STORE = {"Cache-Control": "no-store"}  # answers hold personal data: no shared or browser caches


def _internal(error: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """The last guard: an error that left GraphQL without a code is masked here."""
    log.error("uncoded GraphQL error, traceId %s: %s", trace_id, error.get("message"))
    masked = {k: v for k, v in error.items() if k in ("locations", "path")}
    return {
        "message": "internal server error",
        **masked,
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "traceId": trace_id},
    }


_CONTENT_TYPES = {media: f"{media}; charset=utf-8".encode("latin-1") for media in (GRAPHQL_RESPONSE, JSON)}
_NO_STORE_RAW = [(b"cache-control", b"no-store")]  # NO_STORE as Answer writes it


class FirstHeaders(Headers):
    """Starlette's request headers, each name looked up in a dict of its first value rather than
    by a scan of the list (the same answer: the first header of that name, or none)."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        self._first = dict(reversed(self._list))

    def __getitem__(self, key: str) -> str:
        found = self._first.get(key.lower().encode("latin-1"))
        if found is None:
            raise KeyError(key)
        return found.decode("latin-1")

    def get(self, key: str, default: Any = None) -> Any:
        found = self._first.get(key.lower().encode("latin-1"))
        return default if found is None else found.decode("latin-1")


class Answer:
    """A GraphQL answer sent straight over ASGI, with the very headers Starlette's `Response`
    writes (given ones lower-cased, then content-length and content-type) at a third of its cost."""

    __slots__ = ("body", "raw_headers", "status")

    def __init__(self, body: bytes, status: int, media: str, headers: dict[str, str]) -> None:
        self.body, self.status = body, status
        if headers is NO_STORE:
            raw = list(_NO_STORE_RAW)
        else:
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
        raw.append((b"content-type", _CONTENT_TYPES[media]))
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


class TextFrames(ASGIWebSocketAdapter):
    """Every graphql-transport-ws message as a text frame: browsers, `wx.connectSocket` and the
    graphql-ws client reject the binary frames strawberry sends for a bytes encoder."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class GraphQLApp(GraphQL[RequestContext, None]):
    """strawberry's plain ASGI app (its FastAPI router's dependency injection cost ~0.3 ms a
    request), HTTP handled here, WebSockets by strawberry (in text frames)."""

    websocket_adapter_class = TextFrames

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        dictionary: DataDictionary,
        authenticate: Authenticator,
        feed: ChangeFeed,
        limits: RateLimits | None = None,
    ) -> None:
        super().__init__(
            schema,
            allow_queries_via_get=settings.graphql_get_queries,
            # The current protocol only; its keep-alive is the WebSocket ping uvicorn sends
            # (`troika serve`: TROIKA_WS_PING_SECONDS), and the protocol's own ping/pong.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.subscriptions_per_connection,
        )
        self.db, self.settings, self.dictionary, self.authenticate = db, settings, dictionary, authenticate
        self.feed = feed
        self.limits = limits
        self.persisted = PersistedQueries(max_bytes=settings.persisted_queries_bytes)
        self.lane = Lane(self.schema)
        self.mutations = MutationLane(self.schema, self.lane)

    def encode_json(self, data: object) -> bytes:
        # UTF-8 as is: Chinese names and tags stay readable and a third the size of \u escapes.
        # orjson takes ~7 µs where the standard library takes ~100 µs on a unified user's answer.
        try:
            return orjson.dumps(data)
        except TypeError:
            # A lone surrogate (no UTF-8 for it; only ever inside a string) leaves as its JSON
            # escape; an integer past 64 bits as the standard library writes it.
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8", "backslashreplace"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        request._headers = FirstHeaders(scope)  # what `request.headers` keeps once made
        response = await self.respond(request)
        await response(scope, receive, send)

    def context(self, request: Request | WebSocket, auth: AuthResult, trace_id: str | None) -> RequestContext:
        ctx = RequestContext(
            db=self.db,
            settings=self.settings,
            auth=auth,
            dictionary=self.dictionary,
            feed=self.feed,
            integrations=request.app.state.integrations,
            client=client_address(request.scope),
            trace_id=trace_id,
            limits=self.limits,
            address=client_address(request.scope),
            transport="websocket" if request.scope["type"] == "websocket" else "http",
            jobs=getattr(request.app.state, "jobs", None),
            shared_reads=request.scope["type"] == "http",  # closed by `_respond`
        )
        request.scope[SCOPE_CONTEXT] = ctx
        return ctx

    async def _auth(self, request: Request | WebSocket) -> AuthResult:
        auth = request.scope.get(SCOPE_AUTH)  # already known when a middleware ran
        if not isinstance(auth, AuthResult):
            auth = await self.authenticate(request.headers.get("authorization"))
        return auth

    # -- HTTP --------------------------------------------------------------------------------
    async def respond(self, request: Request) -> Response | Answer:
        trace_id = new_trace_id()
        media = negotiate(request.headers.get("accept"))
        try:
            return await self._respond(request, media, trace_id)
        except HttpError as exc:
            log.info(
                "%s %s refused: %s %s, traceId %s",
                request.method,
                request.url.path,
                exc.status,
                exc.code,
                trace_id,
            )
            body = {
                "errors": [{"message": exc.message, "extensions": {"code": exc.code, "traceId": trace_id}}]
            }
            return self._response(body, exc.status, media or JSON, {**exc.headers, **NO_STORE})

    async def _respond(self, request: Request, media: str | None, trace_id: str) -> Response | Answer:
        method = request.method
        get_queries = self.settings.graphql_get_queries
        if method not in ("GET", "POST"):
            allow = "GET, POST" if get_queries else "POST"
            raise HttpError(405, "METHOD_NOT_ALLOWED", f"GraphQL is served over {allow}", {"Allow": allow})
        if (
            method == "GET"
            and "query" not in request.query_params
            and accepts_html(request.headers.get("accept"))
        ):
            return page("graphiql.html")  # static: no credentials asked or needed
        ctx = self.context(request, await self._auth(request), trace_id)
        try:
            return await self._answer(request, media, ctx)
        finally:
            await ctx.close()

    async def _answer(self, request: Request, media: str | None, ctx: RequestContext) -> Answer:
        method = request.method
        get_queries = self.settings.graphql_get_queries
        if media is None:
            raise HttpError(406, "NOT_ACCEPTABLE", f"answers are {GRAPHQL_RESPONSE} or {JSON}")
        limit = self.settings.graphql_max_json_depth
        if method == "GET":
            if not get_queries:
                raise HttpError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "GraphQL is served over POST (application/json)",
                    {"Allow": "POST"},
                )
            params: Params | list[Params] = params_of_query_string(request.query_params, max_depth=limit)
        else:
            check_content_type(request.headers.get("content-type"))
            body = await read_body(
                request.receive,
                declared=request.headers.get("content-length"),
                limit=self.settings.graphql_max_body_bytes,
            )
            data = parse_json(decode(body), what="the body", max_depth=limit)
            params = self._batch(data) if isinstance(data, list) else params_of(data)
        if isinstance(params, list):
            answers = [(await self._execute(p, ctx, method))[0] for p in params]
            return self._response(answers, 200, media, NO_STORE)
        answer, request_error = await self._execute(params, ctx, method)
        headers = NO_STORE
        status = 400 if request_error and media == GRAPHQL_RESPONSE else 200
        if ctx.retry_after is not None:
            headers = {**NO_STORE, "Retry-After": str(max(1, math.ceil(ctx.retry_after)))}
            if request_error:
                status = 429
        return self._response(answer, status, media, headers)

    def _batch(self, data: list[object]) -> list[Params]:
        cap = self.settings.graphql_batch_max
        if cap <= 1:
            raise HttpError(400, "BATCHING_DISABLED", "send one operation per request (batching is off)")
        if not data:
            raise bad_request("the batch is empty")
        if len(data) > cap:
            raise HttpError(400, "TOO_MANY_OPERATIONS", f"at most {cap} operations in one batch")
        return [params_of(item) for item in data]

    async def _execute(self, params: Params, ctx: RequestContext, method: str) -> tuple[dict[str, Any], bool]:
        """The answer's JSON, and whether it is a request error (no `data`: nothing ran)."""
        try:
            params, keep = self.persisted.resolve(params)
        except PersistedQueryMissing as exc:
            return self._request_error(ctx, exc.code, exc.message)
        if method == "POST":  # GET keeps its own rules on the full path
            fast = await self.lane.answer(params.query, params.operation_name, params.variables, ctx)
            if fast is not None:
                if keep is not None and not fast[1]:
                    self.persisted.keep(keep, params.query)
                return fast
            ran = await self.mutations.answer(
                params.query, params.operation_name, params.variables, params.extensions, ctx
            )
            if ran is not None:
                shaped = self._shape(ran, ctx)
                if keep is not None and not shaped[1]:
                    self.persisted.keep(keep, params.query)
                return shaped
        ctx.compiled_document = None
        allowed = {OperationType.QUERY} if method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
        try:
            result = await self.schema.execute(
                params.query,
                variable_values=params.variables,
                context_value=ctx,
                operation_name=params.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=params.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.MUTATION:
                raise HttpError(
                    405, "METHOD_NOT_ALLOWED", "mutations are accepted over POST only", {"Allow": "POST"}
                ) from None
            return self._request_error(
                ctx,
                "OPERATION_NOT_SUPPORTED",
                "subscriptions are served over WebSocket (graphql-transport-ws)",
            )
        except CannotGetOperationTypeError as exc:
            return self._request_error(ctx, "OPERATION_RESOLUTION_FAILURE", exc.as_http_error_reason())
        finally:
            ctx.compiled_tried = False
        answer, request_error = self._shape(result, ctx)
        if method == "POST" and not result.errors and result.data:
            if ctx.compiled_document is not None:
                self.lane.record(params.query, params.operation_name, params.variables, ctx)
            else:
                self.mutations.record(params.query, params.operation_name, params.variables, ctx)
        if keep is not None and not request_error:
            self.persisted.keep(keep, params.query)
        return answer, request_error

    def _request_error(self, ctx: RequestContext, code: str, message: str) -> tuple[dict[str, Any], bool]:
        log.info("request error %s, traceId %s", code, ctx.trace_id)
        ctx.uncacheable()
        return {"errors": [{"message": message, "extensions": {"code": code, "traceId": ctx.trace_id}}]}, True

    def _shape(self, result: ExecutionResult, ctx: RequestContext) -> tuple[dict[str, Any], bool]:
        raw: list[GraphQLError] = list(result.errors or [])
        errors: list[dict[str, Any]] = []
        for error in raw:
            formatted = dict(error.formatted)
            coded = isinstance(error.extensions, dict) and error.extensions.get("code")
            errors.append(formatted if coded else _internal(formatted, ctx.trace_id))
        request_error = result.data is None and bool(raw) and all(e.path is None for e in raw)
        body: dict[str, Any] = {} if request_error else {"data": result.data}
        if errors:
            body["errors"] = errors
        if result.extensions:
            body["extensions"] = result.extensions
        return body, request_error

    def _response(self, body: object, status: int, media: str, headers: dict[str, str]) -> Answer:
        return Answer(self.encode_json(body), status, media, headers)

    # -- WebSocket ---------------------------------------------------------------------------
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        return self.context(request, await self._auth(request), None)

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | None | dict[str, object]:
        """graphql-transport-ws: the credentials come in `connection_init`'s payload
        ({"Authorization": "Bearer …"}), or else in the upgrade request's header."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if isinstance(header, str):
            context.auth = await self.authenticate(header)
        if context.auth.principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED", "message": context.auth.error or ""})
        if self.limits is not None:  # a connection counts as a request of its address and caller
            wait = await self.limits.check("address", [address_key(context.address or "unknown")])
            if wait is None:
                wait = await self.limits.check("principal", [principal_key(context.auth.principal.actor)])
            if wait is not None:
                error = rate_limited(wait)
                raise ConnectionRejectionError(
                    {"code": error.code, "message": error.message, **error.details}
                )
        acknowledged: UnsetType = UNSET  # a plain connection_ack
        return acknowledged
