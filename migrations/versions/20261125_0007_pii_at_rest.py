"""PII at rest, audit trace ids, erasure: phones become a blind index and a ciphertext.

- identities and identity_edges: `sealed` (a phone's AES-GCM ciphertext); a phone's `value`
  becomes its blind index, so the ownership constraints keep holding, on the index.
- wechat_sessions: session keys sealed again in the keyring's format (kid-prefixed).
- phone_codes: codes were hashed with the old key; the few still pending are dropped (a code
  lives five minutes: ask for another).
- users.erased_at: an erased person's tombstone (the consent ledger's proof points at it).
- audit_log.trace_id: the request that made the entry.
- points_entries: still append-only, except that erasure deletes an erased user's entries.

Revision ID: 20261125_0007
Revises: 20261125_0006
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from migrations.keys import keyring, settings

revision: str = "20261125_0007"
down_revision: str | None = "20261125_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
PHONE = "phone"
SESSION_KEY = "wechat-session-key"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    for table in ("identities", "identity_edges"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("sealed", sa.Text(), nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
    _seal_phones()
    _reseal_session_keys()
    op.execute("DELETE FROM phone_codes")
    _points_erasable(True)


def downgrade() -> None:
    _points_erasable(False)
    _open_phones()
    _reseal_session_keys(legacy=True)
    op.execute("DELETE FROM phone_codes")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("trace_id")
    for table in ("identity_edges", "identities"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sealed")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("erased_at")


def _rows(sql: str) -> list[sa.Row[tuple[object, ...]]]:
    return list(op.get_bind().execute(sa.text(sql)).all())


def _update(sql: str, rows: list[dict[str, object]]) -> None:
    for i in range(0, len(rows), BATCH):
        op.get_bind().execute(sa.text(sql), rows[i : i + BATCH])


def _seal_phones() -> None:
    """Phones in clear (E.164 starts with '+'; an index never does) to index and ciphertext."""
    for table in ("identities", "identity_edges"):
        rows = _rows(f"SELECT id, value FROM {table} WHERE kind = 'PHONE' AND sealed IS NULL")
        if not rows:
            continue
        ring = keyring()
        _update(
            f"UPDATE {table} SET value = :value, sealed = :sealed WHERE id = :id",
            [
                {
                    "id": r.id,
                    "value": ring.index(r.value, purpose=PHONE),
                    "sealed": ring.seal(r.value, purpose=PHONE),
                }
                for r in rows
            ],
        )


def _open_phones() -> None:
    for table in ("identities", "identity_edges"):
        rows = _rows(f"SELECT id, sealed FROM {table} WHERE kind = 'PHONE' AND sealed IS NOT NULL")
        if rows:
            ring = keyring()
            _update(
                f"UPDATE {table} SET value = :value WHERE id = :id",
                [{"id": r.id, "value": ring.unseal(r.sealed, purpose=PHONE)} for r in rows],
            )


def _legacy_key(secret: str) -> bytes:
    """The key 20261125_0006's code sealed session keys with (HKDF of TROIKA_PII_KEY, per purpose)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SESSION_KEY.encode()).derive(
        secret.encode()
    )


def _reseal_session_keys(*, legacy: bool = False) -> None:
    """Session keys into the keyring's format (or back); one that does not open is dropped: the
    person's next mini program login stores a new one."""
    rows = _rows("SELECT id, sealed_key FROM wechat_sessions")
    if not rows:
        return
    ring, configured = keyring(), settings()
    # 0006 sealed with TROIKA_PII_KEY; whichever configured key that was, try each.
    olds = [AESGCM(_legacy_key(s)) for s in configured.pii_secrets()]
    kept, dropped = [], []
    for r in rows:
        if legacy:
            plain = ring.try_unseal(r.sealed_key, purpose=SESSION_KEY)
            if plain is None:
                dropped.append({"id": r.id})
                continue
            nonce = os.urandom(12)
            old = AESGCM(_legacy_key(configured.pii_key or configured.pii_secrets()[0]))
            body = old.encrypt(nonce, plain.encode(), SESSION_KEY.encode())
            kept.append({"id": r.id, "sealed": base64.urlsafe_b64encode(nonce + body).decode()})
            continue
        opened = _legacy_open(olds, r.sealed_key)
        if opened is None:
            dropped.append({"id": r.id})
            continue
        kept.append({"id": r.id, "sealed": ring.seal(opened, purpose=SESSION_KEY)})
    if kept:
        _update("UPDATE wechat_sessions SET sealed_key = :sealed WHERE id = :id", kept)
    if dropped:
        _update("DELETE FROM wechat_sessions WHERE id = :id", dropped)


def _legacy_open(keys: list[AESGCM], sealed: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except ValueError:
        return None
    for key in keys:
        try:
            return key.decrypt(raw[:12], raw[12:], SESSION_KEY.encode()).decode()
        except (InvalidTag, ValueError):
            continue
    return None


def _points_erasable(erasable: bool) -> None:
    """The points ledger refuses UPDATE and DELETE, except (when `erasable`) the DELETE of an
    erased user's entries: erasure removes them; nothing else can."""
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("DROP TRIGGER IF EXISTS points_entries_append_only ON points_entries")
        op.execute("DROP TRIGGER IF EXISTS points_entries_erasable ON points_entries")
        op.execute("DROP FUNCTION IF EXISTS troika_points_erasable()")
    else:
        op.execute("DROP TRIGGER IF EXISTS points_entries_no_delete")
    if not erasable:
        if pg:
            op.execute(
                "CREATE TRIGGER points_entries_append_only BEFORE UPDATE OR DELETE ON points_entries "
                "FOR EACH ROW EXECUTE FUNCTION troika_append_only()"
            )
        else:
            op.execute(
                "CREATE TRIGGER points_entries_no_delete BEFORE DELETE ON points_entries "
                "BEGIN SELECT RAISE(ABORT, 'points_entries is append-only'); END"
            )
        return
    erased = "EXISTS (SELECT 1 FROM users WHERE users.id = OLD.user_id AND users.erased_at IS NOT NULL)"
    if pg:
        op.execute(
            "CREATE FUNCTION troika_points_erasable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'DELETE' AND {erased} THEN RETURN OLD; END IF; "
            "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        op.execute(
            "CREATE TRIGGER points_entries_erasable BEFORE UPDATE OR DELETE ON points_entries "
            "FOR EACH ROW EXECUTE FUNCTION troika_points_erasable()"
        )
    else:
        op.execute(
            "CREATE TRIGGER points_entries_no_delete BEFORE DELETE ON points_entries "
            f"WHEN NOT {erased} BEGIN SELECT RAISE(ABORT, 'points_entries is append-only'); END"
        )
