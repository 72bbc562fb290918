"""Cluster commands: addCluster, listClusters, updateCluster, deleteCluster, and the cluster
response object. A cluster groups hosts of one hypervisor (KVM, or Simulator for test:// hosts)."""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.infra_entities import CLUSTER, POD, ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.pods import allocation
from cloudd.api.registry import INFRA, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.infra import Cluster, ClusterFilter, Pod, Zone
from cloudd.errors import in_use, invalid_value

P = Param
HYPERVISORS = {"kvm": "KVM", "simulator": "Simulator"}
CLUSTER_TYPES = {"cloudmanaged": "CloudManaged"}
MANAGED_STATES = {"managed": "Managed", "prepareunmanaged": "PrepareUnmanaged", "unmanaged": "Unmanaged",
                  "prepareunmanagederror": "PrepareUnmanagedError"}

CLUSTER_OBJ = ResponseObject(
    "cluster",
    Out("id", "the cluster ID", source="uuid"),
    Out("name", "the cluster name"),
    Out("podid", "the Pod ID of the cluster", source="pod_uuid"),
    Out("podname", "the Pod name of the cluster", source="pod_name"),
    Out("zoneid", "the Zone ID of the cluster", source="zone_uuid"),
    Out("zonename", "the Zone name of the cluster", source="zone_name"),
    Out("hypervisortype", "the hypervisor type of the cluster", source="hypervisor"),
    Out("clustertype", "the type of the cluster", source="cluster_type"),
    Out("allocationstate", "the allocation state of the cluster", source="allocation_state"),
    Out("managedstate", "whether this cluster is managed by CloudStack", source="managed_state"),
    Out("cpuovercommitratio", "The cpu overcommit ratio of the cluster", source=lambda c: "1.0"),
    Out("memoryovercommitratio", "The memory overcommit ratio of the cluster", source=lambda c: "1.0"),
    Out("resourcedetails", "Meta data associated with the zone (key/value pairs)", "map", source=lambda c: {}),
    Out("hasannotations", "true if the entity/resource has annotations", "boolean", source=lambda c: False),
)


def _choice(name: str, value: str | None, choices: dict[str, str]) -> str | None:
    if value is None:
        return None
    found = choices.get(value.lower())
    if found is None:
        raise invalid_value(f"Unable to resolve {name} '{value}'; supported: {', '.join(choices.values())}")
    return found


@command("addCluster", description="Adds a new cluster", roles=ROOT, response=CLUSTER_OBJ, event="CLUSTER.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.cluster.AddClusterCmd",
         params=[P("clustername", description="the cluster name", required=True),
                 P("zoneid", ZONE, "the Zone ID for the cluster", required=True, related="listZones"),
                 P("podid", POD, "the Pod ID for the host", required=True, related="listPods"),
                 P("hypervisor", description="hypervisor type of the cluster: KVM, Simulator", required=True),
                 P("clustertype", description="type of the cluster: CloudManaged, ExternalManaged", required=True),
                 P("allocationstate", description="Allocation state of this cluster for allocation of new "
                   "resources"),
                 P("url", description="the URL"),
                 P("username", description="the username for the cluster"),
                 P("password", description="the password for the host", secret=True),
                 P("arch", description="the CPU arch of the cluster. Valid options are: x86_64, aarch64")])
async def add_cluster(ctx: CallContext) -> Result:
    zone: Zone = ctx.get("zoneid")
    pod: Pod = ctx.get("podid")
    if pod.zone_id != zone.id:
        raise invalid_value(f"Pod {pod.name} does not belong to zone {zone.name}")
    name = ctx.get("clustername").strip()
    if not name:
        raise invalid_value("The cluster name must not be empty")
    values: dict[str, Any] = {
        "name": name, "zone_id": zone.id, "pod_id": pod.id,
        "hypervisor": _choice("hypervisor", ctx.get("hypervisor"), HYPERVISORS),
        "cluster_type": _choice("clustertype", ctx.get("clustertype"), CLUSTER_TYPES),
        "allocation_state": allocation(ctx.get("allocationstate")) or "Enabled", "managed_state": "Managed"}
    cluster = await ctx.db.infra.create_cluster(values)
    ctx.announce(EventInfo(f"Successfully added cluster. Cluster Name: {cluster.name}", "Cluster", cluster.uuid,
                           cluster.name))
    return ListResult("cluster", [CLUSTER_OBJ.render(cluster)], 1)


@command("listClusters", description="Lists clusters.", roles=INFRA, response=CLUSTER_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.admin.cluster.ListClustersCmd",
         params=[P("id", CLUSTER, "lists clusters by the cluster ID", related="listClusters"),
                 P("name", description="lists clusters by the cluster name"),
                 P("podid", POD, "lists clusters by Pod ID", related="listPods"),
                 P("zoneid", ZONE, "lists clusters by Zone ID", related="listZones"),
                 P("hypervisor", description="lists clusters by hypervisor type"),
                 P("clustertype", description="lists clusters by cluster type"),
                 P("allocationstate", description="lists clusters by allocation state"),
                 P("managedstate", description="whether this cluster is managed by CloudStack"),
                 P("showcapacities", "boolean", "flag to display the capacity of the clusters")])
async def list_clusters(ctx: CallContext) -> Result:
    cluster, pod, zone = ctx.get("id"), ctx.get("podid"), ctx.get("zoneid")
    f = ClusterFilter(uuid=cluster.uuid if cluster is not None else None, name=ctx.get("name"),
                      zone_id=zone.id if zone is not None else None, pod_id=pod.id if pod is not None else None,
                      hypervisor=ctx.get("hypervisor"),
                      cluster_type=_choice("clustertype", ctx.get("clustertype"), CLUSTER_TYPES),
                      allocation_state=allocation(ctx.get("allocationstate")),
                      managed_state=_choice("managedstate", ctx.get("managedstate"), MANAGED_STATES),
                      keyword=ctx.get("keyword"))
    total, clusters = await ctx.db.infra.search_clusters(f, page_of(ctx))
    return ListResult("cluster", [CLUSTER_OBJ.render(c) for c in clusters], total)


@command("updateCluster", description="Updates an existing cluster", roles=ROOT, response=CLUSTER_OBJ,
         event="CLUSTER.UPDATE",
         java_class="org.apache.cloudstack.api.command.admin.cluster.UpdateClusterCmd",
         params=[P("id", CLUSTER, "the ID of the Cluster", required=True, related="listClusters"),
                 P("clustername", description="the cluster name"),
                 P("hypervisor", description="hypervisor type of the cluster"),
                 P("clustertype", description="hypervisor type of the cluster"),
                 P("allocationstate", description="Allocation state of this cluster for allocation of new "
                   "resources"),
                 P("managedstate", description="whether this cluster is managed by CloudStack")])
async def update_cluster(ctx: CallContext) -> Result:
    cluster: Cluster = ctx.get("id")
    values: dict[str, Any] = {}
    if ctx.get("clustername") is not None:
        if not ctx.get("clustername").strip():
            raise invalid_value("The cluster name must not be empty")
        values["name"] = ctx.get("clustername").strip()
    if ctx.get("hypervisor") is not None and _choice("hypervisor", ctx.get("hypervisor"), HYPERVISORS) \
            != cluster.hypervisor:
        raise invalid_value(f"Unable to update the hypervisor of cluster {cluster.name}")
    if ctx.get("clustertype") is not None:
        values["cluster_type"] = _choice("clustertype", ctx.get("clustertype"), CLUSTER_TYPES)
    if ctx.get("allocationstate") is not None:
        values["allocation_state"] = allocation(ctx.get("allocationstate"))
    if ctx.get("managedstate") is not None:
        values["managed_state"] = _choice("managedstate", ctx.get("managedstate"), MANAGED_STATES)
    updated = await ctx.db.infra.update_cluster(cluster.id, values)
    ctx.announce(EventInfo(f"Successfully updated cluster. Cluster Id: {cluster.uuid}", "Cluster", cluster.uuid,
                           updated.name))
    return ObjectResult("cluster", CLUSTER_OBJ.render(updated))


@command("deleteCluster", description="Deletes a cluster.", roles=ROOT, response=doc("success", *SUCCESS_FIELDS),
         event="CLUSTER.DELETE",
         java_class="org.apache.cloudstack.api.command.admin.cluster.DeleteClusterCmd",
         params=[P("id", CLUSTER, "the cluster ID", required=True, related="listClusters")])
async def delete_cluster(ctx: CallContext) -> Result:
    cluster: Cluster = ctx.get("id")
    if await ctx.db.storage.count_live_pools(cluster_id=cluster.id):
        raise in_use(f"The cluster {cluster.name} is not deletable because there are primary storage pools in this "
                     "cluster")
    await ctx.db.infra.remove_cluster(cluster.id)
    ctx.announce(EventInfo(f"Successfully deleted cluster. Cluster Id: {cluster.uuid}", "Cluster", cluster.uuid,
                           cluster.name))
    return SuccessResult()
