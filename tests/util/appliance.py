"""The appliances (`twistd -n routervm`, `twistd -n ssvm`): a process runner, and the tests every
appliance's entry point passes (each appliance's test_tap.py binds them to its own modules)."""

from __future__ import annotations

import json
import os
from types import ModuleType
from typing import Any, ClassVar

from twisted.application.internet import StreamServerEndpointService
from twisted.python import usage
from twisted.web.test.requesthelper import DummyRequest

from tests.util.daemon import TwistdProcess, free_port, http


class Appliance(TwistdProcess):
    """An appliance with its control listener on a free loopback port."""

    def plugin_args(self) -> list[str]:
        return ["--control-listen", f"tcp:{self.port}:interface=127.0.0.1"]


class ApplianceTapTests:
    """Options, the composition root and the health check of one appliance; mixed into a TestCase."""

    name: ClassVar[str]
    tap: ClassVar[ModuleType]
    service_class: ClassVar[type]
    control_site: ClassVar[Any]
    default_port: ClassVar[int]

    # provided by the TestCase this is mixed into
    assertEqual: Any
    assertRaises: Any
    assertIsInstance: Any
    assertFalse: Any
    assertIn: Any
    assertIsNotNone: Any
    addCleanup: Any
    mktemp: Any

    def parse(self, *argv: str) -> Any:
        options = self.tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        """The control API listens on the appliance's loopback port by default."""
        self.assertEqual(self.parse()["control-listen"], f"tcp:{self.default_port}:interface=127.0.0.1")

    def test_given(self) -> None:
        """--control-listen takes an endpoint description."""
        self.assertEqual(self.parse("--control-listen", "tcp:4000:interface=10.0.0.1")["control-listen"],
                         "tcp:4000:interface=10.0.0.1")

    def test_bad(self) -> None:
        """Unknown options, a missing value and extra words are usage errors."""
        for argv in (["--bogus"], ["--control-listen"], ["extra"], ["--listen", "tcp:1"]):
            self.assertRaises(usage.UsageError, self.parse, *argv)

    def test_service_tree(self) -> None:
        """makeService returns the appliance's root service whose `control` child serves the control
        site; nothing is started."""
        svc = self.tap.makeService(self.parse("--control-listen", "tcp:4000:interface=127.0.0.1"))
        self.assertIsInstance(svc, self.service_class)
        control = svc.getServiceNamed("control")
        self.assertIsInstance(control, StreamServerEndpointService)
        self.assertFalse(svc.running or control.running)

    def test_health_resource(self) -> None:
        """GET /health on the control site answers the service name and status as JSON."""
        site = self.control_site(self.name)
        request = DummyRequest([b"health"])
        body = site.getResourceFor(request).render(request)
        self.assertEqual(json.loads(body), {"service": self.name, "status": "ok"})
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"application/json"])

    def test_process_health(self) -> None:
        """The real twistd process, started on a loopback port, answers GET /health, 404s elsewhere,
        and stops on SIGTERM."""
        app = Appliance(self.name, self.mktemp())
        self.addCleanup(app.stop)
        app.start(timeout=30)
        res = http(app.url("/health"), timeout=10)
        self.assertEqual(res.status, 200)
        self.assertEqual(res.json(), {"service": self.name, "status": "ok"})
        self.assertEqual(http(app.url("/nothing"), timeout=10).status, 404)
        self.assertIsNotNone(app.stop())
        self.assertIn("Server Shut Down", app.log())


class StorageAppliance(TwistdProcess):
    """`twistd -n ssvm` with control-channel files issued by a test authority (for 127.0.0.1), a
    settings file, and its control and image listeners on free loopback ports. `client_dir` holds
    cloudd's client files from the same authority (key.pem, cert.pem, ca.pem), for curl or the
    Twisted client."""

    def __init__(self, basedir: str, settings: str = "", env: dict[str, str] | None = None) -> None:
        import datetime

        from cloudd.pki import CertificateAuthority

        super().__init__("ssvm", basedir, env)
        self.public_port = free_port()
        os.makedirs(self.basedir, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self.authority = CertificateAuthority.load_or_create(os.path.join(self.basedir, "pki"), now)
        self.tls_dir = os.path.join(self.basedir, "tls")
        self.client_dir = os.path.join(self.basedir, "client")
        if not os.path.exists(self.tls_dir):
            self.authority.issue_appliance("ssvm", ["127.0.0.1"], now).write(self.tls_dir)
            self.authority.issue_client("cloudd", now).write(self.client_dir)
        self.settings_path = os.path.join(self.basedir, "ssvm.toml")
        with open(self.settings_path, "w") as f:
            f.write(settings)

    @property
    def store(self) -> str:
        return os.path.join(self.basedir, "store")

    @property
    def control_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    def plugin_args(self) -> list[str]:
        return ["--basedir", self.basedir, "--tls-dir", self.tls_dir, "--config", self.settings_path,
                "--control-listen", f"tcp:{self.port}:interface=127.0.0.1",
                "--public-listen", f"tcp:{self.public_port}:interface=127.0.0.1"]

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
