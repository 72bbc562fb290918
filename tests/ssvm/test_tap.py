"""Tests for `twistd ssvm`: options, the composition root, and the control listener's health check."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from ssvm import tap
from ssvm.service import StorageService, control_site
from tests.util.appliance import ApplianceTapTests


class TapTests(ApplianceTapTests, SynchronousTestCase):
    name = "ssvm"
    tap = tap
    service_class = StorageService
    control_site = staticmethod(control_site)
    default_port = 3923
