"""SQL for sign-ins through Troika: written with the login, read per identity or per channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import SignIn
from app.domain import Channel


@dataclass(frozen=True, slots=True)
class SignInSpan:
    """When one identity first and last signed in, in one channel."""

    identity_ref: str
    channel: Channel
    first_at: datetime
    last_at: datetime


async def record(session: AsyncSession, *, identity_ref: str, channel: Channel, at: datetime) -> None:
    """One sign-in, in the login's own transaction."""
    await session.execute(insert(SignIn).values(identity_ref=identity_ref, channel=channel.value, at=at))


_SPANS = (
    select(SignIn.identity_ref, SignIn.channel, func.min(SignIn.at), func.max(SignIn.at))
    .where(SignIn.identity_ref.in_(bindparam("refs", expanding=True)))
    .group_by(SignIn.identity_ref, SignIn.channel)
)


async def spans_for_refs(session: AsyncSession, refs: Sequence[str]) -> list[SignInSpan]:
    """The first and last sign-in of each identity in each channel."""
    if not refs:
        return []
    rows = (await session.execute(_SPANS, {"refs": list(refs)})).all()
    return [SignInSpan(ref, Channel(ch), first, last) for ref, ch, first, last in rows]


async def for_refs(session: AsyncSession, refs: Sequence[str]) -> list[tuple[Channel, datetime]]:
    """Every sign-in of these identities, oldest first (the person's export)."""
    if not refs:
        return []
    stmt = select(SignIn.channel, SignIn.at).where(SignIn.identity_ref.in_(list(refs))).order_by(SignIn.at)
    return [(Channel(ch), at) for ch, at in (await session.execute(stmt)).all()]


async def delete_for_refs(session: AsyncSession, refs: Sequence[str]) -> int:
    """Erasure: every sign-in of these identities."""
    if not refs:
        return 0
    result = await session.execute(delete(SignIn).where(SignIn.identity_ref.in_(list(refs))))
    return int(result.rowcount)  # type: ignore[attr-defined]
