"""Field permissions: every root field demands a known caller."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from app.context import RequestContext


class IsAuthenticated(BasePermission):
    """UNAUTHENTICATED, with the reason, when the request carries no valid key or token."""

    message = "not authenticated"
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info[RequestContext, None], **kwargs: Any) -> bool:
        # The context raises Unauthenticated naming what was wrong with the credentials.
        return info.context.principal is not None


AUTHENTICATED: list[type[BasePermission]] = [IsAuthenticated]
