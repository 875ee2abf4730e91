"""The rules over a person's channel data: one cart across channels, and interests that fade with age."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter

from app.db.types import utcnow
from app.domain.channel_data import CartRow, EventRow, Interest, ReservationRow, group_by_ref
from app.ingest.dictionary import DataDictionary

INTEREST_EVENTS_PER_IDENTITY = 200
INTEREST_HALF_LIFE_DAYS = 30.0
INTEREST_TOP = 20


_UPDATED_AT = attrgetter("updated_at")


def carts(keys: Sequence[int], by_user: dict[int, list[str]], rows: list[CartRow]) -> list[list[CartRow]]:
    """One line per SKU: the latest change across channels wins, a zero quantity removes it."""
    by_ref = group_by_ref(rows)
    out = []
    for uid in keys:
        latest: dict[str, CartRow] = {}
        for line in (c for ref in by_user[uid] for c in by_ref.get(ref, [])):
            held = latest.get(line.sku)
            # A channel (a StrEnum) compares by its value.
            if held is None or (line.updated_at, line.channel) > (held.updated_at, held.channel):
                latest[line.sku] = line
        out.append(sorted((c for c in latest.values() if c.quantity > 0), key=_UPDATED_AT, reverse=True))
    return out


def as_event(r: ReservationRow) -> EventRow:
    """A reservation weighs in the interests as a `reservation` event naming its service."""
    return EventRow(-r.id, r.channel, r.identity_ref, "reservation", r.booked_at, {"service": r.service})


def interests(
    keys: Sequence[int],
    by_user: dict[int, list[str]],
    rows: list[EventRow],
    dictionary: DataDictionary,
    article_tags: dict[str, list[str]],
) -> list[list[Interest]]:
    """Weighted tags of each user's recent events."""
    by_ref = group_by_ref(rows)
    now = utcnow()
    return [
        _weigh((e for ref in by_user[uid] for e in by_ref.get(ref, [])), now, dictionary, article_tags)
        for uid in keys
    ]


def _weigh(
    events: Iterable[EventRow], now: datetime, dictionary: DataDictionary, article_tags: dict[str, list[str]]
) -> list[Interest]:
    scores: dict[str, float] = {}
    for e in events:
        age_days = max((now - e.occurred_at).total_seconds() / 86400, 0.0)
        decay = math.pow(0.5, age_days / INTEREST_HALF_LIFE_DAYS)
        properties = e.properties
        if (article := article_tags.get(str(properties.get("article")))) is not None:
            properties = {**properties, "tags": article}  # the article's tags as operators set them
        for tag, weight in dictionary.interest_tags(e.type, properties):
            scores[tag] = scores.get(tag, 0.0) + weight * decay
    if not scores:
        return []
    top = max(scores.values())
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:INTEREST_TOP]
    return [Interest(tag, round(score / top, 4)) for tag, score in ranked]
