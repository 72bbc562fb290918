"""Tests for `twistd ssvm`: options, the settings file, and the composition root."""

from __future__ import annotations

import datetime
import os

from twisted.application.internet import StreamServerEndpointService
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from ssvm import tap
from ssvm.config import Config, ConfigError, load_config
from ssvm.service import StorageService
from tests.util.appliance import ApplianceOptionsChecks

NOW = datetime.datetime.now(datetime.UTC)


class OptionsTests(ApplianceOptionsChecks, SynchronousTestCase):
    tap = tap
    appliance = "ssvm"

    def test_defaults(self) -> None:
        """Control and image listeners on loopback; store, TLS files and state under the base
        directory; default settings."""
        options = self.parse()
        self.assertEqual(options["control-listen"], "tcp:3923:interface=127.0.0.1")
        self.assertEqual(options["public-listen"], "tcp:3924:interface=127.0.0.1")
        self.assertEqual(options["public-url"], "http://127.0.0.1:3924")
        self.assertEqual(options["store"], os.path.join(self.basedir, "store"))
        self.assertEqual(options["settings"], Config())

    def test_settings_file(self) -> None:
        """The TOML settings are read; a bad file is a usage error listing every problem."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[download]\nallowed_cidrs = ["127.0.0.1/32"]\nmax_size = 1048576\n')
        settings = self.parse("--config", path)["settings"]
        self.assertEqual((settings.allowed_cidrs, settings.max_size), (("127.0.0.1/32",), 1048576))
        with open(path, "w") as f:
            f.write('[download]\nallowed_cidrs = ["nonsense"]\nmax_size = -1\nspeed = 3\n[extra]\n')
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--config", path)
        for fragment in ("nonsense", "max_size", "download.speed", "[extra]"):
            self.assertIn(fragment, str(caught.exception))
        self.assertRaises(usage.UsageError, self.parse, "--config", self.mktemp())

    def test_service_tree(self) -> None:
        """makeService returns the appliance's root service with its named children in start order;
        nothing is started."""
        svc = tap.makeService(self.parse("--control-listen", "tcp:0:interface=127.0.0.1",
                                         "--public-listen", "tcp:0:interface=127.0.0.1"))
        self.assertIsInstance(svc, StorageService)
        assert isinstance(svc, StorageService)
        self.assertEqual([child.name for child in svc], ["pool", "downloads", "control", "public"])
        self.assertIsInstance(svc.getServiceNamed("control"), StreamServerEndpointService)
        self.assertFalse(svc.running)
        self.assertTrue(os.path.exists(os.path.join(self.basedir, "url-signing.key")))


class ConfigTests(SynchronousTestCase):
    def test_empty(self) -> None:
        """An empty file means the defaults: nothing private allowed, 50 GiB, five redirects."""
        self.assertEqual(load_config(""), Config((), 50 * 2**30, 5, 7 * 86400))

    def test_not_toml(self) -> None:
        """A file that is not TOML is one clear error."""
        self.assertRaises(ConfigError, load_config, "[download\n")
