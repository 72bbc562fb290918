"""Zone commands: createZone, listZones, updateZone, deleteZone, and the zone response object.

Every caller may list zones; callers other than the root admin see only Enabled zones that are public
or dedicated to their domain or one of its ancestors, as CloudStack shows them.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from dataclasses import replace
from typing import Any

from cloudd.api.access import domain_param
from cloudd.api.context import CallContext
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.infra_entities import ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.infra import Zone, ZoneFilter
from cloudd.errors import in_use, invalid_value

P = Param
NETWORK_TYPES = {"advanced": "Advanced", "basic": "Basic"}
ALLOCATION_STATES = {"enabled": "Enabled", "disabled": "Disabled"}
# a zone token names the zone to agents that register by themselves; derived from the zone's UUID
_TOKEN_NS = uuidlib.UUID("6f1a7c52-5d1e-4c61-9f36-3c1d8f0f5a21")

TAG_OBJ = ResponseObject(
    "tag",
    Out("key", "tag key name"), Out("value", "tag value"), Out("resourcetype", "resource type"),
    Out("resourceid", "id of the resource"))

ZONE_OBJ = ResponseObject(
    "zone",
    Out("id", "Zone id", source="uuid"),
    Out("name", "Zone name"),
    Out("description", "Zone description"),
    Out("dns1", "the first DNS for the Zone"),
    Out("dns2", "the second DNS for the Zone"),
    Out("ip6dns1", "the first IPv6 DNS for the Zone", source="ip6_dns1"),
    Out("ip6dns2", "the second IPv6 DNS for the Zone", source="ip6_dns2"),
    Out("internaldns1", "the first internal DNS for the Zone", source="internal_dns1"),
    Out("internaldns2", "the second internal DNS for the Zone", source="internal_dns2"),
    Out("guestcidraddress", "the guest CIDR address for the Zone", source="guest_cidr"),
    Out("domain", "Network domain name for the networks in the zone", source="network_domain"),
    Out("domainid", "the UUID of the containing domain, null for public zones", source=lambda z: None),
    Out("domainname", "the name of the containing domain, null for public zones", source=lambda z: None),
    Out("networktype", "the network type of the zone; can be Basic or Advanced", source="network_type"),
    Out("securitygroupsenabled", "true if security groups support is enabled, false otherwise", "boolean",
        source="security_groups"),
    Out("allocationstate", "the allocation state of the cluster", source="allocation_state"),
    Out("zonetoken", "Zone Token", source=lambda z: str(uuidlib.uuid5(_TOKEN_NS, z.uuid))),
    Out("dhcpprovider", "the dhcp Provider for the Zone", source=lambda z: "VirtualRouter"),
    Out("localstorageenabled", "true if local storage offering enabled, false otherwise", "boolean",
        source="local_storage"),
    Out("tags", "the list of resource tags associated with zone.", "list", source=lambda z: [], children=TAG_OBJ),
    Out("resourcedetails", "Meta data associated with the zone (key/value pairs)", "map",
        source=lambda z: {}),
    Out("hasannotations", "true if the entity/resource has annotations", "boolean", source=lambda z: False),
    Out("isedge", "true, if zone is NSX enabled", "boolean", source=lambda z: False),
    Out("type", "The type of the zone - core or edge", source=lambda z: "Core"),
    Out("created", "the date this zone was created", "date"),
)


async def render_zone(ctx: CallContext, zone: Zone) -> dict[str, Any]:
    """The zone as CloudStack renders it; the domain of a dedicated zone named."""
    if zone.domain_id is None:
        return ZONE_OBJ.render(zone)
    domain = await ctx.db.domains.get(zone.domain_id)
    return ZONE_OBJ.render(zone, domainid=domain.uuid, domainname=domain.name)


def _choice(name: str, value: str | None, choices: dict[str, str]) -> str | None:
    if value is None:
        return None
    found = choices.get(value.lower())
    if found is None:
        raise invalid_value(f"Invalid value for {name}: {value}; expected one of {', '.join(choices.values())}")
    return found


def _address(name: str, value: str | None, v6: bool = False) -> str | None:
    if value is None or value == "":
        return None
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise invalid_value(f"Please specify a valid {'IPv6' if v6 else 'IPv4'} address for {name}: {value}") from None
    if ip.version != (6 if v6 else 4):
        raise invalid_value(f"Please specify a valid {'IPv6' if v6 else 'IPv4'} address for {name}: {value}")
    return str(ip)


def _cidr(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise invalid_value(f"Please enter a valid guest cidr: {value}") from None
    if net.version != 4:
        raise invalid_value(f"Please enter a valid IPv4 guest cidr: {value}")
    return value


def _network_values(ctx: CallContext) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param, column, v6 in (("dns1", "dns1", False), ("dns2", "dns2", False), ("ip6dns1", "ip6_dns1", True),
                              ("ip6dns2", "ip6_dns2", True), ("internaldns1", "internal_dns1", False),
                              ("internaldns2", "internal_dns2", False)):
        if ctx.get(param) is not None:
            values[column] = _address(param, ctx.get(param), v6)
    if ctx.get("guestcidraddress") is not None:
        values["guest_cidr"] = _cidr(ctx.get("guestcidraddress"))
    if ctx.get("domain") is not None:
        values["network_domain"] = ctx.get("domain") or None
    if ctx.get("localstorageenabled") is not None:
        values["local_storage"] = int(bool(ctx.get("localstorageenabled")))
    if ctx.get("allocationstate") is not None:
        values["allocation_state"] = _choice("allocationstate", ctx.get("allocationstate"), ALLOCATION_STATES)
    return values


DNS_PARAMS = [
    P("dns2", description="the second DNS for the Zone"),
    P("ip6dns1", description="the first DNS for IPv6 network in the Zone"),
    P("ip6dns2", description="the second DNS for IPv6 network in the Zone"),
    P("internaldns2", description="the second internal DNS for the Zone"),
    P("guestcidraddress", description="the guest CIDR address for the Zone"),
    P("domain", description="Network domain name for the networks in the zone"),
    P("localstorageenabled", "boolean", "true if local storage offering enabled, false otherwise"),
    P("allocationstate", description="Allocation state of this Zone for allocation of new resources"),
]


@command("createZone", description="Creates a Zone.", roles=ROOT, response=ZONE_OBJ, event="ZONE.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.zone.CreateZoneCmd",
         params=[P("name", description="the name of the Zone", required=True),
                 P("dns1", description="the first DNS for the Zone", required=True),
                 P("internaldns1", description="the first internal DNS for the Zone", required=True),
                 P("networktype", description="network type of the zone, can be Basic or Advanced", required=True),
                 *DNS_PARAMS,
                 P("domainid", "uuid", "the ID of the containing domain, null for public zones",
                   related="listDomains"),
                 P("securitygroupenabled", "boolean", "true if network is security group enabled, false otherwise"),
                 P("isedge", "boolean", "true if the zone is an edge zone, false otherwise")])
async def create_zone(ctx: CallContext) -> Result:
    name = ctx.get("name").strip()
    if not name:
        raise invalid_value("The zone name must not be empty")
    values = _network_values(ctx)
    for required in ("dns1", "internal_dns1"):
        if values.get(required) is None:
            raise invalid_value(f"Please specify a valid IPv4 address for {required.replace('_', '')}")
    domain = await domain_param(ctx, "domainid")
    values.update(name=name, network_type=_choice("networktype", ctx.get("networktype"), NETWORK_TYPES),
                  security_groups=int(bool(ctx.get("securitygroupenabled"))),
                  domain_id=domain.id if domain is not None else None)
    values.setdefault("allocation_state", "Disabled")
    zone = await ctx.db.infra.create_zone(values)
    ctx.announce(EventInfo(f"Successfully completed creating zone. Zone Name: {zone.name}", "Zone", zone.uuid,
                           zone.name))
    return ObjectResult("zone", await render_zone(ctx, zone))


@command("listZones", description="Lists zones", roles=ALL, response=ZONE_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.user.zone.ListZonesCmd",
         params=[P("id", ZONE, "the ID of the zone", related="listZones"),
                 P("ids", "list", "the IDs of the zones, mutually exclusive with id", element=ZONE),
                 P("available", "boolean", "true if you want to retrieve all available Zones. False if you only "
                   "want to return the Zones from which you have at least one VM. Default is false."),
                 P("domainid", "uuid", "the ID of the domain associated with the zone", related="listDomains"),
                 P("name", description="the name of the zone"),
                 P("networktype", description="the network type of the zone that the virtual machine belongs to"),
                 P("showcapacities", "boolean", "flag to display the capacity of the zones"),
                 P("tags", "map", "List zones by resource tags (key/value pairs)"),
                 P("showicon", "boolean", "flag to display the resource image for the zones"),
                 P("showresourceicon", "boolean", "flag to display the resource image for the zones")])
async def list_zones(ctx: CallContext) -> Result:
    caller = ctx.caller
    if ctx.get("id") is not None and ctx.get("ids") is not None:
        raise invalid_value("Either id or ids parameter can be passed, not both")
    domain = await domain_param(ctx, "domainid")
    f = ZoneFilter(name=ctx.get("name"), network_type=ctx.get("networktype"), keyword=ctx.get("keyword"),
                   enabled_only=not caller.is_root_admin, domain_id=domain.id if domain is not None else None,
                   visible_to_path=None if caller.is_root_admin else caller.domain_path)
    if ctx.get("ids") is not None:
        f = replace(f, ids=tuple(z.id for z in ctx.get("ids")))
    if ctx.get("id") is not None:
        f = replace(f, ids=(ctx.get("id").id,))
    total, zones = await ctx.db.infra.search_zones(f, page_of(ctx))
    return ListResult("zone", [await render_zone(ctx, z) for z in zones], total)


@command("updateZone", description="Updates a Zone.", roles=ROOT, response=ZONE_OBJ, event="ZONE.EDIT",
         java_class="org.apache.cloudstack.api.command.admin.zone.UpdateZoneCmd",
         params=[P("id", ZONE, "the ID of the Zone", required=True, related="listZones"),
                 P("name", description="the name of the Zone"),
                 P("dns1", description="the first DNS for the Zone"),
                 P("internaldns1", description="the first internal DNS for the Zone"),
                 *DNS_PARAMS,
                 P("details", "map", "the details for the Zone"),
                 P("dhcpprovider", description="the dhcp Provider for the Zone"),
                 P("dnssearchorder", "list", "the dns search order list"),
                 P("ispublic", "boolean", "updates a private zone to public if set, but not vice-versa"),
                 P("sortkey", "integer", "sort key of the zone, integer")])
async def update_zone(ctx: CallContext) -> Result:
    zone: Zone = ctx.get("id")
    values = _network_values(ctx)
    for required in ("dns1", "internal_dns1"):
        if required in values and values[required] is None:
            raise invalid_value(f"{required.replace('_', '')} may not be emptied")
    if ctx.get("name") is not None:
        name = ctx.get("name").strip()
        if not name:
            raise invalid_value("The zone name must not be empty")
        values["name"] = name
    if ctx.get("ispublic"):
        values["domain_id"] = None
    updated = await ctx.db.infra.update_zone(zone.id, values)
    ctx.announce(EventInfo(f"Successfully updated zone. Zone Id: {zone.uuid}", "Zone", zone.uuid, updated.name))
    return ObjectResult("zone", await render_zone(ctx, updated))


@command("deleteZone", description="Deletes a Zone.", roles=ROOT, response=doc("success", *SUCCESS_FIELDS),
         event="ZONE.DELETE", java_class="org.apache.cloudstack.api.command.admin.zone.DeleteZoneCmd",
         params=[P("id", ZONE, "the ID of the Zone", required=True, related="listZones")])
async def delete_zone(ctx: CallContext) -> Result:
    zone: Zone = ctx.get("id")
    if await ctx.db.storage.count_live_pools(zone_id=zone.id):
        raise in_use(f"The zone {zone.name} is not deletable because there are primary storage pools in this "
                     "zone")
    await ctx.db.infra.remove_zone(zone.id)
    ctx.announce(EventInfo(f"Successfully deleted zone. Zone Id: {zone.uuid}", "Zone", zone.uuid, zone.name))
    return SuccessResult()

