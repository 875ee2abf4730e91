"""The schema extension that answers known operations by their compiled plan (TROIKA_COMPILED_READS).

It hooks execution, not HTTP parsing: a query reaches it however its document arrived (POST, GET,
a persisted query), after parsing, validation, limits and rate limits, exactly like the resolvers.
Queries over a WebSocket run through the resolvers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension

from app.context import RequestContext
from app.errors import DomainError
from graphql_schema.compiled.execute import Run
from graphql_schema.compiled.leaves import Fallback
from graphql_schema.compiled.plan import Plan, plan_for
from graphql_schema.compiled.variables import coerce

log = logging.getLogger("troika.compiled")
# How operations were answered in this process: compiled, fallback (compiled, then handed to the
# resolvers; `failed` counts those that met an unexpected error), other (not a compiled
# operation); read by tests and bench/.
STATS: Counter[str] = Counter()


class CompiledReads(SchemaExtension):
    """Runs a compilable query's plan; any other operation, or any surprise, goes to graphql-core."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        ctx = ec.context
        if (
            isinstance(ctx, RequestContext)
            and ctx.settings.compiled_reads
            # A WebSocket's operations share one context and may interleave: the held reveals and
            # the cache state a compiled run sets aside are a request's own only over HTTP.
            and ctx.transport == "http"
            and not ctx.compiled_tried  # the fast lane tried it: the resolvers answer
            and ec.result is None
            and ec.graphql_document is not None
            and isinstance(ec.query, str)
        ):
            data = await answer(
                ec.schema, ec.query, ec.graphql_document, ec.operation_name, ec.variables, ctx
            )
            if data is not None:
                ec.result = ExecutionResult(data=data, errors=None)
                ctx.compiled_document = ec.graphql_document  # the fast lane may clear it
        yield


async def answer(
    schema: object,
    query: str,
    document: object,
    operation_name: str | None,
    variables: dict[str, object] | None,
    ctx: RequestContext,
    kept: list[Plan] | None = None,
) -> dict[str, object] | None:
    """The operation's data, or None when the resolvers must answer it; `kept`: a caller's place
    for the document's plan (the fast lane's), found there rather than in the plan cache."""
    core = schema._schema  # type: ignore[attr-defined]
    plan: Plan | None
    if kept:
        plan = kept[0]
    else:
        plan = plan_for(core, query, document, operation_name)  # type: ignore[arg-type]
        if kept is not None and plan is not None:
            kept.append(plan)
    if plan is None:
        STATS["other"] += 1
        return None
    coerced = coerce(core, plan.operation.variable_definitions or (), plan.plain, variables)
    if isinstance(coerced, list):
        STATS["fallback"] += 1
        return None  # graphql-core reports the variables' errors
    versions = None if ctx.versions is None else dict(ctx.versions)
    valid_until = ctx.valid_until
    ctx.hold_reveals()
    try:
        data = await Run(schema, plan, coerced, ctx).data()
    except Exception as exc:  # noqa: BLE001 - graphql-core runs it again and reports what it finds
        STATS["fallback"] += 1
        if isinstance(exc, (Fallback, DomainError, GraphQLError)):
            log.debug("compiled read handed to the resolvers: %r", exc)
        else:  # a gap in the compiler: the resolvers answer, and this says where to look
            STATS["failed"] += 1
            log.warning("compiled read failed, the resolvers answer it: %r", exc)
        ctx.held_reveals = None
        ctx.versions, ctx.valid_until = versions, valid_until
        ctx.refresh()  # the primed loaders go: the resolvers read afresh
        return None
    if ctx.held_reveals:
        await ctx.release_reveals()
    else:  # nothing to audit
        ctx.held_reveals = None
    STATS["compiled"] += 1
    return data
