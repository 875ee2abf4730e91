"""Plain values of the permission center, shared by stores, services, loaders and the GraphQL layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.domain import Channel


class Purpose(StrEnum):
    LOCATION = "LOCATION"
    PUSH = "PUSH"
    MARKETING = "MARKETING"
    LOCAL_STORAGE = "LOCAL_STORAGE"
    PERSONALIZATION = "PERSONALIZATION"


# Set per channel: one ledger cell per (purpose, channel). The others hold in every channel: one
# cell with no channel.
PER_CHANNEL = frozenset({Purpose.PUSH, Purpose.MARKETING})

Cell = tuple[Purpose, Channel | None]


class Cause(StrEnum):
    """Why a ledger entry exists."""

    SET = "set"  # the user's own choice, as a caller recorded it
    CASCADE = "cascade"  # a MARKETING withdrawal in one channel, carried to the others
    MERGE = "merge"  # the stricter value of a user merged in
    UNMERGE = "unmerge"  # the survivor's own value back after an unmerge


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One setting as a caller asks for it."""

    purpose: Purpose
    channel: Channel | None
    granted: bool
    source_channel: Channel
    policy_version: str | None


@dataclass(frozen=True, slots=True)
class ConsentEntryRecord:
    """One ledger entry; `granted` None means "no setting" (cleared by an unmerge)."""

    id: int
    user_id: int
    purpose: Purpose
    channel: Channel | None
    granted: bool | None
    source_channel: Channel
    policy_version: str | None
    effective_at: datetime
    actor: str
    cause: Cause
    merge_id: int | None

    @property
    def cell(self) -> Cell:
        return (self.purpose, self.channel)


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    id: int
    user_id: int
    tier: str
    source_channel: Channel
    since: datetime
    expires_at: datetime | None
    granted_by: str

    def active_at(self, at: datetime) -> bool:
        return self.since <= at and (self.expires_at is None or self.expires_at > at)


@dataclass(frozen=True, slots=True)
class RoleGrantRecord:
    id: int
    user_id: int
    role: str
    scope: str | None  # None: the role holds everywhere
    granted_at: datetime
    granted_by: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    principal_kind: str
    action: str
    target_user_id: int | None
    details: dict[str, Any]
    trace_id: str | None = None
