"""Tests for `twistd routervm`: options, the composition root, and the control listener's health check.

The service is built without being started (starting would bind its port); one test runs the real
`twistd -n routervm` process on a free loopback port and asks it for `/health`.
"""

from __future__ import annotations

import json

from twisted.application.internet import StreamServerEndpointService
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from routervm import tap
from routervm.service import RouterService, control_site
from tests.util.appliance import Appliance
from tests.util.daemon import http


class OptionsTests(SynchronousTestCase):
    """routervm.tap.Options: the control listener's endpoint."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        """The control API listens on loopback port 3922 by default."""
        self.assertEqual(self.parse()["control-listen"], "tcp:3922:interface=127.0.0.1")

    def test_given(self) -> None:
        """--control-listen takes an endpoint description."""
        self.assertEqual(self.parse("--control-listen", "tcp:4000:interface=10.0.0.1")["control-listen"],
                         "tcp:4000:interface=10.0.0.1")

    def test_bad(self) -> None:
        """Unknown options, a missing value and extra words are usage errors."""
        for argv in (["--bogus"], ["--control-listen"], ["extra"], ["--listen", "tcp:1"]):
            self.assertRaises(usage.UsageError, self.parse, *argv)


class MakeServiceTests(SynchronousTestCase):
    """makeService returns the named root service with its control listener."""

    def test_service_tree(self) -> None:
        """The root is a RouterService whose `control` child serves the control site; nothing is started."""
        options = tap.Options()
        options.parseOptions(["--control-listen", "tcp:4000:interface=127.0.0.1"])
        svc = tap.makeService(options)
        assert isinstance(svc, RouterService)
        control = svc.getServiceNamed("control")
        self.assertIsInstance(control, StreamServerEndpointService)
        self.assertFalse(svc.running or control.running)

    def test_health_resource(self) -> None:
        """GET /health on the control site answers the service name and status as JSON."""
        site = control_site("routervm")
        request = DummyRequest([b"health"])
        body = site.getResourceFor(request).render(request)
        self.assertEqual(json.loads(body), {"service": "routervm", "status": "ok"})
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"application/json"])


class ProcessTests(SynchronousTestCase):
    """The real `twistd -n routervm` process."""

    def test_health(self) -> None:
        """Started on a loopback port it answers GET /health, 404s elsewhere, and stops on SIGTERM."""
        app = Appliance("routervm", self.mktemp())
        self.addCleanup(app.stop)
        app.start()
        res = http(app.url("/health"), timeout=10)
        self.assertEqual(res.status, 200)
        self.assertEqual(res.json(), {"service": "routervm", "status": "ok"})
        self.assertEqual(http(app.url("/nothing"), timeout=10).status, 404)
        self.assertIsNotNone(app.stop())
        self.assertIn("Server Shut Down", app.log())
