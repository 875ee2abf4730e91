"""Funnels across channels: who reached each step, in order, within a window of the first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import appid_channels
from app.db.engine import Database
from app.domain import Channel
from app.errors import InvalidInput
from app.ingest.dictionary import DataDictionary
from app.settings import Settings
from app.stores import funnel as sql

ACTIONS = ("SEEN", "FOLLOWED", "ORDERED", "PAID", "LOGGED_IN", "EVENT")
MAX_STEPS = 6
MAX_WINDOW_DAYS = 366
# Where each action happens: following is the official account's; the others anywhere.
_EVENT_OF = {"FOLLOWED": "subscribe", "LOGGED_IN": "login"}


@dataclass(frozen=True)
class Step:
    action: str
    channel: Channel | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class StepResult:
    index: int
    persons: int
    conversion_from_previous: float | None
    conversion_from_first: float | None
    median_hours_from_previous: float | None


@dataclass(frozen=True)
class Cohort:
    week_start: str
    persons: list[int]


@dataclass(frozen=True)
class FunnelResult:
    steps: list[StepResult]
    cohorts: list[Cohort]


def check(steps: Sequence[Step], start: datetime, end: datetime, within_days: int) -> None:
    """BAD_USER_INPUT naming the argument for each input no funnel can be made of."""
    if not steps:
        raise InvalidInput("a funnel needs at least one step", field="steps")
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"a funnel has at most {MAX_STEPS} steps", field="steps")
    for n, step in enumerate(steps):
        if step.action not in ACTIONS:
            raise InvalidInput(f"steps[{n}]: unknown action {step.action}", field="steps")
        if step.action == "EVENT" and not (step.event_type or "").strip():
            raise InvalidInput(f"steps[{n}]: EVENT needs an eventType", field="steps")
    if end <= start:
        raise InvalidInput("`to` must be after `from`", field="to")
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise InvalidInput(f"the window [from, to) is at most {MAX_WINDOW_DAYS} days", field="to")
    if not 1 <= within_days <= 365:
        raise InvalidInput("withinDays must be between 1 and 365", field="withinDays")


def _seconds(at: datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 4)


class Funnels:
    """Reads each step's occurrences from the stores, then orders the steps in the hub's SQL."""

    def __init__(self, db: Database, dictionary: DataDictionary, settings: Settings) -> None:
        self.db, self.dictionary, self.settings = db, dictionary, settings

    async def run(
        self, steps: Sequence[Step], start: datetime, end: datetime, within_days: int
    ) -> FunnelResult:
        check(steps, start, end, within_days)
        until = end + timedelta(days=within_days)
        args: dict[str, Any] = {
            "kinds": [s.action for s in steps],
            "from_s": _seconds(start),
            "to_s": _seconds(end),
            "within_s": within_days * 86400,
        }
        async with self.db.write_sessions() as session:
            try:
                await sql.create(session)
                for k, step in enumerate(steps):
                    await self._stage(session, k, step, start, until)
                await sql.reach(session, **args)
                weeks = await sql.cohorts(session, steps=len(steps))
                medians = await sql.medians(session, steps=len(steps))
            finally:
                await session.rollback()  # the staged hits go with the transaction
        totals = [sum(counts[k] for _, counts in weeks) for k in range(len(steps))]
        results = []
        for k, n in enumerate(totals):
            prev = totals[k - 1] if k else None
            results.append(
                StepResult(
                    index=k,
                    persons=n,
                    conversion_from_previous=None if k == 0 else (n / prev if prev else 0.0),
                    conversion_from_first=None if k == 0 else (n / totals[0] if totals[0] else 0.0),
                    median_hours_from_previous=_hours(medians[k]),
                )
            )
        cohorts = [
            Cohort(datetime.fromtimestamp(week, UTC).date().isoformat(), counts) for week, counts in weeks
        ]
        return FunnelResult(results, cohorts)

    async def _stage(self, hub: AsyncSession, k: int, step: Step, start: datetime, until: datetime) -> None:
        """Stage step k's occurrences from every store holding its channels, the hub's sign-ins for
        LOGGED_IN and identity links for SEEN; a store on the hub's database never leaves it."""
        channels = [step.channel] if step.channel is not None else list(Channel)
        if step.action == "FOLLOWED":
            channels = [c for c in channels if c is Channel.OFFICIAL_ACCOUNT]
        event_type = _EVENT_OF.get(step.action, step.event_type or "")
        for store in self.db.stores:
            mine = [c.value for c in store.channels if c in channels]
            if not mine:
                continue
            stmt = sql.occurrences(
                action=step.action,
                channels=mine,
                since=start,
                until=until,
                event_types=[event_type],
                paid_codes=self.dictionary.paid_codes(),
            )
            if store.shares_hub:
                await sql.stage_select(hub, k, stmt)
                continue
            async with store.engines.read_sessions() as session:
                found = await sql.read(session, stmt)
            await sql.stage_rows(hub, k, found)
        if step.action == "LOGGED_IN":
            await sql.stage_select(
                hub, k, sql.signed_in(channels=[c.value for c in channels], since=start, until=until)
            )
        if step.action == "SEEN":
            appids = [a for a, c in appid_channels(self.settings).items() if c in channels]
            await sql.linked(hub, step=k, openid_appids=appids, app_user_ids=Channel.APP in channels)
