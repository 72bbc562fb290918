"""The database service: engine, thread pool, schema check and the per-table components."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.python.threadpool import ThreadPool

from cloudd.db import migrate
from cloudd.db.accounts import AccountsComponent
from cloudd.db.alerts import AlertsComponent
from cloudd.db.configuration import ConfigurationComponent
from cloudd.db.domains import DomainsComponent
from cloudd.db.enginestrategy import create_engine, expand_url, is_sqlite_memory
from cloudd.db.events import EventsComponent
from cloudd.db.images import ImagesComponent
from cloudd.db.infra import InfraComponent
from cloudd.db.jobs import JobsComponent
from cloudd.db.offerings import OfferingsComponent
from cloudd.db.ostypes import OsTypesComponent
from cloudd.db.pool import DBThreadPool
from cloudd.db.roles import RolesComponent
from cloudd.db.sessions import SessionsComponent
from cloudd.db.storage import StorageComponent
from cloudd.util.sealing import Sealer


class DatabaseNotReadyError(Exception):
    """The schema is older than this code; `cloudd upgrade-db` brings it up to date."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


class DBConnector(Service):
    """Owns the engine and pool; started first and stopped last by the daemon."""

    def __init__(self, db_url: str, basedir: str, reactor: IReactorThreads, clock: IReactorTime,
                 threadpool: ThreadPool | None = None, auto_upgrade: bool = False,
                 sealer: Sealer | None = None) -> None:
        # the secrets key; without one (in-memory databases, tests) a key for this process only
        self.sealer = sealer or Sealer.ephemeral()
        self.db_url = expand_url(db_url, basedir)
        self.basedir = basedir
        self.auto_upgrade = auto_upgrade or is_sqlite_memory(self.db_url)
        self.engine = create_engine(self.db_url, basedir)
        # in-memory SQLite is one connection shared by every thread: its transactions must not interleave
        self.pool = DBThreadPool(self.engine, reactor, clock, threadpool=threadpool,
                                 max_threads=1 if is_sqlite_memory(self.db_url) else 5)
        self.domains = DomainsComponent(self.pool, clock)
        self.roles = RolesComponent(self.pool, clock)
        self.accounts = AccountsComponent(self.pool, clock, self.sealer)
        self.sessions = SessionsComponent(self.pool, clock, self.sealer)
        self.configuration = ConfigurationComponent(self.pool, clock)
        self.events = EventsComponent(self.pool, clock)
        self.jobs = JobsComponent(self.pool, clock)
        self.alerts = AlertsComponent(self.pool, clock)
        self.infra = InfraComponent(self.pool, clock)
        self.images = ImagesComponent(self.pool, clock)
        self.offerings = OfferingsComponent(self.pool, clock)
        self.ostypes = OsTypesComponent(self.pool, clock)
        self.storage = StorageComponent(self.pool, clock)

    def _not_ready(self) -> DatabaseNotReadyError:
        return DatabaseNotReadyError(
            f"the database at {redact_url(self.db_url)} has an outdated schema; run `cloudd upgrade-db` first")

    def check_schema(self) -> None:
        """Refuse an outdated schema that may not be upgraded here; blocking, so only before the reactor
        runs (twistd calls privilegedStartService there, and reports what it raises with a non-zero exit)."""
        if not self.auto_upgrade and not migrate.is_current(self.engine):
            raise self._not_ready()

    def check_secrets_key(self) -> None:
        """Refuse a secrets key other than the one the stored API secret keys were sealed with
        (SecretsKeyError); blocking, like check_schema. An outdated schema is left to the upgrade."""
        if migrate.is_current(self.engine):
            with self.engine.connect() as conn:
                self.accounts.thd_check_secrets_key(conn)

    async def setup(self) -> None:
        """Start the pool and make sure the schema is current (upgrading it when allowed)."""
        self.pool.start()

        if not await self.pool.do_with_engine(migrate.is_current):
            if not self.auto_upgrade:
                raise self._not_ready()
            await self.pool.do_with_engine(lambda engine: migrate.upgrade(engine, sealer=self.sealer))
        await self.pool.do(self.accounts.thd_check_secrets_key)

    def stopService(self) -> Deferred[None] | None:  # noqa: N802 (Twisted API)
        super().stopService()
        self.pool.stop()
        return None
