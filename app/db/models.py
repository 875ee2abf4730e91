"""Hub-store tables: users, the identity graph and its history, API keys, the permission center."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.types import BigId, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person; `merged_into_id` points at the user that absorbed this one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id"), nullable=True, index=True
    )
    # Bumped in the transaction of every change to what the user's view shows (app/services/changes.py).
    data_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    # Set by eraseUser: the row stays as an anonymous tombstone (the consent ledger's proof points
    # at it) and resolves to nobody.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Identity(Base):
    """A current link; the two unique constraints are the ownership rules of the graph."""

    __tablename__ = "identities"
    __table_args__ = (
        # An identity belongs to at most one user.
        UniqueConstraint("kind", "namespace", "value", name="uq_identities_kind_namespace_value"),
        # A user holds at most one identity per (kind, namespace).
        UniqueConstraint("user_id", "kind", "namespace", name="uq_identities_user_kind_namespace"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # '' when the kind has no namespace, so the unique constraints hold on every backend.
    namespace: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    # A phone's blind index (the constraints hold on it), any other kind's value (app/pii.py).
    value: Mapped[str] = mapped_column(String(128), nullable=False)
    # A phone's ciphertext (app/sealing.py); NULL for kinds kept in clear.
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    rule: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)


class IdentityEdge(Base):
    """Append-only history of every link, unlink and move: why, when and by whom."""

    __tablename__ = "identity_edges"
    __table_args__ = (Index("ix_identity_edges_user_id_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False)
    identity_id: Mapped[int] = mapped_column(BigId, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    namespace: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[str] = mapped_column(String(128), nullable=False)  # as in `identities`
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    merge_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("merges.id"), nullable=True)


class Merge(Base):
    """A merge of `absorbed_id` into `survivor_id`, undone when `undone_at` is set."""

    __tablename__ = "merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survivor_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False, index=True)
    absorbed_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    undone_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class MergeIdentity(Base):
    """The identities an absorbed user brought into a merge: what an unmerge gives back."""

    __tablename__ = "merge_identities"

    merge_id: Mapped[int] = mapped_column(BigId, ForeignKey("merges.id"), primary_key=True)
    identity_id: Mapped[int] = mapped_column(BigId, primary_key=True)


class ApiKey(Base):
    """A service or operator key; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    roles: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RefreshToken(Base):
    """An end user's refresh token, kept as its SHA-256; each refresh replaces it with the next of its
    family, and a token used twice revokes the family (it was stolen, or the client replayed it)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    family: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignIn(Base):
    """A sign-in through Troika (wechatLogin, phoneLogin): which identity signed in, where and when.

    Keyed by the identity's ref like a channel's records, so it follows the identity through merges
    and unmerges; erasure deletes it with the person's identities."""

    __tablename__ = "sign_ins"
    __table_args__ = (
        Index("ix_sign_ins_identity_ref_at", "identity_ref", "at"),
        Index("ix_sign_ins_channel_at", "channel", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    identity_ref: Mapped[str] = mapped_column(String(220), nullable=False)
    channel: Mapped[str] = mapped_column(String(24), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Change(Base):
    """The outbox: one row per (user, topic) changed, written in the change's own transaction.

    `id` is the feed's cursor: gap-free and in commit order, because writers take one lock to
    append (see app/stores/changes.py), so a reader that has seen cursor N has seen all before it.
    """

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigId, nullable=False)
    topic: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class ChangesHead(Base):
    """One row (id 1): the newest cursor handed out; PostgreSQL appenders lock it to number theirs."""

    __tablename__ = "changes_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(BigId, nullable=False)


class ConsentEntry(Base):
    """The consent ledger: append-only, one row per setting of one (purpose, channel) cell.

    `channel` is '' for purposes that hold in every channel. `granted` NULL means "no setting"
    (an unmerge took back a value the absorbed user had brought). Database triggers refuse
    UPDATE and DELETE, so the ledger is a faithful record of what each user agreed to and when.
    """

    __tablename__ = "consent_entries"
    __table_args__ = (Index("ix_consent_entries_user_cell", "user_id", "purpose", "channel", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False)
    purpose: Mapped[str] = mapped_column(String(24), nullable=False)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    granted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    source_channel: Mapped[str] = mapped_column(String(32), nullable=False)
    policy_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    cause: Mapped[str] = mapped_column(String(16), nullable=False)
    merge_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("merges.id"), nullable=True)


class Membership(Base):
    """A membership opened in one channel; at most one open per (user, channel)."""

    __tablename__ = "memberships"
    __table_args__ = (
        Index(
            "uq_memberships_open_user_channel",
            "user_id",
            "source_channel",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False, index=True)
    tier: Mapped[str] = mapped_column(String(32), nullable=False)
    source_channel: Mapped[str] = mapped_column(String(32), nullable=False)
    since: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    granted_by: Mapped[str] = mapped_column(String(64), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class PointsEntry(Base):
    """The points ledger: append-only; a balance is the sum of a person's entries."""

    __tablename__ = "points_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False, index=True)
    delta: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    source_channel: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RoleGrant(Base):
    """A staff role granted centrally; at most one active grant per (user, role, scope)."""

    __tablename__ = "role_grants"
    __table_args__ = (
        Index(
            "uq_role_grants_active_user_role_scope",
            "user_id",
            "role",
            "scope",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(64), nullable=False)
    # '' for a role that holds everywhere.
    scope: Mapped[str] = mapped_column(String(64), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    granted_by: Mapped[str] = mapped_column(String(64), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditEntry(Base):
    """The audit log: append-only (triggers refuse UPDATE and DELETE); who did what to whom, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target_user_id_id", "target_user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    principal_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(48), nullable=False, index=True)
    # No foreign key: the log outlives what it names (an erased user's entries stay).
    target_user_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # Never identity values, phones or tokens: the log is append-only, so erasure cannot reach it.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # The request that did it (the id its errors and log lines quote); NULL outside a request.
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class WechatSession(Base):
    """The latest WeChat session key of one mini-program openid: server-side only, sealed at rest.

    The legacy `encryptedData` decrypt needs it; it is never returned to anyone.
    """

    __tablename__ = "wechat_sessions"
    __table_args__ = (UniqueConstraint("appid", "openid", name="uq_wechat_sessions_appid_openid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    appid: Mapped[str] = mapped_column(String(64), nullable=False)
    openid: Mapped[str] = mapped_column(String(128), nullable=False)
    sealed_key: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WechatInbox(Base):
    """Every verified official-account push, stored before it is answered and processed after.

    `dedupe_key` is the push's identity (MsgId, or FromUserName|CreateTime|Event), so WeChat's
    retries land once; (timestamp, nonce) are the signature's, so a signature is used once.
    """

    __tablename__ = "wechat_inbox"
    __table_args__ = (
        UniqueConstraint("appid", "dedupe_key", name="uq_wechat_inbox_appid_dedupe_key"),
        UniqueConstraint("appid", "timestamp", "nonce", name="uq_wechat_inbox_appid_timestamp_nonce"),
        Index("ix_wechat_inbox_status_id", "status", "id"),
        Index("ix_wechat_inbox_status_processed_at", "status", "processed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    appid: Mapped[str] = mapped_column(String(64), nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    timestamp: Mapped[str] = mapped_column(String(16), nullable=False)
    nonce: Mapped[str] = mapped_column(String(64), nullable=False)
    # The push as WeChat meant it: the decrypted XML in safe mode.
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # pending -> processing -> done | retrying (the job queue tries again) | failed (for good,
    # `outcome` says why; `troika wechat inbox --retry` puts it back to pending).
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)


class PhoneCode(Base):
    """An SMS code sent to a phone: only keyed hashes are kept (the phone's is its blind index);
    it expires and is used once."""

    __tablename__ = "phone_codes"
    __table_args__ = (Index("ix_phone_codes_phone_hash_id", "phone_hash", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    phone_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)


class WechatSyncState(Base):
    """Where a resumable WeChat backfill (the follower list) got to."""

    __tablename__ = "wechat_sync_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Audience(Base):
    """A saved, named audience: its condition tree (app/services/audience_conditions.py) as JSON."""

    __tablename__ = "audiences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    condition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)
    # Set by a save: the outbox cursor its full evaluation started from, until the membership
    # follower has re-evaluated whoever changed since (app/services/audience_live.py).
    live_from: Mapped[int | None] = mapped_column(BigId, nullable=True)


class Campaign(Base):
    """A push to a saved audience's recipients, sent in the background (app/services/campaigns.py)."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    audience: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    template_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content: Mapped[Any] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    targeted: Mapped[int] = mapped_column(Integer, nullable=False)
    excluded: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CampaignDelivery(Base):
    """One recipient of a campaign, written before WeChat is called: pending, sending, sent, failed
    or skipped (with the reason); `batch` numbers a mass send's call (its clientmsgid)."""

    __tablename__ = "campaign_deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_id", name="uq_campaign_deliveries_campaign_id"),
        Index("ix_campaign_deliveries_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaigns.id"), nullable=False)
    user_id: Mapped[int] = mapped_column(BigId, nullable=False)
    openid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
