"""Every request to /graphql and /ingest/… counts against its client address, then its caller.

Outermost, so nothing runs for a refused request, cache hits included: 429 with Retry-After. The
client address is the ASGI server's (`troika serve` behind a proxy: set uvicorn's
FORWARDED_ALLOW_IPS so X-Forwarded-For is believed). The caller found here is handed on
(SCOPE_AUTH), so it is authenticated once.
"""

from __future__ import annotations

import json
import math

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.authenticate import Authenticator
from app.context import new_trace_id
from app.http.negotiation import JSON, negotiate
from app.ratelimit import RateLimits, address_key, principal_key, rate_limited
from app.response_cache import SCOPE_AUTH


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limits: RateLimits, authenticate: Authenticator, graphql_path: str = "/graphql"
    ) -> None:
        self.app = app
        self.limits = limits
        self.authenticate = authenticate
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.graphql_path or path.startswith("/ingest/")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        wait = await self.limits.check("address", [address_key(client_address(scope))])
        if wait is None:
            auth = await self.authenticate(headers.get("authorization"))
            scope[SCOPE_AUTH] = auth
            if auth.principal is not None:
                wait = await self.limits.check("principal", [principal_key(auth.principal.actor)])
        if wait is None:
            await self.app(scope, receive, send)
            return
        await self._refuse(path, headers, wait, send)

    async def _refuse(self, path: str, headers: Headers, wait: float, send: Send) -> None:
        error = rate_limited(wait)
        details = {"code": error.code, **error.details}
        if path == self.graphql_path:
            media = negotiate(headers.get("accept")) or JSON
            extensions = {**details, "traceId": new_trace_id()}
            body: dict[str, object] = {"errors": [{"message": error.message, "extensions": extensions}]}
        else:  # the ingest door's own error shape
            media = JSON
            body = {"error": {"message": error.message, **details}}
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", f"{media}; charset=utf-8".encode()),
                    (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
