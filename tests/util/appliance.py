"""The appliances (`twistd -n routervm`, `twistd -n ssvm`): a process runner, and the tests every
appliance's entry point passes (each appliance's test_tap.py binds them to its own modules)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any, ClassVar

from twisted.application.internet import StreamServerEndpointService
from twisted.python import usage
from twisted.web.test.requesthelper import DummyRequest

from tests.util.daemon import TwistdProcess, http


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
