"""The fast lane: a query the full path already cleared and its compiled plan answered is answered
again by that plan, without strawberry's operation and its twelve extensions' per-stage hooks.

What the full path checks before it runs a query (parse, the token, depth and alias limits,
CallerValidation's bounds and validation) depends on the document's text, the operation name
given, the limits (settings), whether the caller is an operator or may explore the schema, and the
values of the variables given to `first` (the cost). A document is *cleared* for one such set once
the full path ran it over HTTP POST without a single error and the compiled plan answered it; only
then does the lane answer the same set again. What the extensions would still have done for an
error-free compiled query is done here: OperationMetrics' counts, CacheableQuery's decision
(`ctx.uncacheable()`). OperationRateLimits counts only mutations (and every operation of a
WebSocket), so an HTTP query owes it nothing. The lane stands aside, and the full path answers as
before, whenever something else could take part: tracing on (OperationSpans), read replicas
(ReplicaReads), compiled reads off, or the plan handing the query to the resolvers
(`hook.answer` returns None: the resolvers then answer without the plan being tried twice).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import astuple, dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import DocumentNode, OperationDefinitionNode, get_operation_ast

from app.context import RequestContext
from app.db.replicas import Replicas
from app.observability.metrics import (
    GRAPHQL_DURATION,
    GRAPHQL_ERRORS,
    GRAPHQL_OPERATIONS,
    OperationNames,
    child,
)
from app.observability.tracing import OperationSpans
from graphql_schema.compiled import hook
from graphql_schema.compiled.plan import Plan
from graphql_schema.extensions import per_user_operation
from graphql_schema.limits import Limits
from graphql_schema.validation import first_variables

log = logging.getLogger("troika.graphql")  # ErrorCodes' logger: the same line for the same failure
# How requests went: `taken` (the lane answered), `handed` (cleared, but the plan handed it to the
# resolvers), `failed` (the plan raised), `cleared` (documents recorded); read by tests and bench/.
STATS: Counter[str] = Counter()
_PASSES_PER_DOCUMENT = 64  # distinct callers' classes, limits and page sizes kept for one document


@dataclass(slots=True)
class Cleared:
    """One document that ran through the full path and was answered by its compiled plan."""

    document: DocumentNode
    operation_name: str | None  # as strawberry names it: the document's own when none was given
    pages: tuple[str, ...]  # the variables given to `first`: the cost check reads their values
    cacheable: bool  # CacheableQuery's verdict on the operation's root fields
    passes: set[tuple[object, ...]] = field(default_factory=set)
    plans: list[Plan] = field(default_factory=list)  # its compiled plan, once found (hook.answer)


def page_values(names: tuple[str, ...], variables: dict[str, Any] | None) -> tuple[int | None, ...] | None:
    """The `first` values asked for, or None when one is not a plain integer (no lane then)."""
    if not names:
        return ()
    found = tuple((variables or {}).get(name) for name in names)
    if any(value is not None and type(value) is not int for value in found):  # bool is no page size
        return None
    return found


class Lane:
    """The documents cleared in this app, bounded like the plan cache."""

    def __init__(self, schema: object, maxsize: int = 1024) -> None:
        self.schema = schema
        # The settings the limits were read from, and the limits as a tuple of their values (equal
        # when the limits are, and hashed without the dataclass's Python __hash__).
        self._limits: tuple[object, tuple[object, ...] | None] = (None, None)
        self.cleared: LRUCache[tuple[str, str | None], Cleared] = LRUCache(maxsize=maxsize)

    @staticmethod
    def open_for(ctx: RequestContext) -> bool:
        """Nothing but the plan would take part in this request's query."""
        return (
            ctx.settings.compiled_reads
            and ctx.settings.graphql_fast_lane
            and ctx.transport == "http"
            and not OperationSpans.enabled
            and Replicas.of(ctx.db) is None
        )

    def _pass(self, ctx: RequestContext, pages: tuple[int | None, ...]) -> tuple[object, ...]:
        """What the static checks of one cleared document depend on, besides the document."""
        settings, limits = self._limits
        if settings is not ctx.settings or limits is None:  # settings are replaced, never changed
            limits = astuple(Limits.of(ctx.settings))
            self._limits = (ctx.settings, limits)
        return (ctx.is_operator, ctx.may_explore, limits, pages)

    async def answer(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None, ctx: RequestContext
    ) -> tuple[dict[str, Any], bool] | None:
        """The response's body for a cleared query and whether it is a request error, or None:
        the full path answers it."""
        entry = self.cleared.get((query, operation_name))
        if entry is None or not self.open_for(ctx):
            return None
        pages = page_values(entry.pages, variables)
        if pages is None or self._pass(ctx, pages) not in entry.passes:
            return None
        started = time.perf_counter()
        try:
            data = await hook.answer(
                self.schema, query, entry.document, entry.operation_name, variables, ctx, entry.plans
            )
        except Exception as exc:  # noqa: BLE001 - answered as strawberry's operation answers it
            return self._failed(exc, entry, ctx, started), True
        if data is None:
            STATS["handed"] += 1
            ctx.compiled_tried = True  # the full path's CompiledReads does not try the plan again
            return None
        STATS["taken"] += 1
        if not entry.cacheable:
            ctx.uncacheable()
        name = OperationNames.label(entry.operation_name)
        child(GRAPHQL_OPERATIONS, name, "query", "ok").inc()
        child(GRAPHQL_DURATION, name, "query").observe(time.perf_counter() - started)
        return {"data": data}, False

    @staticmethod
    def _failed(exc: Exception, entry: Cleared, ctx: RequestContext, started: float) -> dict[str, Any]:
        """What the full path answers when the plan raises (say, its audit write fails): one
        masked error, logged with its traceback, counted, and never cached (ErrorCodes, metrics)."""
        STATS["failed"] += 1
        log.error("unexpected error, traceId %s", ctx.trace_id, exc_info=exc)
        ctx.uncacheable()
        name = OperationNames.label(entry.operation_name)
        child(GRAPHQL_ERRORS, "INTERNAL_SERVER_ERROR").inc()
        child(GRAPHQL_OPERATIONS, name, "query", "error").inc()
        child(GRAPHQL_DURATION, name, "query").observe(time.perf_counter() - started)
        error = {"code": "INTERNAL_SERVER_ERROR", "traceId": ctx.trace_id}
        return {"errors": [{"message": "internal server error", "extensions": error}]}  # a request error

    def record(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None, ctx: RequestContext
    ) -> None:
        """The full path ran this query without an error and the plan answered it: clear it for
        this caller's class, these limits and these page sizes."""
        document = ctx.compiled_document
        if not isinstance(document, DocumentNode) or not self.open_for(ctx):
            return
        key = (query, operation_name)
        entry = self.cleared.get(key)
        if entry is None:
            operation = get_operation_ast(document, operation_name)
            if not isinstance(operation, OperationDefinitionNode):
                return
            name = operation_name if operation_name is not None else first_name(document)
            entry = Cleared(document, name, first_variables(query, document), per_user_operation(operation))
            self.cleared[key] = entry
            STATS["cleared"] += 1
        pages = page_values(entry.pages, variables)
        if pages is None:
            return
        if len(entry.passes) >= _PASSES_PER_DOCUMENT:
            entry.passes.clear()
        entry.passes.add(self._pass(ctx, pages))


def first_name(document: DocumentNode) -> str | None:
    """strawberry's operation name when none is given: the first operation's, if named."""
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            return definition.name.value if definition.name else None
    return None
