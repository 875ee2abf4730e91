"""What data migrations need to encrypt: the keyring of the settings `troika migrate` runs with.

`app.cli.alembic_config` passes the settings along; without them (alembic called directly), the
process's settings. Asked only when a migration has rows to rewrite, so an empty database (a
test's, a fresh install's) migrates without any key configured.
"""

from __future__ import annotations

from alembic import context

from app.sealing import Keyring, keyring_for
from app.settings import Settings, get_settings

SETTINGS = "troika.settings"


def settings() -> Settings:
    given = context.config.attributes.get(SETTINGS)
    return given if isinstance(given, Settings) else get_settings()


def keyring() -> Keyring:
    return keyring_for(settings())
