"""Queries read on a replica when the hub has some (app/db/replicas.py); nothing else does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension

from app.context import RequestContext
from app.db.replicas import Replicas
from loaders import Loaders


class ReplicaReads(SchemaExtension):
    """GraphQL queries read where Replicas says; mutations and subscriptions stay on the primary."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        ctx = context.context
        replicas = Replicas.of(ctx.db) if isinstance(ctx, RequestContext) else None
        if replicas is None:
            yield
            return
        kind = _kind(context)
        principal = ctx.auth.principal
        actor = principal.actor if principal is not None else None
        if kind == "query":
            user_id = principal.user_id if principal is not None else None
            ctx.loaders = Loaders(
                await replicas.for_query(actor, user_id), ctx.dictionary, ctx.settings, ctx.reads
            )
        yield
        if kind == "mutation" and principal is not None and principal.user_id is None:
            replicas.wrote(principal.actor)  # a key: its next queries here read the primary a while


def _kind(context: object) -> str | None:
    with contextlib.suppress(Exception):
        return str(context.operation_type.value)  # type: ignore[attr-defined]
    return None
