"""The appliances (`twistd -n routervm`, `twistd -n ssvm`) as real processes: control-channel files
issued by a test authority, free loopback ports, and curl against the mutually authenticated
control API."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from cloudd.pki import CertificateAuthority
from tests.util.daemon import TwistdProcess, free_port

# The options mixin below is a TestCase to the type checker only: a real base class would be
# collected by trial wherever it is imported.
if TYPE_CHECKING:
    _OptionsBase = SynchronousTestCase
else:
    _OptionsBase = object


class ApplianceOptionsChecks(_OptionsBase):
    """What every appliance's ``twistd`` options share, for a test case of one appliance: a base
    directory holding TLS files issued by a fresh cloudd authority, `parse`, the refusal to start
    without TLS files, and usage errors for `bad_argv`."""

    tap: Any  # the appliance's tap module (with its Options)
    appliance: str
    bad_argv: Sequence[Sequence[str]] = (["--bogus"], ["--control-listen"], ["extra"])

    def setUp(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.basedir = os.path.abspath(self.mktemp())
        CertificateAuthority.create(now).issue_appliance(self.appliance, ["127.0.0.1"], now).write(
            os.path.join(self.basedir, "tls"))

    def parse(self, *argv: str) -> Any:
        options = self.tap.Options()
        options.parseOptions(["--basedir", self.basedir, *argv])
        return options

    def test_missing_tls(self) -> None:
        """Without the three TLS files the appliance refuses to start, saying how to get them."""
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--tls-dir", self.mktemp())
        self.assertIn("cloudd appliance-cert", str(caught.exception))

    def test_bad(self) -> None:
        """Unknown options, a missing value and extra words are usage errors."""
        for argv in self.bad_argv:
            self.assertRaises(usage.UsageError, self.parse, *argv)


class TlsAppliance(TwistdProcess):
    """An appliance whose control-channel files come from a test authority (for 127.0.0.1), with a
    settings file and its control listener on a free loopback port. `client_dir` holds cloudd's
    client files from the same authority (key.pem, cert.pem, ca.pem), for curl or the Twisted
    client. The authority and the files survive a restart on the same base directory."""

    def __init__(self, name: str, basedir: str, settings: str = "", env: dict[str, str] | None = None) -> None:
        import datetime

        from cloudd.pki import CertificateAuthority

        super().__init__(name, basedir, env)
        os.makedirs(self.basedir, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self.authority = CertificateAuthority.load_or_create(os.path.join(self.basedir, "pki"), now)
        self.tls_dir = os.path.join(self.basedir, "tls")
        self.client_dir = os.path.join(self.basedir, "client")
        if not os.path.exists(self.tls_dir):
            self.authority.issue_appliance(name, ["127.0.0.1"], now).write(self.tls_dir)
            self.authority.issue_client("cloudd", now).write(self.client_dir)
        self.settings_path = os.path.join(self.basedir, f"{name}.toml")
        with open(self.settings_path, "w") as f:
            f.write(settings)

    @property
    def control_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def plugin_args(self) -> list[str]:
        return ["--basedir", self.basedir, "--tls-dir", self.tls_dir, "--config", self.settings_path,
                "--control-listen", f"tcp:{self.port}:interface=127.0.0.1"]

    def curl(self, method: str, path: str, body: Any = None, cert_dir: str | None = "client",
             extra: list[str] | None = None) -> tuple[int, int | None, bytes]:
        """One control request with curl; `cert_dir` names the client files (None: no certificate).
        Returns curl's exit code, the HTTP status (None when there was no answer) and the body."""
        import subprocess

        argv = ["curl", "-sS", "--max-time", "30", "--cacert", os.path.join(self.tls_dir, "ca.pem"),
                "-X", method, "-o", "-", "-w", "\n%{http_code}"]
        if cert_dir is not None:
            folder = cert_dir if os.path.isabs(cert_dir) else os.path.join(self.basedir, cert_dir)
            argv += ["--cert", os.path.join(folder, "cert.pem"), "--key", os.path.join(folder, "key.pem")]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        argv += list(extra or []) + [self.control_url + path]
        done = subprocess.run(argv, input=None if body is None else json.dumps(body).encode(),
                              capture_output=True, timeout=60)
        body_bytes, _, status = done.stdout.rpartition(b"\n")
        code = int(status) if status.strip().isdigit() and int(status) else None
        return done.returncode, code, body_bytes


class StorageAppliance(TlsAppliance):
    """`twistd -n ssvm` with its control and image listeners on free loopback ports."""

    def __init__(self, basedir: str, settings: str = "", env: dict[str, str] | None = None) -> None:
        super().__init__("ssvm", basedir, settings, env)
        self.public_port = free_port()

    @property
    def store(self) -> str:
        return os.path.join(self.basedir, "store")

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    def plugin_args(self) -> list[str]:
        return super().plugin_args() + ["--public-listen", f"tcp:{self.public_port}:interface=127.0.0.1"]


class RouterAppliance(TlsAppliance):
    """`twistd -n routervm` with its control listener on a free loopback port; its state files are
    under `state_dir`. Without `data_plane` it serves the control API only (the guest network's
    addresses exist only inside a router namespace)."""

    def __init__(self, basedir: str, settings: str = "", env: dict[str, str] | None = None,
                 data_plane: bool = False) -> None:
        super().__init__("routervm", basedir, settings, env)
        self.data_plane = data_plane

    def plugin_args(self) -> list[str]:
        return super().plugin_args() + ([] if self.data_plane else ["--no-data-plane"])

    @property
    def state_dir(self) -> str:
        return os.path.join(self.basedir, "state")
