"""Audience rules: the condition tree's shape and bounds, interest weights, who may do what."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.demo import load_demo
from tests.audiences.test_conditions import PREVIEW, SAVE, ago
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.channel_data import event, ingest, openid
from tests.factories.identity import link
from tests.helpers import Gql

AUDIENCES = "{ audiences { name description size } }"
DELETE = "mutation ($name: String!) { deleteAudience(name: $name) }"
ORDERS = {"orders": {"channel": "MINI_PROGRAM"}}


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"orders": {}, "cart": {}}, "condition: set exactly one field"),
        ({}, "condition: set exactly one field (found: none)"),
        (
            {"all": [ORDERS, {"orders": {}, "consent": {"purpose": "PUSH"}}]},
            "condition.all[1]: set exactly one",
        ),
        ({"not": {"any": [ORDERS, {}]}}, "condition.not.any[1]: set exactly one"),
        ({"all": []}, "condition.all: expected a non-empty list"),
        ({"orders": {"withinDays": 0}}, "condition.orders.withinDays: expected an integer"),
        ({"interest": {"tag": "x", "minWeight": 2}}, "condition.interest.minWeight"),
        ({"identity": {"kind": "PHONE", "channel": "APP"}}, "condition.identity.channel: a PHONE"),
    ],
)
async def test_a_bad_tree_names_the_node(
    app: FastAPI, gql: Gql, condition: dict[str, Any], path: str
) -> None:
    op = await operator_key(app, "operator")
    body = await gql.post(PREVIEW, {"c": condition}, op)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert body["errors"][0]["message"].startswith(path), body
    saved = await gql.post(SAVE, {"name": "bad", "c": condition}, op)
    assert saved["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await gql(AUDIENCES, token=op))["audiences"] == []


async def test_depth_and_size_are_bounded(app: FastAPI, gql: Gql) -> None:
    op = await operator_key(app, "operator")
    deep: dict[str, Any] = ORDERS
    for _ in range(app.state.settings.audience_max_depth):
        deep = {"not": deep}
    body = await gql.post(PREVIEW, {"c": deep}, op)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "nest at most" in body["errors"][0]["message"]
    wide = {"any": [ORDERS] * app.state.settings.audience_max_nodes}
    body = await gql.post(PREVIEW, {"c": wide}, op)
    assert "at most" in body["errors"][0]["message"]
    assert body["errors"][0]["message"].startswith("condition.any[")


async def test_interest_weight(app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
    s = app.state.settings
    op = await operator_key(app, "operator")
    oa = s.official_account_appid
    strong = (await link(gql, op, kind="OPENID", namespace=oa, value="o-strong"))["user"]["id"]
    weak = (await link(gql, op, kind="OPENID", namespace=oa, value="o-weak"))["user"]["id"]
    await ingest(
        client,
        await service_key(app, "OFFICIAL_ACCOUNT"),
        "OFFICIAL_ACCOUNT",
        [
            event(
                "w1", openid(oa, "o-strong"), name="article_read", properties={"tags": ["母婴"]}, at=ago(1)
            ),
            event("w2", openid(oa, "o-weak"), name="article_read", properties={"tags": ["母婴"]}, at=ago(1)),
            *[
                event(
                    f"w{n}", openid(oa, "o-weak"), name="favorite", properties={"tags": ["户外"]}, at=ago(1)
                )
                for n in range(3, 6)
            ],
        ],
    )

    async def ids(weight: float) -> set[str]:
        found = await gql(PREVIEW, {"c": {"interest": {"tag": "母婴", "minWeight": weight}}}, token=op)
        return {m["id"] for m in found["previewAudience"]["members"]}

    assert await ids(0.0) == {strong, weak}
    assert await ids(0.5) == {strong}  # 母婴 is a sixth of the weak reader's 户外


async def test_permissions(app: FastAPI, client: httpx.AsyncClient, gql: Gql) -> None:
    viewer, operator, admin = [await operator_key(app, r) for r in ("viewer", "operator", "admin")]
    await gql(SAVE, {"name": "ops", "c": ORDERS, "d": "by an operator"}, token=operator)
    await gql(SAVE, {"name": "admins", "c": ORDERS}, token=admin)
    assert [a["name"] for a in (await gql(AUDIENCES, token=viewer))["audiences"]] == ["admins", "ops"]
    await gql.error(SAVE, {"name": "viewers", "c": ORDERS}, token=viewer, code="FORBIDDEN")
    await gql.error(DELETE, {"name": "ops"}, token=viewer, code="FORBIDDEN")
    user = (await link(gql, operator, kind="APP_USER_ID", value="U-perm"))["user"]["id"]
    for token in (await service_key(app, "APP"), user_token(app, user)):
        await gql.error(AUDIENCES, token=token, code="FORBIDDEN")
        await gql.error(PREVIEW, {"c": ORDERS}, token=token, code="FORBIDDEN")
        await gql.error(SAVE, {"name": "x", "c": ORDERS}, token=token, code="FORBIDDEN")
    assert (await gql(DELETE, {"name": "ops"}, token=operator))["deleteAudience"] is True
    assert (await gql(DELETE, {"name": "ops"}, token=operator))["deleteAudience"] is False
    assert [a["name"] for a in (await gql(AUDIENCES, token=viewer))["audiences"]] == ["admins"]


async def test_the_demo_ships_two_audiences(app: FastAPI, gql: Gql) -> None:
    await load_demo(app.state.db, if_empty=True, settings=app.state.settings)
    viewer = await operator_key(app, "viewer")
    found = {a["name"]: a["size"] for a in (await gql(AUDIENCES, token=viewer))["audiences"]}
    assert set(found) == {"mp-buyers", "booked-not-bought"}
    assert found["booked-not-bought"] == 8  # every third of the 24 APP customers
    assert found["mp-buyers"] > 0
