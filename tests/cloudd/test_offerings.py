"""Tests for service and disk offerings: the seeded defaults, create/list/update/delete through the
API with CloudStack's field names, filters, domain and zone visibility, and bad input with
CloudStack's codes. Runs on SQLite and, with CLOUDD_TEST_DB_URL, on MariaDB.
"""

from __future__ import annotations

import uuid
from importlib import import_module
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.tenants import Tenants

SEEDED_SERVICE = {"Small Instance": (1, 500, 512), "Medium Instance": (1, 1000, 1024)}
SEEDED_DISK = {"Small": 5, "Medium": 20, "Large": 100, "Custom": 0}


def ok(r: Response) -> Any:
    assert r.status == 200, r.body
    return r.inner()


def error(r: Response, status: int = 431) -> str:
    assert r.status == status, (r.status, r.body)
    body = r.inner()
    assert body["errorcode"] == status, body
    return str(body["errortext"])


def add_zone(cloud: Cloud, name: str) -> str:
    """A zone row as the zone commands store it (the zone family is tested elsewhere)."""
    zone_uuid = str(uuid.uuid4())

    def thd(conn: Any) -> None:
        conn.execute(model.zones.insert().values(uuid=zone_uuid, name=name, network_type="Advanced",
                                                 allocation_state="Enabled",
                                                 created=int(cloud.reactor.seconds())))

    cloud.db.pool.do_sync(thd)
    return zone_uuid


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)

    def services(self, **params: Any) -> list[dict[str, Any]]:
        return list(ok(self.cloud.signed("listServiceOfferings", **params)).get("serviceoffering", []))

    def disks(self, **params: Any) -> list[dict[str, Any]]:
        return list(ok(self.cloud.signed("listDiskOfferings", **params)).get("diskoffering", []))

    def create_service(self, **params: Any) -> dict[str, Any]:
        params.setdefault("displaytext", params["name"])
        return dict(ok(self.cloud.signed("createServiceOffering", **params))["serviceoffering"])

    def create_disk(self, **params: Any) -> dict[str, Any]:
        return dict(ok(self.cloud.signed("createDiskOffering", **params))["diskoffering"])


class SeededTests(Base):
    def test_default_service_offerings(self) -> None:
        """A fresh cloud lists CloudStack's Small and Medium Instance, fixed and shared, and no system
        offering unless issystem=true is asked for."""
        listed = {o["name"]: o for o in self.services()}
        self.assertEqual(set(listed), set(SEEDED_SERVICE))
        for name, (cpu, speed, memory) in SEEDED_SERVICE.items():
            o = listed[name]
            self.assertEqual((o["cpunumber"], o["cpuspeed"], o["memory"]), (cpu, speed, memory))
            self.assertEqual(o["storagetype"], "shared")
            self.assertEqual(o["provisioningtype"], "thin")
            self.assertFalse(o["iscustomized"])
            self.assertFalse(o["issystem"])
            self.assertRegex(o["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")
            self.assertNotIn("domainid", o)

    def test_system_offerings_only_when_asked(self) -> None:
        """issystem=true lists the router, ssvm, console proxy and internal LB offerings (defaultuse),
        and systemvmtype narrows them."""
        system = self.services(issystem="true")
        self.assertEqual({o["systemvmtype"] for o in system},
                         {"domainrouter", "secondarystoragevm", "consoleproxy", "internalloadbalancervm"})
        self.assertTrue(all(o["issystem"] and o["defaultuse"] for o in system))
        ssvm = self.services(issystem="true", systemvmtype="secondarystoragevm")
        self.assertEqual([o["name"] for o in ssvm], ["System Offering For Secondary Storage VM"])

    def test_default_disk_offerings(self) -> None:
        """Small 5 GB, Medium 20 GB, Large 100 GB and a customized Custom offering."""
        listed = {o["name"]: o for o in self.disks()}
        self.assertEqual({n: o["disksize"] for n, o in listed.items()}, SEEDED_DISK)
        self.assertTrue(listed["Custom"]["iscustomized"])
        self.assertFalse(listed["Small"]["iscustomized"])
        self.assertEqual(listed["Small"]["displaytext"], "Small Disk, 5 GB")

    def test_seeding_is_idempotent_by_name(self) -> None:
        """Seeding again (as over a database that has the offerings) adds nothing; a deleted default
        comes back under its name."""
        seed = import_module("cloudd.db.migrations.versions.004_offerings").seed_offerings
        self.cloud.db.pool.do_sync(lambda conn: seed(conn, model.disk_offerings, model.service_offerings))
        self.assertEqual(len(self.disks()), len(SEEDED_DISK))
        self.assertEqual(len(self.services()), len(SEEDED_SERVICE))
        large = next(d for d in self.disks() if d["name"] == "Large")
        ok(self.cloud.signed("deleteDiskOffering", id=large["id"]))
        self.cloud.db.pool.do_sync(lambda conn: seed(conn, model.disk_offerings, model.service_offerings))
        again = [d for d in self.disks() if d["name"] == "Large"]
        self.assertEqual(len(again), 1)
        self.assertNotEqual(again[0]["id"], large["id"])


class CreateServiceOfferingTests(Base):
    def test_fixed_offering_fields(self) -> None:
        """Every given value comes back under CloudStack's field name; the event is recorded."""
        o = self.create_service(name="big", displaytext="Big one", cpunumber=4, cpuspeed=2000, memory=4096,
                                offerha="true", limitcpuuse="true", hosttags="ssd,fast", tags="gold",
                                provisioningtype="sparse", networkrate=100, rootdisksize=20,
                                storagetype="local", bytesreadrate=1000, iopswriterate=50, miniops=10,
                                maxiops=100, cachemode="writeback")
        self.assertEqual((o["name"], o["displaytext"], o["cpunumber"], o["cpuspeed"], o["memory"]),
                         ("big", "Big one", 4, 2000, 4096))
        self.assertTrue(o["offerha"] and o["limitcpuuse"])
        self.assertEqual(o["hosttags"], "ssd,fast")
        self.assertEqual(o["storagetags"], "gold")
        self.assertEqual((o["storagetype"], o["provisioningtype"]), ("local", "sparse"))
        self.assertEqual((o["networkrate"], o["rootdisksize"]), (100, 20))
        self.assertEqual((o["diskBytesReadRate"], o["diskIopsWriteRate"]), (1000, 50))
        self.assertEqual((o["miniops"], o["maxiops"], o["cacheMode"]), (10, 100, "writeback"))
        self.assertFalse(o["iscustomized"])
        self.assertIn(o["id"], [s["id"] for s in self.services()])
        events = ok(self.cloud.signed("listEvents", type="SERVICE.OFFERING.CREATE"))["event"]
        self.assertEqual(events[0]["state"], "Completed")

    def test_customized_offering_with_bounds(self) -> None:
        """Without cpunumber and memory the offering is customized; its bounds show in the details."""
        o = self.create_service(name="custom", cpuspeed=1000, mincpunumber=1, maxcpunumber=8, minmemory=512,
                                maxmemory=8192)
        self.assertTrue(o["iscustomized"])
        self.assertNotIn("cpunumber", o)
        self.assertEqual(o["cpuspeed"], 1000)
        self.assertEqual(o["serviceofferingdetails"],
                         {"mincpunumber": "1", "maxcpunumber": "8", "minmemory": "512", "maxmemory": "8192"})
        unbounded = self.create_service(name="free", customized="true")
        self.assertTrue(unbounded["iscustomized"])
        self.assertNotIn("serviceofferingdetails", unbounded)

    def test_display_text_defaults_to_name(self) -> None:
        """displaytext may be left out (CloudStack 4.18+): the name is used."""
        o = dict(ok(self.cloud.signed("createServiceOffering", name="plain", cpunumber=1, cpuspeed=100,
                                      memory=64))["serviceoffering"])
        self.assertEqual(o["displaytext"], "plain")

    def test_bad_compute_values(self) -> None:
        """cpunumber < 1, memory < 32, a missing or zero speed, bounds for a fixed offering and
        min > max are each refused with 431 and store nothing."""
        before = len(self.services())
        cases: list[tuple[dict[str, Any], str]] = [
            ({"cpunumber": 0, "cpuspeed": 500, "memory": 512}, "cpu number value between 1"),
            ({"cpunumber": -2, "cpuspeed": 500, "memory": 512}, "cpu number value between 1"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 16}, "memory value between 32"),
            ({"cpunumber": 1, "memory": 512}, "cpu speed value between 1"),
            ({"cpunumber": 1, "cpuspeed": 0, "memory": 512}, "cpu speed value between 1"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "maxcpunumber": 4}, "only for a customized"),
            ({"mincpunumber": 4, "maxcpunumber": 2}, "minimum cpu number (4)"),
            ({"minmemory": 8, "maxmemory": 1024}, "minimum memory value between 32"),
            ({"customized": "true", "cpunumber": 2}, "customized offering"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "storagetype": "nfs"}, "storage type nfs"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "provisioningtype": "thick"}, "provisioning"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "miniops": 100, "maxiops": 10}, "min IOPS"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "rootdisksize": 0}, "at least 1 GB"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "cachemode": "fast"}, "Invalid cache mode"),
            ({"cpunumber": 1, "cpuspeed": 500, "memory": 512, "systemvmtype": "domainrouter"}, "issystem"),
        ]
        for params, text in cases:
            with self.subTest(params=params):
                r = self.cloud.signed("createServiceOffering", name="bad", displaytext="bad", **params)
                self.assertIn(text, error(r))
        self.assertEqual(len(self.services()), before)

    def test_non_numeric_and_missing_values(self) -> None:
        """A value that is not a number and a missing name are refused by the binder (431/9999)."""
        create = "createServiceOffering"
        self.assertIn("cpunumber", error(self.cloud.signed(create, name="x", cpunumber="two")))
        self.assertIn("missing parameter name", error(self.cloud.signed(create, cpunumber=1)))
        body = self.cloud.signed("createServiceOffering", name="x", cpunumber="two").inner()
        self.assertEqual(body["cserrorcode"], 9999)

    def test_system_offering(self) -> None:
        """issystem=true with a system VM type is listed only among system offerings; a network rate
        is allowed only for routers."""
        o = self.create_service(name="router-big", cpunumber=2, cpuspeed=1000, memory=1024, issystem="true",
                                systemvmtype="domainrouter", networkrate=200)
        self.assertTrue(o["issystem"])
        self.assertNotIn(o["id"], [s["id"] for s in self.services()])
        self.assertIn(o["id"], [s["id"] for s in self.services(issystem="true")])
        r = self.cloud.signed("createServiceOffering", name="cp", displaytext="cp", cpunumber=1, cpuspeed=500,
                              memory=512, issystem="true", systemvmtype="consoleproxy", networkrate=10)
        self.assertIn("Network rate can be specified only", error(r))
        r = self.cloud.signed("createServiceOffering", name="cp", displaytext="cp", cpunumber=1, cpuspeed=500,
                              memory=512, issystem="true", systemvmtype="toaster")
        self.assertIn("Invalid system vm type", error(r))

    def test_linked_disk_offering(self) -> None:
        """diskofferingid links a disk offering, shown by id, name and display text; an unknown one is
        CloudStack's 431."""
        small = next(d for d in self.disks() if d["name"] == "Small")
        o = self.create_service(name="with-disk", cpunumber=1, cpuspeed=500, memory=512,
                                diskofferingid=small["id"], diskofferingstrictness="true")
        self.assertEqual((o["diskofferingid"], o["diskofferingname"], o["diskofferingdisplaytext"]),
                         (small["id"], "Small", "Small Disk, 5 GB"))
        self.assertTrue(o["diskofferingstrictness"])
        r = self.cloud.signed("createServiceOffering", name="x", displaytext="x", cpunumber=1, cpuspeed=500,
                              memory=512, diskofferingid=str(uuid.uuid4()))
        self.assertIn("Invalid parameter diskofferingid", error(r))


class ListServiceOfferingsTests(Base):
    def setUp(self) -> None:
        super().setUp()
        self.tiny = self.create_service(name="tiny", cpunumber=1, cpuspeed=100, memory=128)["id"]
        self.huge = self.create_service(name="huge", cpunumber=16, cpuspeed=3000, memory=65536)["id"]
        self.custom = self.create_service(name="custom", cpuspeed=2000, mincpunumber=2, maxcpunumber=4,
                                          minmemory=1024, maxmemory=4096)["id"]

    def ids(self, **params: Any) -> set[str]:
        return {o["id"] for o in self.services(**params)}

    def test_filters(self) -> None:
        """id, name, keyword and the cpunumber/memory/cpuspeed a VM needs each narrow the list."""
        self.assertEqual(self.ids(id=self.tiny), {self.tiny})
        self.assertEqual(self.ids(name="huge"), {self.huge})
        self.assertEqual({o["name"] for o in self.services(keyword="Instance")},
                         {"Small Instance", "Medium Instance"})
        self.assertEqual(self.ids(cpunumber=8), {self.huge})
        self.assertEqual(self.ids(cpunumber=3), {self.huge, self.custom})
        mine = {self.tiny, self.huge, self.custom}
        self.assertEqual(self.ids(memory=2048) & mine, {self.huge, self.custom})
        self.assertEqual(self.ids(memory=8192) & {self.custom}, set())
        self.assertEqual(self.ids(cpuspeed=2500), {self.huge})

    def test_paging_and_count(self) -> None:
        """count is the whole match; page/pagesize cut it in CloudStack's order."""
        body = ok(self.cloud.signed("listServiceOfferings", page=1, pagesize=2))
        self.assertEqual(body["count"], 5)
        self.assertEqual(len(body["serviceoffering"]), 2)
        second = ok(self.cloud.signed("listServiceOfferings", page=3, pagesize=2))["serviceoffering"]
        self.assertEqual(len(second), 1)

    def test_virtual_machine_id_of_no_vm(self) -> None:
        """virtualmachineid is accepted; naming no VM is answered as CloudStack answers an unknown id."""
        text = error(self.cloud.signed("listServiceOfferings", virtualmachineid=str(uuid.uuid4())))
        self.assertIn("Invalid parameter virtualmachineid", text)
        self.assertIn("entity does not exist", text)

    def test_unknown_id_is_431(self) -> None:
        """An unknown offering id is CloudStack's 431 text, not an empty list."""
        r = self.cloud.signed("listServiceOfferings", id=str(uuid.uuid4()))
        self.assertIn("Invalid parameter id", error(r))

    def test_deleted_offering_not_listed(self) -> None:
        """deleteServiceOffering removes it from every list; a second delete is 431."""
        self.assertTrue(ok(self.cloud.signed("deleteServiceOffering", id=self.tiny))["success"])
        self.assertNotIn(self.tiny, self.ids())
        self.assertIn("Invalid parameter id", error(self.cloud.signed("deleteServiceOffering", id=self.tiny)))

    def test_default_system_offering_cannot_be_deleted(self) -> None:
        """The seeded system offerings are in default use and stay."""
        router = self.services(issystem="true", systemvmtype="domainrouter")[0]
        self.assertIn("Default service offerings cannot be deleted",
                      error(self.cloud.signed("deleteServiceOffering", id=router["id"])))
        self.assertEqual(len(self.services(issystem="true", systemvmtype="domainrouter")), 1)

    def test_update(self) -> None:
        """updateServiceOffering changes name, display text, sort key and tags; sortkey orders lists."""
        o = ok(self.cloud.signed("updateServiceOffering", id=self.huge, name="huger", displaytext="Huger",
                                 sortkey=-5, storagetags="a,b", hosttags="h1"))["serviceoffering"]
        self.assertEqual((o["name"], o["displaytext"], o["storagetags"], o["hosttags"]),
                         ("huger", "Huger", "a,b", "h1"))
        self.assertEqual(self.services()[0]["id"], self.huge)
        r = self.cloud.signed("updateServiceOffering", id=self.huge, name=" ")
        self.assertIn("must not be empty", error(r))


class VisibilityTests(Base):
    def setUp(self) -> None:
        super().setUp()
        self.t = Tenants(self.cloud)
        self.zone1 = add_zone(self.cloud, "zone1")
        self.zone2 = add_zone(self.cloud, "zone2")

    def names(self, label: str, command: str = "listServiceOfferings", **params: Any) -> set[str]:
        r = self.t.call(label, command, **params)
        key = "serviceoffering" if "Service" in command else "diskoffering"
        return {o["name"] for o in ok(r).get(key, [])}

    def test_domain_offerings(self) -> None:
        """An offering for domain A is offered to A and A/sub, to no one in B; public ones to all."""
        o = self.create_service(name="a-only", cpunumber=1, cpuspeed=500, memory=512, domainid=self.t.a)
        self.assertEqual((o["domainid"], o["domain"]), (self.t.a, "tenant-a"))
        for label in ("a_admin", "a_user", "sub_user", "sub_admin", "root_dadmin"):
            with self.subTest(label=label):
                self.assertIn("a-only", self.names(label))
        for label in ("b_user", "b_admin"):
            with self.subTest(label=label):
                self.assertNotIn("a-only", self.names(label))
                self.assertIn("Small Instance", self.names(label))
        r = self.t.call("b_user", "listServiceOfferings", id=o["id"])
        self.assertIn("Invalid parameter id", error(r))

    def test_sub_domain_offering_not_offered_above(self) -> None:
        """An offering for A/sub is not offered to plain users of A, but A's admin sees it."""
        self.create_disk(name="sub-disk", disksize=1, domainid=self.t.sub)
        self.assertNotIn("sub-disk", self.names("a_user", "listDiskOfferings"))
        self.assertIn("sub-disk", self.names("a_admin", "listDiskOfferings"))
        self.assertIn("sub-disk", self.names("sub_user", "listDiskOfferings"))

    def test_several_domains_and_domain_filter(self) -> None:
        """domainid may list several domains; listing with domainid shows that domain's offerings, with
        isrecursive those of the domains below it too."""
        o = self.create_service(name="ab", cpunumber=1, cpuspeed=500, memory=512,
                                domainid=f"{self.t.a},{self.t.b}")
        self.assertEqual(set(o["domainid"].split(",")), {self.t.a, self.t.b})
        self.assertIn("ab", self.names("b_user"))
        self.assertEqual({x["name"] for x in self.services(domainid=self.t.b)}, {"ab"})
        self.create_service(name="sub", cpunumber=1, cpuspeed=500, memory=512, domainid=self.t.sub)
        self.assertEqual({x["name"] for x in self.services(domainid=self.t.a)}, {"ab"})
        recursive = self.services(domainid=self.t.a, isrecursive="true")
        self.assertEqual({x["name"] for x in recursive}, {"ab", "sub"})
        self.assertEqual({x["name"] for x in self.services(domainid=self.t.sub)}, {"sub"})

    def test_zone_offerings(self) -> None:
        """An offering limited to zone1 is listed for zone1 and without a zone, not for zone2."""
        o = self.create_disk(name="z1", disksize=2, zoneid=self.zone1)
        self.assertEqual((o["zoneid"], o["zone"]), (self.zone1, "zone1"))
        self.assertIn("z1", {d["name"] for d in self.disks(zoneid=self.zone1)})
        self.assertNotIn("z1", {d["name"] for d in self.disks(zoneid=self.zone2)})
        self.assertIn("Small", {d["name"] for d in self.disks(zoneid=self.zone2)})
        self.assertIn("z1", {d["name"] for d in self.disks()})
        r = self.cloud.signed("createDiskOffering", name="z", disksize=1, zoneid=str(uuid.uuid4()))
        self.assertIn("Invalid parameter zoneid", error(r))

    def test_update_domains_and_zones(self) -> None:
        """updateServiceOffering domainid/zoneid replace the links; "public" and "all" clear them."""
        o = self.create_service(name="mv", cpunumber=1, cpuspeed=500, memory=512, domainid=self.t.a)
        r = ok(self.cloud.signed("updateServiceOffering", id=o["id"], domainid=self.t.b, zoneid=self.zone2))
        self.assertEqual((r["serviceoffering"]["domainid"], r["serviceoffering"]["zoneid"]),
                         (self.t.b, self.zone2))
        self.assertNotIn("mv", self.names("a_user"))
        self.assertIn("mv", self.names("b_user"))
        r = ok(self.cloud.signed("updateServiceOffering", id=o["id"], domainid="public", zoneid="all"))
        self.assertNotIn("domainid", r["serviceoffering"])
        self.assertNotIn("zoneid", r["serviceoffering"])
        self.assertIn("mv", self.names("a_user"))
        r = self.cloud.signed("updateServiceOffering", id=o["id"], domainid=str(uuid.uuid4()))
        self.assertIn("Invalid parameter domainid", error(r))

    def test_users_may_not_create_or_see_system_offerings(self) -> None:
        """Creating is for the root admin (others get CloudStack's 432 "not available"); issystem=true
        from a non-root caller is 431."""
        r = self.t.call("a_admin", "createServiceOffering", name="x", displaytext="x", cpunumber=1,
                        cpuspeed=1, memory=64)
        self.assertIn("not available", error(r, 432))
        r = self.t.call("a_user", "listServiceOfferings", issystem="true")
        self.assertIn("Only ROOT admins", error(r))

    def test_hidden_disk_offering(self) -> None:
        """displayoffering=false keeps a disk offering from users' lists, not from the admin's."""
        self.create_disk(name="hidden", disksize=3, displayoffering="false")
        self.assertNotIn("hidden", self.names("a_user", "listDiskOfferings"))
        self.assertIn("hidden", {d["name"] for d in self.disks()})


class DiskOfferingTests(Base):
    def test_create_fields(self) -> None:
        """Every given value comes back under CloudStack's field name."""
        d = self.create_disk(name="fast", displaytext="Fast disk", disksize=50, tags="ssd",
                             storagetype="local", provisioningtype="fat", customizediops="true", miniops=100,
                             maxiops=1000, hypervisorsnapshotreserve=10, bytesreadrate=5, iopsreadratemax=7,
                             cachemode="none", disksizestrictness="true", encrypt="true")
        self.assertEqual((d["name"], d["displaytext"], d["disksize"], d["tags"]),
                         ("fast", "Fast disk", 50, "ssd"))
        self.assertEqual((d["storagetype"], d["provisioningtype"]), ("local", "fat"))
        self.assertEqual((d["iscustomizediops"], d["miniops"], d["maxiops"]), (True, 100, 1000))
        self.assertEqual((d["hypervisorsnapshotreserve"], d["diskBytesReadRate"], d["diskIopsReadRateMax"]),
                         (10, 5, 7))
        self.assertTrue(d["disksizestrictness"] and d["encrypt"] and d["displayoffering"])
        self.assertFalse(d["iscustomized"])

    def test_customized(self) -> None:
        """customized=true without a size gives a 0 GB customized offering."""
        d = self.create_disk(name="any", customized="true")
        self.assertTrue(d["iscustomized"])
        self.assertEqual(d["disksize"], 0)

    def test_bad_input(self) -> None:
        """Sizes below 1 GB or above custom.diskoffering.size.max, a missing size, a size for a
        customized offering, and a bad storage type are each 431 and store nothing."""
        before = len(self.disks())
        cases: list[tuple[dict[str, Any], str]] = [
                 ({"disksize": 0}, "at least 1 Gb"), ({"disksize": 5000}, "maximum size for a disk is 1024"),
                 ({}, "Disksize is required"), ({"customized": "true", "disksize": 5}, "not allowed"),
                 ({"disksize": 1, "storagetype": "nfs"}, "Invalid storage type"),
                 ({"disksize": 1, "miniops": 5, "maxiops": 1}, "min IOPS"),
                 ({"disksize": 1, "bytesreadrate": 10, "bytesreadratemax": 5}, "cannot be greater")]
        for params, text in cases:
            with self.subTest(params=params):
                self.assertIn(text, error(self.cloud.signed("createDiskOffering", name="bad", **params)))
        self.assertEqual(len(self.disks()), before)

    def test_update_and_delete(self) -> None:
        """updateDiskOffering changes name, tags and display; deleteDiskOffering removes it."""
        d = self.create_disk(name="d", disksize=1)
        u = ok(self.cloud.signed("updateDiskOffering", id=d["id"], name="d2", tags="x,y,x",
                                 displayoffering="false", displaytext="D2"))["diskoffering"]
        self.assertEqual((u["name"], u["tags"], u["displayoffering"], u["displaytext"]),
                         ("d2", "x,y", False, "D2"))
        self.assertTrue(ok(self.cloud.signed("deleteDiskOffering", id=d["id"]))["success"])
        self.assertNotIn(d["id"], {x["id"] for x in self.disks()})
        r = self.cloud.signed("updateDiskOffering", id=d["id"], name="z")
        self.assertIn("Invalid parameter id", error(r))

    def test_filters(self) -> None:
        """id, name, keyword and storagetype narrow the list; volumeid names no volume yet (431)."""
        local = self.create_disk(name="loc", disksize=1, storagetype="local")
        self.assertEqual([d["id"] for d in self.disks(storagetype="local")], [local["id"]])
        self.assertEqual([d["name"] for d in self.disks(id=local["id"])], ["loc"])
        self.assertEqual([d["name"] for d in self.disks(name="Large")], ["Large"])
        self.assertEqual({d["name"] for d in self.disks(keyword="Disk, ")}, {"Small", "Medium", "Large"})
        self.assertIn("Invalid parameter volumeid",
                      error(self.cloud.signed("listDiskOfferings", volumeid=str(uuid.uuid4()))))
