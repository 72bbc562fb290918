"""Hypervisor commands: listHypervisors and listHypervisorCapabilities.

cloudd drives KVM hosts through libvirt and simulated hosts through libvirt's test driver
(`Simulator`); their capabilities are fixed, so they are a constant list rather than a table.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass

from cloudd.api.context import CallContext
from cloudd.api.infra_entities import ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, ROOT, Param, command
from cloudd.api.results import ListResult, Result

P = Param
SUPPORTED = ("KVM", "Simulator")
_NS = uuidlib.UUID("0b8f2a6e-3c4d-4e59-8a71-5d2f9c1e7b34")


@dataclass(frozen=True)
class Capabilities:
    hypervisor: str
    version: str
    max_guests: int
    security_groups: bool
    max_data_volumes: int
    max_hosts_per_cluster: int | None
    storage_motion: bool
    vm_snapshots: bool

    @property
    def uuid(self) -> str:
        return str(uuidlib.uuid5(_NS, f"{self.hypervisor}:{self.version}"))


CAPABILITIES = (
    Capabilities("KVM", "default", 50, True, 24, None, True, True),
    Capabilities("Simulator", "default", 50, True, 24, None, True, True),
)

HYPERVISOR_OBJ = ResponseObject(
    "hypervisor",
    Out("name", "Hypervisor name"),
)

CAPABILITIES_OBJ = ResponseObject(
    "hypervisorCapabilities",
    Out("id", "the ID of the hypervisor capabilities row", source="uuid"),
    Out("hypervisorversion", "the hypervisor version", source="version"),
    Out("hypervisor", "the hypervisor type"),
    Out("maxguestslimit", "the maximum number of guest vms recommended for this hypervisor", "long",
        source="max_guests"),
    Out("securitygroupenabled", "true if security group is supported", "boolean", source="security_groups"),
    Out("maxdatavolumeslimit", "the maximum number of Data Volumes that can be attached for this hypervisor",
        "integer", source="max_data_volumes"),
    Out("maxhostspercluster", "the maximum number of Hosts per cluster for this hypervisor", "integer",
        source="max_hosts_per_cluster"),
    Out("storagemotionenabled", "true if storage motion is supported", "boolean", source="storage_motion"),
    Out("vmsnapshotenabled", "true if VM snapshots are enabled for this hypervisor", "boolean",
        source="vm_snapshots"),
)


@command("listHypervisors", description="List hypervisors", roles=ALL, response=HYPERVISOR_OBJ,
         java_class="org.apache.cloudstack.api.command.user.config.ListHypervisorsCmd",
         params=[P("zoneid", ZONE, "the zone id for listing hypervisors.", related="listZones")])
async def list_hypervisors(ctx: CallContext) -> Result:
    zone = ctx.get("zoneid")
    names = list(SUPPORTED) if zone is None else await ctx.db.offerings.zone_hypervisors(zone.id)
    return ListResult("hypervisor", [HYPERVISOR_OBJ.render({"name": n}) for n in names], len(names))


@command("listHypervisorCapabilities", description="Lists all hypervisor capabilities.", roles=ROOT,
         response=CAPABILITIES_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.admin.config.ListHypervisorCapabilitiesCmd",
         params=[P("id", "uuid", "ID of the hypervisor capability", related="listHypervisorCapabilities"),
                 P("hypervisor", description="the hypervisor for which to restrict the search")])
async def list_hypervisor_capabilities(ctx: CallContext) -> Result:
    found = [c for c in CAPABILITIES
             if (ctx.get("id") is None or c.uuid == ctx.get("id"))
             and (ctx.get("hypervisor") is None or c.hypervisor.lower() == ctx.get("hypervisor").lower())
             and (not ctx.get("keyword") or ctx.get("keyword").lower() in c.hypervisor.lower())]
    page = page_of(ctx)
    shown = found[page.offset:None if page.limit is None else page.offset + page.limit]
    return ListResult("hypervisorCapabilities", [CAPABILITIES_OBJ.render(c) for c in shown], len(found))
