"""The mutation lane (app/http/mutation_lane.py) answers a cleared mutation as the full path does,
errors included, and writes what the full path writes: the same mutations are sent to an app with
the lane and to one without it (one database), each for its own user in the same state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from app.db.models import AuditEntry, Change, ConsentEntry
from app.http.mutation_lane import STATS, _clear
from app.settings import Settings
from graphql_schema.schema import schema
from graphql_schema.validation import CallerExecutor
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.entitlements import SET_CONSENT, consent_input
from tests.factories.identity import link
from tests.helpers import Gql, lane_and_full, served, untraced

MIX = (
    "mutation ($id: ID!, $g: Boolean!) { setConsent(input: {userId: $id, purpose: PUSH, "
    "channel: MINI_PROGRAM, granted: $g, sourceChannel: MINI_PROGRAM}) { id } }"
)
USER = (
    "query ($id: ID!) { user(id: $id) { consents { purpose channel granted sourceChannel policyVersion } } }"
)


@dataclass
class Pair:
    lane: FastAPI
    lane_client: httpx.AsyncClient
    full_client: httpx.AsyncClient
    admin: str
    mini: str


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    async with lane_and_full(settings) as (lane, lane_client, full_client):
        yield Pair(
            lane,
            lane_client,
            full_client,
            await operator_key(lane, "operator"),
            await service_key(lane, "MINI_PROGRAM"),
        )


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


async def new_user(pair: Pair, value: str, *, namespace: str | None = None) -> str:
    mp = namespace or pair.lane.state.settings.mini_program_appid
    linked = await link(Gql(pair.full_client), pair.admin, kind="OPENID", namespace=mp, value=value)
    user_id: str = linked["user"]["id"]
    return user_id


async def effects(app: FastAPI, user_id: str) -> tuple[Any, ...]:
    """What a write left for this user: ledger, audit and outbox rows, and its consents."""
    uid = int(user_id) if user_id.isdigit() else -1
    async with app.state.db.read_sessions() as s:
        ledger = (await s.execute(select(func.count()).where(ConsentEntry.user_id == uid))).scalar_one()
        audit = (
            await s.execute(
                select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.target_user_id == uid)
            )
        ).all()
        outbox = (await s.execute(select(Change.topic).where(Change.user_id == uid))).scalars().all()
    actions = sorted((action, "SELF" if actor == f"user:{uid}" else actor) for action, actor in audit)
    return ledger, actions, sorted(outbox)


def shaped(response: httpx.Response, user_id: str) -> tuple[int, str, dict[str, str]]:
    """Status, the body without trace ids and with this user's id as USER, and the headers."""
    body = str(untraced(response.json())).replace(f"'{user_id}'", "'USER'")
    return response.status_code, body, {k: v for k, v in response.headers.items() if k != "content-length"}


async def both(
    pair: Pair, query: str, variables_of: Any, token: str | None, tag: str, *, namespace: str | None = None
) -> tuple[httpx.Response, str]:
    """The mutation for a fresh user through the lane and for another through the full path: the
    same answer and the same effects. Returns the lane's answer and user."""
    users = [await new_user(pair, f"{tag}-{side}", namespace=namespace) for side in ("lane", "full")]
    answers = []
    for client, user in zip((pair.lane_client, pair.full_client), users, strict=True):
        answers.append(await post(client, query, variables_of(user), token))
    assert shaped(answers[0], users[0]) == shaped(answers[1], users[1])
    assert await effects(pair.lane, users[0]) == await effects(pair.lane, users[1])
    gql = Gql(pair.lane_client)
    read = [await gql(USER, {"id": u}, token=pair.admin) for u in users]
    assert read[0] == read[1]
    return answers[0], users[0]


async def test_a_cleared_mutation_answers_and_writes_as_the_full_path(pair: Pair) -> None:
    def mix(granted: bool) -> Any:
        return lambda user: {"id": user, "g": granted}

    first, _ = await both(pair, MIX, mix(True), pair.mini, "clear")  # the full path clears it
    assert first.json() == {"data": {"setConsent": {"id": first.json()["data"]["setConsent"]["id"]}}}
    taken, direct = STATS["taken"], STATS["direct"]
    for n, granted in enumerate((True, False, True)):
        answer, user = await both(pair, MIX, mix(granted), pair.mini, f"mix-{n}")
        assert answer.json() == {"data": {"setConsent": {"id": user}}}
    assert (STATS["taken"], STATS["direct"]) == (taken + 3, direct + 3)


async def test_a_direct_field_answers_aliases_and_typenames_as_the_executor(pair: Pair) -> None:
    aliased = MIX.replace("setConsent(", "w: setConsent(").replace("{ id }", "{ i: id t: __typename id }")
    await both(pair, aliased, lambda user: {"id": user, "g": True}, pair.mini, "alias-clear")
    direct = STATS["direct"]
    answer, user = await both(pair, aliased, lambda user: {"id": user, "g": False}, pair.mini, "alias-1")
    assert answer.json() == {"data": {"w": {"i": user, "t": "User", "id": user}}}
    assert STATS["direct"] == direct + 1
    # More than the user's id: the executor answers it, through the lane still.
    wider = MIX.replace("{ id }", "{ id consents { purpose granted } }")
    await both(pair, wider, lambda user: {"id": user, "g": True}, pair.mini, "wide-clear")
    taken = STATS["taken"]
    await both(pair, wider, lambda user: {"id": user, "g": False}, pair.mini, "wide-1")
    assert (STATS["taken"], STATS["direct"]) == (taken + 1, direct + 1)


async def test_the_lane_s_errors_are_the_full_path_s(pair: Pair) -> None:
    settings = pair.lane.state.settings

    def given(purpose: str = "PUSH", **more: Any) -> Any:
        def variables(user: str) -> dict[str, Any]:
            base = consent_input(
                purpose, granted=True, channel="MINI_PROGRAM", source="MINI_PROGRAM", user_id=user
            )
            return {"input": {**base, **more}}

        return variables

    await both(pair, SET_CONSENT, given(), pair.mini, "e-clear")  # cleared for a service's class
    cases: list[tuple[str, Any, str | None, str, str | None]] = [
        # (tag, variables, token, the code, another namespace for the users)
        ("e-forbidden", given(), pair.mini, "FORBIDDEN", settings.official_account_appid),
        ("e-unauth", given(), None, "UNAUTHENTICATED", None),
        ("e-badkey", given(), "not-a-key", "UNAUTHENTICATED", None),
        ("e-channel", given(channel=None), pair.mini, "CONSENT_CHANNEL_REQUIRED", None),
        ("e-unknown", lambda _user: given()("987654"), pair.mini, "", None),
    ]
    for tag, variables, token, code, namespace in cases:
        taken = STATS["taken"]
        answer, _ = await both(pair, SET_CONSENT, variables, token, tag, namespace=namespace)
        assert STATS["taken"] == taken + 1, (tag, answer.text)
        errors = answer.json()["errors"]
        assert all(e["extensions"]["code"] for e in errors)
        if code:
            assert errors[0]["extensions"]["code"] == code, (tag, answer.text)
    # Variables that do not coerce: nothing ran, the full path answers (and codes) them.
    for tag, variables in (
        ("v-enum", given(purpose="NOPE")),
        (
            "v-missing",
            lambda user: {"input": {"userId": user, "purpose": "PUSH", "sourceChannel": "MINI_PROGRAM"}},
        ),
        ("v-type", given(granted="yes")),
        ("v-none", lambda _user: {}),
    ):
        fallback, taken = STATS["fallback"], STATS["taken"]
        answer, _ = await both(pair, SET_CONSENT, variables, pair.mini, tag)
        assert (STATS["fallback"], STATS["taken"]) == (fallback + 1, taken), tag
        assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", answer.text


async def test_an_end_user_s_own_write_takes_the_lane_too(pair: Pair) -> None:
    users = [await new_user(pair, f"self-{n}") for n in range(3)]
    tokens = [user_token(pair.lane, u) for u in users]
    variables = {"input": consent_input("LOCATION", granted=True, source="MINI_PROGRAM")}
    await post(pair.lane_client, SET_CONSENT, variables, tokens[0])  # cleared
    taken = STATS["taken"]
    lane = await post(pair.lane_client, SET_CONSENT, variables, tokens[1])
    full = await post(pair.full_client, SET_CONSENT, variables, tokens[2])
    assert STATS["taken"] == taken + 1
    assert shaped(lane, users[1]) == shaped(full, users[2])
    assert await effects(pair.lane, users[1]) == await effects(pair.lane, users[2])


async def test_the_lane_counts_its_mutations(pair: Pair) -> None:
    named = MIX.replace("mutation (", "mutation LaneWrite(")
    ok = {"operation": "LaneWrite", "type": "mutation", "outcome": "ok"}
    error = {**ok, "outcome": "error"}
    forbidden = {"code": "FORBIDDEN"}

    def count(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (count("troika_graphql_operations_total", ok), count("troika_graphql_operations_total", error))
    codes = count("troika_graphql_errors_total", forbidden)
    user = await new_user(pair, "count-1")
    other = await new_user(pair, "count-2", namespace=pair.lane.state.settings.official_account_appid)
    taken = STATS["taken"]
    for target in (user, user, other):
        await post(pair.lane_client, named, {"id": target, "g": True}, pair.mini)
    assert STATS["taken"] == taken + 2
    after = (count("troika_graphql_operations_total", ok), count("troika_graphql_operations_total", error))
    assert after == (before[0] + 2, before[1] + 1)
    assert count("troika_graphql_errors_total", forbidden) == codes + 1


def test_mutations_that_sign_in_or_send_a_code_are_never_cleared() -> None:
    assert _clear('mutation { requestPhoneCode(phone: "13800000000") }', None) is None
    assert (
        _clear(
            "mutation ($c: String!) { a: setConsent(input: $c) { id } w: wechatLogin(code: $c) { token } }",
            None,
        )
        is None
    )
    assert _clear("query { me { id } }", None) is None
    assert _clear(MIX, None) is not None


@pytest.mark.parametrize(
    ("document", "direct"),
    [
        (MIX, True),
        ("mutation ($i: ConsentInput!) { setConsent(input: $i) { __typename id } }", True),
        (MIX.replace("{ id }", "{ id consents { purpose granted } }"), False),
        (MIX.replace("{ id }", "{ id @skip(if: false) }"), False),
        ("mutation ($i: [ConsentInput!]!) { setConsents(inputs: $i) { id } }", False),
        (
            MIX.replace(
                "setConsent(",
                'grantMembership(userId: $id, tier: "x", sourceChannel: APP) { id } setConsent(',
            ),
            False,
        ),
    ],
)
def test_only_a_lone_set_consent_selecting_the_user_s_id_is_a_direct_field(
    document: str, direct: bool
) -> None:
    entry = _clear(document, None, schema)
    assert entry is not None
    assert (entry.direct is not None) == direct


async def test_rate_limits_refuse_the_lane_s_writes_as_the_full_path_s(settings: Settings) -> None:
    limited: dict[str, Any] = {
        "rate_limit_enabled": True,
        "rate_limit_principal": "4/minute",
        "response_cache_bytes": 0,
    }
    seen = []
    for lane in (True, False):
        async with served(settings, graphql_fast_lane=lane, **limited) as (app, client):
            admin, mini = await operator_key(app, "operator"), await service_key(app, "MINI_PROGRAM")
            mp = app.state.settings.mini_program_appid
            user = (await link(Gql(client), admin, kind="OPENID", namespace=mp, value="rl-1"))["user"]["id"]
            taken = STATS["taken"]
            answers = [await post(client, MIX, {"id": user, "g": n % 2 == 0}, mini) for n in range(6)]
            assert STATS["taken"] == taken + (3 if lane else 0)
            seen.append(
                [
                    (a.status_code, untraced(a.json()), a.headers.get("retry-after") is not None)
                    for a in answers
                ]
            )
    assert seen[0] == seen[1]
    assert [status for status, _, _ in seen[0]] == [200, 200, 200, 200, 429, 429]


async def test_a_write_through_the_lane_is_seen_by_the_cached_read(settings: Settings) -> None:
    async with served(settings, rate_limit_enabled=False) as (app, client):
        admin, mini = await operator_key(app, "operator"), await service_key(app, "MINI_PROGRAM")
        mp = app.state.settings.mini_program_appid
        gql = Gql(client)
        user = (await link(gql, admin, kind="OPENID", namespace=mp, value="cache-1"))["user"]["id"]
        await post(client, MIX, {"id": user, "g": False}, mini)  # cleared
        for granted in (True, False, True):
            await gql(USER, {"id": user}, token=admin)
            await gql(USER, {"id": user}, token=admin)  # kept in the cache
            taken = STATS["taken"]
            assert (await post(client, MIX, {"id": user, "g": granted}, mini)).json()["data"]
            assert STATS["taken"] == taken + 1
            consents = (await gql(USER, {"id": user}, token=admin))["user"]["consents"]
            assert [c["granted"] for c in consents if c["purpose"] == "PUSH"] == [granted]


async def test_a_failure_outside_any_field_is_masked_as_on_the_full_path(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    wider = MIX.replace(
        "{ id }", "{ id consents { purpose granted } }"
    )  # not a direct field's: the executor runs it
    await both(pair, wider, lambda user: {"id": user, "g": True}, pair.mini, "f-clear")
    user = await new_user(pair, "f-1")

    def broken(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("the executor broke: secret detail")

    monkeypatch.setattr(CallerExecutor, "build", classmethod(broken))
    failed = STATS["failed"]
    lane = await post(pair.lane_client, wider, {"id": user, "g": False}, pair.mini)
    full = await post(pair.full_client, wider, {"id": user, "g": False}, pair.mini)
    assert STATS["failed"] == failed + 1
    assert (lane.status_code, untraced(lane.json())) == (full.status_code, untraced(full.json()))
    assert lane.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in lane.text, lane.text
