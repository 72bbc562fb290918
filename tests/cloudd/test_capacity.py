"""Tests for capacity: listCapacity's figures, levels, filters and format on the fake cloud with simulated
hosts and pools, and the threshold check raising alerts once per crossing on the fake clock.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model
from cloudd.db.storage import Place
from cloudd.orchestration.capacity import Allocated, CapacityManager, percent_used
from cloudd.orchestration.storage import StorageManager
from tests.util.infra import InfraCloud

T = TypeVar("T")
GIB = 1024**3
MIB = 1024**2


def d(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    return Deferred.fromCoroutine(coro)


class PercentTests(SynchronousTestCase):
    def test_format(self) -> None:
        """percentused is CloudStack's DecimalFormat("##.##") of a float percentage: at most two decimals,
        no trailing zeros, "0" for an empty total."""
        self.assertEqual(percent_used(1, 3), "33.33")
        self.assertEqual(percent_used(2, 3), "66.67")
        self.assertEqual(percent_used(1, 2), "50")
        self.assertEqual(percent_used(1, 8), "12.5")
        self.assertEqual(percent_used(0, 10), "0")
        self.assertEqual(percent_used(5, 0), "0")
        self.assertEqual(percent_used(10, 10), "100")
        self.assertEqual(percent_used(1, 100000), "0")


class CapacityCase(SynchronousTestCase):
    """Two hosts in one cluster, a third in another pod, one 100 GiB pool per cluster."""

    def setUp(self) -> None:
        self.infra = InfraCloud.make(self, start_monitor=False)
        self.cloud = self.infra.cloud
        self.services = self.cloud.api.services
        self.base = os.path.realpath(self.mktemp())
        os.makedirs(self.base)
        self.services.storage = StorageManager(self.services, mount_base=os.path.join(self.base, "mnt"))
        self.zone, self.pod, self.cluster = self.infra.stack()
        self.infra.add_host(self.cluster, "h1", cpus=4, mhz=2000, memory_mib=8192)
        self.infra.add_host(self.cluster, "h2", cpus=2, mhz=3000, memory_mib=4096)
        self.pod2 = self.infra.pod(self.zone, "pod2", startip="10.2.0.1", endip="10.2.0.10", gateway="10.2.0.254")
        self.cluster2 = self.infra.cluster(self.pod2, "cluster2")
        self.infra.add_host(self.cluster2, "h3", cpus=8, mhz=1000, memory_mib=2048)
        self.pool1 = self.pool(self.pod, self.cluster, "p1")
        self.pool2 = self.pool(self.pod2, self.cluster2, "p2")

    def pool(self, pod: dict[str, Any], cluster: dict[str, Any], name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.infra.ok("createStoragePool", zoneid=self.zone["id"], podid=pod["id"],
                                            clusterid=cluster["id"], name=name,
                                            url=os.path.join(self.base, name))["storagepool"]
        return out

    def caps(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.infra.ok("listCapacity", **params).get("capacity", []))

    def by_type(self, **params: Any) -> dict[int, dict[str, Any]]:
        return {c["type"]: c for c in self.caps(**params)}

    def set_used(self, pool: dict[str, Any], used: int) -> None:
        db = self.cloud.db.storage
        p = self.successResultOf(db.get_by_uuid(pool["id"]))
        self.successResultOf(db.set_stats(p.id, p.capacity_bytes, used, p.capacity_bytes - used))


class ListCapacityTests(CapacityCase):
    def test_zone_level(self) -> None:
        """Without filters, one entry per type per zone, sorted by type, with CloudStack's names and
        figures summed from the Up hosts, the pools and the pod ranges."""
        caps = self.caps()
        self.assertEqual([c["type"] for c in caps], list(range(10)))
        self.assertEqual([c["name"] for c in caps], [
            "MEMORY", "CPU", "STORAGE", "STORAGE_ALLOCATED", "VIRTUAL_NETWORK_PUBLIC_IP", "PRIVATE_IP",
            "SECONDARY_STORAGE", "VLAN", "DIRECT_ATTACHED_PUBLIC_IP", "LOCAL_STORAGE"])
        by = {c["type"]: c for c in caps}
        for c in caps:
            self.assertEqual((c["zoneid"], c["zonename"]), (self.zone["id"], self.zone["name"]))
            self.assertNotIn("podid", c)
            self.assertNotIn("clusterid", c)
        self.assertEqual(by[0]["capacitytotal"], (8192 + 4096 + 2048) * MIB)
        self.assertEqual(by[0]["capacityused"], 0)
        self.assertEqual(by[0]["percentused"], "0")
        self.assertEqual(by[1]["capacitytotal"], 4 * 2000 + 2 * 3000 + 8 * 1000)
        self.assertEqual(by[2]["capacitytotal"], 200 * GIB)
        self.assertEqual(by[3]["capacitytotal"], 400 * GIB)
        self.assertEqual(by[5]["capacitytotal"], 191 + 10)
        self.assertEqual(by[6]["capacitytotal"], 0)
        self.assertEqual(by[4]["capacitytotal"], 0)

    def test_overprovisioning_and_use(self) -> None:
        """The overprovisioning factors multiply the totals; a pool's use shows in STORAGE with its
        percentage; a pool in maintenance no longer counts."""
        settings = self.services.settings
        settings.set("cpu.overprovisioning.factor", "2")
        settings.set("mem.overprovisioning.factor", "1.5")
        settings.set("storage.overprovisioning.factor", "1")
        self.set_used(self.pool1, 50 * GIB)
        by = self.by_type()
        self.assertEqual(by[1]["capacitytotal"], 2 * (4 * 2000 + 2 * 3000 + 8 * 1000))
        self.assertEqual(by[0]["capacitytotal"], int((8192 + 4096 + 2048) * MIB * 1.5))
        self.assertEqual(by[2]["capacityused"], 50 * GIB)
        self.assertEqual(by[2]["percentused"], "25")
        self.assertEqual(by[3]["capacitytotal"], 200 * GIB)
        self.assertEqual(self.infra.job("enableStorageMaintenance", id=self.pool2["id"])["jobstatus"], 1)
        self.assertEqual(self.by_type()[2]["capacitytotal"], 100 * GIB)

    def test_factor_through_update_configuration(self) -> None:
        """The overprovisioning factors are decimal settings: updateConfiguration takes 2.5 and refuses a
        value that is no number with 431."""
        r = self.cloud.signed("updateConfiguration", name="cpu.overprovisioning.factor", value="2.5")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.by_type(type=1)[1]["capacitytotal"], int(2.5 * (4 * 2000 + 2 * 3000 + 8 * 1000)))
        r = self.cloud.signed("updateConfiguration", name="cpu.overprovisioning.factor", value="lots")
        self.assertEqual(r.status, 431, r.body)
        self.assertEqual(self.services.settings.float("cpu.overprovisioning.factor"), 2.5)

    def test_pod_and_cluster_levels(self) -> None:
        """podid gives that pod's compute, storage and private IPs; clusterid that cluster's compute and
        storage; zone-only types are not listed for them."""
        pod = self.by_type(podid=self.pod2["id"])
        self.assertEqual(sorted(pod), [0, 1, 2, 3, 5])
        self.assertEqual((pod[0]["podid"], pod[0]["podname"]), (self.pod2["id"], "pod2"))
        self.assertEqual(pod[1]["capacitytotal"], 8000)
        self.assertEqual(pod[5]["capacitytotal"], 10)
        cluster = self.by_type(clusterid=self.cluster["id"])
        self.assertEqual(sorted(cluster), [0, 1, 2, 3])
        self.assertEqual((cluster[1]["clusterid"], cluster[1]["clustername"]), (self.cluster["id"], "cluster1"))
        self.assertEqual(cluster[1]["capacitytotal"], 14000)
        self.assertEqual(cluster[2]["capacitytotal"], 100 * GIB)
        self.assertEqual(self.caps(clusterid=self.cluster["id"], podid=self.pod2["id"]), [])

    def test_filters(self) -> None:
        """type narrows to one type; an unknown type lists nothing; zoneid of another zone lists its own;
        a host tag narrows the hosts counted; paging cuts the list with the full count."""
        self.assertEqual([c["type"] for c in self.caps(type=1)], [1])
        self.assertEqual(self.caps(type=42), [])
        zone2 = self.infra.zone("zone2")
        other = self.caps(zoneid=zone2["id"], type=1)
        self.assertEqual((other[0]["zonename"], other[0]["capacitytotal"]), ("zone2", 0))
        self.assertEqual(len(self.caps()), 20)
        self.infra.ok("updateHost", id=self._host_id("h3"), hosttags="big")
        self.assertEqual(self.caps(type=1, tag="big", zoneid=self.zone["id"])[0]["capacitytotal"], 8000)
        body = self.infra.ok("listCapacity", zoneid=self.zone["id"], page=2, pagesize=4)
        self.assertEqual(body["count"], 10)
        self.assertEqual([c["type"] for c in body["capacity"]], [4, 5, 6, 7])

    def _host_id(self, name: str) -> str:
        hosts = self.infra.ok("listHosts", name=name)["host"]
        return str(hosts[0]["id"])

    def test_sort_by_usage(self) -> None:
        """sortby=usage lists cluster-level compute and storage, pod-level private IPs and zone-level
        others, the most used first; another sortby value is 431."""
        self.set_used(self.pool2, 90 * GIB)
        self.set_used(self.pool1, 10 * GIB)
        caps = self.caps(sortby="usage", type=2)
        self.assertEqual([(c["clustername"], c["percentused"]) for c in caps], [("cluster2", "90"), ("cluster1", "10")])
        r = self.cloud.signed("listCapacity", sortby="name")
        self.assertEqual(r.status, 431)
        self.assertIn("usage", r.inner()["errortext"])

    def test_unknown_ids(self) -> None:
        """An unknown zone, pod or cluster is CloudStack's 431 entity text."""
        for name in ("zoneid", "podid", "clusterid"):
            r = self.cloud.signed("listCapacity", **{name: "9b7e9c3c-3c3c-4c3c-8c3c-3c3c3c3c3c3c"})
            self.assertEqual(r.status, 431, name)

    def test_secondary_storage_from_image_stores(self) -> None:
        """SECONDARY_STORAGE sums the zone's live image stores."""
        zone_id = self.successResultOf(self.cloud.db.infra.get_zone_by_uuid(self.zone["id"])).id
        stores = model.metadata.tables["image_stores"]
        now = int(self.cloud.reactor.seconds())
        base = {"zone_id": zone_id, "provider": "NFS", "protocol": "nfs", "url": "nfs://s/e", "path": "/x",
                "created": now, "removed": None}
        rows = [{**base, "uuid": "a", "name": "s1", "total_size": 100, "used_size": 30},
                {**base, "uuid": "b", "name": "s2", "total_size": 300, "used_size": 10},
                {**base, "uuid": "c", "name": "gone", "total_size": 999, "used_size": 999, "removed": now}]
        self.cloud.db.pool.do_sync(lambda conn: conn.execute(stores.insert(), rows) and None)
        sec = self.by_type(type=6)[6]
        self.assertEqual((sec["capacitytotal"], sec["capacityused"], sec["percentused"]), (400, 40, "10"))


class ThresholdTests(CapacityCase):
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.infra.ok("listAlerts").get("alert", []))

    def test_storage_alert_once_per_crossing(self) -> None:
        """A pool's cluster above pool.storage.capacity.notificationthreshold raises ALERT.STORAGE once; it
        is not raised again while it stays above, and again after it went below and came back."""
        manager = CapacityManager(self.services)
        self.assertEqual(self.successResultOf(d(manager.check())), 0)
        self.set_used(self.pool1, 86 * GIB)
        self.assertEqual(self.successResultOf(d(manager.check())), 1)
        alerts = self.alerts()
        self.assertEqual([(a["type"], a["name"]) for a in alerts], [(2, "ALERT.STORAGE")])
        self.assertEqual(alerts[0]["description"],
                         f"System Alert: Low Available Storage in cluster cluster1 pod pod1 of availability zone "
                         f"{self.zone['name']}")
        self.assertEqual(self.successResultOf(d(manager.check())), 0)
        self.set_used(self.pool1, 10 * GIB)
        self.assertEqual(self.successResultOf(d(manager.check())), 0)
        self.set_used(self.pool1, 99 * GIB)
        self.assertEqual(self.successResultOf(d(manager.check())), 1)
        self.assertEqual(len(self.alerts()), 2)

    def test_threshold_setting_is_read_each_check(self) -> None:
        """Lowering the threshold below the current use raises the alert at the next check."""
        manager = CapacityManager(self.services)
        self.set_used(self.pool1, 50 * GIB)
        self.assertEqual(self.successResultOf(d(manager.check())), 0)
        self.services.settings.set("pool.storage.capacity.notificationthreshold", "0.4")
        self.assertEqual(self.successResultOf(d(manager.check())), 1)

    def test_compute_alerts(self) -> None:
        """Memory and CPU held by VMs (from the allocation source) past the cluster thresholds raise
        ALERT.MEMORY and ALERT.CPU for that cluster only, and listCapacity shows the same use."""
        async def allocated(place: Place) -> Allocated:
            if place.cluster_name == "cluster2":
                return Allocated(memory_used=2000 * MIB, cpu_used=7000)
            return Allocated()

        manager = CapacityManager(self.services, allocated=allocated)
        self.services.capacity = manager
        self.assertEqual(self.successResultOf(d(manager.check())), 2)
        names = sorted((a["name"], a["description"]) for a in self.alerts())
        self.assertEqual([n for n, _ in names], ["ALERT.CPU", "ALERT.MEMORY"])
        self.assertTrue(all("cluster cluster2 pod pod2" in text for _, text in names))
        mem = self.by_type(clusterid=self.cluster2["id"])
        self.assertEqual(mem[0]["capacityused"], 2000 * MIB)

    def test_timer_on_the_fake_clock(self) -> None:
        """Started, the manager checks every capacity.check.period ms (as set when it starts) on the
        injected clock."""
        manager = CapacityManager(self.services)
        self.services.settings.set("capacity.check.period", "30000")
        manager.startService()
        self.addCleanup(manager.stopService)
        self.assertEqual(self.alerts(), [])
        self.set_used(self.pool2, 95 * GIB)
        self.cloud.reactor.advance(29)
        self.assertEqual(self.alerts(), [])
        self.cloud.reactor.advance(1)
        self.assertEqual([a["name"] for a in self.alerts()], ["ALERT.STORAGE"])
        self.cloud.reactor.advance(30)
        self.assertEqual(len(self.alerts()), 1)
