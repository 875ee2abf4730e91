"""No log line holds a full phone number, a token or a key: a run of logins, SMS codes, phone
ingestion and errors, logged at DEBUG everywhere (SQL and its parameters included), scanned."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.logscrub import ScrubFilter, scrub, secrets_of
from app.services.accounts import Accounts
from app.wechat.fake import FakeWeChat
from tests.factories.auth import operator_key, service_key
from tests.factories.channel_data import app_order, ingest
from tests.factories.wechat import BIND_PHONE, PHONE_LOGIN, sms_code, wechat_login
from tests.helpers import Gql

PHONES = ("13800138777", "13900139888", "13700137999")
USER = "query ($id: ID!) { user(id: $id) { id phone identities { kind value } } }"


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as a handler would write it: message, traceback, stack."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(r) for r in caplog.records] + [caplog.text]


async def test_logs_never_hold_a_phone_a_token_or_a_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    gql: Gql,
    fake_wechat: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement, with its parameters
    first, second, third = PHONES
    admin = await operator_key(app, "admin", "pii_reader")
    service = await service_key(app, "APP")
    # SMS codes and a phone login.
    code = await sms_code(gql, caplog, first, "138****8777")
    login = (await gql(PHONE_LOGIN, {"phone": first, "code": code}, token=None))["phoneLogin"]
    await gql.error(PHONE_LOGIN, {"phone": first, "code": "000000"}, token=None, code="PHONE_CODE_INVALID")
    # A mini program login, a phone bound with WeChat's phone code (the number travels in the request).
    session = await wechat_login(gql, "MINI_PROGRAM", "logs")
    await gql(BIND_PHONE, {"wx": second}, token=session["token"])
    # Ingestion of phone-identified records, one of them with a number that is no phone.
    records = [
        app_order("l1", {"kind": "PHONE", "value": f"+86{third}"}, order_no="L-1"),
        app_order("l2", {"kind": "PHONE", "value": "+86 1380013"}, order_no="L-2"),
        app_order("l3", {"kind": "PHONE", "value": third}, order_no="L-3", status=42),
    ]
    report = await ingest(client, service, "APP", records)
    assert report["accepted"] == 1
    # PII read by an operator.
    shown = (await gql(USER, {"id": login["user"]["id"]}, token=admin))["user"]
    assert shown["phone"] == f"+86{first}"

    # An unexpected error whose message holds a phone and a token: logged with its traceback.
    async def broken(self: Accounts, user_id: int, **_: object) -> None:
        raise RuntimeError(f"cannot bind +86{first} for Bearer {login['token']} ({admin})")

    monkeypatch.setattr(Accounts, "bind_phone", broken)
    error = await gql.error(BIND_PHONE, {"wx": first}, token=login["token"], code="INTERNAL_SERVER_ERROR")
    # And code that logs what it should not, directly.
    settings = app.state.settings
    logging.getLogger("troika.careless").warning(
        "request from %s with %s, keys %s / %s",
        f"+86{second}",
        f"Authorization: Bearer {service}",
        settings.pii_key,
        settings.pii_index_key,
    )

    logged = "\n".join(_logged(caplog))
    assert error["extensions"]["traceId"] in logged  # the error is in the log, findable
    assert "RuntimeError" in logged
    forbidden = [
        *PHONES,
        *(f"+86{p}" for p in PHONES),
        login["token"],
        session["token"],
        admin,
        service,
        *secrets_of(settings),
    ]
    leaks = [secret for secret in forbidden if secret in logged]
    assert leaks == [], leaks
    # What the lines say instead.
    assert "138****8777" in logged
    assert "139****9888" in logged
    assert "[redacted]" in logged


def test_scrub_masks_phones_and_redacts_credentials() -> None:
    assert scrub("SMS to +8613800138000, call 13900139000 or +1 202-555-0123") == (
        "SMS to 138****8000, call 139****9000 or +1 202****0123"
    )
    assert scrub("手机13800138000") == "手机138****8000"
    assert (
        scrub("trace 5a13812345678bcd, order 20261125120000")
        == "trace 5a13812345678bcd, order 20261125120000"
    )
    assert scrub("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig") == (
        "Authorization: Bearer [redacted]"
    )
    assert scrub("key trk_op_0123456789abcdef") == "key trk_op_0…[redacted]"
    assert scrub("refresh with trr_AbCdEf0123456789_xyz") == "refresh with trr_…[redacted]"
    assert scrub("GET /sns/jscode2session?appid=wx1&secret=s3cr3t&js_code=abc&grant_type=x") == (
        "GET /sns/jscode2session?appid=wx1&secret=[redacted]&js_code=[redacted]&grant_type=x"
    )


def test_arguments_stay_arguments_each_scrubbed() -> None:
    """Formatters that unpack a record's arguments (uvicorn's access line) still get them."""

    def make(*args: Any) -> logging.LogRecord:
        record = logging.LogRecord(*args)
        ScrubFilter().filter(record)
        return record

    path = "/x?access_token=abc123&phone=13800138000"
    access = make("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                  ("127.0.0.1:5000", "GET", path, "1.1", 200), None)  # fmt: skip
    clean = "/x?access_token=[redacted]&phone=138****8000"
    assert access.args == ("127.0.0.1:5000", "GET", clean, "1.1", 200)
    assert access.getMessage() == f'127.0.0.1:5000 - "GET {clean} HTTP/1.1" 200'
    named = make("troika.t", logging.INFO, __file__, 1, "%(who)s", ({"who": "+8613800138000"},), None)
    assert named.args == {"who": "138****8000"}
    # A secret that shows only where text and argument meet: the record keeps the clean text alone.
    split = make("troika.t", logging.INFO, __file__, 1, "Bearer %s", ("opaque-value",), None)
    assert (split.getMessage(), split.args) == ("Bearer [redacted]", None)
    # A malformed call (the arguments do not fit) keeps its text, and formats without an error.
    malformed = make("troika.t", logging.INFO, __file__, 1, "%d items for 13800138000", ("x",), None)
    assert (malformed.getMessage(), malformed.args) == ("%d items for 138****8000", None)
