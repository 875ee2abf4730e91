"""The tier and role catalogues: data files, checked when loaded, replaceable by settings."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.entitlements.catalogue import ROLES_PATH, TIERS_PATH, load_catalogue
from app.main import create_app
from app.settings import Settings
from tests.factories.auth import operator_key
from tests.helpers import Gql

CATALOGUE = """
{
  membershipTiers { code name rank benefits { code name } }
  staffRoles { name title scopes permissions }
}
"""


def test_the_shipped_catalogue_has_the_brief_s_tiers_and_benefits() -> None:
    catalogue = load_catalogue()
    platinum = catalogue.tier("PLATINUM")
    assert platinum is not None
    assert {b.code for b in platinum.benefits} == {
        "FREE_SHIPPING",
        "MEMBER_PRICE",
        "LATE_CHECKOUT",
        "ROOM_UPGRADE",
        "PRIORITY_SERVICE",
    }
    manager = catalogue.role("store_order_manager")
    assert manager is not None
    assert manager.scopes == ("store",)
    assert manager.allows("store.orders.manage")
    marketing = catalogue.role("marketing_manager")
    assert marketing is not None
    assert marketing.allows("campaigns.send")
    assert not marketing.allows("campaigns")
    assert not marketing.allows("store.orders.manage")


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ("version: '1'\nbenefits: {A: a}\ntiers: {GOLD: {rank: 1, benefits: [B]}}", "unknown benefits"),
        ("version: '1'\nbenefits: {A: a}\ntiers: {GOLD: {rank: 1}, PLATINUM: {rank: 1}}", "share a rank"),
        ("version: '1'\nbenefits: {A: a}\ntiers: {gold: {rank: 1}}", "UPPER_CASE"),
        ("version: '1'\nbenefits: {A: a}\ntiers: {GOLD: {rank: 0}}", "rank"),
        ("benefits: {A: a}\ntiers: {GOLD: {rank: 1}}", "version"),
        ("tiers: [", "not valid YAML"),
    ],
)
def test_a_broken_tier_file_is_refused_naming_the_problem(tmp_path: Path, tiers: str, message: str) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(tiers, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_catalogue(path, ROLES_PATH)


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ("version: '1'\nroles: {clerk: {permissions: []}}", "needs permissions"),
        ("version: '1'\nroles: {Clerk: {permissions: [a.b]}}", "lower_snake_case"),
        ("version: '1'\nroles: {clerk: {permissions: [A.B]}}", "not a valid entry"),
        ("version: '1'\nroles: {clerk: {scopes: [Store], permissions: [a.b]}}", "not a valid entry"),
    ],
)
def test_a_broken_role_file_is_refused_naming_the_problem(tmp_path: Path, roles: str, message: str) -> None:
    path = tmp_path / "roles.yaml"
    path.write_text(roles, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_catalogue(TIERS_PATH, path)


async def test_settings_point_at_other_catalogue_files(settings: Settings, tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(
        "version: '9'\nbenefits: {BREAKFAST: 早餐}\ntiers: {VIP: {rank: 1, benefits: [BREAKFAST]}}\n"
    )
    roles = tmp_path / "roles.yaml"
    roles.write_text("version: '9'\nroles: {barista: {scopes: [store], permissions: [store.coffee.make]}}\n")
    custom = settings.model_copy(update={"tier_catalogue_path": tiers, "role_catalogue_path": roles})
    application = create_app(custom)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://t"
        ) as http:
            data = await Gql(http)(CATALOGUE, token=await operator_key(application, "viewer"))
    finally:
        await application.state.db.dispose()
    assert data["membershipTiers"] == [
        {"code": "VIP", "name": "VIP", "rank": 1, "benefits": [{"code": "BREAKFAST", "name": "早餐"}]}
    ]
    assert data["staffRoles"] == [
        {"name": "barista", "title": "barista", "scopes": ["store"], "permissions": ["store.coffee.make"]}
    ]


def test_a_broken_catalogue_stops_the_app_at_start(settings: Settings, tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text("version: '1'\ntiers: {}\n")
    with pytest.raises(ValueError, match="benefits"):
        create_app(settings.model_copy(update={"tier_catalogue_path": tiers}))
