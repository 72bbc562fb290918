"""Tests for listAlerts, archiveAlerts and deleteAlerts on the fake cloud: fields, filters, paging,
CloudStack's all-or-nothing rule for ids, date ranges, bad input and who may call them.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from cloudd.orchestration.alerts import AlertType
from tests.util.cloud import make_cloud
from tests.util.tenants import Tenants, fast_hashing

T = TypeVar("T")
DAY = 86400
UNKNOWN = "9b7e9c3c-3c3c-4c3c-8c3c-3c3c3c3c3c3c"


def d(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    return Deferred.fromCoroutine(coro)


class AlertCase(SynchronousTestCase):
    """Four alerts, one a day from 1970-01-02: host, storage, host, memory."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        alerts = self.cloud.api.services.alerts
        self.ids: list[str] = []
        for kind, subject in ((AlertType.HOST, "Host is down: h1"), (AlertType.STORAGE, "Low storage in p1"),
                              (AlertType.HOST, "Host is up: h1"), (AlertType.MEMORY, "Low memory in c1")):
            self.cloud.reactor.advance(DAY)
            alert = self.successResultOf(d(alerts.raise_alert(kind, subject, zone_id=1)))
            assert alert is not None
            self.ids.append(alert.uuid)

    def listed(self, **params: Any) -> list[str]:
        r = self.cloud.signed("listAlerts", **params)
        self.assertEqual(r.status, 200, r.body)
        return [a["description"] for a in r.inner().get("alert", [])]

    def ok(self, command: str, **params: Any) -> Any:
        r = self.cloud.signed(command, **params)
        self.assertEqual(r.status, 200, r.body)
        return r.inner()

    def fails(self, code: int, command: str, **params: Any) -> str:
        r = self.cloud.signed(command, **params)
        self.assertEqual(r.status, code, r.body)
        return str(r.inner()["errortext"])


class ListTests(AlertCase):
    def test_fields(self) -> None:
        """Each alert shows id, type, name, description (its subject) and sent; the newest first."""
        body = self.ok("listAlerts")
        self.assertEqual(body["count"], 4)
        first = body["alert"][-1]
        self.assertEqual(first, {"id": self.ids[0], "type": 7, "name": "ALERT.COMPUTE.HOST",
                                 "description": "Host is down: h1", "sent": "1970-01-02T00:00:00+0000"})
        self.assertEqual(self.listed(), ["Low memory in c1", "Host is up: h1", "Low storage in p1",
                                         "Host is down: h1"])

    def test_filters_and_paging(self) -> None:
        """type, name, id and keyword narrow the list; page/pagesize cut it and count stays the total."""
        self.assertEqual(self.listed(type="7"), ["Host is up: h1", "Host is down: h1"])
        self.assertEqual(self.listed(name="ALERT.STORAGE"), ["Low storage in p1"])
        self.assertEqual(self.listed(id=self.ids[3]), ["Low memory in c1"])
        self.assertEqual(self.listed(keyword="h1"), ["Host is up: h1", "Host is down: h1"])
        self.assertEqual(self.listed(type="25"), [])
        body = self.ok("listAlerts", page=2, pagesize=3)
        self.assertEqual((body["count"], len(body["alert"])), (4, 1))

    def test_bad_input(self) -> None:
        """A type that is no number, and an unknown or malformed id, are 431."""
        self.assertIn("Invalid alert type", self.fails(431, "listAlerts", type="HOST"))
        self.assertIn("Invalid parameter id value", self.fails(431, "listAlerts", id=UNKNOWN))
        self.fails(431, "listAlerts", id="nope")


class ArchiveDeleteTests(AlertCase):
    def test_archive_by_ids(self) -> None:
        """Archived alerts leave listAlerts; archiving an already archived one with another fails with
        CloudStack's 530 text and archives neither."""
        self.assertEqual(self.ok("archiveAlerts", ids=f"{self.ids[0]},{self.ids[1]}"), {"success": True})
        self.assertEqual(self.listed(), ["Low memory in c1", "Host is up: h1"])
        text = self.fails(530, "archiveAlerts", ids=f"{self.ids[0]},{self.ids[2]}")
        self.assertEqual(text, "Unable to archive Alerts, one or more parameters has invalid values")
        self.assertEqual(self.listed(), ["Low memory in c1", "Host is up: h1"])
        self.assertIn("Invalid parameter ids value", self.fails(431, "archiveAlerts", ids=UNKNOWN))

    def test_archive_by_type_and_dates(self) -> None:
        """type archives every alert of that type; enddate alone those up to the end of that day;
        startdate and enddate the alerts in that range, both days included."""
        self.ok("archiveAlerts", type="7")
        self.assertEqual(self.listed(), ["Low memory in c1", "Low storage in p1"])
        self.ok("archiveAlerts", startdate="1970-01-03", enddate="1970-01-03")
        self.assertEqual(self.listed(), ["Low memory in c1"])
        self.ok("archiveAlerts", enddate="1970-01-05 00:00:00")
        self.assertEqual(self.listed(), [])

    def test_delete(self) -> None:
        """deleteAlerts removes by ids (archived ones too), type and dates, all or nothing for ids."""
        self.ok("archiveAlerts", ids=self.ids[0])
        self.assertEqual(self.ok("deleteAlerts", ids=self.ids[0]), {"success": True})
        self.assertIn("Invalid parameter ids value", self.fails(431, "deleteAlerts", ids=self.ids[0]))
        self.ok("deleteAlerts", type="2")
        self.assertEqual(self.listed(), ["Low memory in c1", "Host is up: h1"])
        self.ok("deleteAlerts", startdate="1970-01-04", enddate="1970-01-05")
        self.assertEqual(self.listed(), [])

    def test_bad_selection(self) -> None:
        """Nothing to select by, a startdate without enddate, a reversed range, a type that is no number or
        a malformed date: 431, and nothing changes."""
        self.assertEqual(self.fails(431, "archiveAlerts"),
                         "either ids, type, startdate or enddate must be specified")
        self.assertEqual(self.fails(431, "deleteAlerts"), "either ids, type or enddate must be specified")
        self.assertEqual(self.fails(431, "deleteAlerts", type="7", startdate="1970-01-02"),
                         "enddate must be specified with startdate parameter")
        self.fails(431, "archiveAlerts", startdate="1970-01-05", enddate="1970-01-02")
        self.fails(431, "deleteAlerts", type="storage")
        self.fails(431, "deleteAlerts", enddate="yesterday")
        self.assertEqual(len(self.listed()), 4)

    def test_who_may_call(self) -> None:
        """Domain admins and users may not list, archive or delete alerts; another root admin may."""
        fast_hashing(self.cloud)
        tenants = Tenants(self.cloud)
        for party in ("a_admin", "a_user"):
            for command, params in (("listAlerts", {}), ("archiveAlerts", {"type": "7"}),
                                    ("deleteAlerts", {"type": "7"})):
                r = tenants.call(party, command, **params)
                self.assertEqual(r.status, 432, (party, command, r.body))
        self.assertEqual(len(self.listed()), 4)
        r = tenants.call("root2", "archiveAlerts", type="7")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(self.listed()), 2)
