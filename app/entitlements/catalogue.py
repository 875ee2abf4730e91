"""The tier and role catalogues: data files, validated once, so programmes change without code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from app.settings import Settings

TIERS_PATH = Path(__file__).with_name("tiers.yaml")
ROLES_PATH = Path(__file__).with_name("roles.yaml")
CODE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
ROLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
SCOPE_KIND = re.compile(r"[a-z][a-z_]{0,15}")
SCOPE = re.compile(r"(?P<kind>[a-z][a-z_]{0,15}):(?P<id>[A-Za-z0-9][A-Za-z0-9_.-]{0,46})")
PERMISSION = re.compile(r"\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?")


@dataclass(frozen=True, slots=True)
class Benefit:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Tier:
    code: str
    name: str
    rank: int
    benefits: tuple[Benefit, ...]


@dataclass(frozen=True, slots=True)
class StaffRole:
    name: str
    title: str
    scopes: tuple[str, ...]
    permissions: tuple[str, ...]

    def allows(self, permission: str) -> bool:
        """Exact permissions, `x.*` for everything under x, `*` for everything."""
        for held in self.permissions:
            if held == "*" or held == permission:
                return True
            if held.endswith(".*") and permission.startswith(held[:-1]):
                return True
        return False


@dataclass(frozen=True)
class Catalogue:
    tiers_version: str
    roles_version: str
    tiers: dict[str, Tier]
    roles: dict[str, StaffRole]
    benefits: dict[str, Benefit]

    def tier(self, code: str) -> Tier | None:
        return self.tiers.get(code)

    def role(self, name: str) -> StaffRole | None:
        return self.roles.get(name)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: expected a non-empty mapping")
    return value


def _strings(value: object, where: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings")
    for item in value:
        if not pattern.fullmatch(item):
            raise ValueError(f"{where}: {item!r} is not a valid entry")
    if len(set(value)) != len(value):
        raise ValueError(f"{where}: listed twice")
    return tuple(value)


def _version(doc: dict[str, Any], source: Path) -> str:
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f"{source}: `version` must be a non-empty string")
    return version


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return _mapping(doc, str(path))


def _tiers(path: Path) -> tuple[str, dict[str, Tier], dict[str, Benefit]]:
    doc = _read(path)
    benefits: dict[str, Benefit] = {}
    for code, name in _mapping(doc.get("benefits"), f"{path}: benefits").items():
        if not CODE.fullmatch(str(code)) or not isinstance(name, str) or not name.strip():
            raise ValueError(f"{path}: benefit {code!r} needs an UPPER_CASE code and a name")
        benefits[code] = Benefit(code=code, name=name)
    tiers: dict[str, Tier] = {}
    for code, spec in _mapping(doc.get("tiers"), f"{path}: tiers").items():
        where = f"{path}: tier {code}"
        spec = _mapping(spec, where)
        rank = spec.get("rank")
        if not CODE.fullmatch(str(code)):
            raise ValueError(f"{where}: codes are UPPER_CASE")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"{where}: `rank` must be an integer >= 1")
        listed = _strings(spec.get("benefits"), f"{where}: benefits", CODE)
        unknown = [b for b in listed if b not in benefits]
        if unknown:
            raise ValueError(f"{where}: unknown benefits {unknown}")
        name = spec.get("name", code)
        if not isinstance(name, str):
            raise ValueError(f"{where}: `name` must be a string")
        tiers[code] = Tier(code=code, name=name, rank=rank, benefits=tuple(benefits[b] for b in listed))
    ranks = [t.rank for t in tiers.values()]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"{path}: two tiers share a rank; ranks order tiers")
    return _version(doc, path), tiers, benefits


def _roles(path: Path) -> tuple[str, dict[str, StaffRole]]:
    doc = _read(path)
    roles: dict[str, StaffRole] = {}
    for name, spec in _mapping(doc.get("roles"), f"{path}: roles").items():
        where = f"{path}: role {name}"
        spec = _mapping(spec, where)
        if not ROLE_NAME.fullmatch(str(name)):
            raise ValueError(f"{where}: role names are lower_snake_case")
        permissions = _strings(spec.get("permissions"), f"{where}: permissions", PERMISSION)
        if not permissions:
            raise ValueError(f"{where}: a role needs permissions")
        title = spec.get("name", name)
        if not isinstance(title, str):
            raise ValueError(f"{where}: `name` must be a string")
        scopes = _strings(spec.get("scopes"), f"{where}: scopes", SCOPE_KIND)
        roles[name] = StaffRole(name=name, title=title, scopes=scopes, permissions=permissions)
    return _version(doc, path), roles


@lru_cache(maxsize=8)
def load_catalogue(tiers_path: Path | None = None, roles_path: Path | None = None) -> Catalogue:
    """Load and validate both files (default: the packaged ones); ValueError names what is wrong."""
    tiers_version, tiers, benefits = _tiers(tiers_path or TIERS_PATH)
    roles_version, roles = _roles(roles_path or ROLES_PATH)
    return Catalogue(
        tiers_version=tiers_version,
        roles_version=roles_version,
        tiers=tiers,
        roles=roles,
        benefits=benefits,
    )


def catalogue_for(settings: Settings) -> Catalogue:
    """The catalogue this deployment configured; read once per path."""
    return load_catalogue(settings.tier_catalogue_path, settings.role_catalogue_path)
