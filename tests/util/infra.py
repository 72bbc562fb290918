"""A test cloud with the infrastructure services attached: the libvirt driver on an inline thread pool
(libvirt's in-process test driver, no daemon) and the host manager, on the harness's fake clock.

    infra = InfraCloud.make(testcase)        # cloud + hypervisors + hosts, stopped at cleanup
    zone = infra.zone(); pod = infra.pod(zone); cluster = infra.cluster(pod)
    host = infra.add_host(cluster, name="h1", cpus=4, mhz=2000, memory_mib=8192)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.hypervisor import Hypervisors, write_simulated_host
from cloudd.orchestration.hosts import HostManager
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.reactor import NonThreadPool


class InlineThreadPool(NonThreadPool):
    """Runs every call at once, including fire-and-forget `callInThread` work."""

    def callInThread(self, func: Callable[..., Any], *args: Any, **kw: Any) -> None:  # noqa: N802
        func(*args, **kw)


@dataclass
class InfraCloud:
    case: SynchronousTestCase
    cloud: Cloud
    hypervisors: Hypervisors
    hosts: HostManager
    nodes: str

    @classmethod
    def make(cls, case: SynchronousTestCase, start_monitor: bool = True) -> InfraCloud:
        cloud = make_cloud()
        case.addCleanup(cloud.stop)
        services = cloud.api.services
        hypervisors = Hypervisors(cloud.reactor, threadpool=InlineThreadPool())  # type: ignore[arg-type]
        hypervisors.startService()
        services.hypervisors = hypervisors
        hosts = HostManager(services)
        services.hosts = hosts
        if start_monitor:
            hosts.startService()
        nodes = os.path.realpath(case.mktemp())
        os.makedirs(nodes)
        infra = cls(case, cloud, hypervisors, hosts, nodes)
        case.addCleanup(infra.stop)
        return infra

    def stop(self) -> None:
        if self.hosts.running:
            self.case.successResultOf(self.hosts.stopService())
        if self.hypervisors.running:
            self.case.successResultOf(self.hypervisors.stopService())

    # --- calls ------------------------------------------------------------------------------------

    def call(self, command: str, **params: Any) -> Response:
        return self.cloud.signed(command, **params)

    def ok(self, command: str, **params: Any) -> Any:
        r = self.call(command, **params)
        assert r.status == 200, r.body
        return r.inner()

    def job(self, command: str, **params: Any) -> dict[str, Any]:
        """Run an async command to its end (the fake clock moved as needed); the job's result."""
        jobid = self.ok(command, **params)["jobid"]
        for _ in range(1000):
            res = self.ok("queryAsyncJobResult", jobid=jobid)
            if res["jobstatus"] != 0:
                return dict(res)
            self.cloud.reactor.advance(0.5)
        raise AssertionError(f"job {jobid} did not finish")

    # --- building infrastructure ------------------------------------------------------------------

    def zone(self, name: str = "zone1", **params: Any) -> dict[str, Any]:
        args = {"name": name, "dns1": "8.8.8.8", "internaldns1": "10.0.0.2", "networktype": "Advanced",
                "allocationstate": "Enabled", **params}
        zone: dict[str, Any] = self.ok("createZone", **args)["zone"]
        return zone

    def pod(self, zone: dict[str, Any], name: str = "pod1", **params: Any) -> dict[str, Any]:
        args = {"name": name, "zoneid": zone["id"], "gateway": "10.1.0.1", "netmask": "255.255.255.0",
                "startip": "10.1.0.10", "endip": "10.1.0.200", **params}
        pod: dict[str, Any] = self.ok("createPod", **args)["pod"]
        return pod

    def cluster(self, pod: dict[str, Any], name: str = "cluster1", hypervisor: str = "Simulator",
                **params: Any) -> dict[str, Any]:
        args = {"clustername": name, "zoneid": pod["zoneid"], "podid": pod["id"], "hypervisor": hypervisor,
                "clustertype": "CloudManaged", **params}
        cluster: dict[str, Any] = self.ok("addCluster", **args)["cluster"][0]
        return cluster

    def node(self, name: str, cpus: int = 4, mhz: int = 2000, memory_mib: int = 8192) -> str:
        """A simulated host's node file; its test:/// URI."""
        return write_simulated_host(os.path.join(self.nodes, f"{name}.xml"), name, cpus, mhz, memory_mib)

    def add_host(self, cluster: dict[str, Any], name: str = "host1", cpus: int = 4, mhz: int = 2000,
                 memory_mib: int = 8192, **params: Any) -> dict[str, Any]:
        args = {"zoneid": cluster["zoneid"], "podid": cluster["podid"], "clusterid": cluster["id"],
                "url": self.node(name, cpus, mhz, memory_mib), "hypervisor": "Simulator", **params}
        host: dict[str, Any] = self.ok("addHost", **args)["host"][0]
        return host

    def stack(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        zone = self.zone()
        pod = self.pod(zone)
        return zone, pod, self.cluster(pod)
