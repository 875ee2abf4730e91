"""One settings class so every knob is a `TROIKA_` environment variable."""

from __future__ import annotations

import json
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.ratelimit import Rate

DEMO_APPIDS = {
    "mini_program_appid": "wxd0000000000000mp",
    "official_account_appid": "wxd0000000000000oa",
    "app_wechat_appid": "wxd000000000000app",
}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Read from the environment (prefix TROIKA_); development fills in what it can."""

    model_config = SettingsConfigDict(env_prefix="TROIKA_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    var_dir: Path = Path("var")
    database_url: str = ""
    mini_program_database_url: str | None = None
    official_account_database_url: str | None = None
    app_database_url: str | None = None
    redis_url: str | None = None
    token_secret: str | None = Field(default=None, repr=False)
    pii_key: str | None = Field(default=None, repr=False)
    # End users' sessions (app/services/sessions.py): a short-lived access token, refreshed with
    # a refresh token that rotates on every use.
    session_ttl_seconds: int = 15 * 60
    refresh_ttl_seconds: int = 30 * 24 * 3600
    phone_default_region: str = "CN"
    mini_program_appid: str | None = None
    official_account_appid: str | None = None
    app_wechat_appid: str | None = None
    sqlite_busy_timeout_ms: int = 15_000
    data_dictionary_path: Path | None = None
    tier_catalogue_path: Path | None = None
    role_catalogue_path: Path | None = None
    # Live API keys are remembered this long; keys revoked meanwhile are looked for at most this
    # often (app/auth/authenticate.py), so a revoked key stops working within that time.
    api_key_cache_seconds: float = 30.0
    api_key_revocation_check_seconds: float = 2.0
    # Per-user response cache (app/response_cache.py): its size in bytes (0 turns it off) and
    # the longest an entry lives even when no version moved.
    response_cache_bytes: int = 64 * 1024 * 1024
    response_cache_seconds: float = 300.0
    # Sync: how often each instance reads the outbox when no doorbell rang (Redis down, or a
    # change committed by another process such as `troika import`), subscriptions allowed on
    # one WebSocket connection, the WebSocket keep-alive ping of `troika serve`, and how long
    # the outbox keeps changes for `changes(after:)` to replay.
    changes_poll_seconds: float = 0.5
    subscriptions_per_connection: int = 20
    ws_ping_seconds: float = 20.0
    changes_retention_days: float = 7.0
    ingest_max_records: int = 5_000
    ingest_max_body_bytes: int = 10 * 1024 * 1024
    # Bounded GraphQL operations, for every caller and every operation type (graphql_schema/limits.py):
    # nesting depth, aliases, lexical tokens, directives on one field and in all, how often one
    # field may be selected in one selection set, the cost (each field 1, `first` multiplies what
    # is under it) and the page size every `first` is capped at.
    graphql_max_depth: int = 8
    graphql_max_aliases: int = 20
    graphql_max_tokens: int = 1000
    graphql_max_directives: int = 20
    graphql_max_directives_per_field: int = 3
    graphql_max_field_repeats: int = 3
    graphql_max_cost: int = 10_000
    graphql_max_page_size: int = 100
    # GraphQL over HTTP (app/http/graphql.py): POST application/json bodies of at most this many
    # bytes, nested at most this deep; queries over GET only when turned on (mutations never);
    # batches (a JSON array of operations) of at most this many operations, 1 meaning none.
    graphql_max_body_bytes: int = 1024 * 1024
    graphql_max_json_depth: int = 32
    graphql_get_queries: bool = False
    graphql_batch_max: int = 1
    # Rate limits (app/ratelimit.py): "N/second|minute|hour|day", "N/<seconds>" or "off"; a burst of
    # N, then N per period. In Redis when TROIKA_REDIS_URL is set (shared by every instance), else
    # per process. `address` and `principal` count every GraphQL and ingest request of a client
    # address and of a key or signed-in user; `login` (wechatLogin, phoneLogin, refreshSession) and
    # `sms` (requestPhoneCode, bindPhone) count those mutations per address and per caller.
    rate_limit_enabled: bool = True
    rate_limit_address: str = "1200/minute"
    rate_limit_principal: str = "3000/minute"
    rate_limit_login: str = "20/minute"
    rate_limit_sms: str = "10/hour"
    # Introspection and GraphiQL are for operators; this flag opens them to every caller
    # (development only: production refuses to start with it).
    graphql_public_introspection: bool = False

    @field_validator("rate_limit_address", "rate_limit_principal", "rate_limit_login", "rate_limit_sms")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        Rate.parse(value)  # a typo stops the app at start, not at the first request
        return value

    @model_validator(mode="after")
    def _fill_development_defaults(self) -> Self:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'troika.db'}"
        if self.env is Environment.PRODUCTION:
            missing = [n for n in ("token_secret", "pii_key") if not getattr(self, n)]
            if missing:
                names = ", ".join(f"TROIKA_{n.upper()}" for n in missing)
                raise ValueError(f"production mode requires {names}")
            if len(self.secret("token_secret")) < 32:
                raise ValueError("TROIKA_TOKEN_SECRET must be at least 32 characters")
            self._refuse_development_leftovers()
            return self
        if not (self.token_secret and self.pii_key):
            stored = _development_secrets(self.var_dir)
            self.token_secret = self.token_secret or stored["token_secret"]
            self.pii_key = self.pii_key or stored["pii_key"]
        for name, appid in DEMO_APPIDS.items():
            if getattr(self, name) is None:
                setattr(self, name, appid)
        return self

    def _refuse_development_leftovers(self) -> None:
        """Production does not start with what development made or allows."""
        if self.token_secret == self.pii_key:
            raise ValueError("TROIKA_TOKEN_SECRET and TROIKA_PII_KEY must be different secrets")
        path = self.var_dir / "secrets.json"
        development = json.loads(path.read_text()) if path.exists() else {}
        reused = [n for n in ("token_secret", "pii_key") if getattr(self, n) in development.values()]
        if reused:
            names = ", ".join(f"TROIKA_{n.upper()}" for n in reused)
            raise ValueError(
                f"production mode refuses the development secrets of {path} ({names}): set new ones"
            )
        if self.graphql_public_introspection:
            raise ValueError(
                "TROIKA_GRAPHQL_PUBLIC_INTROSPECTION is for development; production serves "
                "introspection and GraphiQL to operators only"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def channel_database_url(self, channel: str) -> str:
        """A channel store's database: its own TROIKA_<CHANNEL>_DATABASE_URL, else the hub's."""
        own: str | None = getattr(self, f"{channel.lower()}_database_url")
        return own or self.database_url

    def secret(self, name: str) -> str:
        """Return a secret that the validator guarantees is set."""
        value = getattr(self, name)
        assert isinstance(value, str)
        assert value
        return value


def _development_secrets(var_dir: Path) -> dict[str, str]:
    """Keep development secrets under var/ so tokens survive restarts."""
    path = var_dir / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        if {"token_secret", "pii_key"} <= data.keys():
            return data
    var_dir.mkdir(parents=True, exist_ok=True)
    data = {"token_secret": secrets.token_urlsafe(32), "pii_key": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return Settings()
