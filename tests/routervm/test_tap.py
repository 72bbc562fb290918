"""Tests for `twistd routervm`: options, the settings file, and the composition root."""

from __future__ import annotations

import datetime
import os
import stat

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from cloudd.pki import CertificateAuthority
from routervm import tap
from routervm.config import Config, ConfigError, load_config
from routervm.dhcp.packet import INFINITE_LEASE
from routervm.service import RouterService
from routervm.state import KEY_FILE, RouterState, Snapshot
from tests.util.appliance import ApplianceOptionsChecks

NOW = datetime.datetime.now(datetime.UTC)


class OptionsTests(ApplianceOptionsChecks, SynchronousTestCase):
    tap = tap
    appliance = "routervm"
    bad_argv = (*ApplianceOptionsChecks.bad_argv, ["--listen", "tcp:1"])

    def test_defaults(self) -> None:
        """The control API listens on the router's loopback port 3922; TLS files under the base
        directory; default settings."""
        options = self.parse()
        self.assertEqual(options["control-listen"], "tcp:3922:interface=127.0.0.1")
        self.assertEqual(options["tls-dir"], os.path.join(self.basedir, "tls"))
        self.assertEqual(options["settings"], Config())

    def test_given(self) -> None:
        """--control-listen takes an endpoint description."""
        self.assertEqual(self.parse("--control-listen", "tcp:4000:interface=10.0.0.1")["control-listen"],
                         "tcp:4000:interface=10.0.0.1")

    def test_settings_file(self) -> None:
        """The TOML settings are read; a bad file is a usage error listing every problem."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[passwords]\nttl = 600\n[dhcp]\nlease_seconds = 3600\n")
        settings = self.parse("--config", path)["settings"]
        self.assertEqual((settings.password_ttl, settings.lease_seconds), (600, 3600))
        with open(path, "w") as f:
            f.write("[passwords]\nttl = -1\ncolour = 3\n[dhcp]\nlease_seconds = 99999999999\n[extra]\n")
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--config", path)
        for fragment in ("passwords.ttl", "passwords.colour", "dhcp.lease_seconds", "[extra]"):
            self.assertIn(fragment, str(caught.exception))
        self.assertRaises(usage.UsageError, self.parse, "--config", self.mktemp())

    def test_service_tree(self) -> None:
        """makeService returns the router's root service with its named children in start order and
        creates the sealing key (0600); nothing is started."""
        svc = tap.makeService(self.parse("--control-listen", "tcp:0:interface=127.0.0.1"))
        self.assertIsInstance(svc, RouterService)
        assert isinstance(svc, RouterService)
        self.assertEqual([child.name for child in svc], ["writer", "state", "control", "data-plane"])
        self.assertIsInstance(svc.getServiceNamed("control"), StreamServerEndpointService)
        self.assertFalse(svc.running)
        key = os.path.join(self.basedir, "state", KEY_FILE)
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)


class ConfigTests(SynchronousTestCase):
    def test_empty(self) -> None:
        self.assertEqual(load_config(""), Config())
        self.assertEqual(Config().lease_seconds, INFINITE_LEASE)

    def test_not_toml(self) -> None:
        self.assertRaises(ConfigError, load_config, "[passwords\n")

    def test_values(self) -> None:
        config = load_config("[control]\nmax_body = 1024\n")
        self.assertEqual(config.control_max_body, 1024)
        self.assertRaises(ConfigError, load_config, "[control]\nmax_body = true\n")
        config = load_config("[control]\nmax_state_body = 2048\n")
        self.assertEqual((config.control_max_body, config.control_max_state_body), (8 * 1024 * 1024, 2048))
        self.assertRaises(ConfigError, load_config, "[control]\nmax_state_body = 0\n")


class DataPlaneHookTests(SynchronousTestCase):
    """Data-plane services attach after the state and the control API, and see the state loaded."""

    def test_add_data_plane(self) -> None:
        basedir = os.path.abspath(self.mktemp())
        material = CertificateAuthority.create(NOW).issue_appliance("routervm", ["127.0.0.1"], NOW)
        svc = RouterService(reactor=Clock(), state_dir=os.path.join(basedir, "state"), tls=material,
                            control_listen="tcp:0:interface=127.0.0.1", config=Config(), key=b"k" * 32)
        svc.keeper.replace(RouterState.from_json({"generation": 3, "network": {
            "interface": "eth0", "cidr": "10.1.1.0/24", "router_ip": "10.1.1.1"}}))
        seen: list[Snapshot] = []
        plane = Service()
        plane.setName("dhcp")
        svc.add_data_plane(plane)
        svc.subscribe(seen.append)
        self.assertEqual([child.name for child in svc], ["writer", "state", "control", "dhcp"])
        self.assertEqual([s.generation for s in seen], [3])
        self.assertIs(svc.snapshot, seen[0])
        self.assertRaises(ValueError, svc.add_data_plane, Service())
