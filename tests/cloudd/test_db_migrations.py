"""Tests for the schema: Alembic migrations, the schema check at start, `cloudd upgrade-db`, first start.

The model and migration tests run on in-memory SQLite and, when CLOUDD_TEST_DB_URL names one, on
that server database. The start-up tests build SQLite files by hand (no stamp, an unknown stamp, an
empty stamp table) and run the real `cloudd upgrade-db` and the real `twistd -n cloudd` on them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from cloudd.db import migrate
from cloudd.db.connector import DatabaseNotReadyError, DBConnector, redact_url
from cloudd.db.enginestrategy import create_engine
from cloudd.db.model import metadata
from cloudd.util.sealing import Sealer
from cloudd.web.signing import sign
from tests.util.daemon import ROOT, CloudDaemon, HttpResult, http
from tests.util.db import test_db_url, using_server_db, wipe
from tests.util.reactor import FakeReactor


def fresh_engine(testcase: SynchronousTestCase) -> Engine:
    """An engine on an empty test database (server databases are wiped first)."""
    url = test_db_url()
    if using_server_db():
        wipe(url)
    engine = create_engine(url)
    testcase.addCleanup(engine.dispose)
    return engine


def make_sqlite(path: str, stamp: str | None = None, stamp_table: bool = False) -> None:
    """A SQLite file that exists but is not current: an unrelated table, optionally an alembic stamp."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        if stamp_table or stamp is not None:
            conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        if stamp is not None:
            conn.execute("INSERT INTO alembic_version VALUES (?)", (stamp,))
        conn.commit()
    finally:
        conn.close()


def run_cli(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "cloudd.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def signed_get(daemon: CloudDaemon, creds: dict[str, str], command: str, **params: str) -> HttpResult:
    """A v1-signed GET with the admin keys from admin-credentials.json."""
    p = {"command": command, "response": "json", "apiKey": creds["apikey"], **params}
    p["signature"] = sign(p, creds["secretkey"])
    return http(daemon.endpoint + "?" + urlencode(p))


# The schema revision 001 creates: columns in order, named indexes, unique column sets, foreign keys.
SCHEMA_001: dict[str, dict[str, Any]] = {
    "configuration": {"columns": ["name", "value", "updated"], "pk": ["name"], "indexes": {}, "unique": [],
                      "fks": []},
    "domains": {
        "columns": ["id", "uuid", "name", "parent_id", "path", "level", "network_domain", "state", "created",
                    "removed"],
        "pk": ["id"], "indexes": {"domains_parent": ["parent_id"], "domains_path": ["path"]}, "unique": [["uuid"]],
        "fks": [(["parent_id"], "domains", ["id"], None)]},
    "mshosts": {"columns": ["id", "uuid", "name", "runid", "state", "last_heartbeat"], "pk": ["id"], "indexes": {},
                "unique": [["uuid"]], "fks": []},
    "roles": {"columns": ["id", "uuid", "name", "role_type", "description", "is_default", "created", "removed"],
              "pk": ["id"], "indexes": {}, "unique": [["uuid"]], "fks": []},
    "role_permissions": {
        "columns": ["id", "uuid", "role_id", "rule", "permission", "sort_order", "description"], "pk": ["id"],
        "indexes": {"role_permissions_role": ["role_id", "sort_order"]}, "unique": [["uuid"]],
        "fks": [(["role_id"], "roles", ["id"], "CASCADE")]},
    "accounts": {
        "columns": ["id", "uuid", "name", "account_type", "role_id", "domain_id", "state", "network_domain",
                    "is_default", "created", "removed"],
        "pk": ["id"], "indexes": {"accounts_domain": ["domain_id", "name"]}, "unique": [["uuid"]],
        "fks": [(["domain_id"], "domains", ["id"], None), (["role_id"], "roles", ["id"], None)]},
    "users": {
        "columns": ["id", "uuid", "username", "password_hash", "firstname", "lastname", "email", "account_id",
                    "state", "timezone", "api_key", "secret_key", "is_default", "created", "removed"],
        "pk": ["id"], "indexes": {"users_account": ["account_id"], "users_username": ["username"]},
        "unique": [["api_key"], ["uuid"]], "fks": [(["account_id"], "accounts", ["id"], None)]},
    "sessions": {
        "columns": ["id", "session_key", "user_id", "created", "last_access", "timeout"], "pk": ["id"],
        "indexes": {"sessions_user": ["user_id"]}, "unique": [],
        "fks": [(["user_id"], "users", ["id"], "CASCADE")]},
    "async_jobs": {
        "columns": ["id", "uuid", "user_id", "account_id", "domain_id", "command", "cmd", "cmd_info",
                    "instance_type", "instance_uuid", "sync_object", "status", "proc_status", "result_code",
                    "result", "msid", "created", "completed"],
        "pk": ["id"],
        "indexes": {"async_jobs_account": ["account_id"], "async_jobs_status": ["status", "msid"],
                    "async_jobs_sync": ["sync_object", "status"]},
        "unique": [["uuid"]],
        "fks": [(["account_id"], "accounts", ["id"], None), (["domain_id"], "domains", ["id"], None),
                (["msid"], "mshosts", ["id"], None), (["user_id"], "users", ["id"], None)]},
    "events": {
        "columns": ["id", "uuid", "type", "state", "level", "description", "user_id", "account_id", "domain_id",
                    "resource_type", "resource_uuid", "resource_name", "start_id", "archived", "created"],
        "pk": ["id"], "indexes": {"events_account": ["account_id", "created"], "events_domain": ["domain_id"]},
        "unique": [["uuid"]],
        "fks": [(["account_id"], "accounts", ["id"], None), (["domain_id"], "domains", ["id"], None)]},
}


class MigrationTests(SynchronousTestCase):
    """The Alembic revisions build exactly the schema the model describes."""

    def test_upgrade_empty_database(self) -> None:
        """Upgrading an empty database reaches the head revision, and a second upgrade changes nothing."""
        engine = fresh_engine(self)
        self.assertFalse(migrate.is_current(engine))
        migrate.upgrade(engine)
        self.assertTrue(migrate.is_current(engine))
        with engine.connect() as conn:
            self.assertEqual(migrate.current_revision(conn), migrate.head_revision())
        migrate.upgrade(engine)
        self.assertTrue(migrate.is_current(engine))

    def test_model_matches_migrations(self) -> None:
        """compare_metadata finds no difference (types and server defaults included) after upgrading."""
        engine = fresh_engine(self)
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            diff = compare_metadata(ctx, metadata)
        self.assertEqual(diff, [])

    def test_revision_001(self) -> None:
        """Revision 001 on an empty database creates every table with its columns, keys and indexes."""
        engine = fresh_engine(self)
        migrate.upgrade(engine, "001")
        with engine.connect() as conn:
            self.assertEqual(migrate.current_revision(conn), "001")
        insp = sa.inspect(engine)
        self.assertEqual(set(insp.get_table_names()), set(SCHEMA_001) | {"alembic_version"})
        for table, want in SCHEMA_001.items():
            self.assertEqual([c["name"] for c in insp.get_columns(table)], want["columns"], table)
            self.assertEqual(insp.get_pk_constraint(table)["constrained_columns"], want["pk"], table)
            indexes = {i["name"]: i["column_names"] for i in insp.get_indexes(table)}
            for name, cols in want["indexes"].items():
                self.assertEqual(indexes.get(name), cols, f"{table}.{name}")
            uniques = sorted(u["column_names"] for u in insp.get_unique_constraints(table))
            self.assertEqual(uniques, want["unique"], table)
            fks = sorted((fk["constrained_columns"], fk["referred_table"], fk["referred_columns"],
                          (fk.get("options", {}).get("ondelete") or "").upper() or None)
                         for fk in insp.get_foreign_keys(table))
            self.assertEqual(fks, sorted(want["fks"]), table)

    def test_revision_001_constraints_enforced(self) -> None:
        """After 001 the database itself refuses a duplicate uuid and a dangling foreign key."""
        engine = fresh_engine(self)
        migrate.upgrade(engine, "001")
        row = {"uuid": "u1", "name": "ROOT", "parent_id": None, "path": "/", "level": 0, "state": "Active",
               "created": 1}
        with engine.begin() as conn:
            conn.execute(metadata.tables["domains"].insert().values(**row))
        with self.assertRaises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(metadata.tables["domains"].insert().values(**dict(row, name="other")))
        with self.assertRaises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(metadata.tables["domains"].insert().values(**dict(row, uuid="u2", parent_id=999)))


def rows_001(engine: Engine) -> None:
    """The rows a database at revision 001 holds: keys and a session in clear (users 1 and 2 have keys)."""
    t = metadata.tables
    with engine.begin() as conn:
        conn.execute(t["domains"].insert().values(id=1, uuid="d1", name="ROOT", path="/", level=0, state="Active",
                                                  created=1))
        conn.execute(t["roles"].insert().values(id=1, uuid="r1", name="User", role_type="User", created=1))
        conn.execute(t["accounts"].insert().values(id=1, uuid="a1", name="acct", account_type=0, role_id=1,
                                                   domain_id=1, state="enabled", created=1))
        for i, secret in ((1, "S" * 86), (2, "é-user-chosen-" + "x" * 240), (3, None)):
            conn.execute(t["users"].insert().values(
                id=i, uuid=f"u{i}", username=f"user{i}", password_hash="pbkdf2_sha256$1$c2FsdA==$ZGlnZXN0",
                account_id=1, state="enabled", api_key=f"K{i}" if secret else None, secret_key=secret, created=1))
        conn.exec_driver_sql("INSERT INTO sessions (id, session_key, user_id, created, last_access, timeout) "
                             "VALUES ('sid1', 'live-session-key', 1, 1, 1, 1800)")


class Revision002Tests(SynchronousTestCase):
    """Revision 002 seals the stored API secret keys and ends the sessions whose keys were in clear."""

    def test_seals_secret_keys_and_ends_sessions(self) -> None:
        """Existing secret keys are sealed bound to their user (even a 255-character one), users without keys
        keep none, live sessions are gone, and sessions.session_key is now key_hash."""
        engine = fresh_engine(self)
        migrate.upgrade(engine, "001")
        rows_001(engine)
        sealer = Sealer.ephemeral()
        migrate.upgrade(engine, sealer=sealer)
        self.assertTrue(migrate.is_current(engine))
        with engine.connect() as conn:
            stored = dict(conn.exec_driver_sql("SELECT uuid, secret_key FROM users").all())
            self.assertEqual(conn.exec_driver_sql("SELECT COUNT(*) FROM sessions").scalar_one(), 0)
        self.assertIsNone(stored["u3"])
        self.assertEqual(sealer.open(stored["u1"], "u1"), "S" * 86)
        self.assertEqual(sealer.open(stored["u2"], "u2"), "é-user-chosen-" + "x" * 240)
        for uuid in ("u1", "u2"):
            self.assertTrue(stored[uuid].startswith(f"v1:{sealer.key_id}:"))
            self.assertNotIn("SSSS", stored[uuid])
            self.assertNotIn("xxxx", stored[uuid])
        self.assertEqual([c["name"] for c in sa.inspect(engine).get_columns("sessions")],
                         ["id", "key_hash", "user_id", "created", "last_access", "timeout"])

    def test_needs_the_key(self) -> None:
        """Without the secrets key, a database with secret keys is left at 001 with its rows untouched."""
        engine = fresh_engine(self)
        migrate.upgrade(engine, "001")
        rows_001(engine)
        with self.assertRaises(RuntimeError) as caught:
            migrate.upgrade(engine)
        self.assertIn("needs the secrets key", str(caught.exception))
        with engine.connect() as conn:
            self.assertEqual(migrate.current_revision(conn), "001")
            self.assertEqual(conn.exec_driver_sql("SELECT secret_key FROM users WHERE uuid='u1'").scalar_one(),
                             "S" * 86)
        self.assertIn("session_key", [c["name"] for c in sa.inspect(engine).get_columns("sessions")])


class SchemaCheckTests(SynchronousTestCase):
    """DBConnector refuses an outdated schema unless it may upgrade it."""

    def connector(self, url: str, auto_upgrade: bool = False) -> DBConnector:
        reactor = FakeReactor()
        db = DBConnector(url, self.basedir, reactor, reactor, threadpool=reactor.pool,  # type: ignore[arg-type]
                         auto_upgrade=auto_upgrade)
        self.addCleanup(db.pool.stop)
        return db

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        os.makedirs(self.basedir)
        self.path = os.path.join(self.basedir, "cloudd.sqlite")
        self.url = "sqlite:///%(basedir)s/cloudd.sqlite"

    def assert_refused(self, db: DBConnector) -> None:
        err = self.failureResultOf(Deferred.fromCoroutine(db.setup()), DatabaseNotReadyError).value
        self.assertIn("`cloudd upgrade-db`", str(err))
        self.assertIn("outdated schema", str(err))
        self.assertRaises(DatabaseNotReadyError, db.check_schema)

    def test_file_without_stamp(self) -> None:
        """An existing SQLite file without the Alembic stamp is refused, naming `cloudd upgrade-db`."""
        make_sqlite(self.path)
        db = self.connector(self.url)
        self.assert_refused(db)
        self.assertIn(self.path, str(self.failureResultOf(Deferred.fromCoroutine(db.setup())).value))
        self.assertNotIn("users", sa.inspect(db.engine).get_table_names())

    def test_file_stamped_unknown(self) -> None:
        """A file stamped at a revision this code does not know is refused and left alone."""
        make_sqlite(self.path, stamp="999_future")
        db = self.connector(self.url)
        self.assert_refused(db)
        with db.engine.connect() as conn:
            self.assertEqual(migrate.current_revision(conn), "999_future")

    def test_file_stamp_table_empty(self) -> None:
        """A file whose stamp table is empty (older than every revision) is refused."""
        make_sqlite(self.path, stamp_table=True)
        self.assert_refused(self.connector(self.url))

    def test_auto_upgrade(self) -> None:
        """With auto_upgrade, setup migrates an unstamped file; check_schema then has nothing to say."""
        make_sqlite(self.path)
        db = self.connector(self.url, auto_upgrade=True)
        db.check_schema()
        self.successResultOf(Deferred.fromCoroutine(db.setup()))
        self.assertTrue(migrate.is_current(db.engine))
        self.assertIn("notes", sa.inspect(db.engine).get_table_names())

    def test_memory_database_always_upgrades(self) -> None:
        """In-memory SQLite is created at start without being asked."""
        db = self.connector("sqlite://")
        self.assertTrue(db.auto_upgrade)
        self.successResultOf(Deferred.fromCoroutine(db.setup()))
        self.assertTrue(migrate.is_current(db.engine))

    def test_current_file_accepted(self) -> None:
        """A current schema passes both checks without change."""
        engine = create_engine(self.url, self.basedir)
        migrate.upgrade(engine)
        engine.dispose()
        db = self.connector(self.url)
        db.check_schema()
        self.successResultOf(Deferred.fromCoroutine(db.setup()))

    def test_server_database(self) -> None:
        """On the server database named by CLOUDD_TEST_DB_URL, an empty schema is refused, then accepted."""
        if not using_server_db():
            raise SkipTest("CLOUDD_TEST_DB_URL names no server database")
        wipe(test_db_url())
        db = self.connector(test_db_url())
        self.assert_refused(db)
        migrate.upgrade(db.engine)
        db.check_schema()
        self.successResultOf(Deferred.fromCoroutine(db.setup()))

    def test_redact_url(self) -> None:
        """Messages never carry the database password."""
        self.assertEqual(redact_url("mysql+pymysql://cloud:s3cret@db:3306/cloud"), "mysql+pymysql://cloud:***@db:3306/cloud")
        self.assertEqual(redact_url("mysql+pymysql://cloud@db/cloud"), "mysql+pymysql://cloud@db/cloud")
        self.assertEqual(redact_url("sqlite:////x/cloudd.sqlite"), "sqlite:////x/cloudd.sqlite")


class UpgradeCommandTests(SynchronousTestCase):
    """`python -m cloudd.cli upgrade-db` brings a database to the head revision."""

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        os.makedirs(self.basedir)

    def is_current(self, url: str) -> bool:
        engine = create_engine(url, self.basedir)
        try:
            return migrate.is_current(engine)
        finally:
            engine.dispose()

    def test_basedir(self) -> None:
        """--basedir upgrades the default SQLite file there, keeping the data it had."""
        path = os.path.join(self.basedir, "cloudd.sqlite")
        make_sqlite(path)
        out = run_cli("upgrade-db", "--basedir", self.basedir, cwd=self.basedir)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("is current", out.stdout)
        self.assertTrue(self.is_current("sqlite:///" + path))
        self.assertIn("notes", sa.inspect(sa.create_engine("sqlite:///" + path)).get_table_names())

    def test_db_url(self) -> None:
        """--db-url names the database (with %(basedir)s expanded); a fresh file is created."""
        out = run_cli("upgrade-db", "--basedir", self.basedir, "--db-url", "sqlite:///%(basedir)s/other.sqlite",
                      cwd=self.basedir)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(self.is_current("sqlite:///" + os.path.join(self.basedir, "other.sqlite")))
        self.assertFalse(os.path.exists(os.path.join(self.basedir, "cloudd.sqlite")))

    def test_server_db_url(self) -> None:
        """--db-url with the server database named by CLOUDD_TEST_DB_URL makes it current."""
        if not using_server_db():
            raise SkipTest("CLOUDD_TEST_DB_URL names no server database")
        wipe(test_db_url())
        out = run_cli("upgrade-db", "--db-url", test_db_url(), "--basedir", self.basedir, cwd=self.basedir)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(self.is_current(test_db_url()))

    def test_unknown_revision_fails(self) -> None:
        """A database stamped at an unknown revision is not touched and the command fails."""
        path = os.path.join(self.basedir, "cloudd.sqlite")
        make_sqlite(path, stamp="999_future")
        out = run_cli("upgrade-db", "--basedir", self.basedir, cwd=self.basedir)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("999_future", out.stderr)

    def test_usage_errors(self) -> None:
        """No sub-command, or an unknown option, is a usage error with exit status 2."""
        self.assertEqual(run_cli(cwd=self.basedir).returncode, 2)
        bad = run_cli("upgrade-db", "--bogus", cwd=self.basedir)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("bogus", bad.stderr)


class DaemonStartTests(SynchronousTestCase):
    """The real `twistd -n cloudd` process on outdated, upgraded and fresh databases."""

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        os.makedirs(self.basedir)

    def daemon(self, db_url: str | None = None) -> CloudDaemon:
        d = CloudDaemon(self.basedir, db_url=db_url)
        self.addCleanup(d.stop)
        return d

    def assert_refuses(self, daemon: CloudDaemon) -> None:
        with self.assertRaises(RuntimeError):
            daemon.start()
        assert daemon.proc is not None
        self.assertNotEqual(daemon.proc.returncode, 0)
        self.assertIn("outdated schema; run `cloudd upgrade-db` first", daemon.log())
        daemon.stop()

    def test_refuses_outdated_then_starts_after_upgrade(self) -> None:
        """On an unstamped SQLite file the daemon exits non-zero naming `cloudd upgrade-db`; after it, it runs."""
        make_sqlite(os.path.join(self.basedir, "cloudd.sqlite"))
        daemon = self.daemon()
        self.assert_refuses(daemon)
        self.assertFalse(os.path.exists(os.path.join(self.basedir, "admin-credentials.json")))
        out = run_cli("upgrade-db", "--basedir", self.basedir, cwd=self.basedir)
        self.assertEqual(out.returncode, 0, out.stderr)
        daemon.start()
        res = signed_get(daemon, daemon.credentials(), "listDomains")
        self.assertEqual(res.status, 200, res.body)
        self.assertEqual([d["name"] for d in res.inner()["domain"]], ["ROOT"])

    def test_refuses_unknown_stamp(self) -> None:
        """A SQLite file stamped at an unknown revision is refused in the same way."""
        make_sqlite(os.path.join(self.basedir, "cloudd.sqlite"), stamp="999_future")
        self.assert_refuses(self.daemon())

    def test_server_database(self) -> None:
        """On an empty server database the daemon refuses; `upgrade-db --db-url` lets it start."""
        if not using_server_db():
            raise SkipTest("CLOUDD_TEST_DB_URL names no server database")
        url = test_db_url()
        wipe(url)
        daemon = self.daemon(url)
        self.assert_refuses(daemon)
        out = run_cli("upgrade-db", "--db-url", url, "--basedir", self.basedir, cwd=self.basedir)
        self.assertEqual(out.returncode, 0, out.stderr)
        daemon.start()
        res = signed_get(daemon, daemon.credentials(), "listAccounts", listall="true")
        self.assertEqual(res.status, 200, res.body)

    def test_fresh_basedir(self) -> None:
        """A fresh base directory is migrated at first start; the 0600 credentials file is written once."""
        daemon = self.daemon()
        daemon.start()
        creds_path = os.path.join(self.basedir, "admin-credentials.json")
        info = os.stat(creds_path)
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o600)
        with open(creds_path) as f:
            first_text = f.read()
        creds = json.loads(first_text)
        self.assertEqual({k for k in creds}, {"endpoint", "username", "password", "domain", "apikey", "secretkey"})
        self.assertEqual(creds["endpoint"], daemon.endpoint)
        self.assertNotIn(creds["secretkey"], daemon.log())
        self.assertNotIn(creds["password"], daemon.log())
        self.assertNotIn(creds["apikey"], daemon.log())
        # the start announces where the endpoint and the credentials are (the line may reach the log
        # file a moment after the port accepts connections)
        announcement = f"cloudd API endpoint {daemon.endpoint}; admin credentials in {creds_path}"
        deadline = time.monotonic() + 10
        while announcement not in daemon.log() and time.monotonic() < deadline:
            time.sleep(0.05)  # the log file another process writes
        self.assertIn(announcement, daemon.log())
        engine = create_engine("sqlite:///%(basedir)s/cloudd.sqlite", self.basedir)
        self.addCleanup(engine.dispose)
        self.assertTrue(migrate.is_current(engine))
        first = signed_get(daemon, creds, "listUsers", listall="true")
        self.assertEqual(first.status, 200, first.body)
        admins = [u for u in first.inner()["user"] if u["username"] == "admin"]
        self.assertEqual(len(admins), 1)
        daemon.stop()

        daemon.start()
        self.assertEqual(os.stat(creds_path).st_mtime_ns, info.st_mtime_ns)
        self.assertEqual(os.stat(creds_path).st_ino, info.st_ino)
        with open(creds_path) as f:
            self.assertEqual(f.read(), first_text)
        again = signed_get(daemon, creds, "listUsers", listall="true")
        self.assertEqual(again.status, 200, again.body)
        self.assertEqual([u for u in again.inner()["user"] if u["username"] == "admin"], admins)
        self.assertEqual(daemon.log().count("created the ROOT domain"), 1)
