"""Tests for primary storage: createStoragePool / listStoragePools / updateStoragePool /
deleteStoragePool / enableStorageMaintenance / cancelStorageMaintenance on the fake cloud, with real
simulated hosts (libvirt's in-process test driver on an inline thread pool, no daemon), the pool state
machine and its compare-and-set races, recovery of a maintenance job that died, and the periodic
refresh of pool figures on the fake clock.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from cloudd.db.jobs import Job
from cloudd.errors import CloudError
from cloudd.hypervisor import HostConnection, HypervisorError
from cloudd.orchestration.states import InvalidTransition
from cloudd.orchestration.storage import POOL, PoolState, StorageManager, parse_pool_url, recover_pool
from tests.util.infra import InfraCloud

T = TypeVar("T")
GIB = 1024**3


def d(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    return Deferred.fromCoroutine(coro)


class PoolCase(SynchronousTestCase):
    """A zone, pod and cluster with two simulated hosts, and a storage manager mounting NFS under a
    temporary directory."""

    def setUp(self) -> None:
        self.infra = InfraCloud.make(self, start_monitor=False)
        self.cloud = self.infra.cloud
        self.services = self.cloud.api.services
        self.base = os.path.realpath(self.mktemp())
        os.makedirs(self.base)
        self.storage = StorageManager(self.services, mount_base=os.path.join(self.base, "mnt"))
        self.services.storage = self.storage
        self.zone, self.pod, self.cluster = self.infra.stack()
        self.h1 = self.infra.add_host(self.cluster, "h1", cpus=4, mhz=2000, memory_mib=8192)
        self.h2 = self.infra.add_host(self.cluster, "h2", cpus=2, mhz=3000, memory_mib=4096)

    def call(self, command: str, **params: Any) -> Any:
        return self.cloud.signed(command, **params)

    def ok(self, command: str, **params: Any) -> Any:
        return self.infra.ok(command, **params)

    def fails(self, code: int, command: str, **params: Any) -> str:
        r = self.call(command, **params)
        self.assertEqual(r.status, code, r.body)
        body = r.inner()
        self.assertEqual(body["errorcode"], code)
        return str(body["errortext"])

    def create(self, name: str = "primary1", url: str | None = None, **params: Any) -> dict[str, Any]:
        args = {"zoneid": self.zone["id"], "podid": self.pod["id"], "clusterid": self.cluster["id"], "name": name,
                "url": url or os.path.join(self.base, name), **params}
        pool: dict[str, Any] = self.ok("createStoragePool", **args)["storagepool"]
        return pool

    def libvirt_pool(self, host: dict[str, Any], uuid: str) -> Any:
        conn = self.infra.hypervisors.connection(self.host_url(host))
        assert conn is not None
        try:
            return conn._conn.storagePoolLookupByName(uuid)
        except Exception:
            return None

    def host_url(self, host: dict[str, Any]) -> str:
        return os.path.join("test://" + self.infra.nodes, f"{host['name']}.xml")

    def pools(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.ok("listStoragePools", **params).get("storagepool", []))


class CreateTests(PoolCase):
    def test_directory_pool_on_every_host_of_the_cluster(self) -> None:
        """A directory path makes a dir pool named by the pool's UUID, started on both hosts of the
        cluster, with the figures the hosts report and every StoragePoolResponse field."""
        path = os.path.join(self.base, "primary")
        pool = self.create(url=path, tags="ssd,fast")
        self.assertEqual(pool["name"], "primary1")
        self.assertEqual((pool["zoneid"], pool["zonename"]), (self.zone["id"], self.zone["name"]))
        self.assertEqual((pool["podid"], pool["podname"]), (self.pod["id"], self.pod["name"]))
        self.assertEqual((pool["clusterid"], pool["clustername"]), (self.cluster["id"], self.cluster["name"]))
        self.assertEqual(pool["type"], "Filesystem")
        self.assertEqual(pool["ipaddress"], "localhost")
        self.assertEqual(pool["path"], path)
        self.assertEqual(pool["state"], "Up")
        self.assertEqual(pool["scope"], "CLUSTER")
        self.assertEqual(pool["hypervisor"], "Simulator")
        self.assertEqual(pool["provider"], "DefaultPrimary")
        self.assertEqual(pool["tags"], "ssd,fast")
        self.assertEqual(pool["disksizetotal"], 100 * GIB)
        self.assertEqual(pool["disksizeused"], 0)
        self.assertEqual(pool["disksizeallocated"], 0)
        self.assertEqual(pool["overprovisionfactor"], "2.0")
        self.assertEqual(pool["storagecapabilities"], {"VOLUME_SNAPSHOT_QUIESCEVM": "false"})
        self.assertRegex(pool["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")
        self.assertTrue(os.path.isdir(path))
        for host in (self.h1, self.h2):
            lv = self.libvirt_pool(host, pool["id"])
            self.assertIsNotNone(lv, host["name"])
            self.assertTrue(lv.isActive())
        self.assertEqual(self.pools(), [pool])

    def test_url_forms(self) -> None:
        """SharedMountPoint:/// and file:/// name a directory too, with their pool types; nfs:// makes a
        netfs pool of that server and export mounted under the mount base at the pool's UUID."""
        shared = self.create("shared", url="SharedMountPoint://" + os.path.join(self.base, "smp"))
        self.assertEqual((shared["type"], shared["path"]), ("SharedMountPoint", os.path.join(self.base, "smp")))
        plain = self.create("file", url="file://" + os.path.join(self.base, "f"))
        self.assertEqual((plain["type"], plain["path"]), ("Filesystem", os.path.join(self.base, "f")))
        nfs = self.create("nfs", url="nfs://nfs.example.com/exports/primary")
        self.assertEqual(nfs["type"], "NetworkFilesystem")
        self.assertEqual((nfs["ipaddress"], nfs["path"]), ("nfs.example.com", "/exports/primary"))
        xml = self.libvirt_pool(self.h1, nfs["id"]).XMLDesc(0)
        self.assertIn("nfs.example.com", xml)
        self.assertIn(os.path.join(self.base, "mnt", nfs["id"]), xml)

    def test_zone_wide_pool_spans_clusters(self) -> None:
        """scope=zone needs a hypervisor and reaches the hosts of that hypervisor in every cluster."""
        other = self.infra.cluster(self.pod, "cluster2")
        h3 = self.infra.add_host(other, "h3")
        pool = self.create("zonewide", scope="zone", hypervisor="simulator")
        self.assertEqual(pool["scope"], "ZONE")
        self.assertEqual(pool["hypervisor"], "Simulator")
        self.assertNotIn("clusterid", pool)
        self.assertNotIn("podid", pool)
        for host in (self.h1, self.h2, h3):
            self.assertIsNotNone(self.libvirt_pool(host, pool["id"]), host["name"])

    def test_bad_input(self) -> None:
        """Each refused request answers CloudStack's code and stores nothing."""
        zone, pod, cluster = self.zone["id"], self.pod["id"], self.cluster["id"]
        good = {"zoneid": zone, "podid": pod, "clusterid": cluster, "name": "p", "url": os.path.join(self.base, "p")}
        self.assertIn("missing parameter url",
                      self.fails(431, "createStoragePool", **{k: v for k, v in good.items() if k != "url"}))
        self.assertIn("Unsupported", self.fails(431, "createStoragePool", **{**good, "url": ""}))
        self.fails(431, "createStoragePool", **{**good, "zoneid": "9b7e9c3c-3c3c-4c3c-8c3c-3c3c3c3c3c3c"})
        self.assertIn("Unsupported storage pool URL",
                      self.fails(431, "createStoragePool", **{**good, "url": "rbd://mon/pool"}))
        self.assertIn("absolute", self.fails(431, "createStoragePool", **{**good, "url": "file://localhost"}))
        self.assertIn("names no export", self.fails(431, "createStoragePool", **{**good, "url": "nfs://srv/"}))
        self.assertIn("invalid scope", self.fails(431, "createStoragePool", **{**good, "scope": "region"}))
        self.assertIn("Cluster id and pod id",
                      self.fails(431, "createStoragePool", **{**good, "clusterid": ""}))
        self.assertIn("hypervisor type", self.fails(431, "createStoragePool", **{**good, "scope": "zone"}))
        self.assertIn("not supported for hypervisor",
                      self.fails(431, "createStoragePool", **{**good, "scope": "zone", "hypervisor": "VMware"}))
        self.assertIn("provider", self.fails(431, "createStoragePool", **{**good, "provider": "SolidFire"}))
        self.assertIn("managed", self.fails(431, "createStoragePool", **{**good, "managed": "true"}))
        self.assertIn("capacitybytes", self.fails(431, "createStoragePool", **{**good, "capacitybytes": "0"}))
        self.fails(431, "createStoragePool", **{**good, "capacitybytes": "many"})
        zone2 = self.infra.zone("zone2")
        self.assertIn("does not belong", self.fails(431, "createStoragePool", **{**good, "zoneid": zone2["id"]}))
        self.assertEqual(self.pools(), [])

    def test_same_storage_twice_is_in_use(self) -> None:
        """A second pool on the same server and path of the zone is refused with 536."""
        first = self.create("one", url=os.path.join(self.base, "same"))
        text = self.fails(536, "createStoragePool", zoneid=self.zone["id"], podid=self.pod["id"],
                          clusterid=self.cluster["id"], name="two", url="file://" + os.path.join(self.base, "same"))
        self.assertIn(first["id"], text)
        self.assertEqual(len(self.pools()), 1)

    def test_no_host_up(self) -> None:
        """A cluster without an Up and Enabled host cannot take a pool: 530, nothing stored."""
        empty = self.infra.cluster(self.pod, "empty")
        text = self.fails(530, "createStoragePool", zoneid=self.zone["id"], podid=self.pod["id"],
                          clusterid=empty["id"], name="p", url=os.path.join(self.base, "p"))
        self.assertIn("No host up", text)
        self.assertEqual(self.pools(), [])

    def test_every_host_failing_stores_nothing(self) -> None:
        """When no host can define the pool, the answer is 530 with the hosts' reasons and nothing is
        stored or left defined."""
        blocker = os.path.join(self.base, "file")
        with open(blocker, "w") as f:
            f.write("x")
        text = self.fails(530, "createStoragePool", zoneid=self.zone["id"], podid=self.pod["id"],
                          clusterid=self.cluster["id"], name="p", url=os.path.join(blocker, "sub"))
        self.assertIn("Failed to add storage pool p", text)
        self.assertIn("h1:", text)
        self.assertIn("h2:", text)
        self.assertEqual(self.pools(), [])
        conn = self.infra.hypervisors.connection(self.host_url(self.h1))
        assert conn is not None
        self.assertEqual([p.name() for p in conn._conn.listAllStoragePools()], ["default"])

    def test_one_host_failing_leaves_the_pool_on_the_others(self) -> None:
        """A host that cannot be reached does not stop the pool: it is stored with the hosts that have it."""
        h3 = self.infra.add_host(self.cluster, "h3")
        conn = self.infra.hypervisors.connection(self.host_url(h3))
        assert conn is not None
        self.successResultOf(d(conn.close()))
        os.unlink(os.path.join(self.infra.nodes, "h3.xml"))
        pool = self.create()
        hosts = self.successResultOf(self.cloud.db.storage.pool_hosts(
            self.successResultOf(self.cloud.db.storage.get_by_uuid(pool["id"])).id))
        self.assertEqual(sorted(h.host_name for h in hosts), ["h1", "h2"])


class JoiningHostTests(PoolCase):
    def test_a_joining_host_gets_the_pools_of_its_cluster_and_zone(self) -> None:
        """connect_host defines on a new host the pools of its cluster and the zone-wide pools of its
        hypervisor, and records it among each pool's hosts; pools of other clusters are left alone."""
        mine = self.create("mine")
        zonewide = self.create("zonewide", scope="zone", hypervisor="Simulator")
        other = self.infra.cluster(self.pod, "cluster2")
        self.infra.add_host(other, "h9")
        theirs = self.create("theirs", clusterid=other["id"])
        h3 = self.infra.add_host(self.cluster, "h3")
        host_id = self.successResultOf(self.cloud.db.infra.get_host_by_uuid(h3["id"])).id
        self.assertEqual(self.successResultOf(d(self.storage.connect_host(host_id))), 2)
        self.assertIsNotNone(self.libvirt_pool(h3, mine["id"]))
        self.assertIsNotNone(self.libvirt_pool(h3, zonewide["id"]))
        self.assertIsNone(self.libvirt_pool(h3, theirs["id"]))
        db = self.cloud.db.storage
        refs = self.successResultOf(db.pool_hosts(self.successResultOf(db.get_by_uuid(mine["id"])).id))
        self.assertEqual(sorted(r.host_name for r in refs), ["h1", "h2", "h3"])
        self.assertEqual(self.successResultOf(d(self.storage.connect_host(host_id))), 2)
        zone_id = self.successResultOf(self.cloud.db.infra.get_zone_by_uuid(self.zone["id"])).id
        self.assertEqual(self.successResultOf(db.count_live_pools(zone_id=zone_id)), 3)


class ListTests(PoolCase):
    def setUp(self) -> None:
        super().setUp()
        self.a = self.create("alpha", url=os.path.join(self.base, "a"))
        self.b = self.create("beta", url="nfs://10.0.0.5/export/b")
        self.c = self.create("gamma", scope="zone", hypervisor="Simulator", url=os.path.join(self.base, "c"))

    def names(self, **params: Any) -> list[str]:
        return [p["name"] for p in self.pools(**params)]

    def test_filters(self) -> None:
        """Each filter of listStoragePools narrows the list."""
        self.assertEqual(self.names(), ["alpha", "beta", "gamma"])
        self.assertEqual(self.names(id=self.b["id"]), ["beta"])
        self.assertEqual(self.names(name="gamma"), ["gamma"])
        self.assertEqual(self.names(zoneid=self.zone["id"]), ["alpha", "beta", "gamma"])
        self.assertEqual(self.names(podid=self.pod["id"]), ["alpha", "beta"])
        self.assertEqual(self.names(clusterid=self.cluster["id"]), ["alpha", "beta"])
        self.assertEqual(self.names(ipaddress="10.0.0.5"), ["beta"])
        self.assertEqual(self.names(path=os.path.join(self.base, "c")), ["gamma"])
        self.assertEqual(self.names(scope="zone"), ["gamma"])
        self.assertEqual(self.names(scope="CLUSTER"), ["alpha", "beta"])
        self.assertEqual(self.names(status="up"), ["alpha", "beta", "gamma"])
        self.assertEqual(self.names(status="Maintenance"), [])
        self.assertEqual(self.names(keyword="amm"), ["gamma"])

    def test_paging_and_count(self) -> None:
        """count is the total; page and pagesize cut the list."""
        body = self.ok("listStoragePools", page=2, pagesize=2)
        self.assertEqual(body["count"], 3)
        self.assertEqual([p["name"] for p in body["storagepool"]], ["gamma"])

    def test_bad_input(self) -> None:
        """An unknown pool id is CloudStack's 431 entity text; an unknown scope is 431."""
        text = self.fails(431, "listStoragePools", id="9b7e9c3c-3c3c-4c3c-8c3c-3c3c3c3c3c3c")
        self.assertIn("Invalid parameter id value=9b7e9c3c", text)
        self.fails(431, "listStoragePools", id="not-a-uuid")
        self.fails(431, "listStoragePools", scope="planet")

    def test_refresh_updates_the_figures(self) -> None:
        """The figures a host reports after a volume is written are stored by a refresh, and the refresh
        runs every storage.stats.interval on the fake clock once the manager is started."""
        lv = self.libvirt_pool(self.h1, self.a["id"])
        lv.createXML("<volume><name>v1</name><capacity unit='G'>3</capacity>"
                     "<allocation unit='G'>3</allocation></volume>", 0)
        self.assertEqual(self.pools(id=self.a["id"])[0]["disksizeused"], 0)
        self.storage.startService()
        self.addCleanup(self.storage.stopService)
        used = self.pools(id=self.a["id"])[0]["disksizeused"]
        self.assertEqual(used, 3 * GIB)
        lv.createXML("<volume><name>v2</name><capacity unit='G'>2</capacity>"
                     "<allocation unit='G'>2</allocation></volume>", 0)
        self.cloud.reactor.advance(59)
        self.assertEqual(self.pools(id=self.a["id"])[0]["disksizeused"], 3 * GIB)
        self.cloud.reactor.advance(1)
        self.assertEqual(self.pools(id=self.a["id"])[0]["disksizeused"], 5 * GIB)

    def test_refresh_defines_lost_and_missing_pools(self) -> None:
        """A host that lost a pool (a restarted simulated host) gets it defined again by the refresh, and so
        does a host of the cluster that has no record of it; a pool in maintenance is not put back."""
        self.libvirt_pool(self.h1, self.a["id"]).destroy()
        self.libvirt_pool(self.h1, self.a["id"]).undefine()
        h3 = self.infra.add_host(self.cluster, "h3")
        for pool in (self.a, self.c):
            self.libvirt_pool(h3, pool["id"]).destroy()
            self.libvirt_pool(h3, pool["id"]).undefine()
        self.assertIsNone(self.libvirt_pool(h3, self.a["id"]))
        self.successResultOf(d(self.storage.refresh()))
        self.assertTrue(self.libvirt_pool(self.h1, self.a["id"]).isActive())
        self.assertTrue(self.libvirt_pool(h3, self.a["id"]).isActive())
        self.assertTrue(self.libvirt_pool(h3, self.c["id"]).isActive())
        self.assertEqual(self.infra.job("enableStorageMaintenance", id=self.b["id"])["jobstatus"], 1)
        self.successResultOf(d(self.storage.refresh()))
        self.assertIsNone(self.libvirt_pool(self.h1, self.b["id"]))

    def test_fetch_latest_capacity_refreshes(self) -> None:
        """listCapacity fetchlatest=true reads the pools from their hosts before summing them."""
        lv = self.libvirt_pool(self.h1, self.a["id"])
        lv.createXML("<volume><name>v1</name><capacity unit='G'>4</capacity>"
                     "<allocation unit='G'>4</allocation></volume>", 0)
        before = self.ok("listCapacity", type=2, zoneid=self.zone["id"])["capacity"][0]
        self.assertEqual(before["capacityused"], 0)
        after = self.ok("listCapacity", type=2, zoneid=self.zone["id"], fetchlatest="true")["capacity"][0]
        self.assertEqual(after["capacityused"], 4 * GIB)


class UpdateDeleteTests(PoolCase):
    def setUp(self) -> None:
        super().setUp()
        self.pool = self.create()

    def test_update_fields(self) -> None:
        """name, tags (a list), capacitybytes and capacityiops change what listStoragePools shows."""
        out = self.ok("updateStoragePool", id=self.pool["id"], name="renamed", tags="a, b,a",
                      capacitybytes=10 * GIB, capacityiops=5000)["storagepool"]
        self.assertEqual(out["name"], "renamed")
        self.assertEqual(out["tags"], "a,b")
        self.assertEqual(out["disksizetotal"], 10 * GIB)
        self.assertEqual(out["capacityiops"], 5000)
        self.assertEqual(self.pools()[0], out)
        cleared = self.ok("updateStoragePool", id=self.pool["id"], tags="")["storagepool"]
        self.assertEqual(cleared.get("tags"), "a,b", "an empty value is no value, as the binder reads it")

    def test_enable_disable(self) -> None:
        """enabled=false disables an Up pool and enabled=true brings it back; the wrong way is 431, and a
        disabled pool cannot enter maintenance (as CloudStack: only Up or ErrorInMaintenance may)."""
        self.assertEqual(self.ok("updateStoragePool", id=self.pool["id"], enabled="false")["storagepool"]["state"],
                         "Disabled")
        self.assertIn("cannot be disabled", self.fails(431, "updateStoragePool", id=self.pool["id"], enabled="false"))
        self.assertIn("not ready for migration", self.fails(431, "enableStorageMaintenance", id=self.pool["id"]))
        self.assertEqual(self.ok("updateStoragePool", id=self.pool["id"], enabled="true")["storagepool"]["state"], "Up")
        self.assertIn("cannot be enabled", self.fails(431, "updateStoragePool", id=self.pool["id"], enabled="true"))

    def test_update_bad_input(self) -> None:
        """An empty name, a non-positive size, an unknown id: 431 and nothing changed."""
        self.fails(431, "updateStoragePool", id=self.pool["id"], name=" ")
        self.fails(431, "updateStoragePool", id=self.pool["id"], capacitybytes=-1)
        self.fails(431, "updateStoragePool", id="9b7e9c3c-3c3c-4c3c-8c3c-3c3c3c3c3c3c", name="x")
        self.assertEqual(self.pools()[0], self.pool)

    def test_delete_needs_maintenance(self) -> None:
        """An Up pool cannot be deleted; one in maintenance is, and is gone from the list and the hosts."""
        self.assertIn("not in Maintenance state", self.fails(431, "deleteStoragePool", id=self.pool["id"]))
        self.assertEqual(self.infra.job("enableStorageMaintenance", id=self.pool["id"])["jobstatus"], 1)
        self.assertEqual(self.ok("deleteStoragePool", id=self.pool["id"]), {"success": True})
        self.assertEqual(self.pools(), [])
        self.assertIsNone(self.libvirt_pool(self.h1, self.pool["id"]))
        self.fails(431, "deleteStoragePool", id=self.pool["id"])
        again = self.create(url=self.pool["path"])
        self.assertNotEqual(again["id"], self.pool["id"])


class MaintenanceTests(PoolCase):
    def setUp(self) -> None:
        super().setUp()
        self.pool = self.create()

    def test_maintenance_round_trip(self) -> None:
        """enableStorageMaintenance takes the pool off every host and answers it in Maintenance;
        cancelStorageMaintenance defines it again and answers it Up; each records its event."""
        res = self.infra.job("enableStorageMaintenance", id=self.pool["id"])
        self.assertEqual(res["jobstatus"], 1, res)
        self.assertEqual(res["jobresult"]["storagepool"]["state"], "Maintenance")
        self.assertEqual(res["jobinstancetype"], "StoragePool")
        for host in (self.h1, self.h2):
            self.assertIsNone(self.libvirt_pool(host, self.pool["id"]))
        self.assertIn("is not ready for migration",
                      self.fails(431, "enableStorageMaintenance", id=self.pool["id"]))
        res = self.infra.job("cancelStorageMaintenance", id=self.pool["id"])
        self.assertEqual(res["jobstatus"], 1, res)
        self.assertEqual(res["jobresult"]["storagepool"]["state"], "Up")
        for host in (self.h1, self.h2):
            self.assertTrue(self.libvirt_pool(host, self.pool["id"]).isActive())
        self.fails(431, "cancelStorageMaintenance", id=self.pool["id"])
        events = self.ok("listEvents", listall="true").get("event", [])
        types = {e["type"] for e in events if e["state"] == "Completed"}
        self.assertTrue({"STORAGE.POOL.CREATE", "MAINT.PREPARE.PS", "MAINT.CANCEL.PS"} <= types, types)

    def test_a_host_that_keeps_the_pool_fails_maintenance(self) -> None:
        """When a host cannot let go of the pool, the job fails with 530 naming it and the pool is left
        ErrorInMaintenance, from which maintenance can be tried again."""
        def refuse(conn: HostConnection, name: str) -> Any:
            async def fail() -> None:
                raise HypervisorError("pool is busy")
            return fail()

        original = HostConnection.delete_pool
        self.patch(HostConnection, "delete_pool", refuse)
        res = self.infra.job("enableStorageMaintenance", id=self.pool["id"])
        self.assertEqual(res["jobstatus"], 2)
        self.assertEqual(res["jobresult"]["errorcode"], 530)
        self.assertIn("pool is busy", res["jobresult"]["errortext"])
        self.assertEqual(self.pools()[0]["state"], "ErrorInMaintenance")
        self.patch(HostConnection, "delete_pool", original)
        res = self.infra.job("enableStorageMaintenance", id=self.pool["id"])
        self.assertEqual(res["jobstatus"], 1, res)
        self.assertEqual(res["jobresult"]["storagepool"]["state"], "Maintenance")

    def test_two_cas_writers_one_wins(self) -> None:
        """Two writers that both read the pool Up race to move it: exactly one wins, the other gets 530
        (a concurrent operation) and the stored state is the winner's."""
        db = self.cloud.db.storage
        stale = self.successResultOf(db.get_by_uuid(self.pool["id"]))
        self.successResultOf(d(self.storage.begin_maintenance(stale)))
        failure = self.failureResultOf(d(self.storage.update_pool(stale, enabled=False)), CloudError)
        self.assertEqual(failure.value.code, 530)
        self.assertEqual(self.successResultOf(db.get(stale.id)).state, "PrepareForMaintenance")
        failure = self.failureResultOf(d(self.storage.begin_maintenance(stale)), CloudError)
        self.assertEqual(failure.value.code, 530)

    def test_racing_api_commands(self) -> None:
        """Two maintenance commands on one pool: the first takes it, the second is refused with a clear
        error; a disable racing a finished maintenance is refused too."""
        first = self.infra.job("enableStorageMaintenance", id=self.pool["id"])
        self.assertEqual(first["jobstatus"], 1)
        self.fails(431, "enableStorageMaintenance", id=self.pool["id"])
        self.assertIn("cannot be disabled", self.fails(431, "updateStoragePool", id=self.pool["id"], enabled="false"))

    def test_recovery_of_a_dead_job(self) -> None:
        """A maintenance job that died mid-way leaves the pool in a state recovery turns into one an
        operator can act from: PrepareForMaintenance -> ErrorInMaintenance, CancelMaintenance -> Maintenance."""
        db = self.cloud.db.storage
        pool = self.successResultOf(db.get_by_uuid(self.pool["id"]))
        job = cast(Job, SimpleNamespace(instance_uuid=pool.uuid, instance_type="StoragePool"))
        self.successResultOf(d(self.storage.begin_maintenance(pool)))
        self.successResultOf(d(recover_pool(self.services, job)))
        self.assertEqual(self.successResultOf(db.get(pool.id)).state, "ErrorInMaintenance")
        self.successResultOf(d(self.storage.begin_cancel(self.successResultOf(db.get(pool.id)))))
        self.successResultOf(d(recover_pool(self.services, job)))
        self.assertEqual(self.successResultOf(db.get(pool.id)).state, "Maintenance")
        unknown = cast(Job, SimpleNamespace(instance_uuid="gone", instance_type="StoragePool"))
        self.successResultOf(d(recover_pool(self.services, unknown)))


class StateMachineTests(SynchronousTestCase):
    ALLOWED = {
        ("Up", "disable"): "Disabled", ("Disabled", "enable"): "Up",
        ("Up", "maintain"): "PrepareForMaintenance",
        ("ErrorInMaintenance", "maintain"): "PrepareForMaintenance",
        ("PrepareForMaintenance", "maintained"): "Maintenance",
        ("PrepareForMaintenance", "fail"): "ErrorInMaintenance",
        ("Maintenance", "cancel"): "CancelMaintenance", ("ErrorInMaintenance", "cancel"): "CancelMaintenance",
        ("CancelMaintenance", "up"): "Up", ("CancelMaintenance", "cancel_failed"): "Maintenance",
        ("Maintenance", "remove"): "Removed",
    }

    def test_every_transition(self) -> None:
        """Exactly the listed transitions are allowed; every other (state, event) is InvalidTransition."""
        for state in PoolState:
            for event in POOL.events():
                key = (state.value, event)
                if key in self.ALLOWED:
                    self.assertEqual(POOL.next(state, event).value, self.ALLOWED[key], key)
                else:
                    self.assertRaises(InvalidTransition, POOL.next, state, event)

    def test_url_parsing(self) -> None:
        """URLs map to pool types and libvirt kinds; paths are normalised."""
        loc = parse_pool_url("nfs://srv.example:2049/exports//p/")
        self.assertEqual((loc.pool_type, loc.kind, loc.host_address, loc.path),
                         ("NetworkFilesystem", "netfs", "srv.example", "/exports/p"))
        loc = parse_pool_url("SharedMountPoint:///srv/a/../b")
        self.assertEqual((loc.pool_type, loc.kind, loc.path), ("SharedMountPoint", "dir", "/srv/b"))
        self.assertEqual(parse_pool_url(" /var/pool ").path, "/var/pool")
        for bad in ("nfs:///x", "ftp://h/x", "file://otherhost/x", "relative/path"):
            self.assertRaises(CloudError, parse_pool_url, bad)
