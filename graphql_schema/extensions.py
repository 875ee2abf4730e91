"""Schema extensions: every error leaves with a stable `extensions.code`."""

from __future__ import annotations

import logging
import uuid

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from app.errors import DomainError

log = logging.getLogger("troika.graphql")


def _original(error: GraphQLError) -> BaseException | None:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original


class ErrorCodes(MaskErrors):
    """Domain errors keep their message and code; anything unexpected is masked with a trace id."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _error: True)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = _original(error)
        extensions = dict(error.extensions or {})
        message = error.message
        if isinstance(original, DomainError):
            extensions = {
                **{k: v for k, v in original.details.items() if v is not None},
                "code": original.code,
            }
            message = original.message
        elif original is None or isinstance(original, GraphQLError):
            extensions.setdefault("code", "GRAPHQL_VALIDATION_FAILED")
        else:
            trace = uuid.uuid4().hex[:16]
            log.error("unexpected error, trace %s", trace, exc_info=original)
            message = f"internal error (trace {trace})"
            extensions = {"code": "INTERNAL_SERVER_ERROR", "trace": trace}
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original if isinstance(original, DomainError) else None,
            extensions=extensions,
        )
