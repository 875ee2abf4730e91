"""Channel stores without phones in clear: refs by blind index, sealed raw identities and dead letters.

- every `identity_ref` of a phone ("PHONE||+86…") becomes "PHONE||<blind index>";
- ch_records: a phone record's `payload.identity.value` moves, sealed, into `identity_sealed`;
- ch_dead_letters: the payload is sealed whole; `identity_ref` names the identity when the
  envelope's is readable, so erasure finds a person's rejected records; reasons lose phones;
- indexes on `identity_ref` of ch_records and ch_dead_letters (erasure and export read by ref).

The downgrade puts phones back where it can: refs of phones it finds in `identity_sealed` (a store
whose raw records are gone keeps the index in its refs).

Revision ID: 20261125_0007_channel
Revises: 20261125_0002
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.domain import IdentityKind
from app.logscrub import scrub
from app.pii import PHONE, ref_of
from app.sealing import Keyring
from app.services.identity_rules import make_key
from migrations.keys import keyring, settings

revision: str = "20261125_0007_channel"
down_revision: str | None = "20261125_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
DEAD_LETTER = "dead-letter"
REF_TABLES = ("ch_records", "ch_orders", "ch_cart_items", "ch_events")
CLEAR_PHONE_REFS = "PHONE||+%"


def upgrade() -> None:
    with op.batch_alter_table("ch_records") as batch:
        batch.add_column(sa.Column("identity_sealed", sa.Text(), nullable=True))
        batch.create_index("ix_ch_records_identity_ref", ["identity_ref"])
    with op.batch_alter_table("ch_dead_letters") as batch:
        batch.add_column(sa.Column("identity_ref", sa.String(length=220), nullable=True))
        batch.create_index("ix_ch_dead_letters_identity_ref", ["identity_ref"])
    _seal_raw_phones()
    _index_phone_refs()
    _seal_dead_letters()


def downgrade() -> None:
    _open_dead_letters()
    _clear_phone_refs()
    with op.batch_alter_table("ch_dead_letters") as batch:
        batch.drop_index("ix_ch_dead_letters_identity_ref")
        batch.drop_column("identity_ref")
    with op.batch_alter_table("ch_records") as batch:
        batch.drop_index("ix_ch_records_identity_ref")
        batch.drop_column("identity_sealed")


def _rows(sql: str, **params: Any) -> list[sa.Row[tuple[Any, ...]]]:
    return list(op.get_bind().execute(sa.text(sql), params).all())


def _update(sql: str, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        op.get_bind().execute(sa.text(sql), rows[i : i + BATCH])


def _payload(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return loaded


def _seal_raw_phones() -> None:
    rows = _rows("SELECT id, payload FROM ch_records WHERE identity_ref LIKE :p", p=CLEAR_PHONE_REFS)
    if not rows:
        return
    ring = keyring()
    out = []
    for r in rows:
        payload = _payload(r.payload)
        phone = str(payload["identity"]["value"])
        payload["identity"]["value"] = None
        out.append(
            {
                "id": r.id,
                "payload": json.dumps(payload, ensure_ascii=False),
                "s": ring.seal(phone, purpose=PHONE),
            }
        )
    _update("UPDATE ch_records SET payload = :payload, identity_sealed = :s WHERE id = :id", out)


def _index_phone_refs() -> None:
    ring: Keyring | None = None
    for table in REF_TABLES:
        refs = _rows(
            f"SELECT DISTINCT identity_ref FROM {table} WHERE identity_ref LIKE :p", p=CLEAR_PHONE_REFS
        )
        if not refs:
            continue
        ring = ring or keyring()
        _update(
            f"UPDATE {table} SET identity_ref = :new WHERE identity_ref = :old",
            [
                {"old": r.identity_ref, "new": "PHONE||" + ring.index(r.identity_ref[7:], purpose=PHONE)}
                for r in refs
            ],
        )


def _seal_dead_letters() -> None:
    rows = _rows("SELECT id, payload, reason FROM ch_dead_letters WHERE identity_ref IS NULL")
    if not rows:
        return
    ring = keyring()
    region = settings().phone_default_region
    out = []
    for r in rows:
        if ring.try_unseal(r.payload, purpose=DEAD_LETTER) is not None:
            continue  # sealed already (an interrupted run)
        out.append(
            {
                "id": r.id,
                "payload": ring.seal(r.payload, purpose=DEAD_LETTER),
                "reason": scrub(r.reason),
                "ref": _ref_of_text(ring, r.payload, region),
            }
        )
    _update(
        "UPDATE ch_dead_letters SET payload = :payload, reason = :reason, identity_ref = :ref WHERE id = :id",
        out,
    )


def _ref_of_text(ring: Keyring, text: str, region: str) -> str | None:
    """The ref of a rejected record's identity, when its text is an envelope naming a valid one."""
    try:
        ident = json.loads(text).get("identity")
        key = make_key(
            IdentityKind(ident["kind"]), str(ident["value"]), ident.get("namespace"), phone_region=region
        )
    except Exception:  # not JSON, not an envelope, not a valid identity: no ref, as at ingestion
        return None
    return ref_of(ring, key)


def _open_dead_letters() -> None:
    rows = _rows("SELECT id, payload FROM ch_dead_letters")
    if not rows:
        return
    ring = keyring()
    opened = [(r.id, ring.try_unseal(r.payload, purpose=DEAD_LETTER)) for r in rows]
    _update(
        "UPDATE ch_dead_letters SET payload = :payload WHERE id = :id",
        [{"id": i, "payload": p} for i, p in opened if p is not None],
    )


def _clear_phone_refs() -> None:
    rows = _rows(
        "SELECT id, identity_ref, identity_sealed, payload FROM ch_records WHERE identity_sealed IS NOT NULL"
    )
    if not rows:
        return
    ring = keyring()
    phones: dict[str, str] = {}
    payloads = []
    for r in rows:
        phone = ring.unseal(r.identity_sealed, purpose=PHONE)
        phones[r.identity_ref] = f"PHONE||{phone}"
        payload = _payload(r.payload)
        payload["identity"]["value"] = phone
        payloads.append({"id": r.id, "payload": json.dumps(payload, ensure_ascii=False)})
    _update("UPDATE ch_records SET payload = :payload WHERE id = :id", payloads)
    for table in REF_TABLES:
        _update(
            f"UPDATE {table} SET identity_ref = :new WHERE identity_ref = :old",
            [{"old": old, "new": new} for old, new in phones.items()],
        )
