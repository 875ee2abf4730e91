"""`troika audiences export`: a saved audience's recipients as CSV, as an operator types it."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from app.cli import main
from app.settings import get_settings
from tests.audiences.test_conditions import SAVE
from tests.factories.auth import operator_key, user_token
from tests.factories.entitlements import set_consent
from tests.factories.identity import link
from tests.helpers import Gql


async def test_export_writes_the_recipients(
    app: FastAPI, client: httpx.AsyncClient, gql: Gql, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = app.state.settings
    op = await operator_key(app, "operator")
    for n in range(3):
        uid = (await link(gql, op, kind="OPENID", namespace=s.official_account_appid, value=f"o-x{n}"))[
            "user"
        ]["id"]
        if n < 2:
            await set_consent(gql, user_token(app, uid), "MARKETING", granted=True, source="OFFICIAL_ACCOUNT")
    await gql(
        SAVE,
        {"name": "followers", "c": {"identity": {"kind": "OPENID", "channel": "OFFICIAL_ACCOUNT"}}},
        token=op,
    )
    monkeypatch.setenv("TROIKA_DATABASE_URL", s.database_url)
    monkeypatch.setenv("TROIKA_VAR_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv(
        "TROIKA_PII_KEY",
        s.pii_key.get_secret_value() if hasattr(s.pii_key, "get_secret_value") else str(s.pii_key),
    )
    monkeypatch.setenv(
        "TROIKA_PII_INDEX_KEY",
        s.pii_index_key.get_secret_value()
        if hasattr(s.pii_index_key, "get_secret_value")
        else str(s.pii_index_key),
    )
    get_settings.cache_clear()
    out = tmp_path / "followers.csv"
    args = ["audiences", "export", "followers", "--channel", "OFFICIAL_ACCOUNT", "--output", str(out)]
    try:
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        missing = await asyncio.to_thread(
            CliRunner().invoke, main, ["audiences", "export", "nobody", "--channel", "APP"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert sorted(r["openid"] for r in rows) == ["o-x0", "o-x1"]
    assert missing.exit_code == 2
    assert "no saved audience named 'nobody'" in missing.output
