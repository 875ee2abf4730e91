"""Stricter rate limits for the mutations that sign in or send an SMS code, by root field name.

After validation and before anything runs: each such field of the operation (aliases count, so
twenty aliased login attempts are twenty) is counted under its policy for the caller's address
and the caller; over the limit, the operation is refused whole with RATE_LIMITED (HTTP 429 with
Retry-After). On a WebSocket, every operation also counts against the caller's `principal` policy
(an HTTP request was counted by the middleware).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension

from app.context import RequestContext
from app.ratelimit import RateLimited, principal_key, rate_limited

# Root Mutation fields and their policy (app/ratelimit.py RateLimits).
POLICY_OF_MUTATION: Mapping[str, str] = {
    "wechatLogin": "login",
    "phoneLogin": "login",
    "refreshSession": "login",
    "requestPhoneCode": "sms",
    "bindPhone": "sms",
}


def root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> set[tuple[str, str]]:
    """(response key, field name) of an operation's root, fragments included, each key once."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    found: set[tuple[str, str]] = set()
    seen: set[str] = set()
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                found.add(((selection.alias or selection.name).value, selection.name.value))
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                if (fragment := fragments.get(selection.name.value)) is not None:
                    pending.append(fragment.selection_set)
    return found


class OperationRateLimits(SchemaExtension):
    async def on_validate(self) -> AsyncIterator[None]:
        ec = self.execution_context
        ctx = ec.context
        if isinstance(ctx, RequestContext) and not ec.pre_execution_errors and ec.graphql_document:
            try:
                await self._count(ctx, ec.graphql_document, ec.operation_name)
            except RateLimited as exc:
                ec.pre_execution_errors = [GraphQLError(exc.message, original_error=exc)]
        yield

    @staticmethod
    async def _count(ctx: RequestContext, document: DocumentNode, operation_name: str | None) -> None:
        if ctx.transport == "websocket" and ctx.limits is not None and ctx.auth.principal is not None:
            key = principal_key(ctx.auth.principal.actor)
            if (wait := await ctx.limits.check("principal", [key])) is not None:
                ctx.retry_after = wait
                raise rate_limited(wait)
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.MUTATION:
            return
        counts: dict[str, int] = {}
        for _key, name in root_fields(document, operation.selection_set):
            if (policy := POLICY_OF_MUTATION.get(name)) is not None:
                counts[policy] = counts.get(policy, 0) + 1
        for policy, count in sorted(counts.items()):
            await ctx.rate_limit(policy, cost=count)
