"""SQL for end users' refresh tokens (rows hold only the token's SHA-256)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RefreshToken


@dataclass(frozen=True, slots=True)
class RefreshRow:
    id: int
    family: str
    user_id: int
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


async def add(
    session: AsyncSession, *, token_hash: str, family: str, user_id: int, at: datetime, expires_at: datetime
) -> None:
    await session.execute(
        insert(RefreshToken).values(
            token_hash=token_hash, family=family, user_id=user_id, created_at=at, expires_at=expires_at
        )
    )


async def by_hash_for_update(session: AsyncSession, token_hash: str) -> RefreshRow | None:
    """The token's row, locked until the transaction ends (racing refreshes of one token queue)."""
    row = (
        await session.execute(
            select(
                RefreshToken.id,
                RefreshToken.family,
                RefreshToken.user_id,
                RefreshToken.expires_at,
                RefreshToken.used_at,
                RefreshToken.revoked_at,
            )
            .where(RefreshToken.token_hash == token_hash)
            .with_for_update()
        )
    ).first()
    return None if row is None else RefreshRow(*row)


async def mark_used(session: AsyncSession, token_id: int, at: datetime) -> None:
    await session.execute(update(RefreshToken).where(RefreshToken.id == token_id).values(used_at=at))


async def revoke_family(session: AsyncSession, family: str, at: datetime) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def revoke_user(session: AsyncSession, user_id: int, at: datetime) -> int:
    """Every unrevoked token of the user; the number of families ended."""
    families = (
        await session.execute(
            select(RefreshToken.family)
            .where(
                RefreshToken.user_id == user_id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > at,
            )
            .distinct()
        )
    ).scalars()
    ended = list(families)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return len(ended)
