"""The right of access and portability: everything held about a person, as one JSON document.

The hub's rows of the whole merge cluster (identities and their history with phones opened,
merges, consents now and their ledger, memberships, points, roles) and every channel-store row
keyed by the person's identities, in every channel-store database (orders, cart lines, behaviour,
the raw records as sent, rejected records). Server secrets (WeChat session keys) and hashes (SMS
codes) are not data about the person and are not exported. Each export is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app import pii
from app.channels import identity_channel
from app.db.engine import Database
from app.db.types import utcnow
from app.domain import Channel, IdentityKind
from app.domain.entitlements import Cause, ConsentEntryRecord, Purpose
from app.ingest.dictionary import DataDictionary
from app.ingest.service import DEAD_LETTER
from app.sealing import Keyring, keyring_for
from app.services import audit
from app.services import consents as consent_rules
from app.services.erasure import store_name
from app.services.person import find_person
from app.settings import Settings
from app.stores import channel_personal as channel_store
from app.stores import personal as store
from app.stores import sign_ins
from app.stores.personal import Row

Doc = dict[str, Any]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _shown(row: Row, *, drop: Iterable[str] = ()) -> Doc:
    """A row as the document shows it: camelCase keys, ISO times, no internal columns."""
    hidden = {"sealed", "identity_sealed", "identity_ref", *drop}
    return {_camel(k): _plain(v) for k, v in row.items() if k not in hidden}


def _channel(channel: Channel | None) -> str | None:
    return None if channel is None else channel.value


def _value(keyring: Keyring, row: Row) -> str:
    return pii.opened(keyring, row["value"], row["sealed"])


def _consent(row: Row) -> ConsentEntryRecord:
    return ConsentEntryRecord(
        id=row["id"],
        user_id=row["user_id"],
        purpose=Purpose(row["purpose"]),
        channel=Channel(row["channel"]) if row["channel"] else None,
        granted=row["granted"],
        source_channel=Channel(row["source_channel"]),
        policy_version=row["policy_version"],
        effective_at=row["effective_at"],
        actor=row["actor"],
        cause=Cause(row["cause"]),
        merge_id=row["merge_id"],
    )


class Export:
    def __init__(self, db: Database, settings: Settings, dictionary: DataDictionary) -> None:
        self.db = db
        self.settings = settings
        self.dictionary = dictionary

    async def export(self, user_id: int, *, actor: str, trace_id: str | None) -> Doc:
        """The person's document; the export is audited before it is returned."""
        keyring = keyring_for(self.settings)
        async with self.db.read_sessions() as session:
            person = await find_person(session, user_id)
            hub = await store.export_rows(session, person.ids)
            signed_in = await sign_ins.for_refs(session, person.refs)
        channels: dict[str, list[Row]] = {}
        for st in self.db.stores:
            async with st.engines.read_sessions() as session:
                found = await channel_store.rows_for_refs(session, person.refs)
            for table, rows in found.items():
                channels.setdefault(table, []).extend({**r, "store": store_name(st)} for r in rows)
        doc = {
            "exportedAt": utcnow().isoformat(),
            "user": {
                "id": str(person.user.id),
                "createdAt": person.user.created_at.isoformat(),
                "mergedUserIds": [str(i) for i in person.ids[1:]],
            },
            **self._identities(keyring, hub),
            **self._permissions(person.user.id, hub),
            **self._channel_data(keyring, channels),
            "signIns": [{"channel": ch.value, "at": at.isoformat()} for ch, at in signed_in],
        }
        async with self.db.write_sessions() as session, session.begin():
            session.info[audit.TRACE_ID] = trace_id
            counts = {k: len(v) for k, v in doc.items() if isinstance(v, list)}
            details = {"userIds": list(person.ids), "counts": counts}
            await audit.record(
                session, actor=actor, action="user.export", user_id=person.user.id, details=details
            )
        return doc

    def _identities(self, keyring: Keyring, hub: dict[str, list[Row]]) -> Doc:
        identities = [
            {
                "kind": r["kind"],
                "namespace": r["namespace"] or None,
                "value": _value(keyring, r),
                "channel": _channel(identity_channel(IdentityKind(r["kind"]), r["namespace"], self.settings)),
                "verified": r["verified"],
                "linkedAt": _plain(r["linked_at"]),
                "linkedBy": f"{r['rule']}: {r['source']}",
                "userId": str(r["user_id"]),
            }
            for r in hub["identities"]
        ]
        history = [
            {**_shown(r, drop=("id", "identity_id", "value")), "value": _value(keyring, r)}
            for r in hub["identity_edges"]
        ]
        merges = [_shown(r) for r in hub["merges"]]
        return {"identities": identities, "identityHistory": history, "merges": merges}

    def _permissions(self, root_id: int, hub: dict[str, list[Row]]) -> Doc:
        own = [_consent(r) for r in hub["consent_entries"] if r["user_id"] == root_id]
        current = consent_rules.settings_of(consent_rules.current_of(own).values())
        return {
            "consents": [
                {
                    "purpose": c.purpose.value,
                    "channel": c.channel.value if c.channel else None,
                    "granted": c.granted,
                    "sourceChannel": c.source_channel.value,
                    "policyVersion": c.policy_version,
                    "effectiveAt": c.effective_at.isoformat(),
                }
                for c in current
            ],
            "consentHistory": [_shown(r) for r in hub["consent_entries"]],
            "memberships": [_shown(r) for r in hub["memberships"]],
            "points": sum(r["delta"] for r in hub["points_entries"]),
            "pointsHistory": [_shown(r) for r in hub["points_entries"]],
            "roles": [_shown(r) for r in hub["role_grants"]],
        }

    def _channel_data(self, keyring: Keyring, channels: dict[str, list[Row]]) -> Doc:
        names = self.dictionary.status_names
        orders = [
            {**_shown(r, drop=("id",)), "status": names[r["status_code"]]} for r in channels["ch_orders"]
        ]
        booked = self.dictionary.reservation_status_names
        reservations = [
            {**_shown(r, drop=("id",)), "status": booked[r["status_code"]]}
            for r in channels["ch_reservations"]
        ]
        lines = [_shown(r, drop=("id",)) for r in channels["ch_cart_items"]]
        latest: dict[str, Doc] = {}
        for line in sorted(lines, key=lambda c: (c["updatedAt"], c["channel"])):
            latest[line["sku"]] = line
        raw = []
        for r in channels["ch_records"]:
            payload = r["payload"]
            if r["identity_sealed"]:  # the number as it was sent, opened for its owner
                phone = keyring.unseal(r["identity_sealed"], purpose=pii.PHONE)
                payload = {**payload, "identity": {**payload["identity"], "value": phone}}
            raw.append({**_shown(r, drop=("id", "payload")), "payload": payload})
        rejected = [
            {
                **_shown(r, drop=("id", "payload")),
                "payload": keyring.try_unseal(r["payload"], purpose=DEAD_LETTER),
            }
            for r in channels["ch_dead_letters"]
        ]
        return {
            "orders": orders,
            "reservations": reservations,
            "cart": [c for c in latest.values() if c["quantity"] > 0],
            "cartHistory": lines,
            "behavior": [_shown(r, drop=("id",)) for r in channels["ch_events"]],
            "rawRecords": raw,
            "rejectedRecords": rejected,
        }
