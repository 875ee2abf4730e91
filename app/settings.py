"""One settings class so every knob is a `TROIKA_` environment variable."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.ratelimit import Rate

DEMO_APPIDS = {
    "mini_program_appid": "wxd0000000000000mp",
    "official_account_appid": "wxd0000000000000oa",
    "app_wechat_appid": "wxd000000000000app",
}
WECHAT_API = "https://api.weixin.qq.com"
# What the fake WeChat of development (app/wechat/fake.py) knows the demo apps by.
DEMO_WECHAT_SECRETS = {
    "mini_program_secret": "demo-mini-program-secret",
    "official_account_secret": "demo-official-account-secret",
    "app_wechat_secret": "demo-app-secret",
    "official_account_token": "demo-token",
    "official_account_aes_key": "RGVtb0Flc0tleUZvclRyb2lrYURldmVsb3BtZW50MDE",
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
    # PII at rest (app/sealing.py): the encryption keys, newest first, comma-separated
    # (TROIKA_PII_KEYS); TROIKA_PII_KEY alone is the one-key form. New ciphertexts use the first;
    # every listed key still decrypts; `troika pii re-encrypt` moves old ciphertexts to the first.
    pii_key: str | None = Field(default=None, repr=False)
    pii_keys: str | None = Field(default=None, repr=False)
    # The blind index's key (HMAC-SHA256 of phones: lookups, ownership, refs). Stable: changing it
    # means re-indexing every phone everywhere (see README "PII at rest").
    pii_index_key: str | None = Field(default=None, repr=False)
    # End users' sessions (app/services/sessions.py): a short-lived access token, refreshed with
    # a refresh token that rotates on every use.
    session_ttl_seconds: int = 15 * 60
    refresh_ttl_seconds: int = 30 * 24 * 3600
    phone_default_region: str = "CN"
    mini_program_appid: str | None = None
    official_account_appid: str | None = None
    app_wechat_appid: str | None = None
    sqlite_busy_timeout_ms: int = 15_000
    # PostgreSQL connection pool of each database (reads and writes share it; compiled reads have
    # as many asyncpg connections at most, app/db/direct.py): a fixed size, no overflow (new sessions
    # cost PostgreSQL ~2 ms of CPU each), how long a request waits for a free connection, and
    # asyncpg's prepared statements kept per connection.
    db_pool_size: int = Field(default=20, ge=1)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    db_statement_cache_size: int = Field(default=500, ge=0)
    # PostgreSQL connections of each process for the one-statement writes (a consent): they queue
    # here rather than on the outbox head's row lock, where each waiter costs PostgreSQL a sleep and
    # a wake-up per commit; 0 shares the compiled reads' connections (no queue of their own).
    db_direct_writes: int = Field(default=0, ge=0)
    # PostgreSQL's plan_cache_mode for the pools' sessions (docs/performance.md); the compiled read
    # statements keep their generic plans under `auto` already.
    db_plan_cache_mode: Literal["auto", "force_generic_plan", "force_custom_plan"] = "auto"
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
    # Where the workers of one host keep their common entries (app/response_store.py): set by
    # `troika serve --workers N` for its workers (a fresh directory in /dev/shm, removed on exit;
    # one given here is emptied at start instead). Unset, each process keeps its own in memory.
    response_cache_dir: Path | None = None
    # Whether `troika serve --workers N` gives its workers that one store; false: one cache each.
    response_cache_shared: bool = True
    # Compiled reads (graphql_schema/compiled/): known queries of users answered from one statement
    # per database instead of field by field; false runs every query through the resolvers.
    compiled_reads: bool = True
    # The fast lane (app/http/lane.py): a query the full path already cleared and compiled is
    # answered again by its plan without strawberry's per-operation extensions; false: never.
    graphql_fast_lane: bool = True
    # Sync: how often each instance reads the outbox when no doorbell rang (Redis down, or a
    # change committed by another process such as `troika import`), subscriptions allowed on
    # one WebSocket connection, the WebSocket keep-alive ping of `troika serve`, and how long
    # the outbox keeps changes for `changes(after:)` to replay.
    changes_poll_seconds: float = 0.5
    subscriptions_per_connection: int = 20
    ws_ping_seconds: float = 20.0
    changes_retention_days: float = 7.0
    # Log each garbage collection that pauses a worker at least this long (0: off); app/gcpause.py.
    gc_pause_log_ms: float = 0.0
    ingest_max_records: int = 5_000
    # Audience conditions (app/services/audience_conditions.py): how deep all/any/not may nest,
    # and how many nodes one tree may have.
    audience_max_depth: int = 6
    audience_max_nodes: int = 40
    # Live membership (app/services/audience_live.py): whether this instance takes part in
    # following the outbox (one instance at a time does), and how often every saved audience is
    # evaluated whole again (conditions such as "within 30 days" move with the clock; 0: never).
    audience_live: bool = True
    audience_refresh_seconds: float = 3600.0
    # Campaigns (app/services/campaigns.py): WeChat calls per second a campaign makes at most, and
    # openids per official-account mass send (WeChat allows 10,000).
    campaign_calls_per_second: float = 20.0
    campaign_mass_batch: int = 10_000
    ingest_max_body_bytes: int = 10 * 1024 * 1024
    # WeChat (the appids above name the apps). The API base URL is WeChat's own; tests and the
    # development fake point it elsewhere. `wechat_fake`: serve a fake WeChat API at /fake-wechat
    # and use it (development only; on by default there when no WeChat secret is configured).
    wechat_api_base_url: str = WECHAT_API
    # Where a running Troika answers the commands that call it (`troika wechat …` in development,
    # whose fake WeChat is served at <server_url>/fake-wechat); `--url` overrides it per command.
    server_url: str = "http://127.0.0.1:8000"
    wechat_timeout_seconds: float = 5.0
    wechat_fake: bool | None = None
    mini_program_secret: str | None = Field(default=None, repr=False)
    app_wechat_secret: str | None = Field(default=None, repr=False)
    official_account_secret: str | None = Field(default=None, repr=False)
    official_account_token: str | None = Field(default=None, repr=False)
    # EncodingAESKey (43 characters): set for safe (AES) mode pushes.
    official_account_aes_key: str | None = Field(default=None, repr=False)
    official_account_max_body_bytes: int = 64 * 1024
    # A push whose signed timestamp is older (or further ahead) than this is refused; 0: never.
    official_account_max_age_seconds: int = 300
    # A menu CLICK with this key is answered with a link to bind a phone (at the URL, if set).
    official_account_bind_phone_key: str = "BIND_PHONE"
    official_account_bind_phone_url: str | None = None
    # SMS codes: "log" prints them to the log (development); else "module:factory" of a sender.
    sms_sender: str = "log"
    sms_code_ttl_seconds: int = 300
    sms_min_interval_seconds: int = 60  # between two codes for one phone; 0: none
    sms_per_phone_per_hour: int = 5
    sms_per_phone_per_day: int = 10
    sms_per_client_per_hour: int = 20
    sms_verify_attempts_per_15_minutes: int = 5
    # Background jobs (app/jobs, docs/jobs.md): run them inside `troika serve` (off when dedicated
    # `troika worker` processes run), how many at once per worker, and a push's tries: the first
    # retry after `retry_base_seconds`, doubling up to `retry_max_seconds`, failed after `attempts`.
    jobs_in_process: bool = True
    jobs_concurrency: int = Field(default=4, ge=1, le=100)
    wechat_inbox_attempts: int = Field(default=8, ge=1, le=50)
    jobs_retry_base_seconds: int = Field(default=30, ge=1)
    jobs_retry_max_seconds: int = Field(default=3600, ge=1)
    # Clean-ups (hourly): how long finished inbox pushes, failed inbox pushes and finished jobs
    # are kept, and spent SMS codes and refresh tokens after they were used or expired.
    inbox_retention_days: float = 30.0
    dead_letter_retention_days: float = 90.0
    jobs_retention_days: float = 7.0
    # The official account's own data: the daily pull (cron in UTC; 00:45 UTC is 08:45 Beijing,
    # after WeChat publishes yesterday's figures at about 08:00) and how far a first pull reaches back.
    official_account_pull_cron: str = "45 0 * * *"
    official_account_pull_days: int = Field(default=7, ge=1, le=60)
    sms_code_retention_days: float = 1.0
    refresh_token_retention_days: float = 7.0
    # Tries of one batch transaction (ingestion), or of one mutation's, that PostgreSQL aborted for
    # a deadlock or serialization failure.
    ingest_max_attempts: int = Field(default=3, ge=1, le=10)
    write_attempts: int = Field(default=3, ge=1, le=10)
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
    # Automatic persisted queries (app/http/persisted.py): the documents kept by their SHA-256,
    # bounded in bytes (0 turns persisted queries off).
    persisted_queries_bytes: int = 8 * 1024 * 1024
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
    # Operations (app/observability/): /metrics answers operator keys and callers from these
    # networks (comma-separated CIDRs); /readyz gives each dependency this long; on SIGTERM open
    # WebSockets get this long before they are closed with 1001 (going away); traces go by OTLP/HTTP
    # to this endpoint (e.g. http://collector:4318) when set, and nowhere otherwise.
    metrics_networks: str = "127.0.0.0/8,::1/128"
    metrics_max_operations: int = Field(default=200, ge=1)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    drain_seconds: float = Field(default=10.0, ge=0)
    otlp_endpoint: str | None = None
    # Read replicas of the hub (app/db/replicas.py): PostgreSQL URLs, comma-separated. GraphQL
    # queries read a replica that is up, lags at most this long and holds the caller's own writes.
    database_replica_urls: str = ""
    replica_max_lag_seconds: float = Field(default=5.0, gt=0)
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
        if self.official_account_aes_key and not _valid_aes_key(self.official_account_aes_key):
            raise ValueError(
                "TROIKA_OFFICIAL_ACCOUNT_AES_KEY must be the 43-character EncodingAESKey of the "
                "official account console (base64 of 32 bytes)"
            )
        if self.env is Environment.PRODUCTION:
            if self.wechat_fake:
                raise ValueError("TROIKA_WECHAT_FAKE is for development only")
            self.wechat_fake = False
            missing = [n for n in ("token_secret", "pii_index_key") if not getattr(self, n)]
            if not (self.pii_key or self.pii_keys):
                missing.insert(1, "pii_key")
            if missing:
                names = ", ".join(f"TROIKA_{n.upper()}" for n in missing)
                raise ValueError(f"production mode requires {names}")
            if len(self.secret("token_secret")) < 32:
                raise ValueError("TROIKA_TOKEN_SECRET must be at least 32 characters")
            self._refuse_development_leftovers()
            self.pii_secrets()  # a malformed key list stops the start
            return self
        if not (self.token_secret and (self.pii_key or self.pii_keys) and self.pii_index_key):
            stored = _development_secrets(self.var_dir)
            self.token_secret = self.token_secret or stored["token_secret"]
            if not self.pii_keys:
                self.pii_key = self.pii_key or stored["pii_key"]
            self.pii_index_key = self.pii_index_key or stored["pii_index_key"]
        self.pii_secrets()
        for name, appid in DEMO_APPIDS.items():
            if getattr(self, name) is None:
                setattr(self, name, appid)
        if self.wechat_fake is None:
            self.wechat_fake = not any(getattr(self, n) for n in DEMO_WECHAT_SECRETS)
        if self.wechat_fake:
            if self.wechat_api_base_url == WECHAT_API:  # `troika serve` says where it serves the fake
                self.wechat_api_base_url = f"{self.server_url.rstrip('/')}/fake-wechat"
            for name, value in DEMO_WECHAT_SECRETS.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
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

    def pii_secrets(self) -> list[str]:
        """The PII encryption keys, newest first: TROIKA_PII_KEYS, else TROIKA_PII_KEY alone."""
        listed = [k.strip() for k in (self.pii_keys or "").split(",") if k.strip()]
        if not listed:
            return [self.secret("pii_key")]
        if len(set(listed)) != len(listed):
            raise ValueError("TROIKA_PII_KEYS lists a key twice")
        if self.pii_key and self.pii_key not in listed:
            raise ValueError(
                "TROIKA_PII_KEY is not in TROIKA_PII_KEYS: list it there (older keys after the newest) "
                "or unset it, so no key that still decrypts data is dropped by accident"
            )
        if any(len(k) < 16 for k in listed):
            raise ValueError("every key of TROIKA_PII_KEYS must be at least 16 characters")
        return listed

    def secret(self, name: str) -> str:
        """Return a secret that the validator guarantees is set."""
        value = getattr(self, name)
        assert isinstance(value, str)
        assert value
        return value


def _valid_aes_key(key: str) -> bool:
    """WeChat's EncodingAESKey: 43 base64 characters that decode (with '=') to an AES-256 key."""
    try:
        return len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
    except binascii.Error:
        return False


_DEVELOPMENT_SECRETS = ("token_secret", "pii_key", "pii_index_key")


def _development_secrets(var_dir: Path) -> dict[str, str]:
    """Keep development secrets under var/ so tokens (and encrypted data) survive restarts; a key
    added by a newer version is generated next to the existing ones, never in their place."""
    path = var_dir / "secrets.json"
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if set(_DEVELOPMENT_SECRETS) <= data.keys():
        return data
    for name in _DEVELOPMENT_SECRETS:
        data.setdefault(name, secrets.token_urlsafe(32))
    var_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return Settings()
