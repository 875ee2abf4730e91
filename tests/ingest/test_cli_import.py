"""`troika import` ingests an NDJSON file through the same path; `troika deadletters` lists refusals."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from tests.factories.channel_data import app_order, app_user, cart


def test_import_and_list_dead_letters(cli_env: str, tmp_path: Path) -> None:
    records = [
        app_order("i1", app_user("U-i"), order_no="A-i"),
        cart("i2", app_user("U-i"), sku="S", quantity=-1),
        app_order("i1", app_user("U-i"), order_no="A-i"),
    ]
    path = tmp_path / "app.ndjson"
    path.write_text("\n".join([json.dumps(r, ensure_ascii=False) for r in records] + ["oops"]) + "\n")
    runner = CliRunner()
    result = runner.invoke(main, ["import", "--channel", "APP", "--batch-size", "2", str(path)])
    assert result.exit_code == 0, result.output
    summary = result.stdout
    assert "accepted" in summary
    assert "rejected i2: data.quantity" in summary
    assert "line 4 is not JSON" in summary
    # The replay of i1 in a later batch is a duplicate: 1 accepted, 1 duplicate, 2 rejected.
    assert "│        1 │         1 │        2 │" in summary
    listed = runner.invoke(main, ["deadletters", "--channel", "APP", "--json"])
    assert listed.exit_code == 0, listed.output
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {(d["id"], d["reason"].split(":")[0]) for d in letters} == {
        ("i2", "data.quantity"),
        (None, "record"),
    }
    table = runner.invoke(main, ["deadletters"])
    assert "data.quantity" in table.stdout
