"""The identity graph's bulk writes, for ingestion's ensure_users: one statement per step on PostgreSQL.

Rows go in sorted by the conflict key, so concurrent batches take the unique index's entries in
one global order and queue instead of deadlocking. SQLite keeps plain executemany statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, delete, insert, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.db.models import Identity, IdentityEdge, User
from app.domain import IdentityKey, IdentityRecord
from app.stores.bulk import Columns, array_sql, column_param, insert_rows, is_postgres
from app.stores.identity import IDENTITY_COLUMNS, identities_by_keys, identity_record


@lru_cache(maxsize=8)
def _owners_pg(joined: frozenset[str]) -> TextClause:
    """A lateral lookup per key: as a join, the planner hashes the whole identities table instead."""
    keys = ", ".join(array_sql(c, "text", c in joined) for c in ("kinds", "namespaces", "vals"))
    return text(
        f"SELECT k.kind, k.namespace, k.value, o.user_id FROM unnest({keys}) AS k(kind, namespace, value)"
        " CROSS JOIN LATERAL (SELECT i.user_id FROM identities AS i"
        " WHERE i.kind = k.kind AND i.namespace = k.namespace AND i.value = k.value LIMIT 1) AS o"
    )


async def owners_of_keys(session: AsyncSession, keys: Sequence[IdentityKey]) -> dict[IdentityKey, int]:
    """The user holding each of `keys` (absent keys are missing): one statement however many keys."""
    if not keys:
        return {}
    if not is_postgres(session):
        return {k: i.user_id for k, i in (await identities_by_keys(session, keys)).items()}
    keyring = pii.keyring_of(session)
    wanted = {(k.kind.value, k.namespace, pii.stored_value(keyring, k.kind, k.value)): k for k in keys}
    params: dict[str, Any] = {}
    joined = set()
    for name, at in (("kinds", 0), ("namespaces", 1), ("vals", 2)):
        params[name], as_text = column_param("text", [k[at] for k in wanted])
        if as_text:
            joined.add(name)
    rows = (await session.execute(_owners_pg(frozenset(joined)), params)).all()
    return {wanted[(r.kind, r.namespace, r.value)]: r.user_id for r in rows}


async def create_users(session: AsyncSession, *, count: int, at: datetime) -> list[int]:
    """Many new users in one statement, ids in creation order, at data version 1 (see create_user)."""
    if count == 0:
        return []
    if is_postgres(session):
        return list((await session.execute(_CREATE_USERS_PG, {"at": at, "n": count})).scalars())
    stmt = insert(User).returning(User.id, sort_by_parameter_order=True)
    return list((await session.execute(stmt, [{"created_at": at, "data_version": 1}] * count)).scalars())


# Every new user row is alike, so which id comes back first does not matter.
_CREATE_USERS_PG = text(
    "INSERT INTO users (created_at, data_version) SELECT CAST(:at AS timestamptz), 1"
    " FROM generate_series(1, :n) RETURNING id"
)


async def delete_users(session: AsyncSession, ids: Sequence[int]) -> None:
    """Drop users created in this transaction that lost a race for their identity."""
    if ids:
        await session.execute(delete(User).where(User.id.in_(ids)))


def _at_rest(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with values in clear, in place, as they are stored: phones as index and ciphertext."""
    keyring = pii.keyring_of(session)
    for r in rows:
        if r["kind"] in pii.SEALED_KINDS:
            r["sealed"] = pii.sealed_value(keyring, r["kind"], r["value"])
            r["value"] = pii.stored_value(keyring, r["kind"], r["value"])
        else:
            r["sealed"] = None


async def link_if_free(
    session: AsyncSession, rows: Sequence[dict[str, Any]], *, at: datetime, actor: str
) -> list[IdentityRecord]:
    """insert_identities_if_free, each new link with its history edge (one statement on PostgreSQL).

    `rows` hold values in clear; they are stored as app/pii.py says (the dicts are changed).
    """
    if not rows:
        return []
    if not is_postgres(session):
        inserted = await insert_identities_if_free(session, rows)
        await add_edges(session, inserted, action="link", at=at, actor=actor)
        return inserted
    _at_rest(session, rows)
    rows = sorted(rows, key=lambda r: (r["kind"], r["namespace"], r["value"]))
    more = {"edge_at": at, "edge_actor": actor}
    linked = await insert_rows(
        session, "identities", _LINK, rows, _LINK_IF_FREE, around=_WITH_EDGES, more=more
    )
    keyring = pii.keyring_of(session)
    return [identity_record(r, keyring) for r in linked.all()]


async def insert_identities_if_free(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> list[IdentityRecord]:
    """Insert links whose identity nobody holds yet; the ones somebody holds are skipped.

    Rows go in sorted by the conflict key: concurrent batches then take the unique index's
    entries in one global order, so overlapping writers queue instead of deadlocking.
    """
    if not rows:
        return []
    _at_rest(session, rows)
    keyring = pii.keyring_of(session)
    rows = sorted(rows, key=lambda r: (r["kind"], r["namespace"], r["value"]))
    if is_postgres(session):
        linked = await insert_rows(session, "identities", _LINK, rows, _LINK_IF_FREE)
        return [identity_record(r, keyring) for r in linked.all()]
    ins = sqlite_insert(Identity)
    stmt = ins.on_conflict_do_nothing(index_elements=["kind", "namespace", "value"]).returning(
        *IDENTITY_COLUMNS
    )
    return [identity_record(r, keyring) for r in (await session.execute(stmt, list(rows))).all()]


_LINK: Columns = (
    ("user_id", "bigint"),
    ("kind", "text"),
    ("namespace", "text"),
    ("value", "text"),
    ("sealed", "text"),
    ("verified", "boolean"),
    ("linked_at", "timestamptz"),
    ("rule", "text"),
    ("source", "text"),
    ("actor", "text"),
)
_LINK_IF_FREE = "ON CONFLICT (kind, namespace, value) DO NOTHING RETURNING " + ", ".join(
    c.name for c in IDENTITY_COLUMNS
)
_LINKED = ", ".join(c.name for c in IDENTITY_COLUMNS)
_WITH_EDGES = (
    "WITH linked AS ({insert}), edges AS (INSERT INTO identity_edges"
    " (at, action, user_id, identity_id, kind, namespace, value, sealed, rule, source, actor)"
    " SELECT CAST(:edge_at AS timestamptz), 'link', user_id, id, kind, namespace, value, sealed, rule,"
    f" source, CAST(:edge_actor AS text) FROM linked) SELECT {_LINKED} FROM linked"
)
_EDGE: Columns = (
    ("at", "timestamptz"),
    ("action", "text"),
    ("user_id", "bigint"),
    ("identity_id", "bigint"),
    ("kind", "text"),
    ("namespace", "text"),
    ("value", "text"),
    ("sealed", "text"),
    ("rule", "text"),
    ("source", "text"),
    ("actor", "text"),
    ("merge_id", "bigint"),
)


async def add_edges(
    session: AsyncSession, identities: Sequence[IdentityRecord], *, action: str, at: datetime, actor: str
) -> None:
    """History for many links at once."""
    if not identities:
        return
    keyring = pii.keyring_of(session)
    rows = [
        {
            "at": at,
            "action": action,
            "user_id": i.user_id,
            "identity_id": i.id,
            "kind": i.kind.value,
            "namespace": i.namespace,
            "value": pii.stored_value(keyring, i.kind, i.value),
            "sealed": pii.sealed_value(keyring, i.kind, i.value),
            "rule": i.rule,
            "source": i.source,
            "actor": actor,
            "merge_id": None,
        }
        for i in identities
    ]
    if is_postgres(session):
        await insert_rows(session, "identity_edges", _EDGE, rows)
    else:
        await session.execute(insert(IdentityEdge), rows)
