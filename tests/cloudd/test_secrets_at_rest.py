"""Secrets at rest: an owner-only base directory, sealed API secret keys, hashed session keys.

The sealing and the key loading are tested in process; the stored rows on the test database
(in-memory SQLite, or the server named by CLOUDD_TEST_DB_URL); and the whole story on a real
`twistd -n cloudd`: file modes after a start, the raw database (SQLite file bytes, or MariaDB rows
read through a plain connection) after users with keys sign requests and log in, and the start-up
error for a secrets key other than the one the keys were sealed with.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from cloudd import bootstrap, tap
from cloudd.db import migrate, model
from cloudd.db.accounts import AccountsComponent
from cloudd.db.base import Scope
from cloudd.service import CloudManager, make_cloud_manager
from cloudd.util.sealing import Sealer, SealError, SecretsKeyError, new_key_text, parse_key
from cloudd.web.signing import sign
from tests.cloudd.test_db_migrations import run_cli
from tests.cloudd.test_tap import EPOCH, ServiceReactor
from tests.util.daemon import CloudDaemon, HttpResult, http, twistd_argv, twistd_env
from tests.util.db import make_db, test_db_url, using_server_db, wipe
from tests.util.reactor import FakeReactor


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


class SealerTests(SynchronousTestCase):
    """cloudd.util.sealing: AES-GCM sealing bound to a row, keyed session hashes, the key's text form."""

    def setUp(self) -> None:
        self.sealer = Sealer(bytes(range(32)), "test key")

    def test_round_trip_and_format(self) -> None:
        """A sealed secret opens again; it is versioned, names the key id and never holds the secret."""
        sealed = self.sealer.seal("my-secret-key", "user-uuid")
        self.assertEqual(self.sealer.open(sealed, "user-uuid"), "my-secret-key")
        version, kid, body = sealed.split(":")
        self.assertEqual((version, kid), ("v1", self.sealer.key_id))
        self.assertNotIn("my-secret-key", sealed)
        self.assertEqual(len(base64.urlsafe_b64decode(body)), 12 + len("my-secret-key") + 16)
        # a fresh nonce every time
        self.assertNotEqual(self.sealer.seal("my-secret-key", "user-uuid"), sealed)
        self.assertEqual(self.sealer.open(self.sealer.seal("é" * 255, "u"), "u"), "é" * 255)

    def test_bound_to_the_row(self) -> None:
        """A sealed value copied to another user does not open, nor under another key, nor tampered with."""
        sealed = self.sealer.seal("secret", "alice")
        self.assertRaises(SealError, self.sealer.open, sealed, "mallory")
        other = Sealer(bytes(32), "other key")
        err = self.assertRaises(SealError, other.open, sealed, "alice")
        self.assertIn(f"sealed under key {self.sealer.key_id}", str(err))
        head, body = sealed.rsplit(":", 1)
        raw = bytearray(base64.urlsafe_b64decode(body))
        raw[-1] ^= 1
        self.assertRaises(SealError, self.sealer.open, head + ":" + base64.urlsafe_b64encode(raw).decode(), "alice")
        for junk in ("secret", "", "v1:", f"v1:{self.sealer.key_id}:!!", f"v2:{self.sealer.key_id}:AAAA"):
            self.assertRaises(SealError, self.sealer.open, junk, "alice")

    def test_session_hash(self) -> None:
        """Session keys are kept as HMAC-SHA256 under a key of their own: fixed length, keyed, comparable."""
        stored = self.sealer.session_hash("session-key")
        self.assertEqual(len(stored), 64)
        self.assertNotIn("session-key", stored)
        self.assertTrue(self.sealer.session_matches(stored, "session-key"))
        self.assertFalse(self.sealer.session_matches(stored, "session-kez"))
        self.assertNotEqual(Sealer(bytes(32), "other").session_hash("session-key"), stored)

    def test_key_text(self) -> None:
        """The key's text form is base64 of 32 bytes; anything else is refused naming its source."""
        key = parse_key(new_key_text(), "file")
        self.assertEqual(len(key), 32)
        for bad in ("", "not base64!", base64.b64encode(bytes(16)).decode(), base64.b64encode(bytes(33)).decode()):
            err = self.assertRaises(SecretsKeyError, parse_key, bad, "the file /x/secrets.key")
            self.assertIn("the file /x/secrets.key does not hold a secrets key", str(err))


class LoadSealerTests(SynchronousTestCase):
    """tap.load_sealer: the environment variable, --secrets-key-file, or <basedir>/secrets.key made once."""

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        self.key_text = new_key_text()

    def test_default_file_created_once(self) -> None:
        """Without a key given, <basedir>/secrets.key is created 0600 (and logged), then reused."""
        with capturedLogs() as events:
            first = tap.load_sealer(self.basedir, None, {})
        path = os.path.join(self.basedir, "secrets.key")
        self.assertEqual(mode_of(path), 0o600)
        self.assertEqual(mode_of(self.basedir), 0o700)
        self.assertEqual(first.source, path)
        [event] = [e for e in events if "created a new secrets key" in e["log_format"]]
        self.assertEqual(event["path"], path)
        with capturedLogs() as events:
            second = tap.load_sealer(self.basedir, None, {})
        self.assertEqual(second.key_id, first.key_id)
        self.assertEqual(list(events), [])

    def test_environment(self) -> None:
        """CLOUDD_SECRETS_KEY gives the key itself; no file is made; with --secrets-key-file too it is refused."""
        sealer = tap.load_sealer(self.basedir, None, {"CLOUDD_SECRETS_KEY": self.key_text.strip()})
        self.assertEqual(sealer.key_id, Sealer(parse_key(self.key_text, "t"), "t").key_id)
        self.assertEqual(sealer.source, "the environment variable CLOUDD_SECRETS_KEY")
        self.assertFalse(os.path.exists(self.basedir))
        err = self.assertRaises(SecretsKeyError, tap.load_sealer, self.basedir, "/x/key",
                                {"CLOUDD_SECRETS_KEY": self.key_text})
        self.assertIn("give one", str(err))
        err = self.assertRaises(SecretsKeyError, tap.load_sealer, self.basedir, None, {"CLOUDD_SECRETS_KEY": ""})
        self.assertIn("CLOUDD_SECRETS_KEY does not hold a secrets key", str(err))

    def test_key_file_option(self) -> None:
        """--secrets-key-file is read as given; a missing or malformed file is an error, never replaced."""
        path = os.path.abspath(self.mktemp())
        err = self.assertRaises(SecretsKeyError, tap.load_sealer, self.basedir, path, {})
        self.assertIn(f"the secrets key file {path} cannot be read", str(err))
        self.assertFalse(os.path.exists(path))
        with open(path, "w") as f:
            f.write("garbage\n")
        err = self.assertRaises(SecretsKeyError, tap.load_sealer, self.basedir, path, {})
        self.assertIn(f"the secrets key file {path} does not hold a secrets key", str(err))
        with open(path, "w") as f:
            f.write(self.key_text)
        os.chmod(path, 0o644)
        with capturedLogs() as events:
            sealer = tap.load_sealer(self.basedir, path, {})
        self.assertEqual(sealer.source, path)
        self.assertEqual([e["log_level"] for e in events if "open to other users" in e["log_format"]],
                         [LogLevel.warn])


class PrivateBasedirTests(SynchronousTestCase):
    """tap.private_basedir: a new base directory is 0700; an open one is closed, saying so per path."""

    def test_created_private(self) -> None:
        """A missing base directory is created 0700 whatever the umask, without a log line."""
        basedir = os.path.abspath(self.mktemp())
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        with capturedLogs() as events:
            tap.private_basedir(basedir)
        self.assertEqual(mode_of(basedir), 0o700)
        self.assertEqual(list(events), [])

    def test_existing_fixed(self) -> None:
        """A 0755 base directory with 0644 files and a 0755 pki/ becomes 0700/0600; links are left alone."""
        basedir = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(basedir, "pki"))
        outside = os.path.abspath(self.mktemp())
        with open(outside, "w") as f:
            f.write("not ours")
        os.chmod(outside, 0o644)
        paths = [os.path.join(basedir, n) for n in ("cloudd.sqlite", "cloudd.sqlite-wal", "cloudd.sqlite-shm",
                                                    "admin-credentials.json", os.path.join("pki", "ca.pem"))]
        for path in paths:
            with open(path, "w") as f:
                f.write("x")
            os.chmod(path, 0o644)
        os.chmod(paths[0], 0o600)  # already private: untouched and not logged
        os.chmod(basedir, 0o755)
        os.chmod(os.path.join(basedir, "pki"), 0o755)
        os.symlink(outside, os.path.join(basedir, "link"))
        with capturedLogs() as events:
            tap.private_basedir(basedir)
        self.assertEqual(mode_of(basedir), 0o700)
        self.assertEqual(mode_of(os.path.join(basedir, "pki")), 0o700)
        for path in paths:
            self.assertEqual(mode_of(path), 0o600, path)
        self.assertEqual(mode_of(outside), 0o644)
        fixed = {e["path"]: (e["mode"], e["private"]) for e in events}
        self.assertEqual(fixed, {basedir: ("0755", "0700"), os.path.join(basedir, "pki"): ("0755", "0700"),
                                 **{p: ("0644", "0600") for p in paths[1:]}})
        self.assertTrue(all(e["log_level"] == LogLevel.warn for e in events))


class MakeServiceTests(SynchronousTestCase):
    """tap.makeService closes the base directory, sets the umask and hands the secrets key down."""

    def test_umask_basedir_and_key(self) -> None:
        """After makeService the umask is 0077, the base directory 0700, and the database components seal
        with the key of <basedir>/secrets.key (or of --secrets-key-file)."""
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        basedir = os.path.abspath(self.mktemp())
        os.makedirs(basedir, mode=0o755)
        options = tap.Options()
        options.parseOptions(["--basedir", basedir])
        svc = tap.makeService(options)
        self.assertEqual(os.umask(0o077), 0o077)
        assert isinstance(svc, CloudManager)
        self.addCleanup(svc.db.engine.dispose)
        self.assertEqual(mode_of(basedir), 0o700)
        key_path = os.path.join(basedir, "secrets.key")
        self.assertEqual(svc.db.sealer.source, key_path)
        self.assertIs(svc.db.accounts.sealer, svc.db.sealer)
        self.assertIs(svc.db.sessions.sealer, svc.db.sealer)
        with open(key_path) as f:
            self.assertEqual(svc.db.sealer.key_id, Sealer(parse_key(f.read(), "t"), "t").key_id)

        other = os.path.abspath(self.mktemp())
        with open(other, "w") as f:
            f.write(new_key_text())
        options = tap.Options()
        options.parseOptions(["--basedir", basedir, "--secrets-key-file", other])
        svc = tap.makeService(options)
        assert isinstance(svc, CloudManager)
        self.addCleanup(svc.db.engine.dispose)
        self.assertEqual(svc.db.sealer.source, other)

    def test_bad_key_exits(self) -> None:
        """A key that cannot be read ends makeService with a one-line reason (twistd prints it, exit 1)."""
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        options = tap.Options()
        missing = os.path.abspath(self.mktemp())
        options.parseOptions(["--basedir", os.path.abspath(self.mktemp()), "--secrets-key-file", missing])
        err = self.assertRaises(SystemExit, tap.makeService, options)
        self.assertEqual(str(err), f"cloudd could not start: the secrets key file {missing} cannot be read: "
                                   "No such file or directory")


class StoredSecretsTests(SynchronousTestCase):
    """The accounts and sessions components keep secret keys sealed and session keys hashed."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(EPOCH)
        self.db = make_db(self.reactor)
        self.addCleanup(self.db.pool.stop)
        self.creds = self.db.pool.do_sync(lambda conn: bootstrap.thd_bootstrap(self.db, conn))
        assert self.creds is not None

    def execute(self, statement: sa.Executable) -> None:
        def thd(conn: sa.Connection) -> None:
            conn.execute(statement)

        self.db.pool.do_sync(thd)

    def raw(self, table: sa.Table, column: str) -> list[Any]:
        return self.db.pool.do_sync(lambda conn: [r[0] for r in conn.execute(sa.select(table.c[column]))])

    def test_secret_keys_sealed(self) -> None:
        """Bootstrap, update_user and the bulk insert store the secret sealed; a lookup by API key opens it;
        the lookup for a login does not."""
        stored = [v for v in self.raw(model.users, "secret_key") if v is not None]
        self.assertEqual(len(stored), 1)
        self.assertNotIn(self.creds.secretkey, stored[0])
        creds = self.successResultOf(self.db.accounts.credentials_by_api_key(self.creds.apikey))
        self.assertEqual(creds.secret_key, self.creds.secretkey)
        self.assertEqual(self.db.accounts.sealer.open(stored[0], creds.user.uuid), self.creds.secretkey)
        login = self.successResultOf(self.db.accounts.credentials_for_login("admin", creds.user.account.domain_id))
        self.assertIsNone(login.secret_key)
        self.successResultOf(self.db.accounts.update_user(creds.user, {"api_key": "K2", "secret_key": "S2-chosen"}))
        self.assertNotIn("S2-chosen", "".join(v for v in self.raw(model.users, "secret_key") if v))
        self.assertEqual(self.successResultOf(self.db.accounts.credentials_by_api_key("K2")).secret_key, "S2-chosen")
        account = creds.user.account.id
        self.db.pool.do_sync(lambda conn: self.db.accounts.thd_insert_users_bulk(conn, account, [
            {"username": "bulk", "password_hash": "h", "api_key": "K3", "secret_key": "S3-bulk"}]))
        self.assertNotIn("S3-bulk", "".join(v for v in self.raw(model.users, "secret_key") if v))
        self.assertEqual(self.successResultOf(self.db.accounts.credentials_by_api_key("K3")).secret_key, "S3-bulk")

    def test_moved_ciphertext_does_not_open(self) -> None:
        """A sealed key copied onto another user's row gives that user no secret, and an error log without it."""
        _, users = self.successResultOf(self.db.accounts.list_users(Scope(), username="system"))
        system = users[0]
        admin_secret = sa.select(model.users.c.secret_key).where(model.users.c.username == "admin")
        self.execute(model.users.update().where(model.users.c.id == system.id).values(
            api_key="K-sys", secret_key=admin_secret.scalar_subquery()))
        with capturedLogs() as events:
            creds = self.successResultOf(self.db.accounts.credentials_by_api_key("K-sys"))
        self.assertIsNone(creds.secret_key)
        [error] = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(error["user"], system.uuid)
        self.assertNotIn(self.creds.secretkey, repr(error))

    def test_check_secrets_key(self) -> None:
        """The start-up check accepts the sealing key and refuses another one, naming both key ids."""
        self.db.pool.do_sync(self.db.accounts.thd_check_secrets_key)
        other = AccountsComponent(self.db.pool, self.reactor, Sealer(bytes(32), "/etc/cloudd/other.key"))
        err = self.assertRaises(SecretsKeyError, self.db.pool.do_sync, other.thd_check_secrets_key)
        text = str(err)
        self.assertIn(f"1 under key {self.db.accounts.sealer.key_id}", text)
        self.assertIn(f"this server's key {other.sealer.key_id} comes from /etc/cloudd/other.key", text)
        self.assertIn("--secrets-key-file or CLOUDD_SECRETS_KEY", text)
        # a database without secret keys accepts any key
        self.execute(model.users.update().values(secret_key=None))
        self.db.pool.do_sync(other.thd_check_secrets_key)

    def test_session_keys_hashed(self) -> None:
        """Only the keyed hash of a session key is stored; the presented key is hashed to be checked."""
        admin = self.successResultOf(self.db.accounts.credentials_by_api_key(self.creds.apikey)).user
        self.successResultOf(self.db.sessions.create("sid", "the-session-key", admin.id, 600))
        [stored] = self.raw(model.sessions, "key_hash")
        self.assertEqual(stored, self.db.sessions.sealer.session_hash("the-session-key"))
        session = self.successResultOf(self.db.sessions.touch("sid"))
        assert session is not None
        self.assertTrue(self.db.sessions.key_matches(session, "the-session-key"))
        self.assertFalse(self.db.sessions.key_matches(session, stored))


class StartCheckTests(SynchronousTestCase):
    """CloudManager refuses, before the reactor runs, a secrets key the stored keys were not sealed with."""

    def test_other_key_refused(self) -> None:
        """The first start seals the admin's key; a second server with another key stops with an error event."""
        basedir = os.path.abspath(self.mktemp())
        url = "sqlite:///%(basedir)s/cloudd.sqlite"
        reactor = ServiceReactor()
        reactor.advance(EPOCH)

        def manager(sealer: Sealer) -> Any:
            mgr = make_cloud_manager(basedir=basedir, db_url=url, listen="tcp:0:interface=127.0.0.1",
                                     reactor=reactor, threadpool=reactor.pool,  # type: ignore[arg-type]
                                     auto_upgrade=True, sealer=sealer)
            self.addCleanup(mgr.db.engine.dispose)
            self.addCleanup(lambda: mgr.cpu_pool.started and mgr.cpu_pool.stop())
            return mgr

        key = Sealer(bytes(range(32)), "key one")
        first = manager(key)
        first.privilegedStartService()
        first.startService()
        self.successResultOf(first.ready)
        self.successResultOf(first.stopService())

        second = manager(Sealer(bytes(32), "key two"))
        with capturedLogs() as events:
            self.assertRaises(SecretsKeyError, second.privilegedStartService)
        [error] = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertIn("sealed under another key", error["error"])
        self.assertFalse(second.running)
        manager(Sealer(bytes(range(32)), "key one again")).privilegedStartService()


# --- the real daemon -------------------------------------------------------------------------------


def form_post(endpoint: str, **fields: str) -> HttpResult:
    return http(endpoint, data=urlencode(fields).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})


def signed(daemon: CloudDaemon, apikey: str, secret: str, command: str, **params: str) -> HttpResult:
    p = {"command": command, "response": "json", "apiKey": apikey, **params}
    p["signature"] = sign(p, secret)
    return http(daemon.endpoint + "?" + urlencode(p))


def login_and_call(testcase: SynchronousTestCase, daemon: CloudDaemon, username: str, password: str) -> str:
    """Log in, make one call in the session; the session key."""
    res = form_post(daemon.endpoint, command="login", username=username, password=password, domain="/",
                    response="json")
    testcase.assertEqual(res.status, 200, res.body)
    key = res.inner()["sessionkey"]
    cookies = "; ".join(c.split(";", 1)[0] for c in res.cookies)
    call = http(daemon.endpoint + "?" + urlencode({"command": "listAccounts", "response": "json", "sessionkey": key}),
                headers={"Cookie": cookies})
    testcase.assertEqual(call.status, 200, call.body)
    return str(key)


class DaemonSecretsTests(SynchronousTestCase):
    """The real `twistd -n cloudd`: file modes, the raw database, and a wrong or missing secrets key."""

    def setUp(self) -> None:
        self.basedir = os.path.abspath(self.mktemp())
        os.makedirs(self.basedir)

    def daemon(self, db_url: str | None = None, env: dict[str, str] | None = None) -> CloudDaemon:
        d = CloudDaemon(self.basedir, db_url=db_url, env=env)
        self.addCleanup(d.stop)
        return d

    def exercise(self, daemon: CloudDaemon) -> tuple[list[str], list[str]]:
        """Create a user with keys, sign with them, log in twice; (secrets never to store in clear, values
        stored in clear on purpose that show the scan sees the data)."""
        admin = daemon.credentials()
        res = signed(daemon, admin["apikey"], admin["secretkey"], "createAccount", username="carol",
                     password="Carol-Pass-4711", firstname="Carol", lastname="Jones", email="carol@example.org",
                     accounttype="0")
        self.assertEqual(res.status, 200, res.body)
        carol_id = res.inner()["account"]["user"][0]["id"]
        res = signed(daemon, admin["apikey"], admin["secretkey"], "registerUserKeys", id=carol_id)
        self.assertEqual(res.status, 200, res.body)
        registered = res.inner()["userkeys"]
        res = signed(daemon, registered["apikey"], registered["secretkey"], "listAccounts")
        self.assertEqual(res.status, 200, res.body)
        # the owner still gets the key back in clear on the wire, as CloudStack does
        res = signed(daemon, admin["apikey"], admin["secretkey"], "getUserKeys", id=carol_id)
        self.assertEqual(res.inner()["userkeys"], registered)
        chosen = {"userapikey": "carol-chosen-api-key-0001", "usersecretkey": "carol-chosen-secret-key-0002"}
        res = signed(daemon, admin["apikey"], admin["secretkey"], "updateUser", id=carol_id, **chosen)
        self.assertEqual(res.status, 200, res.body)
        self.assertEqual(signed(daemon, chosen["userapikey"], chosen["usersecretkey"], "listAccounts").status, 200)
        self.assertEqual(signed(daemon, registered["apikey"], registered["secretkey"], "listAccounts").status, 401)
        sessions = [login_and_call(self, daemon, "carol", "Carol-Pass-4711"),
                    login_and_call(self, daemon, "admin", admin["password"])]
        secrets = [admin["secretkey"], admin["password"], "Carol-Pass-4711", registered["secretkey"],
                   chosen["usersecretkey"], *sessions]
        return secrets, [admin["apikey"], chosen["userapikey"], "carol@example.org"]

    def assert_not_in(self, blob: bytes, secrets: list[str], clear: list[str]) -> None:
        for value in clear:
            self.assertIn(value.encode(), blob, "the scan does not see the stored data")
        for value in secrets:
            self.assertNotIn(value.encode(), blob)
            self.assertNotIn(value.encode("utf-16-le"), blob)

    def test_sqlite_file_holds_no_secret(self) -> None:
        """The SQLite file and its -wal/-shm hold no secret key, session key or password after real use."""
        daemon = self.daemon()
        daemon.start()
        secrets, clear = self.exercise(daemon)
        names = ["cloudd.sqlite", "cloudd.sqlite-wal", "cloudd.sqlite-shm"]
        blob = b""
        for name in names:
            with open(os.path.join(self.basedir, name), "rb") as f:
                blob += f.read()
        self.assert_not_in(blob, secrets, clear)
        daemon.stop()
        with open(os.path.join(self.basedir, "cloudd.sqlite"), "rb") as f:
            self.assert_not_in(f.read(), secrets, clear)

    def test_server_database_holds_no_secret(self) -> None:
        """On MariaDB (CLOUDD_TEST_DB_URL), no row of any table holds a secret, read by a plain connection."""
        if not using_server_db():
            raise SkipTest("CLOUDD_TEST_DB_URL names no server database")
        url = test_db_url()
        wipe(url)
        key = new_key_text().strip()
        out = run_cli("upgrade-db", "--db-url", url, "--basedir", self.basedir, cwd=self.basedir)
        self.assertEqual(out.returncode, 0, out.stderr)
        os.unlink(os.path.join(self.basedir, "secrets.key"))  # the daemon gets its key from the environment
        daemon = self.daemon(url, env={"CLOUDD_SECRETS_KEY": key})
        daemon.start()
        secrets, clear = self.exercise(daemon)
        engine = sa.create_engine(url)
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:
            rows = [repr(conn.exec_driver_sql(f"SELECT * FROM {table}").all())
                    for table in sa.inspect(conn).get_table_names()]
        self.assert_not_in("\n".join(rows).encode(), secrets, clear)
        self.assertFalse(os.path.exists(os.path.join(self.basedir, "secrets.key")))

    def test_file_modes(self) -> None:
        """After a real start the base directory is 0700 and every file in it 0600, -wal/-shm included; an
        open (0755/0644) base directory is closed at the next start, with a log line per path."""
        daemon = self.daemon()
        daemon.start()
        self.assert_private({"cloudd.sqlite", "cloudd.sqlite-wal", "cloudd.sqlite-shm", "admin-credentials.json",
                             "secrets.key", "management-server-id", "twistd.log"})
        daemon.stop()

        os.chmod(self.basedir, 0o755)
        opened = sorted(os.listdir(self.basedir))
        for name in opened:
            os.chmod(os.path.join(self.basedir, name), 0o644)
        daemon.start()
        self.assert_private(set(opened))
        log = daemon.log()
        self.assertIn(f"made {self.basedir} private to its owner: mode 0755 is now 0700", log)
        for name in opened:
            path = os.path.join(self.basedir, name)
            private = "0700" if os.path.isdir(path) else "0600"
            self.assertIn(f"made {path} private to its owner: mode 0644 is now {private}", log)

    def assert_private(self, expected: set[str]) -> None:
        self.assertEqual(mode_of(self.basedir), 0o700)
        names = set(os.listdir(self.basedir))
        self.assertTrue(expected <= names, expected - names)
        for top, dirs, files in os.walk(self.basedir):
            for name in dirs:
                self.assertEqual(mode_of(os.path.join(top, name)), 0o700, name)
            for name in files:
                self.assertEqual(mode_of(os.path.join(top, name)), 0o600, name)

    def test_wrong_or_missing_key(self) -> None:
        """With another key, or with the key file gone, the daemon exits non-zero saying which key it needs
        instead of answering 401 to every signed request; with the right key back it serves again."""
        daemon = self.daemon()
        daemon.start()
        creds = daemon.credentials()
        daemon.stop()
        key_path = os.path.join(self.basedir, "secrets.key")
        with open(key_path) as f:
            original = f.read()
        with open(key_path, "w") as f:
            f.write(new_key_text())
        self.assert_refused(daemon)
        os.unlink(key_path)
        self.assertIn(f"created a new secrets key in {key_path}", self.assert_refused(daemon))
        with open(key_path, "w") as f:
            f.write(original)
        daemon.start()
        res = signed(daemon, creds["apikey"], creds["secretkey"], "listUsers")
        self.assertEqual(res.status, 200, res.body)

    def assert_refused(self, daemon: CloudDaemon) -> str:
        """The daemon does not start; its log, which is then removed for the next try."""
        with self.assertRaises(RuntimeError):
            daemon.start()
        assert daemon.proc is not None
        self.assertNotEqual(daemon.proc.returncode, 0)
        log = daemon.log()
        self.assertIn("cloudd could not start: the database holds API secret keys sealed under another key", log)
        self.assertIn("--secrets-key-file or CLOUDD_SECRETS_KEY", log)
        daemon.stop()
        os.unlink(daemon.log_path)
        return log

    def test_malformed_key(self) -> None:
        """A malformed CLOUDD_SECRETS_KEY stops twistd at once with a one-line reason and a non-zero status."""
        daemon = CloudDaemon(self.basedir)
        out = subprocess.run(twistd_argv("-n", "--pidfile=", "--logfile", daemon.log_path, "cloudd",
                                         *daemon.plugin_args()),
                             env=twistd_env({"CLOUDD_SECRETS_KEY": "not-a-key"}), cwd=self.basedir,
                             capture_output=True, text=True, timeout=120)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("cloudd could not start: the environment variable CLOUDD_SECRETS_KEY does not hold a "
                      "secrets key", out.stderr)
        self.assertNotIn("Traceback", out.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.basedir, "cloudd.sqlite")))


class UpgradeCommandKeyTests(SynchronousTestCase):
    """`cloudd upgrade-db` seals an older database's keys with the key the daemon will use."""

    def test_upgrade_with_environment_key(self) -> None:
        """With CLOUDD_SECRETS_KEY, upgrade-db seals existing keys under it (no key file is made); a
        malformed key stops the command before the database is touched."""
        from tests.cloudd.test_db_migrations import rows_001

        basedir = os.path.abspath(self.mktemp())
        os.makedirs(basedir)
        url = "sqlite:///" + os.path.join(basedir, "cloudd.sqlite")
        engine = sa.create_engine(url)
        self.addCleanup(engine.dispose)
        migrate.upgrade(engine, "001")
        rows_001(engine)
        key = new_key_text().strip()

        def upgrade_db(env_key: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "cloudd.cli", "upgrade-db", "--basedir", basedir],
                                  cwd=basedir, env=twistd_env({"CLOUDD_SECRETS_KEY": env_key}),
                                  capture_output=True, text=True, timeout=120)

        bad = upgrade_db("bad")
        with engine.connect() as conn:
            self.assertEqual(migrate.current_revision(conn), "001")
        good = upgrade_db(key)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("CLOUDD_SECRETS_KEY does not hold a secrets key", bad.stderr)
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertIn("sealed with the key from the environment variable CLOUDD_SECRETS_KEY", good.stdout)
        self.assertFalse(os.path.exists(os.path.join(basedir, "secrets.key")))
        sealer = Sealer(parse_key(key, "t"), "t")
        with engine.connect() as conn:
            self.assertEqual(sealer.open(conn.exec_driver_sql("SELECT secret_key FROM users WHERE uuid='u1'")
                                         .scalar_one(), "u1"), "S" * 86)
