"""The mutation lane: a mutation the full path already ran without an error is run again by
graphql-core's own execution over strawberry's schema (the same resolvers, permission classes,
argument conversion and executor), without strawberry's operation and its extensions' hooks.

What the full path checks before a mutation runs (parse, the token, depth and alias limits,
CallerValidation's bounds and validation) depends on the document's text, the operation name, the
limits, whether the caller is an operator or may explore the schema, and the `first` values: the
same *pass* as the query lane's (app/http/lane.py), cleared only by an error-free run over HTTP POST.
What the extensions still do for a cleared mutation is done here, the same way:
- OperationRateLimits counts an HTTP mutation only for its login and SMS root fields: a document
  with one of those is never cleared, so for the lane's documents it counts nothing (the
  per-address and per-caller limits are the middleware's, in front of the lane).
- ErrorCodes masks and codes every error (an ErrorCodes instance does it, at its execute step);
  OperationMetrics counts the operation, its errors by code and its duration; CacheableQuery marks
  the response uncacheable (a mutation never is).
- Variables are coerced by graphql-core as on the full path; when they do not coerce (a bad enum,
  a missing required field, a wrong type), nothing has run and the full path answers instead.
The lane stands aside when something else would take part: tracing (OperationSpans), read replicas
(ReplicaReads notes a key's writes), a WebSocket, or the setting graphql_fast_lane off.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
)
from graphql import ExecutionResult as CoreResult
from strawberry.execution import optimized_is_awaitable
from strawberry.types import ExecutionResult

from app.context import RequestContext
from app.db.replicas import Replicas
from app.http.direct_fields import DirectField, direct_field
from app.http.lane import Lane, first_name, page_values
from app.observability.metrics import (
    GRAPHQL_DURATION,
    GRAPHQL_ERRORS,
    GRAPHQL_OPERATIONS,
    OperationNames,
    child,
)
from app.observability.tracing import OperationSpans
from graphql_schema.extensions import ErrorCodes
from graphql_schema.ratelimits import POLICY_OF_MUTATION, root_fields
from graphql_schema.validation import first_variables

# `taken` (the lane ran it), `direct` (of those, by its direct field), `fallback` (its variables did
# not coerce: the full path answered), `failed` (graphql-core raised outside any field), `cleared`
# (documents recorded); read by tests.
STATS: Counter[str] = Counter()
_PASSES_PER_DOCUMENT = 64


@dataclass(slots=True)
class ClearedMutation:
    """One mutation document that ran through the full path without an error."""

    document: DocumentNode
    operation_name: str | None  # as strawberry names it: the document's own when none was given
    pages: tuple[str, ...]
    direct: DirectField | None  # its one root field, called without the executor (direct_fields.py)
    passes: set[tuple[object, ...]] = field(default_factory=set)


class MutationLane:
    """The mutation documents cleared in this app, bounded like the query lane."""

    def __init__(self, schema: Any, lane: Lane, maxsize: int = 1024) -> None:
        self.schema = schema
        self.lane = lane  # its pass (caller class, limits, page sizes) is this lane's too
        self.middleware = schema._get_middleware_manager([])  # no extension of ours resolves fields
        self.executor = schema.execution_context_class
        # None: the full path ran it, but it is no mutation or one the lane leaves alone.
        self.cleared: LRUCache[tuple[str, str | None], ClearedMutation | None] = LRUCache(maxsize=maxsize)

    @staticmethod
    def open_for(ctx: RequestContext) -> bool:
        """Nothing but the resolvers would take part in this request's mutation."""
        return (
            ctx.settings.graphql_fast_lane
            and ctx.transport == "http"
            and not OperationSpans.enabled
            and Replicas.of(ctx.db) is None
        )

    async def answer(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        extensions: dict[str, Any] | None,
        ctx: RequestContext,
    ) -> ExecutionResult | None:
        """The result, as strawberry's operation would return it, of a cleared mutation, or None:
        the full path answers it."""
        entry = self.cleared.get((query, operation_name))
        if entry is None or not self.open_for(ctx):
            return None
        pages = page_values(entry.pages, variables)
        if pages is None or self.lane._pass(ctx, pages) not in entry.passes:
            return None
        started = time.perf_counter()
        try:
            result = await entry.direct.run(self.schema._schema, variables, ctx) if entry.direct else None
            if result is not None:
                STATS["direct"] += 1
            else:
                result = await self._execute(entry, operation_name, variables, extensions, ctx)
        except Exception as exc:  # noqa: BLE001 - outside any field: one masked error, as strawberry's
            STATS["failed"] += 1
            ctx.uncacheable()
            return ExecutionResult(
                data=None, errors=_masked([GraphQLError(str(exc), original_error=exc)], ctx)
            )
        if result.errors and any(error.path is None for error in result.errors):
            STATS["fallback"] += 1  # the variables did not coerce: nothing ran
            return None
        STATS["taken"] += 1
        errors = _masked(result.errors, ctx) if result.errors else None
        if ctx.versions is not None:  # CacheableQuery: a mutation's answer is never cached
            ctx.uncacheable()
        name = OperationNames.label(entry.operation_name)
        for error in errors or ():
            code = error.extensions.get("code") if isinstance(error.extensions, dict) else None
            child(GRAPHQL_ERRORS, str(code or "INTERNAL_SERVER_ERROR")).inc()
        child(GRAPHQL_OPERATIONS, name, "mutation", "error" if errors else "ok").inc()
        child(GRAPHQL_DURATION, name, "mutation").observe(time.perf_counter() - started)
        return ExecutionResult(data=result.data, errors=errors, extensions={})

    async def _execute(
        self,
        entry: ClearedMutation,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        extensions: dict[str, Any] | None,
        ctx: RequestContext,
    ) -> CoreResult:
        """graphql-core's execution of the document over strawberry's schema."""
        result = execute(
            self.schema._schema,
            entry.document,
            middleware=self.middleware,
            variable_values=variables,
            operation_name=operation_name,
            context_value=ctx,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            executor_class=self.executor,
            operation_extensions=extensions,
        )
        return result if isinstance(result, CoreResult) else await result

    def record(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None, ctx: RequestContext
    ) -> None:
        """The full path ran this mutation without an error: clear it for this caller's class,
        these limits and these page sizes (not one that signs in or sends an SMS code)."""
        if not self.open_for(ctx):
            return
        key = (query, operation_name)
        if key in self.cleared:
            entry = self.cleared[key]
        else:
            entry = self.cleared[key] = _clear(query, operation_name, self.schema)
        if entry is None:
            return
        pages = page_values(entry.pages, variables)
        if pages is None:
            return
        if len(entry.passes) >= _PASSES_PER_DOCUMENT:
            entry.passes.clear()
        entry.passes.add(self.lane._pass(ctx, pages))


def _clear(query: str, operation_name: str | None, schema: Any = None) -> ClearedMutation | None:
    """The document, if it is a mutation the lane may run again (not one that signs in or sends
    an SMS code: OperationRateLimits counts those, on the full path alone), with its direct field
    when strawberry's `schema` has one for it."""
    document = parse(query)  # as strawberry parses it: the same nodes, the same locations
    operation = get_operation_ast(document, operation_name)
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not OperationType.MUTATION
    ):
        return None
    if any(name in POLICY_OF_MUTATION for _key, name in root_fields(document, operation.selection_set)):
        return None
    STATS["cleared"] += 1
    name = operation_name if operation_name is not None else first_name(document)
    direct = direct_field(schema._schema, schema.config.name_converter, operation) if schema else None
    return ClearedMutation(document, name, first_variables(query, document), direct)


def _masked(errors: list[GraphQLError], ctx: RequestContext) -> list[GraphQLError]:
    """ErrorCodes' answer for errors raised while the operation ran (its execute step)."""
    codes = ErrorCodes()
    codes.execution_context = SimpleNamespace(context=ctx)  # type: ignore[assignment]
    codes.step = "execute"
    return codes._process_errors(list(errors))
