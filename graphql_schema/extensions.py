"""Schema extensions: every error leaves with a stable `extensions.code`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from graphql import FieldNode, GraphQLError, OperationType, get_operation_ast
from strawberry.extensions import MaskErrors, SchemaExtension

from app.context import RequestContext
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


# Root fields whose answer is one user's view, so that user's data version covers it.
PER_USER_ROOTS = frozenset({"user", "me", "__typename"})


class CacheableQuery(SchemaExtension):
    """Tells the response cache which answers it may keep: error-free queries of per-user roots."""

    def on_execute(self) -> Iterator[None]:
        yield
        ec = self.execution_context
        ctx = ec.context
        if not isinstance(ctx, RequestContext) or ctx.versions is None:
            return
        result = ec.result
        operation = get_operation_ast(ec.graphql_document, ec.operation_name) if ec.graphql_document else None
        if (
            result is None
            or result.errors
            or operation is None
            or operation.operation is not OperationType.QUERY
            or not all(
                isinstance(sel, FieldNode) and sel.name.value in PER_USER_ROOTS
                for sel in operation.selection_set.selections
            )
        ):
            ctx.uncacheable()
