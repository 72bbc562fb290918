"""Test databases: in-memory SQLite by default, or the database named by CLOUDD_TEST_DB_URL.

With a server database (MariaDB/MySQL), every test starts from empty tables: all tables are
dropped and the migrations are applied again, so migration code runs on that dialect too.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from cloudd.db import migrate
from cloudd.db.connector import DBConnector
from cloudd.db.model import metadata
from tests.util.reactor import FakeReactor

ENV = "CLOUDD_TEST_DB_URL"


def test_db_url() -> str:
    return os.environ.get(ENV) or "sqlite://"


def using_server_db() -> bool:
    return not test_db_url().startswith("sqlite")


def wipe(url: str) -> None:
    """Drop every table of a server database (never used on SQLite, which starts empty)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "mysql":
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for table in reversed(metadata.sorted_tables):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            if conn.dialect.name == "mysql":
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
    finally:
        engine.dispose()


def make_db(reactor: FakeReactor, basedir: str = ".", url: str | None = None) -> DBConnector:
    """A real DBConnector on the test database, schema migrated, pool running synchronously."""
    url = url or test_db_url()
    if not url.startswith("sqlite"):
        wipe(url)
    db = DBConnector(url, basedir, reactor, reactor, threadpool=reactor.pool, auto_upgrade=True)  # type: ignore[arg-type]
    migrate.upgrade(db.engine)
    db.pool.start()
    return db
