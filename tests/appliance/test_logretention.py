"""Tests for `appliance.logretention`: rotated twistd log files beyond the count are deleted, at
start and every interval; the log file is found from twistd's options; both appliances attach the
service with the count from their settings file."""

from __future__ import annotations

import datetime
import os
import warnings
from typing import Any

from twisted.internet.task import Clock
from twisted.python.logfile import LogFile
from twisted.python.usage import UsageError
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from appliance.logretention import DEFAULT_RETENTION, LogRetention, prune_rotated, twistd_logfile
from cloudd.pki import CertificateAuthority
from routervm import config as router_config
from routervm import tap as router_tap
from ssvm import config as ssvm_config
from ssvm import tap as ssvm_tap

# twisted.web.static, which the appliances' services import, warns when imported: import them
# with this module, not inside a test, where trial makes the warning an error.
__import__("routervm.service")
__import__("ssvm.service")


def twistd_options(*argv: str) -> ServerOptions:
    """twistd's own options parsed from `argv` (parsing loads every twistd plugin once, some of
    which use deprecated twisted.web names at import)."""
    options = ServerOptions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        options.parseOptions(list(argv))
    return options


def touch(path: str) -> None:
    with open(path, "w") as f:
        f.write("x")


class PruneTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "twistd.log")

    def names(self) -> list[str]:
        return sorted(os.listdir(self.dir))

    def test_prune_beyond_count(self) -> None:
        """twistd.log.11 … .15 go; the log itself, .1 … .10 and unrelated names stay."""
        for name in ["twistd.log", "twistd.log.old", "other.log.20", "twistd.log.x1", "twistd.log.1.gz"] + [
                f"twistd.log.{i}" for i in range(1, 16)]:
            touch(os.path.join(self.dir, name))
        deleted = prune_rotated(self.log, 10)
        self.assertEqual(sorted(os.path.basename(p) for p in deleted), [f"twistd.log.{i}" for i in range(11, 16)])
        self.assertEqual(self.names(), sorted(["twistd.log", "twistd.log.old", "other.log.20", "twistd.log.x1",
                                               "twistd.log.1.gz"] + [f"twistd.log.{i}" for i in range(1, 11)]))

    def test_with_twisted_logfile(self) -> None:
        """A LogFile rotating at 100 bytes keeps rotating after its old files are deleted: the
        service, run at start and every interval, holds the number of rotated files at the count."""
        logfile = LogFile.fromFullPath(self.log, rotateLength=100)
        self.addCleanup(logfile.close)
        clock = Clock()
        service = LogRetention(self.log, 3, clock, interval=10)
        service.startService()
        self.addCleanup(service.stopService)
        for round_ in range(5):
            for _ in range(8):
                logfile.write("x" * 120 + "\n")  # one rotation each (twistd rotates before a write)
            clock.advance(10)
            rotated = [n for n in self.names() if n != "twistd.log"]
            self.assertEqual(rotated, ["twistd.log.1", "twistd.log.2", "twistd.log.3"], round_)
        self.assertEqual(logfile.listLogs(), [1, 2, 3])

    def test_missing_directory_logged(self) -> None:
        self.assertEqual(prune_rotated(os.path.join(self.dir, "gone", "twistd.log"), 1), [])
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class TwistdLogfileTests(SynchronousTestCase):
    def parent(self, *argv: str) -> Any:
        class Sub:
            parent: Any

        sub = Sub()
        sub.parent = twistd_options(*argv)
        return sub

    def test_found(self) -> None:
        self.assertEqual(twistd_logfile(self.parent("-n", "--logfile", "r.log")), os.path.abspath("r.log"))
        self.assertEqual(twistd_logfile(self.parent("--logfile=/var/log/x.log")), "/var/log/x.log")
        # daemonising without --logfile: twistd writes twistd.log in the current directory
        self.assertEqual(twistd_logfile(self.parent()), os.path.abspath("twistd.log"))

    def test_none(self) -> None:
        self.assertIsNone(twistd_logfile(self.parent("-n")))  # stdout
        self.assertIsNone(twistd_logfile(self.parent("-n", "--logfile", "-")))
        self.assertIsNone(twistd_logfile(object()))  # not run by twistd


class DaemonWiringTests(SynchronousTestCase):
    """routervm and ssvm attach "log-retention" with the count of their settings file."""

    def check(self, appliance: str, tap: Any) -> None:
        now = datetime.datetime.now(datetime.UTC)
        basedir = os.path.abspath(self.mktemp())
        CertificateAuthority.create(now).issue_appliance(appliance, ["127.0.0.1"], now).write(
            os.path.join(basedir, "tls"))
        settings = os.path.join(basedir, "settings.toml")
        with open(settings, "w") as f:
            f.write("[log]\nretention = 4\n")
        parent = twistd_options("-n", "--logfile", os.path.join(basedir, "d.log"))
        options = tap.Options()
        options.parseOptions(["--basedir", basedir, "--config", settings, "--control-listen",
                              "tcp:0:interface=127.0.0.1"])
        options.parent = parent
        retention = tap.makeService(options).getServiceNamed("log-retention")
        self.assertIsInstance(retention, LogRetention)
        self.assertEqual((retention.path, retention.keep), (os.path.join(basedir, "d.log"), 4))
        options.parent = None
        self.assertNotIn("log-retention", [s.name for s in tap.makeService(options)])

    def test_routervm(self) -> None:
        self.assertEqual(router_config.load_config("").log_retention, DEFAULT_RETENTION)
        self.check("routervm", router_tap)

    def test_cloudd(self) -> None:
        """cloudd takes the count as --log-retention (it has no settings file)."""
        from cloudd import tap

        basedir = os.path.abspath(self.mktemp())
        options = tap.Options()
        options.parseOptions(["--basedir", basedir, "--log-retention", "5", "--listen", "tcp:0:interface=127.0.0.1"])
        options.parent = twistd_options("-n", "--logfile", os.path.join(basedir, "c.log"))
        retention = tap.makeService(options).getServiceNamed("log-retention")
        self.assertEqual((retention.path, retention.keep), (os.path.join(basedir, "c.log"), 5))
        self.assertEqual(tap.Options()["log-retention"], DEFAULT_RETENTION)
        self.assertRaises(UsageError, tap.Options().parseOptions, ["--log-retention", "0"])

    def test_ssvm(self) -> None:
        self.assertEqual(ssvm_config.load_config("").log_retention, DEFAULT_RETENTION)
        self.check("ssvm", ssvm_tap)
