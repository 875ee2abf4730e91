"""Schema extensions: every error leaves masked, with a stable `extensions.code` and a `traceId`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from strawberry.extensions import MaskErrors, SchemaExtension

from app.context import RequestContext, new_trace_id
from app.errors import DomainError
from graphql_schema.limits import limit_error

log = logging.getLogger("troika.graphql")
_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)
_TOO_MANY_TOKENS = re.compile(r"Document contains more than (\d+) tokens")

# What an error without a code of its own is, by the step that raised it.
_STEP_CODES = {
    "parse": "GRAPHQL_PARSE_FAILED",
    "validate": "GRAPHQL_VALIDATION_FAILED",
    "execute": "BAD_USER_INPUT",  # before any field ran: the variables could not be coerced
}


def _original(error: GraphQLError) -> BaseException | None:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original


class ErrorCodes(MaskErrors):
    """Domain errors keep their message and code; GraphQL's own get one by the step that raised
    them; anything unexpected is masked. Every error carries the request's `traceId`, which the
    log lines about it quote (the unexpected ones with their traceback)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _error: True)
        self.step = "parse"

    def on_operation(self) -> Iterator[None]:
        self.step = "parse"
        yield from super().on_operation()

    def on_validate(self) -> Iterator[None]:
        self.step = "validate"
        yield

    def _process_result(self, result: object) -> None:
        # strawberry's test is isinstance() of a runtime-checkable protocol (~11 µs an operation);
        # for its one data member that is the attribute's presence, asked here directly.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def on_execute(self) -> Iterator[None]:
        self.step = "execute"
        yield

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        ctx = self.execution_context.context
        caller = ctx if isinstance(ctx, RequestContext) else None
        trace = caller.trace_id if caller else new_trace_id()
        original = _original(error)
        message = error.message
        if isinstance(original, DomainError):
            extensions = {
                **{k: v for k, v in original.details.items() if v is not None},
                "code": original.code,
            }
            message = original.message
        elif original is None or isinstance(original, GraphQLError):
            extensions = dict(error.extensions or {})
            if "code" not in extensions:
                extensions, message = self._classify(error, extensions)
            if caller is None or not caller.is_operator:
                message = _SUGGESTION.sub("", message)  # no hints about the schema's names
        else:
            log.error("unexpected error, traceId %s", trace, exc_info=original)
            message = "internal server error"
            extensions = {"code": "INTERNAL_SERVER_ERROR"}
        if extensions["code"] != "INTERNAL_SERVER_ERROR":
            log.info("error %s at %s, traceId %s", extensions["code"], error.path or self.step, trace)
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original if isinstance(original, DomainError) else None,
            extensions={**extensions, "traceId": trace},
        )

    def _classify(self, error: GraphQLError, extensions: dict[str, object]) -> tuple[dict[str, object], str]:
        if isinstance(error, GraphQLSyntaxError) and (tokens := _TOO_MANY_TOKENS.search(error.message)):
            maximum = int(tokens.group(1))
            limited = limit_error("tokens", maximum, f"the document has more than {maximum} tokens")
            return dict(limited.extensions or {}), limited.message
        if error.path is not None:
            # A field failed without saying why (e.g. a null where the schema promises a value).
            log.error("field error without a code at %s: %s", error.path, error.message)
            return {"code": "INTERNAL_SERVER_ERROR"}, "internal server error"
        return {**extensions, "code": _STEP_CODES[self.step]}, error.message


# Root fields whose answer is one user's view, so that user's data version covers it.
PER_USER_ROOTS = frozenset({"user", "me", "__typename"})


def per_user_operation(operation: OperationDefinitionNode) -> bool:
    """A query whose root fields are all per-user roots: its error-free answer may be cached."""
    return operation.operation is OperationType.QUERY and all(
        isinstance(sel, FieldNode) and sel.name.value in PER_USER_ROOTS
        for sel in operation.selection_set.selections
    )


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
        if result is None or result.errors or operation is None or not per_user_operation(operation):
            ctx.uncacheable()
