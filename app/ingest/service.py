"""One code path for every ingestion door (HTTP, GraphQL, CLI): validate, link, store, report."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.db.contention import retrying
from app.db.engine import Database
from app.db.types import utcnow
from app.domain import Channel, IdentityKey, IdentityKind
from app.errors import DomainError
from app.ingest.dictionary import DataDictionary
from app.ingest.records import RecordRejected, StdCart, StdEvent, StdOrder, StdRecord, StdReservation
from app.jsoncodec import dumps_any_depth, unstorable
from app.logscrub import scrub
from app.observability.metrics import count_ingested
from app.sealing import Keyring, keyring_for
from app.services.changes import Topic, record_changes
from app.services.identity import IdentityGraph
from app.services.identity_rules import make_key
from app.settings import Settings
from app.stores import channel as store
from app.stores import interest_tags


class RecordStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    id: str
    status: RecordStatus
    reason: str | None = None


@dataclass(frozen=True)
class IngestReport:
    results: list[RecordOutcome]

    def count(self, status: RecordStatus) -> int:
        return sum(1 for r in self.results if r.status is status)


@dataclass(frozen=True, slots=True)
class Unparsable:
    """A line that was not even JSON: kept as text so it can land in the dead letters too."""

    text: str
    reason: str


# A record that passed the dictionary: its position in the batch, itself, its identity, its ref
# and, for a phone, the number's ciphertext (the stored payload holds no phone in clear).
Valid = tuple[int, StdRecord, IdentityKey, str, str | None]
DEAD_LETTER = "dead-letter"  # the purpose a dead letter's payload is sealed for


class TooManyRecords(DomainError):
    code = "TOO_MANY_RECORDS"


class IngestContention(DomainError):
    """The batch lost to concurrent writers every time it was tried; sending it again is safe."""

    code = "INGEST_CONTENTION"


T = TypeVar("T")
log = logging.getLogger("troika.ingest")
NOTHING_STORED = "none of its records were stored"


def _source_id(raw: object) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str | int) and not isinstance(raw.get("id"), bool):
        return str(raw["id"])[:128]
    return ""


def _text_of(raw: object) -> str:
    """A rejected record as the JSON text its dead letter keeps."""
    try:
        return json.dumps(raw, ensure_ascii=False)
    except RecursionError:  # deeper than the standard library writes
        return dumps_any_depth(raw)


def _storable(text: str) -> str:
    """Text a database can keep: NUL (which PostgreSQL refuses) becomes U+FFFD, a lone surrogate \\udXXX."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "backslashreplace").decode()


class Ingestor:
    """Ingests one channel's batch; accepted records are committed before it returns."""

    def __init__(self, db: Database, dictionary: DataDictionary, settings: Settings) -> None:
        self.db = db
        self.dictionary = dictionary
        self.settings = settings

    async def ingest(
        self, channel: Channel, records: Sequence[object | Unparsable], *, actor: str
    ) -> IngestReport:
        if len(records) > self.settings.ingest_max_records:
            raise TooManyRecords(
                f"{len(records)} records in one request; the limit is {self.settings.ingest_max_records}",
                limit=self.settings.ingest_max_records,
            )
        outcomes: list[RecordOutcome | None] = [None] * len(records)
        valid: list[Valid] = []
        dead: list[dict[str, Any]] = []
        seen: set[str] = set()
        # A batch repeats its people: one HMAC (and, for a phone, one AES-GCM) per person per batch.
        keys: dict[tuple[str, str, str | None], tuple[IdentityKey, str, str | None]] = {}
        keyring = keyring_for(self.settings)
        now = utcnow()
        garbled = unstorable(records)
        for i, raw in enumerate(records):
            try:
                if isinstance(raw, Unparsable):
                    raise RecordRejected("record", raw.reason)
                if i in garbled:
                    raise RecordRejected("record", garbled[i])
                rec = self.dictionary.parse(channel, raw)
                who = (rec.identity_kind, rec.identity_value, rec.identity_namespace)
                if (known := keys.get(who)) is None:
                    key = self._identity(rec)
                    sealed = None  # a phone is kept sealed, as it was sent (the ref has its index)
                    if key.kind is IdentityKind.PHONE:
                        sealed = keyring.seal(rec.identity_value, purpose=pii.PHONE)
                    known = keys[who] = (key, pii.ref_of(keyring, key), sealed)
            except RecordRejected as exc:
                text = raw.text if isinstance(raw, Unparsable) else _text_of(raw)
                outcomes[i] = RecordOutcome(_source_id(raw), RecordStatus.REJECTED, str(exc))
                dead.append(
                    {
                        "channel": channel.value,
                        "source_id": _storable(_source_id(raw)) or None,
                        "identity_ref": self._ref_of_raw(keyring, raw),
                        "payload": keyring.seal(_storable(text), purpose=DEAD_LETTER),
                        "reason": scrub(_storable(str(exc))),
                        "received_at": now,
                    }
                )
                continue
            if rec.source_id in seen:
                outcomes[i] = RecordOutcome(rec.source_id, RecordStatus.DUPLICATE)
                continue
            seen.add(rec.source_id)
            valid.append((i, rec, *known))

        new_ids = await self._write(channel, valid, dead, now, actor)
        for i, rec, *_ in valid:
            status = RecordStatus.ACCEPTED if rec.source_id in new_ids else RecordStatus.DUPLICATE
            outcomes[i] = RecordOutcome(rec.source_id, status)
        report = IngestReport([o for o in outcomes if o is not None])
        count_ingested(channel.value, (o.status.value for o in report.results))
        return report

    async def _write(
        self,
        channel: Channel,
        valid: Sequence[Valid],
        dead: Sequence[dict[str, Any]],
        now: datetime,
        actor: str,
    ) -> set[str]:
        """Link, then store; each transaction is retried whole, never in part, when PostgreSQL aborts it."""
        store_db = self.db.store_for(channel)
        keys = [key for _, _, key, _, _ in valid]
        source = f"{channel.value} record"

        # Link first: a record is only reported once its identity resolves to a user. When the
        # store lives in the hub's database, both happen in one transaction.
        async def link() -> tuple[dict[IdentityKey, int], set[str]]:
            async with self.db.write_sessions() as hub, hub.begin():
                ensured = await IdentityGraph(hub).ensure_users(
                    keys, actor=actor, rule="ingested", source=source, announce=not store_db.shares_hub
                )
                if not store_db.shares_hub:
                    return ensured.owners, set()
                new_ids = await self._store(hub, channel, valid, dead, now)
                await _changed(hub, ensured.owners, valid, new_ids, linked=ensured.created)
                return ensured.owners, new_ids

        owners, new_ids = await self._retrying(link, NOTHING_STORED)
        if store_db.shares_hub:
            return new_ids

        async def store_only() -> set[str]:
            async with store_db.engines.write_sessions() as session, session.begin():
                return await self._store(session, channel, valid, dead, now)

        new_ids = await self._retrying(store_only, NOTHING_STORED)

        # After the store's commit, so a reader that sees the new version sees the new rows.
        async def bump() -> None:
            async with self.db.write_sessions() as hub, hub.begin():
                await _changed(hub, owners, valid, new_ids)

        await self._retrying(bump, "its records were stored but the users' data versions were not advanced")
        return new_ids

    async def _retrying(self, work: Callable[[], Awaitable[T]], outcome: str) -> T:
        """Run one transaction, again from the start when the database aborted it for contention."""
        return await retrying(
            work,
            attempts=self.settings.ingest_max_attempts,
            what="the batch",
            outcome=outcome,
            error=IngestContention,
        )

    def _identity(self, rec: StdRecord) -> IdentityKey:
        """The record's identity as the graph stores it; a bad one rejects the record."""
        try:
            return make_key(
                IdentityKind(rec.identity_kind),
                rec.identity_value,
                rec.identity_namespace,
                phone_region=self.settings.phone_default_region,
            )
        except DomainError as exc:
            field = f"identity.{exc.details.get('field', 'value')}"
            raise RecordRejected(field, exc.message) from exc

    def _ref_of_raw(self, keyring: Keyring, raw: object) -> str | None:
        """A rejected record's identity ref, when its envelope names a valid identity (for erasure)."""
        ident = raw.get("identity") if isinstance(raw, dict) else None
        if not isinstance(ident, dict):
            return None
        try:
            key = make_key(
                IdentityKind(str(ident.get("kind"))),
                str(ident.get("value") or ""),
                ident.get("namespace") if isinstance(ident.get("namespace"), str) else None,
                phone_region=self.settings.phone_default_region,
            )
        except (DomainError, ValueError):
            return None
        ref = pii.ref_of(keyring, key)
        return ref if _storable(ref) == ref else None  # an identity no database can keep is no ref

    async def _store(
        self,
        session: AsyncSession,
        channel: Channel,
        valid: Sequence[Valid],
        dead: Sequence[dict[str, Any]],
        now: datetime,
    ) -> set[str]:
        """Write one batch into the channel store; returns the source ids that were new."""
        await store.insert_dead_letters(session, dead)
        name, version = channel.value, self.dictionary.version
        new_ids = await store.insert_raw_records(
            session,
            [
                {
                    "channel": name,
                    "source_id": rec.source_id,
                    "type": rec.type,
                    "identity_ref": ref,
                    "identity_sealed": sealed,
                    "occurred_at": rec.occurred_at,
                    "payload": rec.raw if sealed is None else _without_value(rec.raw),
                    "dictionary_version": version,
                    "received_at": now,
                }
                for _, rec, _, ref, sealed in valid
            ],
        )
        fresh = [(rec, ref) for _, rec, _, ref, _ in valid if rec.source_id in new_ids]
        await store.upsert_orders(session, _latest_orders(name, fresh, set(self.dictionary.paid_codes())))
        await store.upsert_cart_items(session, _latest_cart(name, fresh))
        await store.upsert_reservations(session, _latest_reservations(name, fresh))
        await store.insert_events(
            session,
            [
                {
                    "channel": name,
                    "identity_ref": ref,
                    "type": rec.payload.type,
                    "occurred_at": rec.occurred_at,
                    "properties": rec.payload.properties,
                }
                for rec, ref in fresh
                if isinstance(rec.payload, StdEvent)
            ],
        )
        events = [
            (name, ref, rec.payload.type, rec.payload.properties)
            for rec, ref in fresh
            if isinstance(rec.payload, StdEvent)
        ]
        await interest_tags.add_tags(session, interest_tags.tag_counts(events, self.dictionary))
        return new_ids


_TOPICS = {
    StdOrder: Topic.ORDER,
    StdCart: Topic.CART,
    StdEvent: Topic.BEHAVIOR,
    StdReservation: Topic.RESERVATION,
}


async def _changed(
    hub: AsyncSession,
    owners: dict[IdentityKey, int],
    valid: Sequence[Valid],
    new_ids: set[str],
    *,
    linked: frozenset[int] = frozenset(),
) -> None:
    """The users whose view the stored records changed and how, and the new users `linked` in this
    transaction: one call, so each user's version is bumped once per batch."""
    changes = {(user_id, Topic.IDENTITY) for user_id in linked}
    changes.update(
        (owners[key], _TOPICS[type(rec.payload)]) for _, rec, key, *_ in valid if rec.source_id in new_ids
    )
    await record_changes(hub, changes, fresh=linked)


def _without_value(raw: dict[str, Any]) -> dict[str, Any]:
    """The envelope as kept when its identity is sealed: `identity.value` null (see `identity_sealed`)."""
    return {**raw, "identity": {**raw["identity"], "value": None}}


def _latest_orders(
    channel: str, fresh: Sequence[tuple[StdRecord, str]], paid: set[int]
) -> list[dict[str, Any]]:
    """One row per order (the newest update in the batch, the earliest paid one's time): an upsert
    may touch a row only once."""
    rows: dict[str, dict[str, Any]] = {}
    for rec, ref in sorted(fresh, key=lambda rr: rr[0].occurred_at):
        order = rec.payload
        if not isinstance(order, StdOrder):
            continue
        placed = order.placed_at or rec.occurred_at
        first = rows.get(order.order_id)
        rows[order.order_id] = {
            "channel": channel,
            "order_id": order.order_id,
            "identity_ref": ref,
            "status_code": order.status_code,
            "total_cents": order.total_cents,
            "currency": order.currency,
            "items": [
                {
                    "sku": it.sku,
                    "name": it.name,
                    "quantity": it.quantity,
                    "unit_price_cents": it.unit_price_cents,
                }
                for it in order.items
            ],
            "placed_at": min(placed, first["placed_at"]) if first else placed,
            "updated_at": rec.occurred_at,
            # Oldest first: the first paid update of the batch keeps its time.
            "paid_at": (first["paid_at"] if first else None)
            or (rec.occurred_at if order.status_code in paid else None),
        }
    return list(rows.values())


def _latest_reservations(channel: str, fresh: Sequence[tuple[StdRecord, str]]) -> list[dict[str, Any]]:
    """One row per reservation (the newest update in the batch), booked when its first record says."""
    rows: dict[str, dict[str, Any]] = {}
    for rec, ref in sorted(fresh, key=lambda rr: rr[0].occurred_at):
        booking = rec.payload
        if not isinstance(booking, StdReservation):
            continue
        first = rows.get(booking.reservation_id)
        rows[booking.reservation_id] = {
            "channel": channel,
            "reservation_id": booking.reservation_id,
            "identity_ref": ref,
            "service": booking.service,
            "status_code": booking.status_code,
            "starts_at": booking.starts_at,
            "booked_at": first["booked_at"] if first else rec.occurred_at,
            "updated_at": rec.occurred_at,
        }
    return list(rows.values())


def _latest_cart(channel: str, fresh: Sequence[tuple[StdRecord, str]]) -> list[dict[str, Any]]:
    """One row per (identity, sku): the newest change in the batch."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for rec, ref in sorted(fresh, key=lambda rr: rr[0].occurred_at):
        cart = rec.payload
        if isinstance(cart, StdCart):
            rows[(ref, cart.sku)] = {
                "channel": channel,
                "identity_ref": ref,
                "sku": cart.sku,
                "quantity": cart.quantity,
                "updated_at": rec.occurred_at,
            }
    return list(rows.values())
