"""Tests for `twistd cloudd`: options, the composition root, the service tree and the twistd dropins.

The service tree is started on a memory reactor (a Clock that records listens, with a synchronous
DB pool), so these tests bind no socket; `twistd --help` runs as a real process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess

import sqlalchemy as sa
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from cloudd import tap
from cloudd.bootstrap import StaleCredentialsFile
from cloudd.db import migrate, model
from cloudd.db.connector import DatabaseNotReadyError
from cloudd.db.enginestrategy import create_engine
from cloudd.jobs.runner import JobRunner
from cloudd.service import CloudManager, endpoint_from, make_cloud_manager
from cloudd.web.resource import ApiResource
from tests.util.daemon import twistd_argv, twistd_env
from tests.util.db import test_db_url, using_server_db, wipe
from tests.util.reactor import NonThreadPool, SynchronousThreads

EPOCH = 1_760_000_000


class ServiceReactor(SynchronousThreads, MemoryReactorClock):
    """A memory reactor whose thread pool runs work at once, enough to start the whole service tree."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = NonThreadPool()


class OptionsTests(SynchronousTestCase):
    """cloudd.tap.Options: locations only, checked at parse time."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        """Without arguments: ./cloudd-data (made absolute), SQLite in it, loopback port 8080, no upgrade."""
        options = self.parse()
        self.assertEqual(options["basedir"], os.path.abspath("cloudd-data"))
        self.assertEqual(options["db-url"], "sqlite:///%(basedir)s/cloudd.sqlite")
        self.assertEqual(options["listen"], "tcp:8080:interface=127.0.0.1")
        self.assertFalse(options["upgrade-db"])

    def test_given(self) -> None:
        """Long and short forms are accepted and kept."""
        options = self.parse("-d", "data", "-l", "tcp:9000", "--db-url", "mysql+pymysql://c@db/cloud", "--upgrade-db")
        self.assertEqual(options["basedir"], os.path.abspath("data"))
        self.assertEqual(options["listen"], "tcp:9000")
        self.assertEqual(options["db-url"], "mysql+pymysql://c@db/cloud")
        self.assertTrue(options["upgrade-db"])

    def test_bad(self) -> None:
        """An empty or typeless listen endpoint, unknown options, missing values and extra words are refused."""
        for argv in (["--listen", ""], ["--listen", ":8080"], ["--bogus"], ["--basedir"], ["extra"],
                     ["--upgrade-db=yes"]):
            self.assertRaises(usage.UsageError, self.parse, *argv)


class MakeServiceTests(SynchronousTestCase):
    """cloudd.tap.makeService builds a CloudManager from the options, without starting anything."""

    def make(self, *argv: str) -> CloudManager:
        options = tap.Options()
        options.parseOptions(["--basedir", self.basedir, *argv])
        svc = tap.makeService(options)
        assert isinstance(svc, CloudManager)
        self.addCleanup(svc.db.engine.dispose)
        return svc

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        # makeService sets the daemon's umask (0077); the test process gets its own back
        umask = os.umask(0o077)
        self.addCleanup(os.umask, umask)

    def test_fresh_basedir(self) -> None:
        """A fresh base directory is created, with a server id, and its new SQLite file may be migrated."""
        svc = self.make("--listen", "tcp:9123:interface=127.0.0.1")
        self.assertEqual(svc.listen, "tcp:9123:interface=127.0.0.1")
        self.assertEqual(svc.endpoint_url, "http://127.0.0.1:9123/client/api")
        self.assertEqual(svc.db.db_url, f"sqlite:///{self.basedir}/cloudd.sqlite")
        self.assertTrue(svc.db.auto_upgrade)
        self.assertFalse(svc.running)
        with open(os.path.join(self.basedir, "management-server-id")) as f:
            ms_uuid = f.read().strip()
        self.assertEqual(svc.jobs.ms_uuid, ms_uuid)
        self.assertEqual(self.make().jobs.ms_uuid, ms_uuid)

    def test_existing_file_not_upgraded(self) -> None:
        """An existing SQLite file is upgraded only when --upgrade-db is given."""
        os.makedirs(self.basedir)
        sqlite3.connect(os.path.join(self.basedir, "cloudd.sqlite")).close()
        self.assertFalse(self.make().db.auto_upgrade)
        self.assertTrue(self.make("--upgrade-db").db.auto_upgrade)

    def test_server_url_not_upgraded(self) -> None:
        """A server database is never migrated implicitly."""
        svc = self.make("--db-url", "mysql+pymysql://cloud@db.invalid/cloud")
        self.assertFalse(svc.db.auto_upgrade)


class EndpointTests(SynchronousTestCase):
    """endpoint_from: the API URL written to admin-credentials.json for a listen endpoint."""

    def test_forms(self) -> None:
        """Positional and keyword ports, escaped IPv6 interfaces, any-address and TLS endpoints."""
        cases = {
            "tcp:8080:interface=127.0.0.1": "http://127.0.0.1:8080/client/api",
            "tcp:9000": "http://127.0.0.1:9000/client/api",
            "tcp:port=9001:interface=10.1.2.3": "http://10.1.2.3:9001/client/api",
            "tcp:9002:interface=0.0.0.0": "http://127.0.0.1:9002/client/api",
            "tcp6:9003:interface=\\:\\:1": "http://[::1]:9003/client/api",
            "tcp6:9004:interface=\\:\\:": "http://[::1]:9004/client/api",
            "ssl:8443:privateKey=key.pem:interface=127.0.0.1": "https://127.0.0.1:8443/client/api",
        }
        for listen, url in cases.items():
            self.assertEqual(endpoint_from(listen), url, listen)


class CloudManagerTests(SynchronousTestCase):
    """The service tree: started on a memory reactor it has named children `jobs` and `api`."""

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        self.reactor = ServiceReactor()
        self.reactor.advance(EPOCH)

    def manager(self, db_url: str | None = None, auto_upgrade: bool = True) -> CloudManager:
        url = db_url or test_db_url()
        if db_url is None and using_server_db():
            wipe(url)
        mgr = make_cloud_manager(basedir=self.basedir, db_url=url, listen="tcp:0:interface=127.0.0.1",
                                 reactor=self.reactor, threadpool=self.reactor.pool,  # type: ignore[arg-type]
                                 auto_upgrade=auto_upgrade)
        self.addCleanup(mgr.db.pool.stop)
        self.addCleanup(lambda: mgr.cpu_pool.started and mgr.cpu_pool.stop())
        return mgr

    def outdated_file(self) -> None:
        os.makedirs(self.basedir)
        conn = sqlite3.connect(os.path.join(self.basedir, "cloudd.sqlite"))
        conn.execute("CREATE TABLE notes (id INTEGER)")
        conn.close()

    def test_start_and_stop(self) -> None:
        """Starting migrates, bootstraps, then runs `jobs` and listens as `api`; stopping ends everything."""
        mgr = self.manager()
        mgr.privilegedStartService()
        mgr.startService()
        self.successResultOf(mgr.ready)
        jobs = mgr.getServiceNamed("jobs")
        api = mgr.getServiceNamed("api")
        self.assertIsInstance(jobs, JobRunner)
        self.assertTrue(jobs.running and api.running)
        self.assertEqual([s.name for s in mgr], ["hypervisors", "agents", "ssvms", "jobs", "hosts", "storage",
                                                 "capacity", "systemvms", "templates", "api"])
        self.assertTrue(self.reactor.pool.started)
        self.assertTrue(migrate.is_current(mgr.db.engine))
        [(port, site, _backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        assert isinstance(site, Site)
        self.assertIsInstance(site.getResourceFor(DummyRequest([b"client", b"api"])), ApiResource)

        creds_path = os.path.join(self.basedir, "admin-credentials.json")
        self.assertEqual(stat.S_IMODE(os.stat(creds_path).st_mode), 0o600)
        with open(creds_path) as f:
            self.assertEqual(json.load(f)["endpoint"], "http://127.0.0.1:0/client/api")

        self.successResultOf(mgr.stopService())
        self.assertFalse(jobs.running or api.running or mgr.running)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(mgr.cpu_pool.started)

    def test_outdated_schema_refused_before_reactor(self) -> None:
        """privilegedStartService refuses an outdated schema with an error event naming `cloudd upgrade-db`."""
        self.outdated_file()
        mgr = self.manager("sqlite:///%(basedir)s/cloudd.sqlite", auto_upgrade=False)
        with capturedLogs() as events:
            self.assertRaises(DatabaseNotReadyError, mgr.privilegedStartService)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("run `cloudd upgrade-db` first", errors[0]["error"])
        self.assertFalse(mgr.running)

    def test_stale_credentials_file(self) -> None:
        """A credentials file left from another database stops the first start before any admin is created;
        once it is moved away, the next start creates the admin and writes the keys the database holds."""
        os.makedirs(self.basedir)
        creds_path = os.path.join(self.basedir, "admin-credentials.json")
        with open(creds_path, "w") as f:
            f.write('{"apikey": "stale"}')
        url = "sqlite:///%(basedir)s/cloudd.sqlite"
        first = self.manager(url)
        first.startService()
        err = self.failureResultOf(first.ready, StaleCredentialsFile).value
        self.assertIn("move the file away", str(err))
        self.flushLoggedErrors(StaleCredentialsFile)
        self.successResultOf(first.stopService())
        with open(creds_path) as f:
            self.assertEqual(f.read(), '{"apikey": "stale"}')
        engine = create_engine(url, self.basedir)
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            self.assertEqual(conn.execute(sa.select(sa.func.count()).select_from(model.users)).scalar_one(), 0)

        os.rename(creds_path, creds_path + ".old")
        second = self.manager(url)
        second.startService()
        self.successResultOf(second.ready)
        with open(creds_path) as f:
            creds = json.load(f)
        user = self.successResultOf(second.db.accounts.get_user_by_api_key(creds["apikey"]))
        self.assertEqual(user.username, "admin")
        self.successResultOf(second.stopService())

    def test_failed_start_stops_the_reactor(self) -> None:
        """When the asynchronous start fails, it is logged, `ready` fails and the reactor is stopped."""
        self.outdated_file()
        mgr = self.manager("sqlite:///%(basedir)s/cloudd.sqlite", auto_upgrade=False)
        mgr.startService()
        self.failureResultOf(mgr.ready, DatabaseNotReadyError)
        self.assertEqual(len(self.flushLoggedErrors(DatabaseNotReadyError)), 1)
        self.assertTrue(self.reactor.hasStopped)
        self.assertRaises(KeyError, mgr.getServiceNamed, "api")
        self.successResultOf(mgr.stopService())

    def test_stop_during_start_is_not_a_failure(self) -> None:
        """A stop (SIGTERM) that arrives while the start is still working ends quietly: nothing is
        logged as an error and the reactor is not stopped a second time."""
        mgr = self.manager("sqlite://")
        gate: Deferred[None] = Deferred()

        async def slow_setup() -> None:
            await gate

        mgr.db.setup = slow_setup  # type: ignore[method-assign]
        mgr.startService()
        self.successResultOf(mgr.stopService())
        gate.errback(ConnectionError("pool stopped"))
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertFalse(self.reactor.hasStopped)
        self.assertNoResult(mgr.ready)


class TwistdTests(SynchronousTestCase):
    """The dropins in twisted/plugins are found by twistd."""

    def twistd(self, *args: str) -> str:
        out = subprocess.run(twistd_argv(*args), env=twistd_env(), capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_help_lists_daemons(self) -> None:
        """`twistd --help` lists cloudd, routervm and ssvm with their descriptions."""
        text = self.twistd("--help")
        commands = text.split("Commands:", 1)[1]
        names = {line.split()[0] for line in commands.splitlines() if line.startswith("    ") and line.split()}
        self.assertTrue({"cloudd", "routervm", "ssvm"} <= names, commands)
        self.assertIn("The cloudd management server", commands)

    def test_cloudd_help(self) -> None:
        """`twistd cloudd --help` shows the cloudd options."""
        text = self.twistd("cloudd", "--help")
        for option in ("--basedir", "--db-url", "--listen", "--upgrade-db"):
            self.assertIn(option, text)
