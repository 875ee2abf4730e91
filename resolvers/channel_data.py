"""Channel-data resolvers: the unified user's orders, cart, behaviour and interests; ingestion."""

from __future__ import annotations

from collections.abc import Sequence

from app.auth.principal import PrincipalKind
from app.context import RequestContext
from app.cursors import decode_cursor
from app.domain import Channel, UserRecord
from app.domain.channel_data import CartRow, EventRow, Interest, OrderRow, ReservationRow
from app.errors import Forbidden, InvalidInput
from app.ingest.service import Ingestor, IngestReport
from loaders.channel_data import Page
from resolvers.paging import page_size


def status_code_of(ctx: RequestContext, name: str) -> int:
    """The dictionary's code for a standard status name."""
    for code, known in ctx.dictionary.status_names.items():
        if known == name:
            return code
    raise InvalidInput(f"unknown order status {name}", field="status")


async def orders(
    ctx: RequestContext,
    user: UserRecord,
    *,
    channel: Channel | None,
    status: str | None,
    first: int | None,
    after: str | None,
) -> Page[OrderRow]:
    """Orders of every channel identity of the user, newest first, keyset-paged."""
    loader = ctx.loaders.orders_by_user_id(
        channel=channel,
        status_code=None if status is None else status_code_of(ctx, status),
        first=page_size(ctx, first, default=20),
        before=decode_cursor(after),
    )
    return await loader.load(user.id)


async def reservations(
    ctx: RequestContext, user: UserRecord, *, status: str | None, first: int | None, after: str | None
) -> Page[ReservationRow]:
    """Reservations of every channel identity of the user, newest booking first, keyset-paged."""
    code = None
    if status is not None:
        names = ctx.dictionary.reservation_status_names
        code = next((c for c, known in names.items() if known == status), None)
        if code is None:
            raise InvalidInput(f"unknown reservation status {status}", field="status")
    loader = ctx.loaders.reservations_by_user_id(
        status_code=code, first=page_size(ctx, first, default=20), before=decode_cursor(after)
    )
    return await loader.load(user.id)


async def cart(ctx: RequestContext, user: UserRecord) -> list[CartRow]:
    return await ctx.loaders.cart_by_user_id.load(user.id)


async def behavior(
    ctx: RequestContext,
    user: UserRecord,
    *,
    types: Sequence[str] | None,
    channel: Channel | None,
    first: int | None,
    after: str | None,
) -> Page[EventRow]:
    """Behaviour of every channel identity of the user, newest first, keyset-paged."""
    loader = ctx.loaders.behavior_by_user_id(
        channel=channel,
        types=tuple(sorted(set(types))) if types else None,
        first=page_size(ctx, first, default=50),
        before=decode_cursor(after),
    )
    return await loader.load(user.id)


async def interests(ctx: RequestContext, user: UserRecord) -> list[Interest]:
    loader = ctx.loaders.interests_by_user_id
    found = await loader.load(user.id)
    if user.id in loader.from_articles:
        ctx.uncacheable()  # article tags change with no version of this user's moving
    return found


async def ingest(ctx: RequestContext, *, channel: Channel, records: Sequence[object]) -> IngestReport:
    """Only the channel's own service ingests its records."""
    principal = ctx.principal
    if principal.kind is not PrincipalKind.SERVICE or principal.channel is not channel:
        raise Forbidden(f"only the {channel.value} service key may ingest {channel.value} records")
    await ctx.reads.close()  # no read connection held while the batch waits for its own
    report = await Ingestor(ctx.db, ctx.dictionary, ctx.settings).ingest(
        channel, list(records), actor=principal.actor
    )
    ctx.refresh()
    return report
