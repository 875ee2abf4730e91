"""The exported schema is current, honours the contract, and documents every field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from graphql import GraphQLInputObjectType, GraphQLObjectType
from strawberry.printer import print_schema

from graphql_schema.schema import schema
from tests.conftest import missing

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_TOOL = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_schema_file_is_current() -> None:
    exported = print_schema(schema) + "\n"
    on_disk = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert on_disk == exported, "schema.graphql is stale: run `make schema`"


@pytest.mark.parametrize(
    "part",
    [
        None,
        "official-account",
        "portrait",
        "audiences",
    ],
)
def test_contract_is_served(part: str | None) -> None:
    """The minimum public schema, and each capability's part of it."""
    if not CONTRACT_TOOL.exists():
        missing(f"the contract checker is not here ({CONTRACT_TOOL}); ../shared is absent")
    result = subprocess.run(
        [
            sys.executable,
            str(CONTRACT_TOOL),
            str(ROOT / "schema.graphql"),
            *(["--with", part] if part else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all of it is served" in result.stdout


def test_every_field_has_a_description() -> None:
    undocumented = []
    for name, gql_type in schema._schema.type_map.items():
        if name.startswith("__") or not isinstance(gql_type, GraphQLObjectType | GraphQLInputObjectType):
            continue
        for field_name, field in gql_type.fields.items():
            if not field.description:
                undocumented.append(f"{name}.{field_name}")
    assert not undocumented, undocumented
