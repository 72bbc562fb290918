"""Tests for listHypervisors and listHypervisorCapabilities: the supported hypervisors, those of a
zone's clusters, the capability fields, filters and who may list them.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.tenants import Tenants


def ok(r: Response) -> Any:
    assert r.status == 200, r.body
    return r.inner()


def add_zone_with_clusters(cloud: Cloud, name: str, hypervisors: list[str]) -> str:
    """A zone with a pod and one cluster per hypervisor, as the infrastructure commands store them."""
    zone_uuid = str(uuid.uuid4())

    def thd(conn: Any) -> None:
        now = int(cloud.reactor.seconds())
        zone = conn.execute(model.zones.insert().values(
            uuid=zone_uuid, name=name, network_type="Advanced", allocation_state="Enabled",
            created=now)).inserted_primary_key[0]
        pod = conn.execute(model.pods.insert().values(
            uuid=str(uuid.uuid4()), name=f"{name}-pod", zone_id=zone, allocation_state="Enabled",
            created=now)).inserted_primary_key[0]
        for i, hv in enumerate(hypervisors):
            conn.execute(model.clusters.insert().values(
                uuid=str(uuid.uuid4()), name=f"{name}-c{i}", zone_id=zone, pod_id=pod, hypervisor=hv,
                cluster_type="CloudManaged", allocation_state="Enabled", managed_state="Managed",
                created=now))

    cloud.db.pool.do_sync(thd)
    return zone_uuid


class HypervisorsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)

    def names(self, **params: Any) -> list[str]:
        return [h["name"] for h in ok(self.cloud.signed("listHypervisors", **params)).get("hypervisor", [])]

    def test_supported(self) -> None:
        """Without a zone: every hypervisor cloudd supports."""
        body = ok(self.cloud.signed("listHypervisors"))
        self.assertEqual(body, {"count": 2, "hypervisor": [{"name": "KVM"}, {"name": "Simulator"}]})

    def test_of_a_zone(self) -> None:
        """With zoneid: the hypervisors of that zone's clusters, each once; none for an empty zone;
        an unknown zone is 431."""
        both = add_zone_with_clusters(self.cloud, "both", ["Simulator", "KVM", "KVM"])
        sim = add_zone_with_clusters(self.cloud, "sim", ["Simulator"])
        empty = add_zone_with_clusters(self.cloud, "empty", [])
        self.assertEqual(self.names(zoneid=both), ["KVM", "Simulator"])
        self.assertEqual(self.names(zoneid=sim), ["Simulator"])
        self.assertEqual(self.names(zoneid=empty), [])
        self.assertEqual(self.cloud.signed("listHypervisors", zoneid=str(uuid.uuid4())).status, 431)

    def test_capabilities(self) -> None:
        """One row per hypervisor with CloudStack's fields; id and hypervisor narrow it."""
        body = ok(self.cloud.signed("listHypervisorCapabilities"))
        self.assertEqual(body["count"], 2)
        kvm = next(c for c in body["hypervisorCapabilities"] if c["hypervisor"] == "KVM")
        self.assertEqual(set(kvm), {"id", "hypervisor", "hypervisorversion", "maxguestslimit",
                                    "securitygroupenabled", "maxdatavolumeslimit", "storagemotionenabled",
                                    "vmsnapshotenabled"})
        self.assertEqual(kvm["hypervisorversion"], "default")
        by_id = ok(self.cloud.signed("listHypervisorCapabilities", id=kvm["id"]))["hypervisorCapabilities"]
        self.assertEqual(by_id, [kvm])
        sim = ok(self.cloud.signed("listHypervisorCapabilities",
                                   hypervisor="simulator"))["hypervisorCapabilities"]
        self.assertEqual([c["hypervisor"] for c in sim], ["Simulator"])
        self.assertEqual(ok(self.cloud.signed("listHypervisorCapabilities", hypervisor="XenServer")), {})

    def test_who_may_list(self) -> None:
        """Every user may list hypervisors; capabilities are for the root admin (432 for others)."""
        tenants = Tenants(self.cloud)
        self.assertEqual([h["name"] for h in ok(tenants.call("a_user", "listHypervisors"))["hypervisor"]],
                         ["KVM", "Simulator"])
        self.assertEqual(tenants.call("a_admin", "listHypervisorCapabilities").status, 432)
