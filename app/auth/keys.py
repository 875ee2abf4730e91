"""API keys: random, shown once, stored as a SHA-256 (they carry enough entropy not to need a KDF)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal, PrincipalKind, Role
from app.db.models import ApiKey
from app.db.types import utcnow
from app.domain import Channel
from app.errors import InvalidInput
from app.services import audit

_PREFIX = {PrincipalKind.SERVICE: "trk_svc_", PrincipalKind.OPERATOR: "trk_op_"}


def hash_key(raw: str) -> str:
    """Keys are stored only as this digest."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    raw: str
    principal: Principal


async def create_key(
    session: AsyncSession,
    *,
    kind: PrincipalKind,
    channel: Channel | None = None,
    roles: frozenset[Role] = frozenset(),
    name: str = "",
    actor: str = "system",
) -> NewKey:
    """Store a new key's hash, and an audit entry; the raw key is returned to be shown once."""
    if kind is PrincipalKind.SERVICE:
        if channel is None or roles:
            raise InvalidInput("a service key needs a channel and takes no roles")
    elif kind is PrincipalKind.OPERATOR:
        if channel is not None or not roles:
            raise InvalidInput("an operator key needs at least one role and takes no channel")
    else:
        raise InvalidInput("end users sign in with session tokens, not API keys")
    raw = _PREFIX[kind] + secrets.token_urlsafe(32)
    key_id = (
        await session.execute(
            insert(ApiKey)
            .values(
                key_hash=hash_key(raw),
                prefix=raw[: len(_PREFIX[kind]) + 4],
                kind=kind.value,
                channel=channel.value if channel else None,
                roles=",".join(sorted(r.value for r in roles)),
                name=name,
                created_at=utcnow(),
            )
            .returning(ApiKey.id)
        )
    ).scalar_one()
    details = {
        "keyId": key_id,
        "kind": kind.value,
        "channel": channel.value if channel else None,
        "roles": sorted(r.value for r in roles),
        "name": name,
    }
    await audit.record(session, actor=actor, action="key.create", user_id=None, details=details)
    return NewKey(raw, Principal(kind=kind, key_id=key_id, channel=channel, roles=roles))


_LIVE_KEY = select(ApiKey.id, ApiKey.kind, ApiKey.channel, ApiKey.roles).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


async def principal_for_key(session: AsyncSession, raw: str) -> Principal | None:
    """The principal of a live key, or None."""
    row = (await session.execute(_LIVE_KEY, {"key_hash": hash_key(raw)})).first()
    if row is None:
        return None
    return Principal(
        kind=PrincipalKind(row.kind),
        key_id=row.id,
        channel=Channel(row.channel) if row.channel else None,
        roles=frozenset(Role(r) for r in row.roles.split(",") if r),
    )


@dataclass(frozen=True)
class KeyInfo:
    """A key as operators see it: never the key, only its first characters."""

    id: int
    prefix: str
    kind: str
    channel: str | None
    roles: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


async def list_keys(session: AsyncSession) -> list[KeyInfo]:
    rows = await session.execute(
        select(
            ApiKey.id,
            ApiKey.prefix,
            ApiKey.kind,
            ApiKey.channel,
            ApiKey.roles,
            ApiKey.name,
            ApiKey.created_at,
            ApiKey.revoked_at,
        ).order_by(ApiKey.id)
    )
    return [KeyInfo(*row) for row in rows]


async def find_keys(session: AsyncSession, ref: str) -> list[KeyInfo]:
    """Keys by id, by the key itself, or by its first characters (as `troika keys list` shows)."""
    ref = ref.strip()
    keys = await list_keys(session)
    if ref.isdigit():
        return [k for k in keys if k.id == int(ref)]
    if ref.startswith("trk_"):
        by_hash = (await session.execute(select(ApiKey.id).where(ApiKey.key_hash == hash_key(ref)))).scalar()
        if by_hash is not None:
            return [k for k in keys if k.id == by_hash]
    if len(ref) < 4:
        return []
    return [k for k in keys if k.prefix.startswith(ref) or ref.startswith(k.prefix)]


async def revoke_key(session: AsyncSession, key_id: int, *, actor: str = "system") -> bool:
    """Revoke a live key (audited); False when it was revoked already."""
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    revoked = bool(getattr(result, "rowcount", 0))
    if revoked:
        await audit.record(session, actor=actor, action="key.revoke", user_id=None, details={"keyId": key_id})
    return revoked


async def revoked_since(session: AsyncSession, since: datetime) -> list[int]:
    """Keys revoked at or after `since` (running servers forget them)."""
    rows = await session.execute(select(ApiKey.id).where(ApiKey.revoked_at >= since))
    return list(rows.scalars())
