"""Service and disk offering commands: create, list, update and delete each, and their response objects.

Visibility as CloudStack's: a public offering (no domain) is offered to every caller; one limited to
domains to the accounts of those domains and of the domains below them (and to the admins above).
System offerings (`issystem=true`) are listed only when asked for, and only to the root admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from cloudd.api import access
from cloudd.api.access import domain_param
from cloudd.api.binding import bad_entity
from cloudd.api.context import CallContext, Caller
from cloudd.api.entities import Entity
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.infra_entities import ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.base import NotFound
from cloudd.db.offerings import DiskOffering, Link, OfferingFilter, ServiceOffering
from cloudd.errors import invalid_value
from cloudd.orchestration.context import Services

P = Param
GB = 1024 ** 3
INT_MAX = 2 ** 31 - 1
STORAGE_TYPES = ("shared", "local")
PROVISIONING_TYPES = ("thin", "sparse", "fat")
CACHE_MODES = ("none", "writeback", "writethrough", "hypervisor_default")
SYSTEM_VM_TYPES = ("domainrouter", "consoleproxy", "secondarystoragevm", "internalloadbalancervm")
# (parameter, column, response field, what it limits)
RATES = (
    ("bytesreadrate", "bytes_read_rate", "diskBytesReadRate", "bytes read rate"),
    ("bytesreadratemax", "bytes_read_rate_max", "diskBytesReadRateMax", "burst bytes read rate"),
    ("bytesreadratemaxlength", "bytes_read_rate_max_length", "diskBytesReadRateMaxLength",
     "length (in seconds) of the bytes read burst"),
    ("byteswriterate", "bytes_write_rate", "diskBytesWriteRate", "bytes write rate"),
    ("byteswriteratemax", "bytes_write_rate_max", "diskBytesWriteRateMax", "burst bytes write rate"),
    ("byteswriteratemaxlength", "bytes_write_rate_max_length", "diskBytesWriteRateMaxLength",
     "length (in seconds) of the bytes write burst"),
    ("iopsreadrate", "iops_read_rate", "diskIopsReadRate", "io requests read rate"),
    ("iopsreadratemax", "iops_read_rate_max", "diskIopsReadRateMax", "burst io requests read rate"),
    ("iopsreadratemaxlength", "iops_read_rate_max_length", "diskIopsReadRateMaxLength",
     "length (in seconds) of the io requests read burst"),
    ("iopswriterate", "iops_write_rate", "diskIopsWriteRate", "io requests write rate"),
    ("iopswriteratemax", "iops_write_rate_max", "diskIopsWriteRateMax", "burst io requests write rate"),
    ("iopswriteratemaxlength", "iops_write_rate_max_length", "diskIopsWriteRateMaxLength",
     "length (in seconds) of the io requests write burst"),
)


# --- entities -------------------------------------------------------------------------------------

def offering_visible(caller: Caller, offering: ServiceOffering | DiskOffering) -> bool:
    """Public offerings to everyone; domain offerings to their domains' subtrees and the admins above."""
    if caller.is_root_admin or not offering.domains:
        return True
    mine = caller.domain_path
    return any(mine.startswith(d.path) or (caller.is_admin and d.path.startswith(mine))
               for d in offering.domains)


async def _service_offering(s: Services, uuid: str) -> Any:
    return await s.db.offerings.get_service_offering_by_uuid(uuid)


async def _disk_offering(s: Services, uuid: str) -> Any:
    return await s.db.offerings.get_disk_offering_by_uuid(uuid)


async def _domain(s: Services, uuid: str) -> Any:
    return await s.db.domains.get_by_uuid(uuid)


SERVICE_OFFERING = Entity("ServiceOffering", _service_offering, offering_visible)
DISK_OFFERING = Entity("DiskOffering", _disk_offering, offering_visible)
# domains named by an offering's domainid list: those the caller may see
_DOMAIN = Entity("Domain", _domain,
                 lambda caller, d: d.state == "Active" and access.can_see_domain(caller, d))


# --- response objects -----------------------------------------------------------------------------

def _ids(links: tuple[Link, ...]) -> str | None:
    return ",".join(link.uuid for link in links) or None


def _names(links: tuple[Link, ...]) -> str | None:
    return ",".join(link.name for link in links) or None


def _rate_fields(what: str) -> list[Out]:
    return [Out(field, f"{desc} of the {what}", "long", source=column) for _, column, field, desc in RATES]


def _details(o: ServiceOffering) -> dict[str, str] | None:
    bounds = (("mincpunumber", o.min_cpu), ("maxcpunumber", o.max_cpu), ("minmemory", o.min_memory),
              ("maxmemory", o.max_memory))
    details = {k: str(v) for k, v in bounds if v is not None}
    return details or None


SERVICE_OFFERING_OBJ = ResponseObject(
    "serviceoffering",
    Out("id", "the id of the service offering", source="uuid"),
    Out("name", "the name of the service offering"),
    Out("displaytext", "an alternate display text of the service offering.", source="display_text"),
    Out("cpunumber", "the number of CPU", "integer", source="cpu"),
    Out("cpuspeed", "the clock rate CPU speed in Mhz", "integer", source="speed"),
    Out("memory", "the memory in MB", "integer", source="ram_size"),
    Out("created", "the date this service offering was created", "date"),
    Out("storagetype", "the storage type for this service offering", source="storage_type"),
    Out("provisioningtype", "provisioning type used to create volumes. Valid values are thin, sparse, fat.",
        source="provisioning_type"),
    Out("offerha", "the ha support in the service offering", "boolean", source="offer_ha"),
    Out("limitcpuuse", "restrict the CPU usage to committed service offering", "boolean",
        source="limit_cpu_use"),
    Out("isvolatile", "true if the vm needs to be volatile, i.e., on every reboot of vm from API root disk "
        "is discarded and creates a new root disk", "boolean", source="is_volatile"),
    Out("storagetags", "the tags for the service offering", source="tags"),
    Out("domainid", "the domain ID(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _ids(o.domains)),
    Out("domain", "the domain name(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _names(o.domains)),
    Out("zoneid", "the zone ID(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _ids(o.zones)),
    Out("zone", "the zone name(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _names(o.zones)),
    Out("hosttags", "the host tag for the service offering", source="host_tags"),
    Out("issystem", "is this a system vm offering", "boolean", source="is_system"),
    Out("defaultuse", "is this a  default system vm offering", "boolean", source="default_use"),
    Out("systemvmtype", "is this a the systemvm type for system vm offering", source="system_vm_type"),
    Out("networkrate", "data transfer rate in megabits per second allowed.", "integer",
        source="network_rate"),
    Out("iscustomizediops", "true if disk offering uses custom iops, false otherwise", "boolean",
        source="customized_iops"),
    Out("miniops", "the min iops of the disk offering", "long", source="min_iops"),
    Out("maxiops", "the max iops of the disk offering", "long", source="max_iops"),
    Out("hypervisorsnapshotreserve", "Hypervisor snapshot reserve space as a percent of a volume (for "
        "managed storage using Xen or VMware)", "integer", source="hypervisor_snapshot_reserve"),
    *_rate_fields("service offering"),
    Out("deploymentplanner", "deployment strategy used to deploy VM.", source="deployment_planner"),
    Out("serviceofferingdetails", "additional key/value details tied with this service offering", "map",
        source=_details),
    Out("iscustomized", "is true if the offering is customized", "boolean", source="customized"),
    Out("cacheMode", "the cache mode to use for this disk offering. none, writeback or writethrough",
        source="cache_mode"),
    Out("rootdisksize", "Root disk size in GB", "long", source="root_disk_size"),
    Out("dynamicscalingenabled", "true if virtual machine needs to be dynamically scalable of cpu or memory",
        "boolean", source="dynamic_scaling_enabled"),
    Out("diskofferingstrictness", "True/False to indicate the strictness of the disk offering association "
        "with the compute offering. When set to true, override of disk offering is not allowed when VM is "
        "deployed and change disk offering is not allowed for the ROOT disk after the VM is deployed",
        "boolean", source="disk_offering_strictness"),
    Out("diskofferingid", "the ID of the disk offering to which service offering is linked",
        source="disk_offering.uuid"),
    Out("diskofferingname", "name of the disk offering", source="disk_offering.name"),
    Out("diskofferingdisplaytext", "the display text of the disk offering",
        source="disk_offering_display_text"),
    Out("encryptroot", "true if virtual machine root disk will be encrypted on storage", "boolean",
        source="encrypt_root"),
    Out("hasannotations", "true if the entity/resource has annotations", "boolean", source=lambda o: False),
)

DISK_OFFERING_OBJ = ResponseObject(
    "diskoffering",
    Out("id", "unique ID of the disk offering", source="uuid"),
    Out("domainid", "the domain ID(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _ids(o.domains)),
    Out("domain", "the domain name(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _names(o.domains)),
    Out("zoneid", "the zone ID(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _ids(o.zones)),
    Out("zone", "the zone name(s) this disk offering belongs to. Ignore this information as it is not "
        "currently applicable.", source=lambda o: _names(o.zones)),
    Out("name", "the name of the disk offering"),
    Out("displaytext", "an alternate display text of the disk offering.", source="display_text"),
    Out("disksize", "the size of the disk offering in GB", "long", source=lambda o: o.disk_size // GB),
    Out("created", "the date this disk offering was created", "date"),
    Out("iscustomized", "true if disk offering uses custom size, false otherwise", "boolean",
        source="customized"),
    Out("iscustomizediops", "true if disk offering uses custom iops, false otherwise", "boolean",
        source="customized_iops"),
    Out("miniops", "the min iops of the disk offering", "long", source="min_iops"),
    Out("maxiops", "the max iops of the disk offering", "long", source="max_iops"),
    Out("hypervisorsnapshotreserve", "Hypervisor snapshot reserve space as a percent of a volume (for "
        "managed storage using Xen or VMware)", "integer", source="hypervisor_snapshot_reserve"),
    Out("tags", "the tags for the disk offering"),
    Out("storagetype", "the storage type for this disk offering", source="storage_type"),
    Out("provisioningtype", "provisioning type used to create volumes. Valid values are thin, sparse, fat.",
        source="provisioning_type"),
    *_rate_fields("disk offering"),
    Out("cacheMode", "the cache mode to use for this disk offering. none, writeback or writethrough",
        source="cache_mode"),
    Out("displayoffering", "whether to display the offering to the end user or not.", "boolean",
        source="display_offering"),
    Out("disksizestrictness", "To allow or disallow the resize operation on the disks created from this disk "
        "offering, if the flag is true then resize is not allowed", "boolean", source="disk_size_strictness"),
    Out("encrypt", "Whether disks using this offering will be encrypted on primary storage", "boolean"),
    Out("hasannotations", "true if the entity/resource has annotations", "boolean", source=lambda o: False),
)

SUCCESS = doc("success", *SUCCESS_FIELDS)


@dataclass(frozen=True)
class _Kind:
    """How the commands of one kind of offering name it in texts, events and responses."""

    what: str
    event_type: str
    response: ResponseObject


SERVICE = _Kind("service offering", "ServiceOffering", SERVICE_OFFERING_OBJ)
DISK = _Kind("disk offering", "DiskOffering", DISK_OFFERING_OBJ)


# --- shared parameter handling --------------------------------------------------------------------

def _rate_params(what: str) -> list[Param]:
    return [P(param, "long", f"{desc} of the {what}") for param, _, _, desc in RATES]


def _storage_params(what: str) -> list[Param]:
    """The parameters `_disk_values` reads, as both create commands declare them (`what`: which
    offering their IOPS texts name)."""
    return [*_rate_params("disk offering"),
            P("customizediops", "boolean", f"whether {what} iops is custom or not", since="4.4"),
            P("miniops", "long", f"min iops of the {what}", since="4.4"),
            P("maxiops", "long", f"max iops of the {what}", since="4.4"),
            P("hypervisorsnapshotreserve", "integer", "Hypervisor snapshot reserve space as a percent "
              "of a volume (for managed storage using Xen or VMware)", since="4.4"),
            P("cachemode", description="the cache mode to use for this disk offering. none, writeback "
              "or writethrough", since="4.14")]


def _choice(name: str, value: str | None, choices: tuple[str, ...], default: str | None = None) -> str | None:
    if value is None:
        return default
    if value.lower() not in choices:
        raise invalid_value(f"Invalid {name} {value} specified, valid values are: {', '.join(choices)}")
    return value.lower()


def _storage_type(value: str | None) -> str:
    if value is None:
        return "shared"
    if value.lower() not in STORAGE_TYPES:
        raise invalid_value(f"Invalid storage type {value} specified, valid types are: 'local' and 'shared'")
    return value.lower()


def _tags(value: str | None) -> str | None:
    """Comma-separated tags, blanks dropped; None when there are none."""
    if value is None:
        return None
    tags = [t.strip() for t in value.split(",") if t.strip()]
    return ",".join(dict.fromkeys(tags)) or None


def _disk_values(ctx: CallContext, what: str) -> dict[str, Any]:
    """The storage settings both kinds of offering take (rates, IOPS, cache mode, reserve)."""
    values: dict[str, Any] = {}
    for param, column, _, _ in RATES:
        rate = ctx.get(param)
        if rate is not None:
            if rate < 0:
                raise invalid_value(f"{param} of the {what} must not be negative")
            values[column] = rate
    for kind in ("bytes", "iops"):
        for op in ("read", "write"):
            rate, burst = values.get(f"{kind}_{op}_rate"), values.get(f"{kind}_{op}_rate_max")
            if rate and burst and burst < rate:
                raise invalid_value(f"{kind.capitalize()} {op} rate ({rate}) cannot be greater than {kind} "
                                    f"{op} rate max ({burst})")
    if ctx.get("customizediops") is not None:
        values["customized_iops"] = bool(ctx.get("customizediops"))
    min_iops, max_iops = ctx.get("miniops"), ctx.get("maxiops")
    for name, iops in (("miniops", min_iops), ("maxiops", max_iops)):
        if iops is not None and iops < 0:
            raise invalid_value(f"The {name} value must be a positive number")
    if min_iops is not None and max_iops is not None and min_iops > max_iops:
        raise invalid_value("The min IOPS must be less than or equal to the max IOPS.")
    if min_iops is not None:
        values["min_iops"] = min_iops
    if max_iops is not None:
        values["max_iops"] = max_iops
    reserve = ctx.get("hypervisorsnapshotreserve")
    if reserve is not None:
        if reserve < 0:
            raise invalid_value("If provided, Hypervisor Snapshot Reserve must be greater than or equal to "
                                "0.")
        values["hypervisor_snapshot_reserve"] = reserve
    if ctx.get("cachemode") is not None:
        values["cache_mode"] = _choice("cache mode", ctx.get("cachemode"), CACHE_MODES)
    return values


async def _scope_strings(ctx: CallContext) -> tuple[list[int] | None, list[int] | None]:
    """updateServiceOffering/updateDiskOffering `domainid` ("public" or comma-separated UUIDs) and
    `zoneid` ("all" or comma-separated UUIDs); None where not given."""
    domain_ids: list[int] | None = None
    zone_ids: list[int] | None = None
    cmd = ctx.command
    raw = ctx.get("domainid")
    if raw is not None:
        domain_ids = []
        if raw.strip().lower() != "public":
            for uuid in (u.strip() for u in raw.split(",") if u.strip()):
                domain = await _DOMAIN.resolve(ctx.services, ctx.caller, uuid)
                if domain is None:
                    raise bad_entity(cmd, uuid, cmd.param_index["domainid"])
                domain_ids.append(domain.id)
    raw = ctx.get("zoneid")
    if raw is not None:
        zone_ids = []
        if raw.strip().lower() != "all":
            for uuid in (u.strip() for u in raw.split(",") if u.strip()):
                zone = await ZONE.resolve(ctx.services, ctx.caller, uuid)
                if zone is None:
                    raise bad_entity(cmd, uuid, cmd.param_index["zoneid"])
                zone_ids.append(zone.id)
    return domain_ids, zone_ids


def _name(value: str | None, what: str) -> str:
    name = (value or "").strip()
    if not name:
        raise invalid_value(f"The {what} name must not be empty")
    return name


def _links(ctx: CallContext) -> tuple[list[int], list[int]]:
    """The ids of a new offering's `domainid` and `zoneid` lists (empty: public, every zone)."""
    return [d.id for d in ctx.get("domainid") or []], [z.id for z in ctx.get("zoneid") or []]


def _update_values(ctx: CallContext, kind: _Kind) -> dict[str, Any]:
    """The `name`, `displaytext` and `sortkey` an update of either kind of offering may change."""
    values: dict[str, Any] = {}
    if ctx.get("name") is not None:
        values["name"] = _name(ctx.get("name"), kind.what)
    if ctx.get("displaytext") is not None:
        values["display_text"] = ctx.get("displaytext")
    if ctx.get("sortkey") is not None:
        values["sort_key"] = ctx.get("sortkey")
    return values


def _announce(ctx: CallContext, kind: _Kind, done: str, offering: ServiceOffering | DiskOffering) -> None:
    ctx.announce(EventInfo(f"Successfully {done} {kind.what}. {kind.what.capitalize()} Id: {offering.uuid}",
                           kind.event_type, offering.uuid, offering.name))


def _written(ctx: CallContext, kind: _Kind, done: str, offering: ServiceOffering | DiskOffering) -> Result:
    """The event of an offering created or updated, and the offering as the command's answer."""
    _announce(ctx, kind, done, offering)
    return ObjectResult(kind.response.name, kind.response.render(offering))


async def _delete(ctx: CallContext, kind: _Kind, offering: ServiceOffering | DiskOffering,
                  remove: Callable[[int], Awaitable[None]], missing: str) -> Result:
    """Remove an offering (431 with `missing` when it went meanwhile) and say so."""
    try:
        await remove(offering.id)
    except NotFound:
        raise invalid_value(missing) from None
    _announce(ctx, kind, "deleted", offering)
    return SuccessResult()


async def _visibility(ctx: CallContext) -> OfferingFilter:
    """The domain visibility of a list, with its `id`, `name`, `keyword`, `domainid` and `zoneid`."""
    caller = ctx.caller
    f = OfferingFilter(name=ctx.get("name"), keyword=ctx.get("keyword"))
    if not caller.is_root_admin:
        path = caller.domain_path
        ancestors = tuple(path[:i + 1] for i, ch in enumerate(path) if ch == "/")
        f = replace(f, ancestors=ancestors, subtree=path if caller.is_admin else None)
    domain = await domain_param(ctx, "domainid")
    if domain is not None:
        f = replace(f, domain_id=domain.id, domain_path=domain.path if ctx.get("isrecursive") else None)
    if ctx.get("zoneid") is not None:
        f = replace(f, zone_id=ctx.get("zoneid").id)
    if ctx.get("id") is not None:
        f = replace(f, id=ctx.get("id").id)
    return f


def _not_yet(ctx: CallContext, name: str) -> None:
    """A parameter naming a VM or volume: until those exist, none exists, as CloudStack answers."""
    value = ctx.get(name)
    if value is not None:
        raise bad_entity(ctx.command, value, ctx.command.param_index[name])


# --- service offerings ----------------------------------------------------------------------------

def _bound(name: str, value: int | None, low: int, what: str) -> int | None:
    if value is not None and not low <= value <= INT_MAX:
        raise invalid_value(f"Failed to create service offering {what}: specify the {name} value between "
                            f"{low} and {INT_MAX}")
    return value


def _compute_values(ctx: CallContext, name: str) -> dict[str, Any]:
    """CPU, speed and memory of a new offering: fixed, or customized within optional bounds."""
    cpu, speed, memory = ctx.get("cpunumber"), ctx.get("cpuspeed"), ctx.get("memory")
    customized = ctx.get("customized")
    if customized is None:
        customized = cpu is None or memory is None
    bounds = {p: ctx.get(p) for p in ("mincpunumber", "maxcpunumber", "minmemory", "maxmemory")}
    if customized:
        if cpu is not None or memory is not None:
            raise invalid_value(f"Failed to create service offering {name}: cpunumber and memory are chosen "
                                "when the VM is deployed for a customized offering; bound them with "
                                "mincpunumber, maxcpunumber, minmemory and maxmemory")
        _bound("minimum cpu number", bounds["mincpunumber"], 1, name)
        _bound("maximum cpu number", bounds["maxcpunumber"], 1, name)
        _bound("minimum memory", bounds["minmemory"], 32, name)
        _bound("maximum memory", bounds["maxmemory"], 32, name)
        for low, high, what in (("mincpunumber", "maxcpunumber", "cpu number"),
                                ("minmemory", "maxmemory", "memory")):
            if bounds[low] is not None and bounds[high] is not None and bounds[low] > bounds[high]:
                raise invalid_value(f"Failed to create service offering {name}: the minimum {what} "
                                    f"({bounds[low]}) must not be greater than the maximum ({bounds[high]})")
        _bound("cpu speed", speed, 1, name)
        return {"cpu": None, "speed": speed, "ram_size": None, "min_cpu": bounds["mincpunumber"],
                "max_cpu": bounds["maxcpunumber"], "min_memory": bounds["minmemory"],
                "max_memory": bounds["maxmemory"]}
    given = [p for p, v in bounds.items() if v is not None]
    if given:
        raise invalid_value(f"Failed to create service offering {name}: {', '.join(given)} may be given only "
                            "for a customized offering")
    if cpu is None or not 1 <= cpu <= INT_MAX:
        raise invalid_value(f"Failed to create service offering {name}: specify the cpu number value between "
                            f"1 and {INT_MAX}")
    if speed is None or not 1 <= speed <= INT_MAX:
        raise invalid_value(f"Failed to create service offering {name}: specify the cpu speed value between "
                            f"1 and {INT_MAX}")
    if memory is None or not 32 <= memory <= INT_MAX:
        raise invalid_value(f"Failed to create service offering {name}: specify the memory value between 32 "
                            f"and {INT_MAX} MB")
    return {"cpu": cpu, "speed": speed, "ram_size": memory}


COMPUTE_PARAMS = [
    P("cpunumber", "integer", "the CPU number of the service offering"),
    P("cpuspeed", "integer", "the CPU speed of the service offering in MHz."),
    P("memory", "integer", "the total memory of the service offering in MB"),
    P("customized", "boolean", "Whether service offering size is custom or not", since="4.18.0"),
    P("mincpunumber", "integer", "The minimum number of CPUs to be set with Custom Compute Offering",
      since="4.13"),
    P("maxcpunumber", "integer", "The maximum number of CPUs to be set with Custom Compute Offering",
      since="4.13"),
    P("minmemory", "integer", "The minimum memory size of the custom service offering in MB", since="4.13"),
    P("maxmemory", "integer", "The maximum memory size of the custom service offering in MB", since="4.13"),
]


@command("createServiceOffering", description="Creates a service offering.", roles=ROOT,
         response=SERVICE_OFFERING_OBJ, event="SERVICE.OFFERING.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.offering.CreateServiceOfferingCmd",
         params=[P("name", description="the name of the service offering", required=True),
                 P("displaytext", description="The display text of the service offering, defaults to 'name'.",
                   length=4096),
                 *COMPUTE_PARAMS,
                 P("storagetype", description="the storage type of the service offering. Values are local "
                   "and shared."),
                 P("provisioningtype", description="provisioning type used to create volumes. Valid values "
                   "are thin, sparse, fat."),
                 P("offerha", "boolean", "the HA for the service offering"),
                 P("limitcpuuse", "boolean", "restrict the CPU usage to committed service offering"),
                 P("isvolatile", "boolean", "true if the virtual machine needs to be volatile so that on "
                   "every reboot of VM, original root disk is dettached then destroyed and a fresh root "
                   "disk is created and attached to VM"),
                 P("tags", description="the tags for this service offering.", length=1024),
                 P("domainid", "list", "the ID of the containing domain(s), null for public offerings",
                   element=_DOMAIN, related="listDomains"),
                 P("zoneid", "list", "the ID of the containing zone(s), null for public offerings",
                   element=ZONE, since="4.13", related="listZones"),
                 P("hosttags", description="the host tag for this service offering.", length=1024),
                 P("issystem", "boolean", "is this a system vm offering"),
                 P("systemvmtype", description="the system VM type. Possible types are \"domainrouter\", "
                   "\"consoleproxy\" and \"secondarystoragevm\"."),
                 P("isdefaultuse", "boolean", "set offering as a default one"),
                 P("networkrate", "integer", "data transfer rate in megabits per second allowed. Supported "
                   "only for non-System offering and system offerings having \"domainrouter\" systemvmtype"),
                 P("deploymentplanner", description="The deployment planner heuristics used to deploy a VM "
                   "of this offering. If null, value of global config vm.deployment.planner is used"),
                 P("serviceofferingdetails", "map", "details for planner, used to store specific parameters"),
                 P("rootdisksize", "long", "the Root disk size in GB.", since="4.15"),
                 *_storage_params("compute offering"),
                 P("storagepolicy", "uuid", "Name of the storage policy defined at vCenter, this is "
                   "applicable only for VMware", since="4.15"),
                 P("dynamicscalingenabled", "boolean", "true if virtual machine needs to be dynamically "
                   "scalable of cpu or memory", since="4.16"),
                 P("diskofferingid", DISK_OFFERING, "the ID of the disk offering to which service offering "
                   "should be mapped", since="4.17", related="listDiskOfferings"),
                 P("diskofferingstrictness", "boolean", "True/False to indicate the strictness of the disk "
                   "offering association with the compute offering. When set to true, override of disk "
                   "offering is not allowed when VM is deployed and change disk offering is not allowed for "
                   "the ROOT disk after the VM is deployed", since="4.17"),
                 P("encryptroot", "boolean", "VMs using this offering require root volume encryption",
                   since="4.18")])
async def create_service_offering(ctx: CallContext) -> Result:
    name = _name(ctx.get("name"), "service offering")
    values: dict[str, Any] = {"name": name, "display_text": (ctx.get("displaytext") or "").strip() or name}
    values.update(_compute_values(ctx, name))
    values["storage_type"] = _storage_type(ctx.get("storagetype"))
    values["provisioning_type"] = _choice("provisioning type", ctx.get("provisioningtype"),
                                          PROVISIONING_TYPES, "thin")
    is_system = bool(ctx.get("issystem"))
    vm_type = ctx.get("systemvmtype")
    if is_system:
        vm_type = _choice("system vm type", vm_type or "domainrouter", SYSTEM_VM_TYPES)
    elif vm_type is not None:
        raise invalid_value("The systemvmtype may be given only for a system offering (issystem=true)")
    rate = ctx.get("networkrate")
    if rate is not None:
        if is_system and vm_type != "domainrouter":
            raise invalid_value("Network rate can be specified only for non-System offering and system "
                                "offerings having \"domainrouter\" systemvmtype")
        if rate < 0:
            raise invalid_value("Network rate must not be negative")
    root = ctx.get("rootdisksize")
    if root is not None and root <= 0:
        raise invalid_value("The Root disk size is of 0 GB or less, it must be at least 1 GB")
    disk: DiskOffering | None = ctx.get("diskofferingid")
    values.update(
        offer_ha=bool(ctx.get("offerha")), limit_cpu_use=bool(ctx.get("limitcpuuse")),
        is_volatile=bool(ctx.get("isvolatile")), tags=_tags(ctx.get("tags")),
        host_tags=_tags(ctx.get("hosttags")),
        is_system=is_system, system_vm_type=vm_type, default_use=bool(ctx.get("isdefaultuse")) and is_system,
        network_rate=rate, deployment_planner=ctx.get("deploymentplanner"), root_disk_size=root,
        dynamic_scaling_enabled=ctx.get("dynamicscalingenabled") is not False,
        disk_offering_id=disk.id if disk is not None else None,
        disk_offering_strictness=bool(ctx.get("diskofferingstrictness")),
        encrypt_root=bool(ctx.get("encryptroot")))
    values.update(_disk_values(ctx, "service offering"))
    offering = await ctx.db.offerings.create_service_offering(values, *_links(ctx))
    return _written(ctx, SERVICE, "created", offering)


@command("listServiceOfferings", description="Lists all available service offerings.", roles=ALL,
         response=SERVICE_OFFERING_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.user.offering.ListServiceOfferingsCmd",
         params=[P("id", SERVICE_OFFERING, "ID of the service offering", related="listServiceOfferings"),
                 P("name", description="name of the service offering"),
                 P("domainid", "uuid", "the ID of the domain associated with the service offering",
                   related="listDomains"),
                 P("isrecursive", "boolean", "defaults to false, but if true, lists all resources from the "
                   "parent specified by the domainId till leaves."),
                 P("listall", "boolean", "If set to false, list only resources belonging to the command's "
                   "caller; if set to true - list resources that the caller is authorized to see. Default "
                   "value is false"),
                 P("virtualmachineid", "uuid", "the ID of the virtual machine. Pass this in if you want to "
                   "see the available service offering that a virtual machine can be changed to.",
                   related="listVirtualMachines"),
                 P("issystem", "boolean", "is this a system vm offering"),
                 P("systemvmtype", description="the system VM type. Possible types are \"consoleproxy\", "
                   "\"secondarystoragevm\" or \"domainrouter\"."),
                 P("zoneid", ZONE, "id of zone disk offering is associated with", since="4.13",
                   related="listZones"),
                 P("cpunumber", "integer", "the CPU number that listed offerings must support", since="4.15"),
                 P("memory", "integer", "the RAM memory that listed offering must support", since="4.15"),
                 P("cpuspeed", "integer", "the CPU speed that listed offerings must support", since="4.15")])
async def list_service_offerings(ctx: CallContext) -> Result:
    _not_yet(ctx, "virtualmachineid")
    is_system = bool(ctx.get("issystem"))
    if is_system and not ctx.caller.is_root_admin:
        raise invalid_value("Only ROOT admins can access system's offering")
    vm_type = ctx.get("systemvmtype")
    if vm_type is not None and not is_system:
        raise invalid_value("System VM type is applicable only for system offerings (issystem=true)")
    for p, low in (("cpunumber", 1), ("memory", 1), ("cpuspeed", 1)):
        if ctx.get(p) is not None and ctx.get(p) < low:
            raise invalid_value(f"The {p} must be a positive number")
    f = replace(await _visibility(ctx), is_system=is_system, system_vm_type=vm_type, cpu=ctx.get("cpunumber"),
                memory=ctx.get("memory"), speed=ctx.get("cpuspeed"))
    total, offerings = await ctx.db.offerings.search_service_offerings(f, page_of(ctx))
    return ListResult("serviceoffering", [SERVICE_OFFERING_OBJ.render(o) for o in offerings], total)


SCOPE_UPDATE_PARAMS = [
    P("domainid", description="the ID of the containing domain(s) as comma separated string, public for "
      "public offerings", length=4096, since="4.13"),
    P("zoneid", description="the ID of the containing zone(s) as comma separated string, all for all zones "
      "offerings", length=4096, since="4.13"),
]


@command("updateServiceOffering", description="Updates a service offering.", roles=ROOT,
         response=SERVICE_OFFERING_OBJ, event="SERVICE.OFFERING.EDIT",
         java_class="org.apache.cloudstack.api.command.admin.offering.UpdateServiceOfferingCmd",
         params=[P("id", SERVICE_OFFERING, "the ID of the service offering to be updated", required=True,
                   related="listServiceOfferings"),
                 P("name", description="the name of the service offering to be updated"),
                 P("displaytext", description="the display text of the service offering to be updated",
                   length=4096),
                 P("sortkey", "integer", "sort key of the service offering, integer"),
                 *SCOPE_UPDATE_PARAMS,
                 P("storagetags", description="comma-separated list of tags for the service offering, tags "
                   "should match with existing storage pool tags", length=1024, since="4.16"),
                 P("hosttags", description="comma-separated list of tags for the service offering, tags "
                   "should match with existing storage pool tags", length=1024, since="4.16")])
async def update_service_offering(ctx: CallContext) -> Result:
    offering: ServiceOffering = ctx.get("id")
    values = _update_values(ctx, SERVICE)
    if ctx.get("storagetags") is not None:
        values["tags"] = _tags(ctx.get("storagetags"))
    if ctx.get("hosttags") is not None:
        values["host_tags"] = _tags(ctx.get("hosttags"))
    domains, zones = await _scope_strings(ctx)
    if offering.is_system and (domains or zones):
        raise invalid_value("System service offerings cannot be limited to domains or zones")
    updated = await ctx.db.offerings.update_service_offering(offering.id, values, domains, zones)
    return _written(ctx, SERVICE, "updated", updated)


@command("deleteServiceOffering", description="Deletes a service offering.", roles=ROOT, response=SUCCESS,
         event="SERVICE.OFFERING.DELETE",
         java_class="org.apache.cloudstack.api.command.admin.offering.DeleteServiceOfferingCmd",
         params=[P("id", SERVICE_OFFERING, "the ID of the service offering", required=True,
                   related="listServiceOfferings")])
async def delete_service_offering(ctx: CallContext) -> Result:
    offering: ServiceOffering = ctx.get("id")
    if offering.default_use:
        raise invalid_value("Default service offerings cannot be deleted")
    return await _delete(ctx, SERVICE, offering, ctx.db.offerings.remove_service_offering,
                         f"unable to find service offering {offering.uuid}")


# --- disk offerings -------------------------------------------------------------------------------

@command("createDiskOffering", description="Creates a disk offering.", roles=ROOT, response=DISK_OFFERING_OBJ,
         event="DISK.OFFERING.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.offering.CreateDiskOfferingCmd",
         params=[P("name", description="name of the disk offering", required=True),
                 P("displaytext", description="An alternate display text of the disk offering, defaults to "
                   "'name'.", length=4096),
                 P("disksize", "long", "size of the disk offering in GB (1GB = 1,073,741,824 bytes)"),
                 P("customized", "boolean", "whether disk offering size is custom or not"),
                 P("tags", description="tags for the disk offering", length=1024),
                 P("domainid", "list", "the ID of the containing domain(s), null for public offerings",
                   element=_DOMAIN, related="listDomains"),
                 P("zoneid", "list", "the ID of the containing zone(s), null for public offerings",
                   element=ZONE, since="4.13", related="listZones"),
                 P("storagetype", description="the storage type of the disk offering. Values are local and "
                   "shared."),
                 P("provisioningtype", description="provisioning type used to create volumes. Valid values "
                   "are thin, sparse, fat."),
                 *_storage_params("disk offering"),
                 P("displayoffering", "boolean", "an optional field, whether to display the offering to the "
                   "end user or not."),
                 P("storagepolicy", "uuid", "Name of the storage policy defined at vCenter, this is "
                   "applicable only for VMware", since="4.15"),
                 P("disksizestrictness", "boolean", "To allow or disallow the resize operation on the disks "
                   "created from this disk offering, if the flag is true then resize is not allowed",
                   since="4.17"),
                 P("encrypt", "boolean", "Volumes using this offering should be encrypted", since="4.18"),
                 P("details", "map", "details to specify disk offering parameters", since="4.16")])
async def create_disk_offering(ctx: CallContext) -> Result:
    name = _name(ctx.get("name"), "disk offering")
    size, customized = ctx.get("disksize"), bool(ctx.get("customized"))
    low = ctx.api.settings.int("custom.diskoffering.size.min")
    high = ctx.api.settings.int("custom.diskoffering.size.max")
    if size is not None and size < 1:
        raise invalid_value("Please specify a disk size of at least 1 Gb.")
    if size is not None and size > high:
        raise invalid_value(f"The maximum size for a disk is {high} Gb.")
    if customized and size is not None:
        raise invalid_value("Disksize is not allowed for a customized disk offering: the size is chosen "
                            f"when the volume is created (between {low} and {high} GB)")
    if not customized and size is None:
        raise invalid_value("Disksize is required for a non-customized disk offering")
    values: dict[str, Any] = {
        "name": name, "display_text": (ctx.get("displaytext") or "").strip() or name,
        "disk_size": (size or 0) * GB, "customized": customized,
        "storage_type": _storage_type(ctx.get("storagetype")),
        "provisioning_type": _choice("provisioning type", ctx.get("provisioningtype"), PROVISIONING_TYPES,
                                     "thin"),
        "tags": _tags(ctx.get("tags")), "display_offering": ctx.get("displayoffering") is not False,
        "disk_size_strictness": bool(ctx.get("disksizestrictness")), "encrypt": bool(ctx.get("encrypt")),
    }
    values.update(_disk_values(ctx, "disk offering"))
    offering = await ctx.db.offerings.create_disk_offering(values, *_links(ctx))
    return _written(ctx, DISK, "created", offering)


@command("listDiskOfferings", description="Lists all available disk offerings.", roles=ALL,
         response=DISK_OFFERING_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.user.offering.ListDiskOfferingsCmd",
         params=[P("id", DISK_OFFERING, "ID of the disk offering", related="listDiskOfferings"),
                 P("name", description="name of the disk offering"),
                 P("domainid", "uuid", "the ID of the domain of the disk offering.", related="listDomains"),
                 P("isrecursive", "boolean", "defaults to false, but if true, lists all resources from the "
                   "parent specified by the domainId till leaves."),
                 P("listall", "boolean", "If set to false, list only resources belonging to the command's "
                   "caller; if set to true - list resources that the caller is authorized to see. Default "
                   "value is false"),
                 P("zoneid", ZONE, "id of zone disk offering is associated with", since="4.13",
                   related="listZones"),
                 P("volumeid", "uuid", "The ID of the volume, tags of the volume are used to filter the "
                                       "offerings",
                   since="4.17", related="listVolumes"),
                 P("storagetype", description="the storage type of the disk offering. Values are local and "
                   "shared.", since="4.19")])
async def list_disk_offerings(ctx: CallContext) -> Result:
    _not_yet(ctx, "volumeid")
    f = await _visibility(ctx)
    if ctx.get("storagetype") is not None:
        f = replace(f, storage_type=_storage_type(ctx.get("storagetype")))
    # offerings an operator keeps from the end users' view (displayoffering=false)
    f = replace(f, displayed_only=not ctx.caller.is_admin)
    total, offerings = await ctx.db.offerings.search_disk_offerings(f, page_of(ctx))
    return ListResult("diskoffering", [DISK_OFFERING_OBJ.render(o) for o in offerings], total)


@command("updateDiskOffering", description="Updates a disk offering.", roles=ROOT, response=DISK_OFFERING_OBJ,
         event="DISK.OFFERING.EDIT",
         java_class="org.apache.cloudstack.api.command.admin.offering.UpdateDiskOfferingCmd",
         params=[P("id", DISK_OFFERING, "ID of the disk offering", required=True,
                   related="listDiskOfferings"),
                 P("name", description="updates name of the disk offering with this value"),
                 P("displaytext", description="updates alternate display text of the disk offering with this "
                   "value", length=4096),
                 P("sortkey", "integer", "sort key of the disk offering, integer"),
                 P("displayoffering", "boolean", "an optional field, whether to display the offering to the "
                   "end user or not."),
                 *SCOPE_UPDATE_PARAMS,
                 P("tags", description="comma-separated list of tags for the disk offering, tags should "
                   "match with existing storage pool tags", length=1024, since="4.15"),
                 P("cachemode", description="the cache mode to use for this disk offering", since="4.15")])
async def update_disk_offering(ctx: CallContext) -> Result:
    offering: DiskOffering = ctx.get("id")
    values = _update_values(ctx, DISK)
    if ctx.get("displayoffering") is not None:
        values["display_offering"] = bool(ctx.get("displayoffering"))
    if ctx.get("tags") is not None:
        values["tags"] = _tags(ctx.get("tags"))
    if ctx.get("cachemode") is not None:
        values["cache_mode"] = _choice("cache mode", ctx.get("cachemode"), CACHE_MODES)
    domains, zones = await _scope_strings(ctx)
    updated = await ctx.db.offerings.update_disk_offering(offering.id, values, domains, zones)
    return _written(ctx, DISK, "updated", updated)


@command("deleteDiskOffering", description="Deletes a disk offering.", roles=ROOT, response=SUCCESS,
         event="DISK.OFFERING.DELETE",
         java_class="org.apache.cloudstack.api.command.admin.offering.DeleteDiskOfferingCmd",
         params=[P("id", DISK_OFFERING, "ID of the disk offering", required=True,
                   related="listDiskOfferings")])
async def delete_disk_offering(ctx: CallContext) -> Result:
    offering: DiskOffering = ctx.get("id")
    return await _delete(ctx, DISK, offering, ctx.db.offerings.remove_disk_offering,
                         f"Unable to find disk offering by id {offering.uuid}")
