"""Plain domain values shared by stores, services, loaders and the GraphQL layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    MINI_PROGRAM = "MINI_PROGRAM"
    OFFICIAL_ACCOUNT = "OFFICIAL_ACCOUNT"
    APP = "APP"


class IdentityKind(StrEnum):
    PHONE = "PHONE"
    UNIONID = "UNIONID"
    OPENID = "OPENID"
    APP_USER_ID = "APP_USER_ID"
    EXTERNAL = "EXTERNAL"


NAMESPACED_KINDS = frozenset({IdentityKind.OPENID, IdentityKind.EXTERNAL})


@dataclass(frozen=True, slots=True)
class IdentityKey:
    """What makes an identity: `namespace` is '' for kinds that have none."""

    kind: IdentityKind
    namespace: str
    value: str

    def describe(self) -> str:
        ns = f"[{self.namespace}]" if self.namespace else ""
        return f"{self.kind}{ns}"


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    created_at: datetime
    # The data version as read (None: reached through a merge, or not read); app/services/changes.py.
    version: int | None = None


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    id: int
    user_id: int
    kind: IdentityKind
    namespace: str
    value: str
    verified: bool
    linked_at: datetime
    rule: str
    source: str
    actor: str
    # How channel stores name this identity (app/pii.py): a phone by its blind index.
    ref: str

    @property
    def key(self) -> IdentityKey:
        return IdentityKey(self.kind, self.namespace, self.value)

    @property
    def linked_by(self) -> str:
        return f"{self.rule}: {self.source}"


@dataclass(frozen=True, slots=True)
class EdgeRecord:
    """One entry of the graph's append-only history."""

    id: int
    user_id: int
    action: str
    kind: IdentityKind
    namespace: str
    value: str
    rule: str
    source: str
    actor: str
    at: datetime
    merge_id: int | None
    ref: str  # the identity as channel stores name it (app/pii.py)


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """`id` is None for a merge a dry run would make."""

    id: int | None
    survivor_id: int
    absorbed_id: int
    at: datetime
    undone_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """What a link did (or, in a dry run, would do); `user` is None when it would create one."""

    user: UserRecord | None
    merges: tuple[MergeRecord, ...]
    dry_run: bool
