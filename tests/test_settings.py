"""Settings: development makes and keeps its secrets; production demands them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Environment, Settings


def test_development_generates_secrets_once_under_var(tmp_path: Path) -> None:
    first = Settings(var_dir=tmp_path, token_secret=None, pii_key=None)
    second = Settings(var_dir=tmp_path, token_secret=None, pii_key=None)
    assert first.token_secret
    assert first.pii_key
    assert (first.token_secret, first.pii_key) == (second.token_secret, second.pii_key)
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert first.database_url == f"sqlite+aiosqlite:///{tmp_path / 'troika.db'}"


def test_production_requires_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TROIKA_TOKEN_SECRET, TROIKA_PII_KEY, TROIKA_PII_INDEX_KEY"):
        Settings(env=Environment.PRODUCTION, var_dir=tmp_path, token_secret=None, pii_key=None)
    with pytest.raises(ValidationError, match="requires TROIKA_PII_INDEX_KEY"):
        Settings(env=Environment.PRODUCTION, var_dir=tmp_path, token_secret="t" * 32, pii_key="k" * 32)
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(
            env=Environment.PRODUCTION,
            var_dir=tmp_path,
            token_secret="short",
            pii_key="k" * 32,
            pii_index_key="i" * 32,
        )
    assert not (tmp_path / "secrets.json").exists()


def test_pii_keys_list_the_newest_first(tmp_path: Path) -> None:
    one = Settings(var_dir=tmp_path, pii_key="k" * 32, pii_index_key="i" * 32)
    assert one.pii_secrets() == ["k" * 32]
    rotated = Settings(var_dir=tmp_path, pii_keys=f"{'n' * 32}, {'k' * 32}", pii_index_key="i" * 32)
    assert rotated.pii_secrets() == ["n" * 32, "k" * 32]
    both = Settings(var_dir=tmp_path, pii_key="k" * 32, pii_keys=f"{'n' * 32},{'k' * 32}", pii_index_key="i")
    assert both.pii_secrets()[0] == "n" * 32
    with pytest.raises(ValidationError, match="TROIKA_PII_KEY is not in TROIKA_PII_KEYS"):
        Settings(var_dir=tmp_path, pii_key="k" * 32, pii_keys="n" * 32, pii_index_key="i" * 32)


def test_a_key_added_later_joins_the_development_secrets(tmp_path: Path) -> None:
    """An older var/secrets.json (no index key) keeps its keys: encrypted data stays readable."""
    (tmp_path / "secrets.json").write_text('{"token_secret": "t-old", "pii_key": "p-old"}')
    settings = Settings(var_dir=tmp_path, token_secret=None, pii_key=None)
    assert (settings.token_secret, settings.pii_key) == ("t-old", "p-old")
    assert settings.pii_index_key
    assert Settings(var_dir=tmp_path, token_secret=None, pii_key=None).pii_index_key == settings.pii_index_key


def test_environment_variables_use_the_troika_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TROIKA_DATABASE_URL", "postgresql+asyncpg://db/troika")
    monkeypatch.setenv("TROIKA_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("TROIKA_VAR_DIR", str(tmp_path))
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://db/troika"
    assert settings.redis_url == "redis://cache:6379/0"
    assert not settings.is_sqlite


def test_production_refuses_the_development_secrets(tmp_path: Path) -> None:
    development = Settings(var_dir=tmp_path, token_secret=None, pii_key=None)
    with pytest.raises(ValidationError, match=r"development secrets .*\(TROIKA_TOKEN_SECRET\)"):
        Settings(
            env=Environment.PRODUCTION,
            pii_index_key="i" * 40,
            var_dir=tmp_path,
            token_secret=development.token_secret,
            pii_key="q" * 40,
        )
    with pytest.raises(ValidationError, match=r"development secrets .*\(TROIKA_PII_KEY\)"):
        Settings(
            env=Environment.PRODUCTION,
            pii_index_key="i" * 40,
            var_dir=tmp_path,
            token_secret="p" * 40,
            pii_key=development.pii_key,
        )
    production = Settings(
        env=Environment.PRODUCTION,
        pii_index_key="i" * 40,
        var_dir=tmp_path,
        token_secret="p" * 40,
        pii_key="q" * 40,
    )
    assert production.env is Environment.PRODUCTION


def test_production_refuses_what_only_development_allows(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must be different secrets"):
        Settings(
            env=Environment.PRODUCTION,
            pii_index_key="i" * 40,
            var_dir=tmp_path,
            token_secret="s" * 40,
            pii_key="s" * 40,
        )
    with pytest.raises(ValidationError, match="TROIKA_GRAPHQL_PUBLIC_INTROSPECTION is for development"):
        Settings(
            env=Environment.PRODUCTION,
            pii_index_key="i" * 40,
            var_dir=tmp_path,
            token_secret="p" * 40,
            pii_key="q" * 40,
            graphql_public_introspection=True,
        )
