"""The cross-channel funnel: steps in order, within the window of the first, per weekly cohort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_user, event, ingest, mp_order, openid
from tests.factories.identity import link
from tests.helpers import Gql

FUNNEL = """
query ($steps: [FunnelStep!]!, $from: DateTime!, $to: DateTime!, $within: Int) {
  funnel(steps: $steps, from: $from, to: $to, withinDays: $within) {
    steps { index persons conversionFromPrevious conversionFromFirst medianHoursFromPrevious }
    cohorts { weekStart persons }
  }
}
"""
LOOP = [
    {"channel": "OFFICIAL_ACCOUNT", "action": "FOLLOWED"},
    {"channel": "MINI_PROGRAM", "action": "PAID"},
    {"channel": "APP", "action": "LOGGED_IN"},
]
WINDOW = {"from": "2026-11-02T00:00:00Z", "to": "2026-11-16T00:00:00Z", "within": 7}


async def _person(app: FastAPI, gql: Gql, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One person with an official-account openid, a mini program openid and an APP account."""
    s = app.state.settings
    token = await operator_key(app, "operator")
    oa, mp = openid(s.official_account_appid, f"oa-{name}"), openid(s.mini_program_appid, f"mp-{name}")
    user = (await link(gql, token, kind="OPENID", namespace=oa["namespace"], value=oa["value"]))["user"]["id"]
    await link(gql, token, kind="OPENID", namespace=mp["namespace"], value=mp["value"], user_id=user)
    await link(gql, token, kind="APP_USER_ID", value=f"U-{name}", user_id=user)
    return oa, mp, app_user(f"U-{name}")


async def _loop(app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
    """A: the whole loop; B: stops after paying; C: pays after the window; D: pays before following;
    E: follows outside [from, to)."""
    keys = {c: await service_key(app, c) for c in ("OFFICIAL_ACCOUNT", "MINI_PROGRAM", "APP")}
    people = {n: await _person(app, gql, n) for n in "ABCDE"}
    follows = {
        "A": "2026-11-03T10:00:00Z",
        "B": "2026-11-04T10:00:00Z",
        "C": "2026-11-10T10:00:00Z",
        "D": "2026-11-05T10:00:00Z",
        "E": "2026-11-20T10:00:00Z",
    }
    pays = {
        "A": "2026-11-04T10:00:00Z",
        "B": "2026-11-06T10:00:00Z",
        "C": "2026-11-18T10:00:00Z",
        "D": "2026-11-04T10:00:00Z",
        "E": "2026-11-21T10:00:00Z",
    }
    oa_records, mp_records, app_records = [], [], []
    for n, (oa, mp, _app_id) in people.items():
        oa_records.append(event(f"f-{n}", oa, name="subscribe", at=follows[n]))
        mp_records.append(mp_order(f"p-{n}", mp, order_id=f"MP-{n}", status="已支付", at=pays[n]))
        mp_records.append(mp_order(f"x-{n}", mp, order_id=f"MPX-{n}", status="已取消", at=follows[n]))
    app_records.append(event("l-A", people["A"][2], name="login", at="2026-11-05T10:00:00Z"))
    app_records.append(event("l-B", people["B"][2], name="page_view", at="2026-11-07T10:00:00Z"))
    for channel, records in (
        ("OFFICIAL_ACCOUNT", oa_records),
        ("MINI_PROGRAM", mp_records),
        ("APP", app_records),
    ):
        assert (await ingest(client, keys[channel], channel, records))["rejected"] == 0


async def test_the_loop_counts_each_person_at_each_step_in_order(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    await _loop(app, client, gql)
    viewer = await operator_key(app, "viewer")
    found = (await gql(FUNNEL, {"steps": LOOP, **WINDOW}, token=viewer))["funnel"]
    steps = found["steps"]
    assert [s["persons"] for s in steps] == [4, 2, 1]  # A B C D enter; A B pay in time; A logs in
    assert steps[0]["conversionFromPrevious"] is None
    assert steps[1]["conversionFromPrevious"] == pytest.approx(0.5)
    assert steps[2]["conversionFromPrevious"] == pytest.approx(0.5)
    assert steps[2]["conversionFromFirst"] == pytest.approx(0.25)
    assert steps[1]["medianHoursFromPrevious"] == pytest.approx(36.0)  # A 24 h, B 48 h
    assert steps[2]["medianHoursFromPrevious"] == pytest.approx(24.0)
    # Cohorts by the Monday (UTC) of step 0: A B D in the week of 2 Nov, C in the week of 9 Nov.
    assert found["cohorts"] == [
        {"weekStart": "2026-11-02", "persons": [3, 2, 1]},
        {"weekStart": "2026-11-09", "persons": [1, 0, 0]},
    ]
    # A wider window lets C's late payment count; ORDERED counts cancelled orders too.
    wide = {**WINDOW, "within": 30}
    found = (await gql(FUNNEL, {"steps": LOOP[:2], **wide}, token=viewer))["funnel"]
    assert [s["persons"] for s in found["steps"]] == [4, 3]
    ordered = [LOOP[0], {"channel": "MINI_PROGRAM", "action": "ORDERED"}]
    found = (await gql(FUNNEL, {"steps": ordered, **WINDOW}, token=viewer))["funnel"]
    # Each cancelled order was placed at the follow's very instant: not after it, so not counted.
    assert [s["persons"] for s in found["steps"]] == [4, 2]
    # EVENT of a type, in any channel; SEEN is the first appearance (identity links count).
    seen = [{"channel": "OFFICIAL_ACCOUNT", "action": "SEEN"}, {"action": "EVENT", "eventType": "page_view"}]
    found = (
        await gql(
            FUNNEL,
            {"steps": seen, "from": "2026-11-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
            token=viewer,
        )
    )["funnel"]
    assert [s["persons"] for s in found["steps"]] == [5, 1]


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"steps": []}, "steps"),
        ({"steps": [{"action": "EVENT"}]}, "steps"),
        ({"steps": LOOP * 3}, "steps"),
        ({"to": "2026-11-02T00:00:00Z"}, "to"),
        ({"to": "2027-11-16T00:00:00Z"}, "to"),
        ({"within": 0}, "withinDays"),
        ({"within": 366}, "withinDays"),
    ],
)
async def test_bad_input_names_the_argument(
    app: FastAPI, gql: Gql, change: dict[str, Any], argument: str
) -> None:
    viewer = await operator_key(app, "viewer")
    error = await gql.error(FUNNEL, {"steps": LOOP, **WINDOW, **change}, token=viewer, code="BAD_USER_INPUT")
    assert error["extensions"]["field"] == argument, error


async def test_services_may_not_read_funnels(app: FastAPI, gql: Gql) -> None:
    key = await service_key(app, "MINI_PROGRAM")
    await gql.error(FUNNEL, {"steps": LOOP, **WINDOW}, token=key, code="FORBIDDEN")


async def test_an_identity_link_is_a_first_appearance(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql
) -> None:
    """A person linked to an APP account, with no APP record yet, has been SEEN in the APP."""
    # Relative to the clock: the APP account is linked now, 20 days after the follow.
    now = datetime.now(UTC)
    follow = now - timedelta(days=20)
    oa, _mp, _app_id = await _person(app, gql, "linked")
    key = await service_key(app, "OFFICIAL_ACCOUNT")
    await ingest(client, key, "OFFICIAL_ACCOUNT", [event("f-l", oa, name="subscribe", at=_iso(follow))])
    steps = [{"channel": "OFFICIAL_ACCOUNT", "action": "FOLLOWED"}, {"channel": "APP", "action": "SEEN"}]
    viewer = await operator_key(app, "viewer")
    window = {"from": _iso(follow - timedelta(days=2)), "to": _iso(follow + timedelta(days=2))}
    near = (await gql(FUNNEL, {"steps": steps, **window, "within": 7}, token=viewer))["funnel"]
    assert [s["persons"] for s in near["steps"]] == [1, 0]
    far = (await gql(FUNNEL, {"steps": steps, **window, "within": 30}, token=viewer))["funnel"]
    assert [s["persons"] for s in far["steps"]] == [1, 1]


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
