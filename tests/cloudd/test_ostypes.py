"""Tests for the guest OS list: CloudStack's categories and types seeded with stable UUIDs, and
listOsTypes / listOsCategories with their filters, paging and bad input.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model, ostypes_data
from tests.util.cloud import Response, make_cloud
from tests.util.tenants import Tenants

FAMILIES = ("Debian", "Ubuntu", "CentOS", "Red Hat Enterprise Linux", "Rocky Linux", "AlmaLinux", "Fedora",
            "openSUSE", "SUSE Linux Enterprise Server", "Windows", "FreeBSD", "Other")


def ok(r: Response) -> Any:
    assert r.status == 200, r.body
    return r.inner()


class OsTypesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)

    def types(self, **params: Any) -> list[dict[str, Any]]:
        return list(ok(self.cloud.signed("listOsTypes", **params)).get("ostype", []))

    def categories(self, **params: Any) -> list[dict[str, Any]]:
        return list(ok(self.cloud.signed("listOsCategories", **params)).get("oscategory", []))

    def test_categories(self) -> None:
        """CloudStack's categories, each with a UUID derived from its number (the same everywhere)."""
        listed = self.categories()
        self.assertEqual([c["name"] for c in listed], [name for _, name in ostypes_data.CATEGORIES])
        self.assertEqual(listed[0]["id"], ostypes_data.category_uuid(1))
        self.assertEqual(set(listed[0]), {"id", "name"})
        self.assertEqual([c["name"] for c in self.categories(name="Ubuntu")], ["Ubuntu"])
        self.assertEqual([c["name"] for c in self.categories(id=listed[1]["id"])], ["Debian"])
        self.assertEqual([c["name"] for c in self.categories(keyword="ind")], ["Windows"])

    def test_every_family_is_seeded(self) -> None:
        """Every family clients pick from has types, and every type names its category."""
        everything = self.types()
        self.assertEqual(len(everything), len(ostypes_data.OS_TYPES))
        names = [t["description"] for t in everything]
        for family in FAMILIES:
            with self.subTest(family=family):
                self.assertTrue(any(family.lower() in n.lower() for n in names), family)
        for name in ("Ubuntu 22.04 LTS", "Debian GNU/Linux 12 (64-bit)", "Rocky Linux 9", "AlmaLinux 9",
                     "Windows Server 2022 (64-bit)", "CentOS 5.3 (64-bit)", "Other Linux (64-bit)"):
            self.assertIn(name, names)

    def test_fields(self) -> None:
        """An OS type carries CloudStack's fields: id, name, description, its category, flags."""
        t = self.types(description="CentOS 5.3 (64-bit)")[0]
        self.assertEqual(t, {"id": ostypes_data.os_type_uuid(12), "name": "CentOS 5.3 (64-bit)",
                             "description": "CentOS 5.3 (64-bit)",
                             "oscategoryid": ostypes_data.category_uuid(1), "oscategoryname": "CentOS",
                             "isuserdefined": False, "fordisplay": True})

    def test_filters(self) -> None:
        """oscategoryid, description, keyword and id narrow the list; paging counts the whole match."""
        ubuntu = next(c for c in self.categories() if c["name"] == "Ubuntu")
        in_ubuntu = self.types(oscategoryid=ubuntu["id"])
        self.assertTrue(in_ubuntu)
        self.assertTrue(all(t["oscategoryname"] == "Ubuntu" for t in in_ubuntu))
        self.assertEqual({t["description"] for t in self.types(description="Rocky")},
                         {"Rocky Linux 8", "Rocky Linux 9"})
        self.assertEqual({t["description"] for t in self.types(keyword="AlmaLinux 9")}, {"AlmaLinux 9"})
        one = self.types()[5]
        self.assertEqual(self.types(id=one["id"]), [one])
        body = ok(self.cloud.signed("listOsTypes", page=2, pagesize=10))
        self.assertEqual(body["count"], len(ostypes_data.OS_TYPES))
        self.assertEqual(len(body["ostype"]), 10)
        self.assertEqual(body["ostype"][0]["id"], self.types()[10]["id"])

    def test_bad_ids(self) -> None:
        """Unknown or malformed ids are CloudStack's 431."""
        for params in ({"id": str(uuid.uuid4())}, {"oscategoryid": str(uuid.uuid4())}, {"id": "12"}):
            with self.subTest(params=params):
                r = self.cloud.signed("listOsTypes", **params)
                self.assertEqual(r.status, 431, r.body)

    def test_hidden_types_and_fordisplay(self) -> None:
        """A type hidden from users (fordisplay false) is listed to the root admin only, who alone may
        filter on fordisplay (as CloudStack, the parameter is ignored from others)."""
        def hide(conn: Any) -> None:
            conn.execute(model.guest_os.update().where(model.guest_os.c.id == 12).values(for_display=0))

        self.cloud.db.pool.do_sync(hide)
        hidden = ostypes_data.os_type_uuid(12)
        tenants = Tenants(self.cloud)
        user_view = ok(tenants.call("a_user", "listOsTypes", pagesize=-1))["ostype"]
        self.assertNotIn(hidden, [t["id"] for t in user_view])
        self.assertEqual(len(user_view), len(ostypes_data.OS_TYPES) - 1)
        self.assertEqual([t["id"] for t in self.types(fordisplay="false")], [hidden])
        asked = ok(tenants.call("a_user", "listOsTypes", fordisplay="false", pagesize=-1))["ostype"]
        self.assertEqual(asked, user_view)


class GuestOsCommandsTests(SynchronousTestCase):
    """addGuestOs, updateGuestOs and removeGuestOs: async jobs on the root admin's own OS types."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.other = next(c for c in ok(self.cloud.signed("listOsCategories", name="Other"))["oscategory"])

    def job(self, command: str, **params: Any) -> dict[str, Any]:
        """Run an async command to its end; the finished job (jobstatus 1 or 2)."""
        started = ok(self.cloud.signed(command, **params))
        done = ok(self.cloud.signed("queryAsyncJobResult", jobid=started["jobid"]))
        self.assertIn(done["jobstatus"], (1, 2), done)
        return dict(done)

    def add(self, name: str, **more: Any) -> dict[str, Any]:
        done = self.job("addGuestOs", oscategoryid=self.other["id"], osdisplayname=name, **more)
        self.assertEqual(done["jobstatus"], 1, done)
        return dict(done["jobresult"]["ostype"])

    def test_add_update_remove(self) -> None:
        """A user-defined type is listed, renamed, hidden from users and removed, each with its event."""
        added = self.add("Plan 9 (64-bit)")
        self.assertEqual((added["description"], added["oscategoryname"], added["isuserdefined"],
                          added["fordisplay"]), ("Plan 9 (64-bit)", "Other", True, True))
        listed = ok(self.cloud.signed("listOsTypes", description="Plan 9"))["ostype"]
        self.assertEqual([t["id"] for t in listed], [added["id"]])
        done = self.job("updateGuestOs", id=added["id"], osdisplayname="Plan 9 4th ed", fordisplay="false")
        self.assertEqual(done["jobstatus"], 1, done)
        self.assertEqual((done["jobresult"]["ostype"]["name"], done["jobresult"]["ostype"]["fordisplay"]),
                         ("Plan 9 4th ed", False))
        done = self.job("removeGuestOs", id=added["id"])
        self.assertEqual(done["jobresult"], {"success": True})
        self.assertEqual(ok(self.cloud.signed("listOsTypes", description="Plan 9")), {})
        events = {e["type"] for e in ok(self.cloud.signed("listEvents"))["event"]
                  if e["state"] == "Completed"}
        self.assertTrue({"GUEST.OS.ADD", "GUEST.OS.UPDATE", "GUEST.OS.REMOVE"} <= events, events)

    def test_cloudstack_types_are_fixed(self) -> None:
        """The seeded types may be neither modified nor removed (431); nothing changes."""
        seeded = ostypes_data.os_type_uuid(12)
        for command, params in (("updateGuestOs", {"osdisplayname": "x"}), ("removeGuestOs", {})):
            with self.subTest(command=command):
                r = self.cloud.signed(command, id=seeded, **params)
                self.assertEqual(r.status, 431, r.body)
                self.assertIn("system defined guest OS", r.inner()["errortext"])
        listed = ok(self.cloud.signed("listOsTypes", id=seeded))["ostype"]
        self.assertEqual(listed[0]["name"], "CentOS 5.3 (64-bit)")

    def test_names_are_unique(self) -> None:
        """A display name in use (CloudStack's or one's own) is refused with 431, also on rename."""
        r = self.cloud.signed("addGuestOs", oscategoryid=self.other["id"], osdisplayname="Ubuntu 22.04 LTS")
        self.assertEqual(r.status, 431, r.body)
        self.assertIn("already exists", r.inner()["errortext"])
        first = self.add("Mine 1")
        self.add("Mine 2")
        r = self.cloud.signed("updateGuestOs", id=first["id"], osdisplayname="Mine 2")
        self.assertEqual(r.status, 431, r.body)
        self.assertEqual(r.json()["updateguestosresponse"]["errorcode"], 431)
