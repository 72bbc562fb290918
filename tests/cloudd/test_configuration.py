"""listConfigurations and updateConfiguration: typed global settings with defaults."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model
from cloudd.settings import SETTINGS
from tests.util.cloud import make_cloud


class ConfigurationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)

    def stored(self) -> dict[str, Any]:
        return dict(self.cloud.db.pool.do_sync(lambda conn: [tuple(r) for r in conn.execute(
            sa.select(model.configuration.c.name, model.configuration.c.value))]))

    def test_every_setting_listed_with_its_default(self) -> None:
        """listConfigurations shows every declared setting, its type, value and default."""
        r = self.cloud.signed("listConfigurations", page=1, pagesize=500)
        self.assertEqual(r.status, 200, r.body)
        body = r.inner()
        self.assertEqual(body["count"], len(SETTINGS))
        page = {c["name"]: c for c in body["configuration"]}
        self.assertEqual(page["default.page.size"]["value"], "500")
        self.assertEqual(page["default.page.size"]["type"], "Integer")
        self.assertEqual(page["api.throttling.enabled"]["defaultvalue"], "false")
        one = self.cloud.signed("listConfigurations", name="integration.api.port").inner()
        self.assertEqual([c["name"] for c in one["configuration"]], ["integration.api.port"])

    def test_update_is_typed_stored_and_applied(self) -> None:
        """A valid value is stored and used at once; a badly typed one is refused and nothing changes."""
        r = self.cloud.signed("updateConfiguration", name="default.page.size", value="2")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.inner()["configuration"]["value"], "2")
        self.assertEqual(self.stored(), {"default.page.size": "2"})
        too_big = self.cloud.signed("listDomains", listall="true", page=1, pagesize=3)
        self.assertEqual(too_big.status, 431)
        bad = self.cloud.signed("updateConfiguration", name="api.throttling.enabled", value="maybe")
        self.assertEqual(bad.status, 431)
        unknown = self.cloud.signed("updateConfiguration", name="no.such.setting", value="1")
        self.assertEqual(unknown.status, 431)
        self.assertEqual(self.stored(), {"default.page.size": "2"})

    def test_update_without_value_returns_to_the_default(self) -> None:
        """Without a value the stored value is removed, so the setting follows its default again."""
        self.cloud.signed("updateConfiguration", name="default.page.size", value="2")
        r = self.cloud.signed("updateConfiguration", name="default.page.size")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.inner()["configuration"]["value"], "500")
        self.assertEqual(self.stored(), {})
        self.assertEqual(self.cloud.api.settings.int("default.page.size"), 500)
