"""The `troika` command: migrate, serve, demo data, keys and tokens."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config

from app.auth.keys import KeyInfo, create_key, find_keys, list_keys, principal_for_key, revoke_key
from app.auth.principal import PrincipalKind, Role
from app.auth.tokens import mint_session
from app.cli_audiences import audiences
from app.cli_ingest import deadletters, import_records
from app.cli_jobs import jobs, worker
from app.cli_pii import pii
from app.cli_support import with_db
from app.cli_wechat import wechat
from app.db.engine import Database
from app.domain import Channel
from app.services.sessions import revoke_user as revoke_user_sessions
from app.settings import Environment, Settings, get_settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str, settings: Settings | None = None) -> Config:
    """Alembic config for our migrations, pointed at `database_url`; data migrations that encrypt
    use the keys of `settings` (else the process's: migrations/keys.py)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    if settings is not None:
        cfg.attributes["troika.settings"] = settings
    return cfg


def migrate(settings: Settings) -> None:
    """Bring the database to the newest schema (creates var/ for the SQLite default)."""
    if settings.is_sqlite:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url, settings), "hub@head")
    for url in dict.fromkeys(settings.channel_database_url(c) for c in Channel):
        command.upgrade(alembic_config(url, settings), "channel@head")


def cli_actor() -> str:
    """Who the audit log says ran a command: the operating-system account."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


@click.group()
def main() -> None:
    """Troika: one customer across mini program, official account and APP."""
    from app import logscrub

    logscrub.install(get_settings())


@main.command("migrate")
def migrate_cmd() -> None:
    """Run the database migrations."""
    migrate(get_settings())
    click.echo("migrations: at head", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql); several workers get a socket each. In
    development, the fake WeChat at /fake-wechat."""
    import uvicorn

    from app.serve import APP, log_config, reuseport_available, serve_one, serve_workers, ws_ping_seconds

    if get_settings().wechat_fake and "TROIKA_WECHAT_API_BASE_URL" not in os.environ:
        # The app calls the fake it serves itself: point WeChat's base URL here.
        own = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        os.environ["TROIKA_WECHAT_API_BASE_URL"] = f"http://{own}:{port}/fake-wechat"
        get_settings.cache_clear()
        click.echo(f"  WeChat: the development fake at http://{own}:{port}/fake-wechat", err=True)

    if workers > 1 and reuseport_available():
        sys.exit(serve_workers(host, port, workers, access_log=access_log))
    if workers <= 1:
        serve_one(host, port, access_log=access_log)
        return
    uvicorn.run(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        ws_ping_interval=ws_ping_seconds(),
        log_config=log_config(),
    )


@main.command()
@click.option("--if-empty", is_flag=True, help="Load only into a database without users.")
def demo(if_empty: bool) -> None:
    """Load the demo users (restaurant, shop and hotel stories)."""
    from app.demo import load_demo

    loaded = with_db(get_settings(), lambda db: load_demo(db, if_empty=if_empty))
    click.echo(f"demo: {loaded} users loaded" if loaded else "demo: data already present, kept", err=True)


@main.group()
def keys() -> None:
    """API keys for services and operators."""


@keys.command("create")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in (PrincipalKind.SERVICE, PrincipalKind.OPERATOR)]),
    required=True,
)
@click.option("--channel", type=click.Choice([c.value for c in Channel]), help="Service keys: the channel.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice([r.value for r in Role]),
    help="Operator keys (repeatable).",
)
@click.option("--name", default="", help="A label for people.")
def keys_create(kind: str, channel: str | None, roles: tuple[str, ...], name: str) -> None:
    """Create a key and print it, alone, once: only its hash is kept."""

    async def work(db: Database) -> str:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(
                session,
                kind=PrincipalKind(kind),
                channel=Channel(channel) if channel else None,
                roles=frozenset(Role(r) for r in roles),
                name=name,
                actor=cli_actor(),
            )
        return new.raw

    from app.errors import DomainError

    try:
        click.echo(with_db(get_settings(), work))
    except DomainError as exc:
        raise click.UsageError(exc.message) from exc


@keys.command("list")
def keys_list() -> None:
    """Every key: id, first characters, kind, channel or roles, name, when created, when revoked."""

    async def work(db: Database) -> list[KeyInfo]:
        async with db.read_sessions() as session:
            return await list_keys(session)

    for k in with_db(get_settings(), work):
        scope = k.channel or k.roles
        revoked = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "live"
        click.echo(f"{k.id}\t{k.prefix}…\t{k.kind}\t{scope}\t{k.name}\t{k.created_at:%Y-%m-%d}\t{revoked}")


@keys.command("revoke")
@click.argument("ref")
def keys_revoke(ref: str) -> None:
    """Revoke a key by its id, its first characters (as `troika keys list` shows them) or the key.

    Running servers refuse it within TROIKA_API_KEY_REVOCATION_CHECK_SECONDS.
    """
    settings = get_settings()

    async def work(db: Database) -> str:
        async with db.write_sessions() as session, session.begin():
            found = await find_keys(session, ref)
            live = [k for k in found if k.revoked_at is None]
            if not found:
                raise click.UsageError(f"no key matches {ref!r} (see `troika keys list`)")
            if len(live) > 1:
                ids = ", ".join(str(k.id) for k in live)
                raise click.UsageError(f"{ref!r} matches several live keys ({ids}): give the id")
            if not live:
                return f"key {found[0].id} ({found[0].prefix}…) was revoked already"
            await revoke_key(session, live[0].id, actor=cli_actor())
        wait = settings.api_key_revocation_check_seconds
        return f"revoked key {live[0].id} ({live[0].prefix}…); servers refuse it within {wait:g} s"

    click.echo(with_db(settings, work))


@main.group()
def sessions() -> None:
    """End users' sessions."""


@sessions.command("revoke")
@click.option("--user-id", type=int, required=True)
def sessions_revoke(user_id: int) -> None:
    """End every session of a user: their refresh tokens stop working now, their access tokens
    within TROIKA_SESSION_TTL_SECONDS."""
    settings = get_settings()

    async def work(db: Database) -> int:
        async with db.write_sessions() as session, session.begin():
            return await revoke_user_sessions(session, user_id)

    ended = with_db(settings, work)
    click.echo(f"ended {ended} session(s) of user {user_id}")


@main.command()
@click.option("--user-id", type=int, required=True)
def token(user_id: int) -> None:
    """Mint an end-user session token (for tests and development)."""
    settings = get_settings()
    raw, _expires = mint_session(
        user_id, secret=settings.secret("token_secret"), ttl_seconds=settings.session_ttl_seconds
    )
    click.echo(raw)


@main.command("dev-token")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
def dev_token(host: str, port: int) -> None:
    """Development only: print the URL and an operator key (admin, pii_reader) kept under var/."""
    settings = get_settings()
    if settings.env is not Environment.DEVELOPMENT:
        raise click.UsageError("dev-token exists only in development")
    path = settings.var_dir / "dev-operator-key"

    async def work(db: Database) -> str:
        if path.exists():
            async with db.read_sessions() as session:
                if await principal_for_key(session, path.read_text().strip()):
                    return path.read_text().strip()
        async with db.write_sessions() as session, session.begin():
            new = await create_key(
                session,
                kind=PrincipalKind.OPERATOR,
                roles=frozenset({Role.ADMIN, Role.PII_READER}),
                name="development operator",
                actor=cli_actor(),
            )
        path.write_text(new.raw)
        path.chmod(0o600)
        return new.raw

    raw = with_db(settings, work)
    click.echo(
        f"\n  Troika is starting on http://{host}:{port}/graphql\n"
        f"  Paste into GraphiQL's Headers tab:\n\n"
        f'    {{"Authorization": "Bearer {raw}"}}\n\n'
        f'  Try: {{ user(identity: {{kind: PHONE, value: "+8613800000001"}}) '
        f"{{ id identities {{ kind namespace value linkedBy }} }} }}\n\n"
        f"  The operator console, with the same key: http://{host}:{port}/console\n",
        file=sys.stdout,
    )


main.add_command(audiences)
main.add_command(import_records)
main.add_command(deadletters)
main.add_command(wechat)
main.add_command(pii)
main.add_command(worker)
main.add_command(jobs)
