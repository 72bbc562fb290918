"""Schema version checks and upgrades through Alembic (blocking; run off the reactor thread)."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from cloudd.util.sealing import Sealer

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(connection: Connection | None = None, sealer: Sealer | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        cfg.attributes["connection"] = connection
    # revisions that seal or hash stored secrets (002) take the secrets key from here
    cfg.attributes["sealer"] = sealer
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def is_current(engine: Engine) -> bool:
    with engine.connect() as conn:
        return current_revision(conn) == head_revision()


def upgrade(engine: Engine, revision: str = "head", sealer: Sealer | None = None) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn, sealer), revision)
