"""Membership rules: one open membership per channel, the highest active tier holds in every channel.

Memberships and points are read across the person's merge cluster (the survivor and every user
merged into it), never copied: a merge shows both people's memberships and points at once, and an
unmerge gives each side its own back without moving a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.domain import Channel, UserRecord
from app.domain.entitlements import MembershipRecord
from app.entitlements.catalogue import Benefit, Catalogue
from app.errors import DomainError, InvalidInput, NotFound
from app.services import audit
from app.services.changes import Topic, users_changed
from app.services.users import lock_active_user, lock_user_to_change
from app.stores import memberships as store

MAX_POINTS_DELTA = 1_000_000
REASON_MAX = 200


def active(
    memberships: Sequence[MembershipRecord], catalogue: Catalogue, at: datetime
) -> list[MembershipRecord]:
    """Memberships in force at `at` whose tier the catalogue still knows."""
    return [m for m in memberships if m.active_at(at) and catalogue.tier(m.tier) is not None]


def highest(
    memberships: Sequence[MembershipRecord], catalogue: Catalogue, at: datetime
) -> MembershipRecord | None:
    """The highest active tier across channels; of equals, the one that lasts longest."""
    candidates = active(memberships, catalogue, at)
    if not candidates:
        return None

    def strength(m: MembershipRecord) -> tuple[int, bool, datetime, int]:
        tier = catalogue.tier(m.tier)
        assert tier is not None
        return (tier.rank, m.expires_at is None, m.expires_at or m.since, -m.id)

    return max(candidates, key=strength)


def benefits(memberships: Sequence[MembershipRecord], catalogue: Catalogue, at: datetime) -> list[Benefit]:
    """Every benefit of every active membership (each applies in every channel), catalogue order."""
    held: set[str] = set()
    for m in active(memberships, catalogue, at):
        tier = catalogue.tier(m.tier)
        assert tier is not None
        held.update(b.code for b in tier.benefits)
    return [b for code, b in catalogue.benefits.items() if code in held]


def next_expiry(
    memberships: Sequence[MembershipRecord], catalogue: Catalogue, at: datetime
) -> datetime | None:
    """When the answer about these memberships next changes by time alone."""
    ends = [m.expires_at for m in active(memberships, catalogue, at) if m.expires_at is not None]
    return min(ends, default=None)


def _reason(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > REASON_MAX:
        raise InvalidInput(f"`reason` must be 1 to {REASON_MAX} characters", field="reason")
    return value


class Memberships:
    """Membership and points writes inside the caller's transaction; it flushes, never commits."""

    def __init__(self, session: AsyncSession, catalogue: Catalogue) -> None:
        self.session = session
        self.catalogue = catalogue

    async def _open(self, user_id: int, channel: Channel) -> list[MembershipRecord]:
        found = (await store.open_by_user_ids(self.session, [user_id])).get(user_id, [])
        return [m for m in found if m.source_channel is channel]

    async def grant(
        self, user_id: int, *, tier: str, source_channel: Channel, expires_at: datetime | None, actor: str
    ) -> UserRecord:
        """Open a membership in a channel; the same tier again renews, another tier replaces it."""
        if self.catalogue.tier(tier) is None:
            known = ", ".join(self.catalogue.tiers)
            raise DomainError(
                f"unknown tier {tier!r}; the catalogue has {known}", code="UNKNOWN_TIER", tier=tier
            )
        s, at = self.session, utcnow()
        if expires_at is not None and expires_at <= at:
            raise InvalidInput("`expiresAt` must be in the future", field="expiresAt")
        user = await lock_user_to_change(s, user_id, topics=[Topic.MEMBERSHIP])  # a grant always changes
        same = await self._open(user.id, source_channel)
        renewal = next((m for m in same if m.tier == tier and m.active_at(at) and m.user_id == user.id), None)
        details: dict[str, object] = {
            "tier": tier,
            "sourceChannel": source_channel.value,
            "expiresAt": expires_at.isoformat() if expires_at else None,
        }
        if renewal is not None:
            await store.renew(s, renewal.id, expires_at=expires_at)
            action = "membership.renew"
        else:
            for old in same:
                await store.end(s, old.id, at=at, actor=actor, reason="replaced")
            await store.insert_membership(
                s,
                user_id=user.id,
                tier=tier,
                source_channel=source_channel,
                since=at,
                expires_at=expires_at,
                actor=actor,
            )
            action = "membership.grant"
            details["replaced"] = [m.tier for m in same]
        await audit.record(s, actor=actor, action=action, user_id=user.id, details=details)
        return user

    async def revoke(
        self, user_id: int, *, source_channel: Channel, reason: str | None, actor: str
    ) -> UserRecord:
        """End the membership opened in a channel; MEMBERSHIP_NOT_FOUND if there is none."""
        s = self.session
        note = _reason(reason) if reason is not None else None
        user = await lock_active_user(s, user_id)
        same = await self._open(user.id, source_channel)
        if not same:
            raise NotFound(
                f"user {user.id} holds no membership opened in {source_channel}", code="MEMBERSHIP_NOT_FOUND"
            )
        at = utcnow()
        for old in same:
            await store.end(s, old.id, at=at, actor=actor, reason="revoked")
        details = {"sourceChannel": source_channel.value, "tiers": [m.tier for m in same], "reason": note}
        await audit.record(s, actor=actor, action="membership.revoke", user_id=user.id, details=details)
        await users_changed(s, [user.id], topics=[Topic.MEMBERSHIP])
        return user

    async def adjust_points(
        self, user_id: int, *, delta: int, reason: str, source_channel: Channel, actor: str
    ) -> UserRecord:
        """Add or spend points; a balance never goes below zero (INSUFFICIENT_POINTS)."""
        if delta == 0 or abs(delta) > MAX_POINTS_DELTA:
            raise InvalidInput(
                f"`points` must be non-zero and at most {MAX_POINTS_DELTA} either way", field="points"
            )
        note = _reason(reason)
        s = self.session
        user = await lock_active_user(s, user_id)
        balance = (await store.points_by_user_ids(s, [user.id])).get(user.id, 0)
        if balance + delta < 0:
            raise DomainError(
                f"user {user.id} has {balance} points; cannot spend {-delta}",
                code="INSUFFICIENT_POINTS",
                balance=balance,
            )
        await store.add_points(
            s,
            user_id=user.id,
            delta=delta,
            reason=note,
            source_channel=source_channel,
            actor=actor,
            at=utcnow(),
        )
        details = {
            "points": delta,
            "balance": balance + delta,
            "reason": note,
            "sourceChannel": source_channel.value,
        }
        await audit.record(s, actor=actor, action="points.adjust", user_id=user.id, details=details)
        await users_changed(s, [user.id], topics=[Topic.MEMBERSHIP])
        return user
