"""The compiled reads' row decoders (app/stores/compiled_rows.py) make the very records the records'
own constructors make: equal, of the same class, frozen, times in UTC whatever offset they came in."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.domain import Channel
from app.domain.channel_data import CartRow, ReservationRow
from app.stores.compiled import _channel_rows
from app.stores.compiled_rows import decoder, when
from app.stores.compiled_sql import ChannelQueries, OrderQuery

CHANNELS = {c.value: c for c in Channel}


def test_a_decoded_row_is_the_record_its_constructor_makes() -> None:
    rows = decoder(
        ReservationRow,
        [
            ("id", "r[0]"), ("channel", "CH[r[1]]"), ("reservation_id", "r[2]"), ("identity_ref", "r[3]"),
            ("service", "r[4]"), ("status_code", "r[5]"), ("starts_at", "@?r[6]"), ("booked_at", "@r[7]"),
            ("updated_at", "@r[8]"),
        ],
        {"CH": CHANNELS},
    )  # fmt: skip
    raw: list[list[Any]] = [
        [1, "APP", "r1", "ref", "spa", 2, None, "2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05.5+08:00"],
        [2, "MINI_PROGRAM", "r2", "ref", "gym", 1, "2026-01-02 03:04:05", "2026-01-02T03:04:05.000001+00:00",
         "2026-01-02T03:04:05-05:30"],
    ]  # fmt: skip
    made = rows(raw)
    expected = [
        ReservationRow(
            id=r[0], channel=CHANNELS[r[1]], reservation_id=r[2], identity_ref=r[3], service=r[4],
            status_code=r[5], starts_at=None if r[6] is None else when(r[6]), booked_at=when(r[7]),
            updated_at=when(r[8]),
        )
        for r in raw
    ]  # fmt: skip
    assert made == expected
    assert all(type(m) is ReservationRow for m in made)
    assert made[0].updated_at == datetime(2026, 1, 1, 19, 4, 5, 500000, tzinfo=UTC)
    assert made[1].starts_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # naive (SQLite): UTC
    assert all(m.booked_at.tzinfo is UTC and m.updated_at.tzinfo is UTC for m in made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made[0], "service", "other")  # noqa: B010 - as any assignment would


def test_times_keep_their_instant_in_utc() -> None:
    at = when("2026-06-30T23:59:59.999999+14:00")
    assert at.tzinfo is UTC
    assert at == datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=14)))


def test_only_records_set_from_their_fields_alone() -> None:
    with pytest.raises(TypeError):  # fields out of order
        decoder(CartRow, [("identity_ref", "r[1]"), ("channel", "r[0]")], {})

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    with pytest.raises(TypeError):
        decoder(NoSlots, [("a", "r[0]")], {})

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError):
        decoder(Checked, [("a", "r[0]")], {})


def test_an_orders_time_is_kept_as_text_only_when_it_is_its_isoformat() -> None:
    texts = [
        "2026-01-02T03:04:05.123456+00:00",  # kept: six digits
        "2026-01-02T03:04:05+00:00",  # kept: no fraction
        "2026-01-02T03:04:05.1234+00:00",  # PostgreSQL trims zeros: isoformat() writes 123400
        "2026-01-02T03:04:05.000000+00:00",  # isoformat() writes no fraction
        "2026-01-02T03:04:05.123456+08:00",  # another offset: made UTC
        "2026-01-02 03:04:05.123456",  # SQLite's
        "2026-W01-5T03:04:05+00:00",  # an ISO week date
    ]
    raw: list[list[Any]] = [
        [n, "APP", f"o{n}", "ref", 1, 100, "CNY", [], t, t, 1 if n == 0 else None]
        for n, t in enumerate(texts)
    ]
    q = ChannelQueries(orders=(OrderQuery((Channel.APP,), None, None, 21),))
    out = _channel_rows(q, {"o0": raw})
    rows = out.orders[0][0]
    assert [r.placed_at.isoformat() for r in rows][:2] == texts[:2]
    kept = {r.order_id for r in rows if id(r) in out.placed}
    assert kept == {"o0", "o1"}
    for r in rows:
        if id(r) in out.placed:
            assert out.placed[id(r)] == r.placed_at.isoformat()
