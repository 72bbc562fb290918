"""Pod and cluster commands on the in-process cloud: create/add, list (filters, paging), update and
delete (refused with 536 while something lives inside), bad input and roles."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.cloudd.test_zones import UNKNOWN, bad_uuid_text
from tests.util.infra import InfraCloud
from tests.util.tenants import Tenants


class InfraCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.infra = InfraCloud.make(self, start_monitor=False)
        self.zone = self.infra.zone()

    def error(self, command: str, status: int, **params: Any) -> str:
        r = self.infra.call(command, **params)
        self.assertEqual(r.status, status, r.body)
        text: str = r.inner()["errortext"]
        return text

    def listed(self, command: str, obj: str, **params: Any) -> list[str]:
        return [o["name"] for o in self.infra.ok(command, **params).get(obj, [])]


class PodTests(InfraCase):
    def test_create_fields(self) -> None:
        """createPod answers the pod with CloudStack's fields; it is Enabled unless told otherwise."""
        pod = self.infra.pod(self.zone, "p1")
        self.assertEqual(pod["name"], "p1")
        self.assertEqual((pod["zoneid"], pod["zonename"]), (self.zone["id"], self.zone["name"]))
        self.assertEqual((pod["gateway"], pod["netmask"], pod["startip"], pod["endip"]),
                         ("10.1.0.1", "255.255.255.0", "10.1.0.10", "10.1.0.200"))
        self.assertEqual(pod["allocationstate"], "Enabled")
        off = self.infra.pod(self.zone, "p2", allocationstate="Disabled")
        self.assertEqual(off["allocationstate"], "Disabled")

    def test_create_bad_input(self) -> None:
        """Missing name or zone, an unknown zone, bad addresses, a range outside the gateway's network, a
        reversed range and a duplicate name are each 431; nothing is stored."""
        self.assertEqual(self.error("createPod", 431, zoneid=self.zone["id"]),
                         "Unable to execute API command createpod due to missing parameter name")
        self.assertEqual(self.error("createPod", 431, name="x", zoneid=UNKNOWN),
                         bad_uuid_text("createPod", "zoneid", UNKNOWN))
        base = {"name": "x", "zoneid": self.zone["id"], "gateway": "10.1.0.1", "netmask": "255.255.255.0"}
        for bad in ({"gateway": "10.1.0.300"}, {"netmask": "255.0.255.0"}, {"startip": "10.2.0.5"},
                    {"startip": "10.1.0.50", "endip": "10.1.0.20"}, {"allocationstate": "On"}, {"name": " "}):
            self.error("createPod", 431, **{**base, **bad})
        self.assertEqual(self.listed("listPods", "pod"), [])
        self.infra.pod(self.zone, "same")
        self.assertIn("already exists", self.error("createPod", 431, name="same", zoneid=self.zone["id"]))

    def test_list_filters_and_paging(self) -> None:
        """listPods narrows by id, name, zone, allocation state and keyword, and pages."""
        other = self.infra.zone("zone2")
        a = self.infra.pod(self.zone, "pa")
        self.infra.pod(self.zone, "pb", allocationstate="Disabled")
        self.infra.pod(other, "pc")
        self.assertEqual(self.listed("listPods", "pod"), ["pa", "pb", "pc"])
        self.assertEqual(self.listed("listPods", "pod", id=a["id"]), ["pa"])
        self.assertEqual(self.listed("listPods", "pod", zoneid=other["id"]), ["pc"])
        self.assertEqual(self.listed("listPods", "pod", name="pb"), ["pb"])
        self.assertEqual(self.listed("listPods", "pod", allocationstate="disabled"), ["pb"])
        self.assertEqual(self.listed("listPods", "pod", keyword="c"), ["pc"])
        page = self.infra.ok("listPods", page=1, pagesize=2)
        self.assertEqual((page["count"], [p["name"] for p in page["pod"]]), (3, ["pa", "pb"]))
        self.assertEqual(self.error("listPods", 431, id=UNKNOWN), bad_uuid_text("listPods", "id", UNKNOWN))

    def test_update(self) -> None:
        """updatePod changes the name, range and allocation state; a range outside its network is 431."""
        pod = self.infra.pod(self.zone, "old")
        updated = self.infra.ok("updatePod", id=pod["id"], name="new", endip="10.1.0.100",
                                allocationstate="Disabled")["pod"]
        self.assertEqual((updated["name"], updated["endip"], updated["allocationstate"]),
                         ("new", "10.1.0.100", "Disabled"))
        self.error("updatePod", 431, id=pod["id"], startip="192.168.0.1")
        self.assertEqual(self.infra.ok("listPods", id=pod["id"])["pod"][0], updated)

    def test_delete_refused_while_clusters(self) -> None:
        """deletePod is 536 while a cluster lives in it, and succeeds once the cluster is gone."""
        pod = self.infra.pod(self.zone)
        cluster = self.infra.cluster(pod)
        self.assertIn("not deletable", self.error("deletePod", 536, id=pod["id"]))
        self.infra.ok("deleteCluster", id=cluster["id"])
        self.assertIs(self.infra.ok("deletePod", id=pod["id"])["success"], True)
        self.assertEqual(self.listed("listPods", "pod"), [])

    def test_roles(self) -> None:
        """A plain user and a domain admin may neither list nor change pods (CloudStack's 432)."""
        tenants = Tenants(self.infra.cloud)
        pod = self.infra.pod(self.zone)
        for party in ("a_user", "a_admin"):
            for command, params in (("listPods", {}), ("createPod", {"name": "x", "zoneid": self.zone["id"]}),
                                    ("deletePod", {"id": pod["id"]})):
                r = tenants.call(party, command, **params)
                self.assertEqual(r.status, 432, (party, command, r.body))
        self.assertEqual(self.listed("listPods", "pod"), ["pod1"])


class ClusterTests(InfraCase):
    def setUp(self) -> None:
        super().setUp()
        self.pod = self.infra.pod(self.zone)

    def test_add_fields(self) -> None:
        """addCluster answers a one-element list under `cluster` with CloudStack's fields."""
        body = self.infra.ok("addCluster", clustername="c1", zoneid=self.zone["id"], podid=self.pod["id"],
                             hypervisor="kvm", clustertype="CloudManaged")
        self.assertEqual(body["count"], 1)
        cluster = body["cluster"][0]
        self.assertEqual(cluster["name"], "c1")
        self.assertEqual((cluster["podid"], cluster["podname"]), (self.pod["id"], "pod1"))
        self.assertEqual((cluster["zoneid"], cluster["zonename"]), (self.zone["id"], "zone1"))
        self.assertEqual((cluster["hypervisortype"], cluster["clustertype"]), ("KVM", "CloudManaged"))
        self.assertEqual((cluster["allocationstate"], cluster["managedstate"]), ("Enabled", "Managed"))

    def test_add_bad_input(self) -> None:
        """An unknown hypervisor or cluster type, a pod of another zone, unknown ids and a duplicate name
        are 431."""
        base = {"clustername": "c", "zoneid": self.zone["id"], "podid": self.pod["id"], "hypervisor": "KVM",
                "clustertype": "CloudManaged"}
        self.assertIn("hypervisor", self.error("addCluster", 431, **{**base, "hypervisor": "XenServer"}))
        self.error("addCluster", 431, **{**base, "clustertype": "ExternalManaged"})
        other = self.infra.zone("zone2")
        self.assertIn("does not belong", self.error("addCluster", 431, **{**base, "zoneid": other["id"]}))
        self.assertEqual(self.error("addCluster", 431, **{**base, "podid": UNKNOWN}),
                         bad_uuid_text("addCluster", "podid", UNKNOWN))
        self.assertEqual(self.error("addCluster", 431, **{k: v for k, v in base.items() if k != "hypervisor"}),
                         "Unable to execute API command addcluster due to missing parameter hypervisor")
        self.assertEqual(self.listed("listClusters", "cluster"), [])
        self.infra.ok("addCluster", **base)
        self.assertIn("already exists", self.error("addCluster", 431, **base))

    def test_list_filters(self) -> None:
        """listClusters narrows by id, name, pod, zone, hypervisor, allocation state and keyword."""
        pod2 = self.infra.pod(self.zone, "pod2")
        a = self.infra.cluster(self.pod, "ca", hypervisor="KVM")
        self.infra.cluster(self.pod, "cb", allocationstate="Disabled")
        self.infra.cluster(pod2, "cc")
        self.assertEqual(self.listed("listClusters", "cluster"), ["ca", "cb", "cc"])
        self.assertEqual(self.listed("listClusters", "cluster", id=a["id"]), ["ca"])
        self.assertEqual(self.listed("listClusters", "cluster", podid=pod2["id"]), ["cc"])
        self.assertEqual(self.listed("listClusters", "cluster", zoneid=self.zone["id"]), ["ca", "cb", "cc"])
        self.assertEqual(self.listed("listClusters", "cluster", hypervisor="kvm"), ["ca"])
        self.assertEqual(self.listed("listClusters", "cluster", allocationstate="Disabled"), ["cb"])
        self.assertEqual(self.listed("listClusters", "cluster", name="cc"), ["cc"])
        self.assertEqual(self.listed("listClusters", "cluster", keyword="b"), ["cb"])
        page = self.infra.ok("listClusters", page=2, pagesize=2)
        self.assertEqual((page["count"], [c["name"] for c in page["cluster"]]), (3, ["cc"]))

    def test_update(self) -> None:
        """updateCluster changes the allocation and managed states and the name; a hypervisor change is 431."""
        cluster = self.infra.cluster(self.pod)
        updated = self.infra.ok("updateCluster", id=cluster["id"], allocationstate="Disabled",
                                managedstate="Unmanaged", clustername="renamed")["cluster"]
        self.assertEqual((updated["allocationstate"], updated["managedstate"], updated["name"]),
                         ("Disabled", "Unmanaged", "renamed"))
        self.error("updateCluster", 431, id=cluster["id"], hypervisor="KVM")
        self.error("updateCluster", 431, id=cluster["id"], managedstate="Sideways")
        self.assertEqual(self.infra.ok("listClusters", id=cluster["id"])["cluster"][0], updated)

    def test_delete_refused_while_hosts(self) -> None:
        """deleteCluster is 536 while a host lives in it, and succeeds once the host is deleted."""
        cluster = self.infra.cluster(self.pod)
        host = self.infra.add_host(cluster)
        self.assertIn("not deletable", self.error("deleteCluster", 536, id=cluster["id"]))
        self.infra.ok("deleteHost", id=host["id"], forced="true")
        self.assertIs(self.infra.ok("deleteCluster", id=cluster["id"])["success"], True)
        self.assertEqual(self.listed("listClusters", "cluster"), [])

    def test_roles(self) -> None:
        """Clusters are not listed to, nor changed by, plain users (432)."""
        tenants = Tenants(self.infra.cloud)
        cluster = self.infra.cluster(self.pod)
        for command, params in (("listClusters", {}), ("deleteCluster", {"id": cluster["id"]}),
                                ("updateCluster", {"id": cluster["id"], "allocationstate": "Disabled"})):
            r = tenants.call("a_user", command, **params)
            self.assertEqual(r.status, 432, (command, r.body))
        self.assertEqual(self.infra.ok("listClusters")["cluster"][0]["allocationstate"], "Enabled")


class PrimaryStorageTests(InfraCase):
    """Zones, pods and clusters holding primary storage, and hosts joining a cluster that has some."""

    def setUp(self) -> None:
        super().setUp()
        from cloudd.orchestration.storage import StorageManager

        base = os.path.realpath(self.mktemp())
        os.makedirs(base)
        services = self.infra.cloud.api.services
        services.storage = StorageManager(services, mount_base=os.path.join(base, "mnt"))
        self.pod = self.infra.pod(self.zone)
        self.cluster = self.infra.cluster(self.pod)
        self.host = self.infra.add_host(self.cluster, "first")
        self.pool = self.infra.ok("createStoragePool", zoneid=self.zone["id"], podid=self.pod["id"],
                                  clusterid=self.cluster["id"], name="primary",
                                  url=os.path.join(base, "primary"))["storagepool"]

    def test_deletes_refused_while_a_pool_lives_inside(self) -> None:
        """With its hosts gone, a cluster holding a pool is still not deletable (536), nor its pod or zone."""
        self.infra.ok("deleteHost", id=self.host["id"], forced="true")
        self.assertIn("primary storage", self.error("deleteCluster", 536, id=self.cluster["id"]))
        self.assertEqual(self.listed("listClusters", "cluster"), ["cluster1"])
        self.assertIn("not deletable", self.error("deletePod", 536, id=self.pod["id"]))
        self.assertIn("not deletable", self.error("deleteZone", 536, id=self.zone["id"]))

    def test_joining_host_gets_the_pool(self) -> None:
        """A host added to the cluster afterwards has the cluster's pool defined in its libvirt."""
        self.infra.add_host(self.cluster, "second")
        url = "test://" + os.path.join(self.infra.nodes, "second.xml")
        conn = self.infra.hypervisors.connection(url)
        assert conn is not None
        names = conn._conn.listStoragePools() + conn._conn.listDefinedStoragePools()
        self.assertIn(self.pool["id"], names)
