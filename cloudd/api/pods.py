"""Pod commands: createPod, listPods, updatePod, deletePod, and the pod response object."""

from __future__ import annotations

import ipaddress
from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.infra_entities import POD, ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import INFRA, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.infra import Pod, PodFilter
from cloudd.errors import in_use, invalid_value

P = Param
ALLOCATION_STATES = {"enabled": "Enabled", "disabled": "Disabled"}

POD_OBJ = ResponseObject(
    "pod",
    Out("id", "the ID of the Pod", source="uuid"),
    Out("name", "the name of the Pod"),
    Out("zoneid", "the Zone ID of the Pod", source="zone_uuid"),
    Out("zonename", "the Zone name of the Pod", source="zone_name"),
    Out("gateway", "the gateway of the Pod"),
    Out("netmask", "the netmask of the Pod"),
    Out("startip", "the starting IP for the Pod", source="start_ip"),
    Out("endip", "the ending IP for the Pod", source="end_ip"),
    Out("allocationstate", "the allocation state of the Pod", source="allocation_state"),
    Out("hasannotations", "true if the entity/resource has annotations", "boolean", source=lambda p: False),
)


def allocation(value: str | None) -> str | None:
    """Enabled or Disabled (any case), None when not given; 431 otherwise."""
    if value is None:
        return None
    found = ALLOCATION_STATES.get(value.lower())
    if found is None:
        raise invalid_value(f"Unable to resolve Allocation State '{value}' to a supported state")
    return found


def _ipv4(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise invalid_value(f"Please specify a valid IPv4 address for {name}: {value}") from None


def _network_values(ctx: CallContext, current: Pod | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param, column in (("gateway", "gateway"), ("netmask", "netmask"), ("startip", "start_ip"),
                          ("endip", "end_ip")):
        if ctx.get(param) is not None:
            values[column] = _ipv4(param, ctx.get(param))
    netmask = values.get("netmask", current.netmask if current else None)
    if netmask is not None:
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{netmask}")
        except ValueError:
            raise invalid_value(f"Please specify a valid netmask: {netmask}") from None
    start = values.get("start_ip", current.start_ip if current else None)
    end = values.get("end_ip", current.end_ip if current else None)
    if start is not None and end is not None and ipaddress.IPv4Address(end) < ipaddress.IPv4Address(start):
        raise invalid_value(f"The end IP {end} is before the start IP {start}")
    gateway = values.get("gateway", current.gateway if current else None)
    if gateway is not None and netmask is not None:
        net = ipaddress.IPv4Network(f"{gateway}/{netmask}", strict=False)
        for what, ip in (("start IP", start), ("end IP", end)):
            if ip is not None and ipaddress.IPv4Address(ip) not in net:
                raise invalid_value(f"The {what} {ip} is not in the pod's CIDR {net}")
    if ctx.get("allocationstate") is not None:
        values["allocation_state"] = allocation(ctx.get("allocationstate"))
    return values


def _name(ctx: CallContext) -> str | None:
    name = ctx.get("name")
    if name is not None and not name.strip():
        raise invalid_value("The pod name must not be empty")
    return name.strip() if name is not None else None


@command("createPod", description="Creates a new Pod.", roles=ROOT, response=POD_OBJ, event="POD.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.pod.CreatePodCmd",
         params=[P("name", description="the name of the Pod", required=True),
                 P("zoneid", ZONE, "the Zone ID in which the Pod will be created", required=True,
                   related="listZones"),
                 P("gateway", description="the gateway for the Pod"),
                 P("netmask", description="the netmask for the Pod"),
                 P("startip", description="the starting IP address for the Pod"),
                 P("endip", description="the ending IP address for the Pod"),
                 P("allocationstate", description="Allocation state of this Pod for allocation of new resources")])
async def create_pod(ctx: CallContext) -> Result:
    values = _network_values(ctx)
    values.update(name=_name(ctx), zone_id=ctx.get("zoneid").id)
    values.setdefault("allocation_state", "Enabled")
    pod = await ctx.db.infra.create_pod(values)
    ctx.announce(EventInfo(f"Successfully completed creating pod. Pod Name: {pod.name}", "Pod", pod.uuid, pod.name))
    return ObjectResult("pod", POD_OBJ.render(pod))


@command("listPods", description="Lists all Pods.", roles=INFRA, response=POD_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.admin.pod.ListPodsByCmd",
         params=[P("id", POD, "list Pods by ID", related="listPods"),
                 P("name", description="list Pods by name"),
                 P("zoneid", ZONE, "list Pods by Zone ID", related="listZones"),
                 P("allocationstate", description="list pods by allocation state"),
                 P("showcapacities", "boolean", "flag to display the capacity of the pods")])
async def list_pods(ctx: CallContext) -> Result:
    pod, zone = ctx.get("id"), ctx.get("zoneid")
    f = PodFilter(uuid=pod.uuid if pod is not None else None, name=ctx.get("name"),
                  zone_id=zone.id if zone is not None else None,
                  allocation_state=allocation(ctx.get("allocationstate")), keyword=ctx.get("keyword"))
    total, pods = await ctx.db.infra.search_pods(f, page_of(ctx))
    return ListResult("pod", [POD_OBJ.render(p) for p in pods], total)


@command("updatePod", description="Updates a Pod.", roles=ROOT, response=POD_OBJ, event="POD.EDIT",
         java_class="org.apache.cloudstack.api.command.admin.pod.UpdatePodCmd",
         params=[P("id", POD, "the ID of the Pod", required=True, related="listPods"),
                 P("name", description="the name of the Pod"),
                 P("gateway", description="the gateway for the Pod"),
                 P("netmask", description="the netmask of the Pod"),
                 P("startip", description="the starting IP address for the Pod"),
                 P("endip", description="the ending IP address for the Pod"),
                 P("allocationstate", description="Allocation state of this cluster for allocation of new "
                   "resources")])
async def update_pod(ctx: CallContext) -> Result:
    pod: Pod = ctx.get("id")
    values = _network_values(ctx, pod)
    if ctx.get("name") is not None:
        values["name"] = _name(ctx)
    updated = await ctx.db.infra.update_pod(pod.id, values)
    ctx.announce(EventInfo(f"Successfully updated pod. Pod Id: {pod.uuid}", "Pod", pod.uuid, updated.name))
    return ObjectResult("pod", POD_OBJ.render(updated))


@command("deletePod", description="Deletes a Pod.", roles=ROOT, response=doc("success", *SUCCESS_FIELDS),
         event="POD.DELETE", java_class="org.apache.cloudstack.api.command.admin.pod.DeletePodCmd",
         params=[P("id", POD, "the ID of the Pod", required=True, related="listPods")])
async def delete_pod(ctx: CallContext) -> Result:
    pod: Pod = ctx.get("id")
    if await ctx.db.storage.count_live_pools(pod_id=pod.id):
        raise in_use(f"The pod {pod.name} is not deletable because there are primary storage pools in this "
                     "pod")
    await ctx.db.infra.remove_pod(pod.id)
    ctx.announce(EventInfo(f"Successfully deleted pod. Pod Id: {pod.uuid}", "Pod", pod.uuid, pod.name))
    return SuccessResult()
