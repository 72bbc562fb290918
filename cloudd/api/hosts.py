"""Host commands: addHost, listHosts, updateHost, deleteHost, prepareHostForMaintenance,
cancelHostMaintenance, reconnectHost, and the host response object.

The work (connecting over libvirt, state changes by compare-and-set) is `cloudd.orchestration.hosts`;
the handlers here check the parameters and render the host.
"""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.infra_entities import CLUSTER, HOST, POD, ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import INFRA, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.base import Page
from cloudd.db.infra import Cluster, ClusterFilter, Host, HostFilter, Pod, Zone
from cloudd.errors import internal, invalid_value
from cloudd.orchestration.context import JobContext, Services
from cloudd.orchestration.hosts import (
    CANCEL_MAINTENANCE,
    RECONNECT,
    RESOURCE,
    START_MAINTENANCE,
    STATUS,
    HostManager,
    HostPlacement,
    Status,
)

P = Param
MIB = 1024 * 1024


def _events_of(state_name: str) -> str:
    try:
        state = STATUS.state(state_name)
    except ValueError:
        return ""
    return "; ".join(sorted(e for (s, e) in STATUS.transitions if s is state))


# per state: the same few strings for every host of a listing
_EVENTS = {s.value: _events_of(s.value) for s in Status}


def _events(host: Host) -> str:
    """The connection events the host's state allows (CloudStack lists them in `events`)."""
    return _EVENTS.get(host.state) or _events_of(host.state)


def _disconnected(host: Host) -> int | None:
    if host.state in (Status.DISCONNECTED.value, Status.DOWN.value, Status.ALERT.value):
        return host.state_changed
    return None


def _capabilities(host: Host) -> str:
    return "hvm,snapshot" if host.hypervisor == "KVM" else "hvm"


HOST_OBJ = ResponseObject(
    "host",
    Out("id", "the ID of the host", source="uuid"),
    Out("name", "the name of the host"),
    Out("state", "the state of the host"),
    Out("disconnected", "true if the host is disconnected. False otherwise.", "date", source=_disconnected),
    Out("type", "the host type"),
    Out("ipaddress", "the IP address of the host", source="ip_address"),
    Out("zoneid", "the Zone ID of the host", source="zone_uuid"),
    Out("zonename", "the Zone name of the host", source="zone_name"),
    Out("podid", "the Pod ID of the host", source="pod_uuid"),
    Out("podname", "the Pod name of the host", source="pod_name"),
    Out("version", "the host version"),
    Out("hypervisor", "the host hypervisor"),
    Out("cpusockets", "the number of CPU sockets on the host", "integer", source="cpu_sockets"),
    Out("cpunumber", "the CPU number of the host", "integer", source="cpus"),
    Out("cpuspeed", "the CPU speed of the host", "long", source="cpu_speed"),
    Out("cpuallocated", "the amount of the host's CPU currently allocated", source=lambda h: "0%"),
    Out("cpuallocatedvalue", "the amount of the host's CPU currently allocated in MHz", "long", source=lambda h: 0),
    Out("cpuallocatedpercentage", "the amount of the host's CPU currently allocated in percentage",
        source=lambda h: "0%"),
    Out("cpuallocatedwithoverprovisioning", "the amount of the host's CPU currently allocated after applying the "
        "cpu.overprovisioning.factor", source=lambda h: "0%"),
    Out("cpuused", "the amount of the host's CPU currently used", source=lambda h: "0%"),
    Out("cpuwithoverprovisioning", "the amount of the host's CPU after applying the cpu.overprovisioning.factor",
        source=lambda h: str((h.cpus or 0) * (h.cpu_speed or 0))),
    Out("memorytotal", "the memory total of the host, this parameter is deprecated use memorywithoverprovisioning",
        "long", source="memory"),
    Out("memorywithoverprovisioning", "the amount of the host's memory after applying the "
        "mem.overprovisioning.factor", source=lambda h: str(h.memory or 0)),
    Out("memoryallocated", "the amount of the host's memory currently allocated", "long", source=lambda h: 0),
    Out("memoryallocatedpercentage", "the amount of the host's memory currently allocated in percentage",
        source=lambda h: "0%"),
    Out("memoryallocatedbytes", "the amount of the host's memory currently allocated in bytes", "long",
        source=lambda h: 0),
    Out("memoryused", "the amount of the host's memory currently used", "long", source=lambda h: 0),
    Out("capabilities", "capabilities of the host", source=_capabilities),
    Out("lastpinged", "the date and time the host was last pinged", "date", source="last_pinged"),
    Out("clusterid", "the cluster ID of the host", source="cluster_uuid"),
    Out("clustername", "the cluster name of the host", source="cluster_name"),
    Out("clustertype", "the cluster type of the cluster that host belongs to",
        source=lambda h: "CloudManaged" if h.cluster_id is not None else None),
    Out("islocalstorageactive", "true if local storage is active, false otherwise", "boolean", source=lambda h: False),
    Out("created", "the date and time the host was created", "date"),
    Out("events", "events available for the host", source=_events),
    Out("hosttags", "comma-separated list of tags for the host", source=lambda h: ",".join(h.tags) or None),
    Out("explicithosttags", "comma-separated list of explicit host tags for the host",
        source=lambda h: ",".join(h.tags) or None),
    Out("resourcestate", "the resource state of the host", source="resource_state"),
    Out("hypervisorversion", "the hypervisor version", source="hypervisor_version"),
    Out("hahost", "true if the host is Ha host (dedicated to vms started by HA process; false otherwise",
        "boolean", source=lambda h: False),
    Out("details", "Host details in key/value pairs.", "map",
        source=lambda h: {"cpumodel": h.cpu_model} if h.cpu_model else {}),
    Out("arch", "CPU Arch of the host"),
    Out("hasannotations", "true if the entity/resource has annotations", "boolean", source=lambda h: False),
)


def hosts_of(services: Services) -> HostManager:
    manager = services.hosts
    if manager is None:
        raise internal("host management is not running on this management server")
    assert isinstance(manager, HostManager)
    return manager


def _tags(value: list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(t.strip() for t in value if t.strip())


# --- addHost --------------------------------------------------------------------------------------

@command("addHost", description="Adds a new host.", roles=ROOT, response=HOST_OBJ, event="HOST.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.host.AddHostCmd",
         params=[P("zoneid", ZONE, "the Zone ID for the host", required=True, related="listZones"),
                 P("podid", POD, "the Pod ID for the host", required=True, related="listPods"),
                 P("clusterid", CLUSTER, "the cluster ID for the host", related="listClusters"),
                 P("clustername", description="the cluster name for the host"),
                 P("url", description="the host URL: a libvirt URI (qemu:///system, qemu+ssh://<host>/system, "
                   "qemu+tls://<host>/system, qemu+tcp://<host>/system, or test:///<node file> for a simulated "
                   "host)", required=True, length=2048),
                 P("hypervisor", description="hypervisor type of the host: KVM, or Simulator for test:// URIs",
                   required=True),
                 P("username", description="the username for the host; not used (libvirt authenticates with keys "
                   "or certificates)"),
                 P("password", description="the password for the host; never stored", secret=True),
                 P("hosttags", "list", "list of tags to be added to the host"),
                 P("allocationstate", description="Allocation state of this Host for allocation of new resources")])
async def add_host(ctx: CallContext) -> Result:
    zone: Zone = ctx.get("zoneid")
    pod: Pod = ctx.get("podid")
    if pod.zone_id != zone.id:
        raise invalid_value(f"Pod {pod.name} does not belong to zone {zone.name}")
    cluster: Cluster | None = ctx.get("clusterid")
    if cluster is None and ctx.get("clustername"):
        _, found = await ctx.db.infra.search_clusters(ClusterFilter(name=ctx.get("clustername"), pod_id=pod.id),
                                                      Page(0, 1))
        if not found:
            raise invalid_value(f"Unable to find the cluster {ctx.get('clustername')} in pod {pod.name}")
        cluster = found[0]
    if cluster is None:
        raise invalid_value("A KVM or Simulator host must be added to a cluster: give clusterid or clustername")
    if cluster.pod_id != pod.id:
        raise invalid_value(f"Cluster {cluster.name} does not belong to pod {pod.name}")
    allocation = ctx.get("allocationstate")
    if allocation is not None and allocation.lower() not in ("enabled", "disabled"):
        raise invalid_value(f"Unable to resolve Allocation State '{allocation}' to a supported state")
    host = await hosts_of(ctx.services).add_host(HostPlacement(zone, pod, cluster), ctx.get("url"),
                                                 ctx.get("hypervisor"), _tags(ctx.get("hosttags")) or (), allocation)
    ctx.announce(EventInfo(f"Successfully added host. Host Name: {host.name}", "Host", host.uuid, host.name))
    return ListResult("host", [HOST_OBJ.render(host)], 1)


# --- listHosts ------------------------------------------------------------------------------------

@command("listHosts", description="Lists hosts.", roles=INFRA, response=HOST_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.admin.host.ListHostsCmd",
         params=[P("id", HOST, "the id of the host", related="listHosts"),
                 P("name", description="the name of the host"),
                 P("zoneid", ZONE, "the Zone ID for the host", related="listZones"),
                 P("podid", POD, "the Pod ID for the host", related="listPods"),
                 P("clusterid", CLUSTER, "lists hosts existing in particular cluster", related="listClusters"),
                 P("type", description="the host type"),
                 P("state", description="the state of the host"),
                 P("resourcestate", description="list hosts by resource state. Resource state represents current "
                   "state determined by admin of host, value can be one of [Enabled, Disabled, Unmanaged, "
                   "PrepareForMaintenance, ErrorInMaintenance, Maintenance, Error]"),
                 P("hypervisor", description="hypervisor type of host: KVM, Simulator"),
                 P("hosttags", description="lists hosts with the given host tag"),
                 P("details", "list", "comma separated list of host details requested, value can be a list of "
                   "[ min, all, capacity, events, stats]"),
                 P("hahost", "boolean", "if true, list only hosts dedicated to HA"),
                 P("outofbandmanagementenabled", "boolean", "list hosts for which out-of-band management is "
                   "enabled"),
                 P("outofbandmanagementpowerstate", description="list hosts by its out-of-band management interface's "
                   "power state. Its value can be one of [On, Off, Unknown]"),
                 P("virtualmachineid", "uuid", "lists hosts in the same cluster as this VM and flag hosts with "
                   "enough CPU/RAm to host this VM")])
async def list_hosts(ctx: CallContext) -> Result:
    host, zone, pod, cluster = ctx.get("id"), ctx.get("zoneid"), ctx.get("podid"), ctx.get("clusterid")
    f = HostFilter(uuid=host.uuid if host is not None else None, name=ctx.get("name"),
                   zone_id=zone.id if zone is not None else None, pod_id=pod.id if pod is not None else None,
                   cluster_id=cluster.id if cluster is not None else None, type=ctx.get("type"),
                   state=ctx.get("state"), resource_state=ctx.get("resourcestate"), hypervisor=ctx.get("hypervisor"),
                   keyword=ctx.get("keyword"), tag=ctx.get("hosttags"))
    if ctx.get("hahost"):
        return ListResult("host", [], 0)
    total, hosts = await ctx.db.infra.search_hosts(f, page_of(ctx))
    return ListResult("host", [HOST_OBJ.render(h) for h in hosts], total)


# --- updateHost, deleteHost -----------------------------------------------------------------------

@command("updateHost", description="Updates a host.", roles=ROOT, response=HOST_OBJ, event="HOST.UPDATE",
         java_class="org.apache.cloudstack.api.command.admin.host.UpdateHostCmd",
         params=[P("id", HOST, "the ID of the host to update", required=True, related="listHosts"),
                 P("hosttags", "list", "list of tags to be added to the host"),
                 P("allocationstate", description="Change resource state of host, valid values are [Enable, "
                   "Disable]. Operation may failed if host in states not allowing Enable/Disable"),
                 P("name", description="the new name of the host"),
                 P("oscategoryid", "uuid", "the id of Os category to update the host with"),
                 P("url", description="the new uri for the secondary storage: nfs://host/path", length=2048),
                 P("annotation", description="Add an annotation to this host")])
async def update_host(ctx: CallContext) -> Result:
    host: Host = ctx.get("id")
    manager = hosts_of(ctx.services)
    allocation = ctx.get("allocationstate")
    if allocation is not None and allocation.lower() not in ("enable", "disable"):
        raise invalid_value(f"Invalid allocation state: {allocation}, only Enable/Disable are allowed")
    values: dict[str, Any] = {}
    if ctx.get("name") is not None:
        if not ctx.get("name").strip():
            raise invalid_value("The host name must not be empty")
        values["name"] = ctx.get("name").strip()
    url = ctx.get("url")
    if url is not None and url != host.url:
        manager.check_url(url, host.hypervisor or "")
        values["url"] = url
    if allocation is not None:
        await manager.set_allocation(host, allocation)
    if values or ctx.get("hosttags") is not None:
        await ctx.db.infra.update_host(host.id, values, _tags(ctx.get("hosttags")))
    if "url" in values:
        await manager.url_changed(host.url)
    updated = await ctx.db.infra.get_host(host.id)
    ctx.announce(EventInfo(f"Successfully updated host. Host Id: {host.uuid}", "Host", host.uuid, updated.name))
    return ObjectResult("host", HOST_OBJ.render(updated))


@command("deleteHost", description="Deletes a host.", roles=ROOT, response=doc("success", *SUCCESS_FIELDS),
         event="HOST.DELETE",
         java_class="org.apache.cloudstack.api.command.admin.host.DeleteHostCmd",
         params=[P("id", HOST, "the host ID", required=True, related="listHosts"),
                 P("forced", "boolean", "Force delete the host. All HA enabled vms running on the host will be put "
                   "to HA; HA disabled ones will be stopped"),
                 P("forcedestroylocalstorage", "boolean", "Force destroy local storage on this host. All VMs created "
                   "on this local storage will be destroyed")])
async def delete_host(ctx: CallContext) -> Result:
    host: Host = ctx.get("id")
    await hosts_of(ctx.services).remove(host, bool(ctx.get("forced")))
    ctx.announce(EventInfo(f"Successfully deleted host. Host Id: {host.uuid}", "Host", host.uuid, host.name))
    return SuccessResult()


# --- maintenance and reconnection (async) ---------------------------------------------------------

def _prepared(host: Host) -> Prepared:
    return Prepared("Host", host.uuid, f"Host:{host.id}", state={"resource_name": host.name})


async def _current(jc: JobContext, prepared: Prepared) -> Host:
    host: Host = await jc.db.infra.get_host_by_uuid(prepared.instance_uuid or "")
    return host


async def _maintain_job(jc: JobContext, prepared: Prepared) -> Result:
    host = await hosts_of(jc.services).prepare_maintenance(await _current(jc, prepared))
    jc.announce(EventInfo(f"Host {host.name} is in maintenance", "Host", host.uuid, host.name))
    return ObjectResult("host", HOST_OBJ.render(host))


@command("prepareHostForMaintenance", description="Prepares a host for maintenance.", roles=ROOT,
         response=HOST_OBJ, event="MAINT.PREPARE", is_async=True, run=_maintain_job,
         java_class="org.apache.cloudstack.api.command.admin.host.PrepareForMaintenanceCmd",
         params=[P("id", HOST, "the host ID", required=True, related="listHosts")])
async def prepare_host_for_maintenance(ctx: CallContext) -> Prepared:
    host: Host = ctx.get("id")
    hosts_of(ctx.services)
    RESOURCE.next(host.resource_state, START_MAINTENANCE)
    return _prepared(host)


async def _cancel_job(jc: JobContext, prepared: Prepared) -> Result:
    host = await hosts_of(jc.services).cancel_maintenance(await _current(jc, prepared))
    jc.announce(EventInfo(f"Host {host.name} is out of maintenance", "Host", host.uuid, host.name))
    return ObjectResult("host", HOST_OBJ.render(host))


@command("cancelHostMaintenance", description="Cancels host maintenance.", roles=ROOT, response=HOST_OBJ,
         event="MAINT.CANCEL", is_async=True, run=_cancel_job,
         java_class="org.apache.cloudstack.api.command.admin.host.CancelMaintenanceCmd",
         params=[P("id", HOST, "the host ID", required=True, related="listHosts")])
async def cancel_host_maintenance(ctx: CallContext) -> Prepared:
    host: Host = ctx.get("id")
    hosts_of(ctx.services)
    RESOURCE.next(host.resource_state, CANCEL_MAINTENANCE)
    return _prepared(host)


async def _reconnect_job(jc: JobContext, prepared: Prepared) -> Result:
    host = await hosts_of(jc.services).reconnect(await _current(jc, prepared))
    jc.announce(EventInfo(f"Host {host.name} reconnected", "Host", host.uuid, host.name))
    return ObjectResult("host", HOST_OBJ.render(host))


@command("reconnectHost", description="Reconnects a host.", roles=ROOT, response=HOST_OBJ, event="HOST.RECONNECT",
         is_async=True, run=_reconnect_job,
         java_class="org.apache.cloudstack.api.command.admin.host.ReconnectHostCmd",
         params=[P("id", HOST, "the host ID", required=True, related="listHosts")])
async def reconnect_host(ctx: CallContext) -> Prepared:
    host: Host = ctx.get("id")
    hosts_of(ctx.services)
    STATUS.next(host.state, RECONNECT)
    return _prepared(host)
