"""Consent rules: default deny, PUSH per channel, MARKETING withdrawn everywhere, LOCATION alone.

The current value of a (purpose, channel) cell is the latest entry of the user's own ledger;
there is no current-state table. The ledger is the one source of truth, so a current value can
never disagree with the history that explains it, however writers race; reading the current
values is one indexed GROUP BY per batch of users. Writers lock the user row first, so one user's
entries are ordered alike by id and by effective time, and each entry's `effective_at` is when
it took effect: the settings in force at any moment are the latest entries up to that moment.

Merges: at merge time the survivor's ledger gains an entry for every cell where the absorbed
user's current value is stricter (withdrawn against granted), or where only the absorbed user
had answered (the same person answered; they are not asked again). From then on the survivor's
ledger alone decides, so later choices simply follow. Unmerge: the absorbed user's ledger was
never touched, so it is its own again; the survivor gets back, for each cell still holding the
merge's value, what it held before the merge ("no setting" if nothing). A cell changed after the
merge keeps the later choice, as identities linked after a merge stay with the survivor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.domain import Channel, UserRecord
from app.domain.entitlements import PER_CHANNEL, Cause, Cell, ConsentChange, ConsentEntryRecord, Purpose
from app.errors import DomainError, InvalidInput
from app.services import audit
from app.services.changes import Topic, users_changed
from app.services.users import lock_user_to_change
from app.stores import consents as store

MAX_BATCH = len(PER_CHANNEL) * len(Channel) + len(Purpose) - len(PER_CHANNEL)
POLICY_VERSION_MAX = 32
_ORDER = {p: n for n, p in enumerate(Purpose)}
_CHANNELS = {c: n for n, c in enumerate(Channel)}


def _cells(change: ConsentChange) -> list[tuple[Cell, Cause]]:
    """The cells a change writes, or the error naming the invalid combination."""
    purpose, channel = change.purpose, change.channel
    if purpose is Purpose.PUSH:
        if channel is None:
            raise DomainError(
                "PUSH is set per channel: name the channel", code="CONSENT_CHANNEL_REQUIRED", purpose=purpose
            )
        return [((purpose, channel), Cause.SET)]
    if purpose is Purpose.MARKETING:
        if change.granted and channel is not None:
            return [((purpose, channel), Cause.SET)]
        # A grant without a channel grants everywhere; a withdrawal anywhere withdraws everywhere.
        return [((purpose, c), Cause.SET if channel in (None, c) else Cause.CASCADE) for c in Channel]
    if channel is not None:
        raise DomainError(
            f"{purpose} holds in every channel: omit `channel`",
            code="CONSENT_CHANNEL_NOT_ALLOWED",
            purpose=purpose,
        )
    return [((purpose, None), Cause.SET)]


def _policy_version(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip()
    if not value or len(value) > POLICY_VERSION_MAX:
        raise InvalidInput(
            f"`policyVersion` must be 1 to {POLICY_VERSION_MAX} characters", field="policyVersion"
        )
    return value


def plan(changes: Sequence[ConsentChange]) -> list[tuple[ConsentChange, list[tuple[Cell, Cause]]]]:
    """Validate a call's changes together: each cell once, and a LOCATION grant alone."""
    if not changes:
        raise InvalidInput("give at least one consent", field="inputs")
    if len(changes) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} consents per call", field="inputs")
    if len(changes) > 1 and any(c.purpose is Purpose.LOCATION and c.granted for c in changes):
        raise DomainError(
            "LOCATION is sensitive: it is granted on its own, never together with other consents",
            code="SEPARATE_CONSENT_REQUIRED",
            purpose=Purpose.LOCATION,
        )
    out: list[tuple[ConsentChange, list[tuple[Cell, Cause]]]] = []
    seen: set[Cell] = set()
    for change in changes:
        cells = _cells(change)
        twice = [cell for cell, _ in cells if cell in seen]
        if twice:
            purpose, channel = twice[0]
            where = f"{purpose} in {channel}" if channel else str(purpose)
            raise InvalidInput(f"this call sets {where} twice", field="inputs")
        seen.update(cell for cell, _ in cells)
        out.append((change, cells))
    return out


def current_of(entries: Iterable[ConsentEntryRecord]) -> dict[Cell, ConsentEntryRecord]:
    """The latest entry per cell of one user's ledger (entries in ledger order)."""
    latest: dict[Cell, ConsentEntryRecord] = {}
    for entry in entries:
        latest[entry.cell] = entry
    return latest


def settings_of(entries: Iterable[ConsentEntryRecord]) -> list[ConsentEntryRecord]:
    """Current entries that hold a setting (cleared cells are not settings), in a stable order."""
    held = [e for e in entries if e.granted is not None]
    return sorted(held, key=lambda e: (_ORDER[e.purpose], -1 if e.channel is None else _CHANNELS[e.channel]))


def in_force_at(ledger: Iterable[ConsentEntryRecord], at: datetime) -> list[ConsentEntryRecord]:
    """The settings that were in force at `at`, from one user's own ledger."""
    return settings_of(current_of(e for e in ledger if e.effective_at <= at).values())


def allows(current: Iterable[ConsentEntryRecord], purpose: Purpose, channel: Channel) -> bool:
    """Default deny: true only when the cell that governs (purpose, channel) is granted."""
    cell: Cell = (purpose, channel if purpose in PER_CHANNEL else None)
    return any(e.cell == cell and e.granted is True for e in current)


def _row(
    user_id: int,
    cell: Cell,
    *,
    granted: bool | None,
    source_channel: Channel,
    policy_version: str | None,
    at: datetime,
    actor: str,
    cause: Cause,
    merge_id: int | None = None,
) -> dict[str, Any]:
    purpose, channel = cell
    return {
        "user_id": user_id,
        "purpose": purpose.value,
        "channel": channel.value if channel else "",
        "granted": granted,
        "source_channel": source_channel.value,
        "policy_version": policy_version,
        "effective_at": at,
        "actor": actor,
        "cause": cause.value,
        "merge_id": merge_id,
    }


def _shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ledger rows as the audit log records them."""
    return [
        {
            "purpose": r["purpose"],
            "channel": r["channel"] or None,
            "granted": r["granted"],
            "sourceChannel": r["source_channel"],
            "policyVersion": r["policy_version"],
            "cause": r["cause"],
        }
        for r in rows
    ]


_Planned = list[tuple[ConsentChange, str | None, list[tuple[Cell, Cause]]]]


def _planned(changes: Sequence[ConsentChange]) -> _Planned:
    """`plan`, each change with its policy version checked."""
    return [(c, _policy_version(c.policy_version), cells) for c, cells in plan(changes)]


def _set_rows(user_id: int, planned: _Planned, *, at: datetime, actor: str) -> list[dict[str, Any]]:
    return [
        _row(
            user_id,
            cell,
            granted=change.granted,
            source_channel=change.source_channel,
            policy_version=version,
            at=at,
            actor=actor,
            cause=cause,
        )
        for change, version, cells in planned
        for cell, cause in cells
    ]


async def set_at_once(
    conn: Any,
    user_id: int,
    changes: Sequence[ConsentChange],
    *,
    actor: str,
    trace_id: str | None,
    scope: tuple[list[str], list[tuple[str, str]]] | None,
) -> tuple[UserRecord, int] | None:
    """`ConsentLedger.set` as one autocommitted statement on an asyncpg connection (PostgreSQL):
    the same rows, audit entry, version bump and outbox row, if the user holds an identity of
    `scope` (app/stores/consents.py). The user and the outbox cursor; None, with nothing written,
    when `user_id` is not an active user's in scope or the changes are invalid: the long way
    authorizes first, then says what is wrong.
    """
    try:
        planned = _planned(changes)
    except DomainError:
        return None
    at = utcnow()
    rows = _set_rows(user_id, planned, at=at, actor=actor)
    details = {"entries": _shown(rows)}
    entry = audit.entry_of(
        actor=actor, action="consent.set", user_id=user_id, details=details, trace_id=trace_id, at=at
    )
    return await store.set_at_once(conn, user_id, rows, audit=entry, topic=Topic.CONSENT.value, scope=scope)


class ConsentLedger:
    """Writes to the ledger inside the caller's transaction; it flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def set(self, user_id: int, changes: Sequence[ConsentChange], *, actor: str) -> UserRecord:
        """Record the user's choices: one entry per cell, an audit entry, the user's view changed."""
        planned = _planned(changes)
        s = self.session
        user = await lock_user_to_change(s, user_id, topics=[Topic.CONSENT])
        rows = _set_rows(user.id, planned, at=utcnow(), actor=actor)
        details = {"entries": _shown(rows)}
        await store.append(
            s, rows, audit=audit.entry(s, actor=actor, action="consent.set", user_id=user.id, details=details)
        )
        return user

    async def merged(
        self, *, survivor_id: int, absorbed_id: int, merge_id: int, actor: str, at: datetime
    ) -> None:
        """Give the survivor, per cell, the stricter of the two current values."""
        s = self.session
        mine = current_of(await store.entries_of(s, survivor_id))
        theirs = current_of(await store.entries_of(s, absorbed_id))
        rows = []
        for cell, entry in theirs.items():
            own = mine.get(cell)
            if entry.granted is None:
                continue
            if own is None or own.granted is None or (own.granted and not entry.granted):
                rows.append(
                    _row(
                        survivor_id,
                        cell,
                        granted=entry.granted,
                        source_channel=entry.source_channel,
                        policy_version=entry.policy_version,
                        at=at,
                        actor=actor,
                        cause=Cause.MERGE,
                        merge_id=merge_id,
                    )
                )
        await self._write(rows, "consent.merge", survivor_id, mergeId=merge_id, absorbedId=absorbed_id)

    async def unmerged(
        self, *, survivor_id: int, absorbed_id: int, merge_id: int, actor: str, at: datetime
    ) -> None:
        """Give the survivor back its own value in every cell that still holds the merge's."""
        ledger = await store.entries_of(self.session, survivor_id)
        rows = []
        for cell, entry in current_of(ledger).items():
            if entry.cause is not Cause.MERGE or entry.merge_id != merge_id:
                continue
            before = current_of(e for e in ledger if e.id < entry.id).get(cell)
            rows.append(
                _row(
                    survivor_id,
                    cell,
                    granted=before.granted if before else None,
                    source_channel=before.source_channel if before else entry.source_channel,
                    policy_version=before.policy_version if before else None,
                    at=at,
                    actor=actor,
                    cause=Cause.UNMERGE,
                    merge_id=merge_id,
                )
            )
        await self._write(rows, "consent.unmerge", survivor_id, mergeId=merge_id, absorbedId=absorbed_id)

    async def _write(self, rows: list[dict[str, Any]], action: str, user_id: int, **context: int) -> None:
        if not rows:
            return
        s = self.session
        details = {**context, "entries": _shown(rows)}
        entry = audit.entry(s, actor=rows[0]["actor"], action=action, user_id=user_id, details=details)
        await store.append(s, rows, audit=entry)
        await users_changed(s, [user_id], topics=[Topic.CONSENT])
