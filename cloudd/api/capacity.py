"""listCapacity: the system-wide capacities of zones, pods and clusters (`cloudd.orchestration.capacity`)."""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.infra_entities import CLUSTER, POD, ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import INFRA, Param, command
from cloudd.api.results import ListResult, Result
from cloudd.errors import invalid_value
from cloudd.orchestration.capacity import Capacity, CapacityManager
from cloudd.orchestration.storage import storage_manager

P = Param

CAPACITY_OBJ = ResponseObject(
    "capacity",
    Out("type", "the capacity type", "short"),
    Out("name", "the capacity name"),
    Out("zoneid", "the Zone ID", source="place.zone_uuid"),
    Out("zonename", "the Zone name", source="place.zone_name"),
    Out("podid", "the Pod ID", source="place.pod_uuid"),
    Out("podname", "the Pod name", source="place.pod_name"),
    Out("clusterid", "the Cluster ID", source="place.cluster_uuid"),
    Out("clustername", "the Cluster name", source="place.cluster_name"),
    Out("capacityallocated", "the capacity currently in allocated", "long", source="allocated"),
    Out("capacityused", "the capacity currently in use", "long", source="used"),
    Out("capacitytotal", "the total capacity available", "long", source="total"),
    Out("percentused", "the percentage of capacity currently in use", source="percent"),
)


def capacity_manager(ctx: CallContext) -> CapacityManager:
    manager = ctx.services.capacity
    if isinstance(manager, CapacityManager):
        return manager
    return CapacityManager(ctx.services)


def _order(c: Capacity) -> tuple[Any, ...]:
    return c.place.zone_name, c.type


def _usage_order(c: Capacity) -> tuple[Any, ...]:
    return c.place.zone_name, -c.ratio


@command("listCapacity", description="Lists all the system wide capacities.", roles=INFRA, response=CAPACITY_OBJ,
         listing=True, java_class="org.apache.cloudstack.api.command.admin.resource.ListCapacityCmd",
         params=[P("zoneid", ZONE, "lists capacity by the Zone ID", related="listZones"),
                 P("podid", POD, "lists capacity by the Pod ID", related="listPods"),
                 P("clusterid", CLUSTER, "lists capacity by the Cluster ID", since="3.0.0", related="listClusters"),
                 P("fetchlatest", "boolean", "recalculate capacities and fetch the latest", since="3.0.0"),
                 P("type", "integer", "lists capacity by type* CAPACITY_TYPE_MEMORY = 0* CAPACITY_TYPE_CPU = 1"
                   "* CAPACITY_TYPE_STORAGE = 2* CAPACITY_TYPE_STORAGE_ALLOCATED = 3"
                   "* CAPACITY_TYPE_VIRTUAL_NETWORK_PUBLIC_IP = 4* CAPACITY_TYPE_PRIVATE_IP = 5"
                   "* CAPACITY_TYPE_SECONDARY_STORAGE = 6* CAPACITY_TYPE_VLAN = 7"
                   "* CAPACITY_TYPE_DIRECT_ATTACHED_PUBLIC_IP = 8* CAPACITY_TYPE_LOCAL_STORAGE = 9."),
                 P("sortby", description="Sort the results. Available values: Usage", since="3.0.0"),
                 P("tag", description="Tag for the resource type", since="4.20.0")])
async def list_capacity(ctx: CallContext) -> Result:
    sortby = ctx.get("sortby")
    if sortby is not None and sortby.lower() != "usage":
        raise invalid_value("Only value supported for sortBy parameter is : usage")
    zone, pod, cluster = ctx.get("zoneid"), ctx.get("podid"), ctx.get("clusterid")
    if ctx.get("fetchlatest"):
        await storage_manager(ctx.services).refresh()
    found = await capacity_manager(ctx).capacities(
        zone_id=zone.id if zone else None, pod_id=pod.id if pod else None, cluster_id=cluster.id if cluster else None,
        type=ctx.get("type"), tag=ctx.get("tag"), finest=sortby is not None)
    if zone is not None:
        found = [c for c in found if c.place.zone_id == zone.id]
    if pod is not None:
        found = [c for c in found if c.place.pod_id == pod.id]
    found.sort(key=_usage_order if sortby is not None else _order)
    page = page_of(ctx)
    shown = found[page.offset:None if page.limit is None else page.offset + page.limit]
    return ListResult("capacity", [CAPACITY_OBJ.render(c) for c in shown], len(found))
