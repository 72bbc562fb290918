"""Tests for `twistd routervm`: options, the composition root, and the control listener's health check."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from routervm import tap
from routervm.service import RouterService, control_site
from tests.util.appliance import ApplianceTapTests


class TapTests(ApplianceTapTests, SynchronousTestCase):
    name = "routervm"
    tap = tap
    service_class = RouterService
    control_site = staticmethod(control_site)
    default_port = 3922
