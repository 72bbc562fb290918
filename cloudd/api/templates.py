"""Template and ISO commands: register, list (every templatefilter/isofilter), update, delete,
permissions, extract and copy. The work (downloads in each zone's ssvm, the poller) is in
`cloudd.orchestration.templates`; each listed row is a template in one zone, as CloudStack lists them.

Who sees a template: its owner, admins of its owner's domain or above, everyone when it is public,
and the accounts it is shared with (updateTemplatePermissions). Who changes it: its owner and those
admins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from appliance.messages.checksum import parse_checksum
from cloudd.api.access import account_by_name, domain_param
from cloudd.api.context import CallContext, Caller
from cloudd.api.entities import Entity
from cloudd.api.infra_entities import ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.ostypes import OS_TYPE
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.accounts import Account
from cloudd.db.base import Conflict, NotFound
from cloudd.db.images import Template, TemplateCopy, TemplateInZone, TemplateSearch
from cloudd.errors import internal, invalid_value, permission_denied
from cloudd.orchestration.context import JobContext, Services
from cloudd.orchestration.templates import Registration, status_text

P = Param

# CloudStack's ImageFormat values; those ssvm can check and store are accepted
KNOWN_FORMATS = ("QCOW2", "RAW", "VHD", "VHDX", "ISO", "OVA", "VMDK", "BAREMETAL", "TAR", "ZIP", "DIR")
STORED_FORMATS = ("QCOW2", "RAW", "VHD", "OVA", "ISO")
HYPERVISORS = ("KVM", "Simulator", "XenServer", "VMware", "Hyperv", "LXC", "Ovm3", "BareMetal", "External")
TEMPLATE_TYPES = ("USER", "BUILTIN", "SYSTEM", "ROUTING")
TEMPLATE_FILTERS = ("featured", "self", "selfexecutable", "sharedexecutable", "executable", "community", "all",
                    "system")
EXTRACT_MODES = ("HTTP_DOWNLOAD", "FTP_UPLOAD")


# -- entities and visibility --------------------------------------------------------------------------

async def _template(s: Services, uuid: str) -> Any:
    return await s.db.images.get_template_by_uuid(uuid)


def may_manage(caller: Caller, t: Template) -> bool:
    """The owner, admins of the owner's domain or above, the root admin."""
    if caller.is_root_admin or t.account_id == caller.account.id:
        return True
    return caller.is_admin and t.domain_path.startswith(caller.domain_path)


def _visible(caller: Caller, t: Any) -> bool:
    # shared templates are checked where they are used (the share is in the database)
    return t.public or t.featured or may_manage(caller, t)


TEMPLATE = Entity("Template", _template, _visible)
# a template shared with the caller is visible too: checked by `see_template`
TEMPLATE_ANY = Entity("Template", _template)


async def see_template(ctx: CallContext | JobContext, caller: Caller, t: Template) -> bool:
    if _visible(caller, t):
        return True
    return bool(await ctx.db.images.is_shared_with(t.id, caller.account.id))


# -- response objects ---------------------------------------------------------------------------------

def _t(name: str) -> Any:
    return lambda row: getattr(row.template, name)


def _c(name: str) -> Any:
    return lambda row: getattr(row.copy, name)


TAG_OBJ = ResponseObject(
    "tag", Out("key", "tag key name"), Out("value", "tag value"), Out("resourcetype", "resource type"),
    Out("resourceid", "id of the resource"), Out("account", "the account associated with the tag"),
    Out("domainid", "the ID of the domain associated with the tag"),
    Out("domain", "the domain associated with the tag"), Out("customer", "customer associated with the tag"))


def _template_fields(kind: str) -> tuple[Out, ...]:
    return (
        Out("id", f"the {kind} ID", source=_t("uuid")),
        Out("name", f"the {kind} name", source=_t("name")),
        Out("displaytext", f"the {kind} display text", source=_t("display_text")),
        Out("ispublic", f"true if this {kind} is a public {kind}, false otherwise", "boolean", source=_t("public")),
        Out("created", f"the date this {kind} was created", "date", source=_t("created")),
        Out("isready", f"true if the {kind} is ready to be deployed from, false otherwise.", "boolean",
            source=lambda row: row.copy.ready),
        Out("passwordenabled", "true if the reset password feature is enabled, false otherwise", "boolean",
            source=_t("password_enabled")),
        Out("format", f"the format of the {kind}.", source=_t("format")),
        Out("bootable", "true if the ISO is bootable, false otherwise", "boolean",
            source=lambda row: row.template.bootable if row.template.is_iso else None),
        Out("isfeatured", f"true if this {kind} is a featured {kind}, false otherwise", "boolean",
            source=_t("featured")),
        Out("crossZones", f"true if the {kind} is managed across all Zones, false otherwise", "boolean",
            source=_t("cross_zones")),
        Out("ostypeid", f"the ID of the OS type for this {kind}.", source=_t("os_type_uuid")),
        Out("ostypename", f"the name of the OS type for this {kind}.", source=_t("os_type_name")),
        Out("accountid", f"the account id to which the {kind} belongs", source=_t("account_uuid")),
        Out("account", f"the account name to which the {kind} belongs", source=_t("account_name")),
        Out("zoneid", f"the ID of the zone for this {kind}", source=_c("zone_uuid")),
        Out("zonename", f"the name of the zone for this {kind}", source=_c("zone_name")),
        Out("status", f"the status of the {kind}", source=lambda row: status_text(row.copy)),
        Out("size", f"the size of the {kind}", "long", source=_c("size")),
        Out("physicalsize", f"the physical size of the {kind}", "long", source=_c("physical_size")),
        Out("templatetype", f"the type of the {kind}", source=_t("template_type")),
        Out("hypervisor", f"the hypervisor on which the {kind} runs", source=_t("hypervisor")),
        Out("domain", f"the name of the domain to which the {kind} belongs", source=_t("domain_name")),
        Out("domainid", f"the ID of the domain to which the {kind} belongs", source=_t("domain_uuid")),
        Out("isextractable", f"true if the {kind} is extractable, false otherwise", "boolean",
            source=_t("extractable")),
        Out("checksum", f"checksum of the {kind}", source=_t("checksum")),
        Out("sourcetemplateid", "the template ID of the parent template if present", source=lambda row: None),
        Out("templatetag", f"the tag of this {kind}", source=_t("template_tag")),
        Out("details", f"additional key/value details tied with {kind}", "map",
            source=lambda row: row.template.details or None),
        Out("bits", "the processor bit size", "int", source=_t("bits")),
        Out("sshkeyenabled", f"true if {kind} is sshkey enabled, false otherwise", "boolean",
            source=_t("sshkey_enabled")),
        Out("isdynamicallyscalable", f"true if {kind} contains XS/VMWare tools inorder to support dynamic scaling "
            "of VM cpu/memory", "boolean", source=_t("dynamically_scalable")),
        Out("directdownload", f"KVM Only: true if {kind} is directly downloaded to Primary Storage bypassing "
            "Secondary Storage", "boolean", source=_t("direct_download")),
        Out("deployasis", f"VMware only: true if {kind} is deployed without orchestrating disks and networks but "
            "\"as-is\" defined in the template.", "boolean", source=_t("deploy_as_is")),
        Out("requireshvm", f"true if {kind} requires HVM enabled, false otherwise", "boolean",
            source=_t("requires_hvm")),
        Out("url", f"the URL which the {kind} was downloaded from", source=_t("url")),
        Out("downloaddetails", f"Lists the download progress of a {kind} across all secondary storages", "list",
            source=lambda row: [{"datastore": row.copy.zone_name, "downloadPercent": str(row.copy.percent),
                                 "downloadState": row.copy.state}]),
        Out("tags", "the list of resource tags associated", "set", source=lambda row: [], children=TAG_OBJ),
        Out("hasannotations", "true if the entity has annotations", "boolean", source=lambda row: False),
    )


TEMPLATE_OBJ = ResponseObject("template", *_template_fields("template"))
ISO_OBJ = ResponseObject("iso", *_template_fields("ISO"))

EXTRACT_FIELDS = (
    Out("id", "the id of extracted object"),
    Out("name", "the name of the extracted object"),
    Out("extractId", "the upload id of extracted object"),
    Out("uploadpercentage", "the percentage of the entity uploaded to the specified location", "integer"),
    Out("status", "the status of the extraction"),
    Out("accountid", "the account id to which the extracted object belongs"),
    Out("resultstring", "the result of the extraction"),
    Out("created", "the time and date the object was created", "date"),
    Out("state", "the state of the extracted object"),
    Out("storagetype", "type of the storage"),
    Out("storage", "the storage type"),
    Out("zoneid", "zone ID the object was extracted from"),
    Out("zonename", "zone name the object was extracted from"),
    Out("extractMode", "the mode of extraction - upload or download"),
    Out("url", "if mode = upload then url of the uploaded entity. if mode = download the url from which the "
        "entity can be downloaded"),
)
EXTRACT_TEMPLATE_OBJ = ResponseObject("template", *EXTRACT_FIELDS)
EXTRACT_ISO_OBJ = ResponseObject("iso", *EXTRACT_FIELDS)

PERMISSION_FIELDS = (
    Out("id", "the template ID"),
    Out("ispublic", "true if this template is a public template, false otherwise", "boolean"),
    Out("domainid", "the ID of the domain to which the template belongs"),
    Out("account", "the list of accounts the template is available for", "list"),
    Out("projectids", "the list of projects the template is available for", "list"),
)
TEMPLATE_PERMISSION_OBJ = ResponseObject("templatepermission", *PERMISSION_FIELDS)
SUCCESS_OBJ = ResponseObject("success", Out("success", "true if operation is executed successfully", "boolean"),
                             Out("displaytext", "any text associated with the success or failure"))


def _obj(is_iso: bool) -> ResponseObject:
    return ISO_OBJ if is_iso else TEMPLATE_OBJ


def _name(is_iso: bool) -> str:
    return "iso" if is_iso else "template"


def _kind(is_iso: bool) -> str:
    return "ISO" if is_iso else "template"


# -- registration -------------------------------------------------------------------------------------

def _bool(ctx: CallContext, name: str, default: bool) -> bool:
    value = ctx.get(name)
    return default if value is None else bool(value)


def _details(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in (raw or {}).values():
        for key, value in entry.items():
            out[str(key)] = str(value)
    return out


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise invalid_value(f"Unsupported scheme for url: {url[:256]}; only http and https urls are accepted")
    return url


def _check_checksum(checksum: str | None) -> str | None:
    if checksum is None or not checksum.strip():
        return None
    try:
        parse_checksum(checksum.strip())
    except ValueError as exc:
        raise invalid_value(f"Invalid checksum {checksum[:80]}: {exc}") from None
    return checksum.strip()


async def _owner(ctx: CallContext) -> Account:
    """The account a template is registered for: `account` + `domainid`, or the caller."""
    if ctx.get("projectid") is not None:
        raise invalid_value("Projects are not supported by this management server")
    domain = await domain_param(ctx)
    account = await account_by_name(ctx, domain)
    if account is None:
        if domain is not None and domain.id != ctx.caller.account.domain_id:
            raise invalid_value("An account name is required with domainid")
        return ctx.caller.account
    if account.id != ctx.caller.account.id and not ctx.caller.is_admin:
        raise permission_denied(f"Account {ctx.caller.account.name} does not have permission to operate within "
                                f"account {account.name}")
    return account


async def _zones(ctx: CallContext) -> tuple[list[int], bool]:
    """The zone ids to register in, and whether that is every zone (`zoneid=-1`)."""
    zone = ctx.get("zoneid")
    zones = ctx.get("zoneids")
    if zone is not None and zones:
        raise invalid_value("Both zoneid and zoneids cannot be specified at the same time")
    if zones and len(zones) > 1 and "-1" in zones:
        raise invalid_value("Parameter zoneids cannot combine all zones (-1) option with other zones")
    if zone == "-1" or (zones and "-1" in zones):
        ids = sorted({s.zone_id for s in await ctx.db.images.all_stores()})
        if not ids:
            raise invalid_value("Failed to find a secondary storage (image store) in any zone")
        return ids, True
    if zone is not None:
        return [zone.id], False
    if zones:
        return list(dict.fromkeys(z.id for z in zones)), False
    raise invalid_value("Either zoneid or zoneids is required. Both cannot be null.")


async def _register(ctx: CallContext, is_iso: bool) -> Result:
    manager = ctx.services.templates
    if manager is None:
        raise internal("Templates cannot be registered: this management server has no template service")
    caller = ctx.caller
    owner = await _owner(ctx)
    name = ctx.get("name").strip()
    if not name:
        raise invalid_value("The name of a template may not be empty")
    if await ctx.db.images.find_template(name, is_iso, owner.id) is not None:
        raise invalid_value(f"A {_kind(is_iso)} named {name} already exists for account {owner.name}")
    url = _check_url(ctx.get("url"))
    if is_iso:
        image_format, hypervisor = "ISO", None
    else:
        image_format = ctx.get("format").strip().upper()
        if image_format not in KNOWN_FORMATS:
            raise invalid_value(f"Image format: {ctx.get('format')} is incorrect. Supported formats are "
                                f"{', '.join(KNOWN_FORMATS)}")
        if image_format not in STORED_FORMATS:
            raise invalid_value(f"Image format {image_format} is not supported by this management server's image "
                                f"stores; use one of {', '.join(STORED_FORMATS)}")
        hypervisor = next((h for h in HYPERVISORS if h.lower() == ctx.get("hypervisor").strip().lower()), None)
        if hypervisor is None:
            raise invalid_value(f"Hypervisor Type: {ctx.get('hypervisor')} is invalid. Supported Hypervisor types "
                                f"are {', '.join(HYPERVISORS)}")
        if image_format == "ISO":
            raise invalid_value("Invalid format ISO for a template: register an ISO with registerIso")
    is_admin = caller.is_root_admin
    public = _bool(ctx, "ispublic", False)
    if public and not caller.is_admin and not ctx.api.settings.bool("allow.public.user.templates"):
        raise invalid_value("Only private templates/ISO can be created.")
    featured = _bool(ctx, "isfeatured", False) and is_admin
    template_type = "USER"
    if not is_iso:
        wanted = ctx.get("templatetype")
        if ctx.get("isrouting"):
            wanted = "ROUTING"
        if wanted is not None:
            wanted = wanted.strip().upper()
            if wanted not in TEMPLATE_TYPES:
                raise invalid_value(f"Invalid template type {wanted}: one of {', '.join(TEMPLATE_TYPES)}")
            if wanted != "USER" and not is_admin:
                raise permission_denied("Only the root admin may register templates of type " + wanted)
            template_type = wanted
    bits = ctx.get("bits")
    if bits is not None and bits not in (32, 64):
        raise invalid_value("Invalid bits value: 32 or 64")
    zone_ids, cross = await _zones(ctx)
    values = {
        "name": name, "display_text": ctx.get("displaytext") or name, "is_iso": int(is_iso),
        "format": image_format, "hypervisor": hypervisor,
        "os_type_uuid": None if ctx.get("ostypeid") is None else ctx.get("ostypeid").uuid,
        "template_type": template_type, "url": url, "checksum": _check_checksum(ctx.get("checksum")),
        "bits": bits or 64, "public": int(public), "featured": int(featured),
        "extractable": int(_bool(ctx, "isextractable", False)),
        "password_enabled": int(_bool(ctx, "passwordenabled", False)),
        "sshkey_enabled": int(_bool(ctx, "sshkeyenabled", False)),
        "dynamically_scalable": int(_bool(ctx, "isdynamicallyscalable", False)),
        "requires_hvm": int(_bool(ctx, "requireshvm", True)), "bootable": int(_bool(ctx, "bootable", True)),
        "cross_zones": int(cross), "direct_download": int(_bool(ctx, "directdownload", False)),
        "deploy_as_is": int(_bool(ctx, "deployasis", False)), "template_tag": ctx.get("templatetag"),
        "details": _details(ctx.get("details")), "account_id": owner.id, "domain_id": owner.domain_id,
    }
    template, copies = await manager.register(Registration(values, zone_ids))
    ctx.announce(EventInfo(f"{_kind(is_iso)} {template.name} registered", "Iso" if is_iso else "Template",
                           template.uuid, template.name, owner=owner))
    obj = _obj(is_iso)
    rows = [obj.render(TemplateInZone(template, c)) for c in copies]
    return ListResult(_name(is_iso), rows, len(rows))


OWNER_PARAMS = [
    P("account", description="an optional accountName. Must be used with domainId."),
    P("domainid", "uuid", "an optional domainId. If the account parameter is used, domainId must also be used.",
      related="listDomains"),
    P("projectid", "uuid", "Register template for the project", related="listProjects"),
]
COMMON_REGISTER = [
    P("url", description="the URL of where the template is hosted. Possible URL include http:// and https://",
      required=True, length=2048),
    P("name", description="the name of the template", required=True),
    P("displaytext", description="The display text of the template, defaults to the 'name'.", length=4096),
    P("ostypeid", OS_TYPE, "the ID of the OS Type that best represents the OS of this template.",
      related="listOsTypes"),
    P("checksum", description="the checksum value of this template. Digest algorithm prefixes such as {MD5}, "
      "{SHA-256} may be given; a bare value is read by its length"),
    P("isextractable", "boolean", "true if the template or its derivatives are extractable; default is false"),
    P("isfeatured", "boolean", "true if this template is a featured template, false otherwise"),
    P("ispublic", "boolean", "true if the template is available to all accounts; default is false"),
    P("isdynamicallyscalable", "boolean", "true if template contains XS/VMWare tools inorder to support dynamic "
      "scaling of VM cpu/memory"),
    P("passwordenabled", "boolean", "true if the template supports the password reset feature; default is false"),
    P("directdownload", "boolean", "true if template should bypass Secondary Storage and be downloaded to Primary "
      "Storage on deployment"),
] + OWNER_PARAMS


@command("registerTemplate", description="Registers an existing template into the CloudStack cloud.", roles=ALL,
         response=TEMPLATE_OBJ, event="TEMPLATE.CREATE",
         java_class="org.apache.cloudstack.api.command.user.template.RegisterTemplateCmd",
         params=COMMON_REGISTER + [
             P("format", description="the format for the template. Possible values include QCOW2, RAW, VHD and OVA.",
               required=True),
             P("hypervisor", description="the target hypervisor for the template", required=True),
             P("zoneid", ZONE, "the ID of the zone the template is to be hosted on", related="listZones",
               accept_all=True),
             P("zoneids", "list", "A list of zone ids where the template will be hosted. Use this parameter if the "
               "template needs to be registered to multiple zones in one go. Use zoneid if the template needs to "
               "be registered to only one zone.Passing only -1 to this will cause the template to be registered "
               "as a cross zone template and will be copied to all zones. ", element=ZONE, related="listZones",
               accept_all=True),
             P("sshkeyenabled", "boolean", "true if the template supports the sshkey upload feature; default is "
               "false"),
             P("bits", "integer", "32 or 64 bits support. 64 by default"),
             P("requireshvm", "boolean", "true if this template requires HVM"),
             P("templatetag", description="the tag for this template."),
             P("details", "map", "Template details in key/value pairs using format details[i].keyname=keyvalue. "
               "Example: details[0].hypervisortoolsversion=xenserver61"),
             P("isrouting", "boolean", "true if the template type is routing i.e., if template is used to deploy "
               "router"),
             P("deployasis", "boolean", "(VMware only) true if VM deployments should preserve all the "
               "configurations defined for this template", since="4.15.1"),
             P("templatetype", description="the type of the template. Valid options are: USER/VNF (for all "
               "users) and SYSTEM/ROUTING/BUILTIN (for admins only).", since="4.19.0"),
             P("arch", description="the CPU arch of the template. Valid options are: x86_64, aarch64", since="4.20"),
             P("forcks", "boolean", "if true, the templates would be available for deploying CKS clusters",
               since="4.21.0"),
         ])
async def register_template(ctx: CallContext) -> Result:
    return await _register(ctx, False)


@command("registerIso", description="Registers an existing ISO into the CloudStack Cloud.", roles=ALL,
         response=ISO_OBJ, event="ISO.CREATE",
         java_class="org.apache.cloudstack.api.command.user.iso.RegisterIsoCmd",
         params=COMMON_REGISTER + [
             P("bootable", "boolean", "true if this ISO is bootable. If not passed explicitly its assumed to be "
               "true"),
             P("zoneid", ZONE, "the ID of the zone you wish to register the ISO to.", required=True,
               related="listZones", accept_all=True),
             P("imagestoreuuid", description="Image store UUID"),
         ])
async def register_iso(ctx: CallContext) -> Result:
    return await _register(ctx, True)


# -- listing ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scope:
    owners: tuple[int, ...] | None
    subtree: str | None
    everything: bool
    account: Account | None


async def _owner_scope(ctx: CallContext) -> _Scope:
    """Whose templates `self` means: the named account, the caller's subtree with listall (admins) or
    the caller's account."""
    caller = ctx.caller
    if ctx.get("projectid") is not None:
        raise invalid_value("Projects are not supported by this management server")
    domain = await domain_param(ctx)
    if ctx.get("account") is not None:
        account = await account_by_name(ctx, domain)
        assert account is not None
        return _Scope((account.id,), None, False, account)
    if caller.is_admin and domain is not None:
        if ctx.get("isrecursive") or ctx.get("listall"):
            return _Scope(None, domain.path, False, None)
        ids = tuple(await ctx.db.accounts.account_ids_in_domain(domain.id))
        return _Scope(ids, None, False, None)
    if caller.is_admin and ctx.get("listall"):
        if caller.is_root_admin:
            return _Scope(None, None, True, None)
        return _Scope(None, caller.domain_path, False, None)
    return _Scope((caller.account.id,), None, False, caller.account)


async def _search(ctx: CallContext, is_iso: bool, flt: str) -> TemplateSearch:
    caller = ctx.caller
    scope = await _owner_scope(ctx)
    me = scope.account.id if scope.account is not None else caller.account.id
    own = {"owners": scope.owners, "subtree": scope.subtree, "everything": scope.everything}
    if flt == "featured":
        spec: dict[str, Any] = {"everything": True, "featured": True, "ready_only": True}
    elif flt == "self":
        spec = dict(own)
    elif flt == "selfexecutable":
        spec = dict(own, ready_only=True)
    elif flt == "sharedexecutable":
        spec = {"shared_with": me, "ready_only": True}
    elif flt == "executable":
        # ready ones only when an admin asks for one account's (ListTemplatesCmd.listInReadyState)
        specific = caller.is_admin and ctx.get("account") is not None and ctx.get("domainid") is not None
        spec = dict(own, public=True, shared_with=me, ready_only=specific)
    elif flt == "community":
        spec = {"public": True, "featured": False, "ready_only": True}
    elif flt == "system":
        if not caller.is_root_admin:
            raise invalid_value("Filter system can be specified by the root admin only")
        spec = {"everything": True, "template_type": "SYSTEM"}
    elif flt == "all":
        if caller.is_root_admin:
            spec = {"everything": True}
        elif caller.is_admin:
            spec = {"subtree": caller.domain_path, "public": True, "shared_with": caller.account.id}
        elif is_iso:
            spec = {"owners": (caller.account.id,), "public": True, "shared_with": caller.account.id}
        else:
            raise invalid_value("Filter all can be specified by admin only")
    else:
        raise invalid_value(f"Invalid filter {flt}: one of {', '.join(TEMPLATE_FILTERS)}")
    t = ctx.get("id")
    ids = ctx.get("ids")
    if t is not None and ids:
        raise invalid_value("Specify either id or ids but not both parameters")
    zone = ctx.get("zoneid")
    hypervisor = ctx.get("hypervisor")
    if hypervisor is not None:
        hypervisor = next((h for h in HYPERVISORS if h.lower() == hypervisor.lower()), hypervisor)
    return TemplateSearch(is_iso=is_iso, template_id=None if t is None else t.id,
                          template_ids=None if not ids else tuple(x.id for x in ids), name=ctx.get("name"),
                          keyword=ctx.get("keyword"), zone_id=None if zone is None else zone.id,
                          hypervisor=hypervisor, **spec)


async def _list(ctx: CallContext, is_iso: bool, flt: str, **narrow: Any) -> Result:
    template = ctx.get("id")
    if template is not None and (template.is_iso != is_iso or not await see_template(ctx, ctx.caller, template)):
        return ListResult(_name(is_iso), [], 0)
    q = await _search(ctx, is_iso, flt.strip().lower())
    if narrow:
        q = TemplateSearch(**{**q.__dict__, **narrow})
    total, rows = await ctx.db.images.search_templates(q, page_of(ctx))
    obj = _obj(is_iso)
    return ListResult(_name(is_iso), [obj.render(r) for r in rows], total)


LIST_COMMON = [
    P("id", TEMPLATE_ANY, "the template ID", related="listTemplates"),
    P("ids", "list", "the IDs of the templates, mutually exclusive with id", element=TEMPLATE_ANY, since="4.9",
      related="listTemplates"),
    P("name", description="the template name"),
    P("zoneid", ZONE, "list templates by zoneId", related="listZones"),
    P("hypervisor", description="the hypervisor for which to restrict the search"),
    P("showremoved", "boolean", "show removed templates as well"),
    P("showunique", "boolean", "If set to true, list only unique templates across zones", since="4.13.2"),
    P("showicon", "boolean", "flag to display the resource image for the templates"),
    P("tags", "map", "List resources by tags (key/value pairs)"),
]


@command("listTemplates", description="List all public, private, and privileged templates.", roles=ALL,
         response=TEMPLATE_OBJ, listing=True, owned=True,
         java_class="org.apache.cloudstack.api.command.user.template.ListTemplatesCmd",
         params=LIST_COMMON + [
             P("templatefilter", description="possible values are \"featured\", \"self\", \"selfexecutable\",\""
               "sharedexecutable\",\"executable\", and \"community\". * featured : templates that have been marked "
               "as featured and public. * self : templates that have been registered or created by the calling "
               "user. * selfexecutable : same as self, but only returns templates that can be used to deploy a new "
               "VM. * sharedexecutable : templates ready to be deployed that have been granted to the calling user "
               "by another user. * executable : templates that are owned by the calling user, or public templates, "
               "that can be used to deploy a VM. * community : templates that have been marked as public but not "
               "featured. * all : all templates (only usable by admins).", required=True),
             P("details", "list", "comma separated list of template details requested, value can be a list of "
               "[ all, min]"),
             P("parenttemplateid", "uuid", "list datadisk templates by parent template id", since="4.4"),
             P("isvnf", "boolean", "flag to list VNF templates or not; true if need to list VNF templates, false "
               "otherwise.", since="4.19.0"),
         ])
async def list_templates(ctx: CallContext) -> Result:
    if ctx.get("isvnf") or ctx.get("parenttemplateid") is not None:
        return ListResult("template", [], 0)
    return await _list(ctx, False, ctx.get("templatefilter"))


@command("listIsos", description="Lists all available ISO files.", roles=ALL, response=ISO_OBJ, listing=True,
         owned=True, java_class="org.apache.cloudstack.api.command.user.iso.ListIsosCmd",
         params=LIST_COMMON + [
             P("isofilter", description="possible values are \"featured\", \"self\", \"selfexecutable\","
               "\"sharedexecutable\",\"executable\", and \"community\". * featured : ISOs that have been marked as "
               "featured and public. * self : ISOs that have been registered or created by the calling user. * "
               "selfexecutable : same as self, but only returns ISOs that are ready to be deployed with. * "
               "sharedexecutable : ISOs that have been granted to the calling user by another user. * executable : "
               "ISOs that are owned by the calling user, or public ISOs, that can be used to deploy a VM. * "
               "community : ISOs that have been marked as public but not featured. * all : all ISOs."),
             P("bootable", "boolean", "true if the ISO is bootable, false otherwise"),
             P("isready", "boolean", "true if this ISO is ready to be deployed"),
             P("ispublic", "boolean", "true if the ISO is publicly available to all users, false otherwise."),
         ])
async def list_isos(ctx: CallContext) -> Result:
    narrow: dict[str, Any] = {}
    if ctx.get("bootable") is not None:
        narrow["bootable"] = bool(ctx.get("bootable"))
    if ctx.get("isready"):
        narrow["ready_only"] = True
    if ctx.get("ispublic") is not None:
        narrow["is_public"] = bool(ctx.get("ispublic"))
    return await _list(ctx, True, ctx.get("isofilter") or "all", **narrow)


# -- update -------------------------------------------------------------------------------------------

def _target(ctx: CallContext | JobContext, caller: Caller, t: Template, is_iso: bool) -> Template:
    if t.is_iso != is_iso:
        raise invalid_value(f"Please specify a valid {_kind(is_iso)}.")
    if not may_manage(caller, t):
        raise permission_denied(f"Account {caller.account.name} does not have permission to operate on "
                                f"{_kind(is_iso)} {t.name}")
    return t


async def _first_row(services: Services, t: Template, zone_id: int | None = None) -> TemplateInZone | None:
    copies = await services.db.images.copies_of(t.id)
    for c in copies:
        if zone_id is None or c.zone_id == zone_id:
            return TemplateInZone(t, c)
    return None


async def _update(ctx: CallContext, is_iso: bool) -> Result:
    caller = ctx.caller
    t = _target(ctx, caller, ctx.get("id"), is_iso)
    values: dict[str, Any] = {}
    if ctx.get("name") is not None:
        name = ctx.get("name").strip()
        if not name:
            raise invalid_value("The name of a template may not be empty")
        if name != t.name and await ctx.db.images.find_template(name, is_iso, t.account_id) is not None:
            raise invalid_value(f"A {_kind(is_iso)} named {name} already exists")
        values["name"] = name
    if ctx.get("displaytext") is not None:
        values["display_text"] = ctx.get("displaytext")
    if ctx.get("ostypeid") is not None:
        values["os_type_uuid"] = ctx.get("ostypeid").uuid
    if ctx.get("format") is not None and not is_iso:
        fmt = ctx.get("format").strip().upper()
        if fmt not in STORED_FORMATS or fmt == "ISO":
            raise invalid_value(f"Image format: {ctx.get('format')} is incorrect")
        values["format"] = fmt
    for param, column in (("passwordenabled", "password_enabled"), ("bootable", "bootable"),
                          ("requireshvm", "requires_hvm"), ("isdynamicallyscalable", "dynamically_scalable"),
                          ("sshkeyenabled", "sshkey_enabled"), ("deployasis", "deploy_as_is")):
        if ctx.get(param) is not None:
            values[column] = bool(ctx.get(param))
    if ctx.get("templatetag") is not None:
        values["template_tag"] = ctx.get("templatetag")
    wanted = "ROUTING" if ctx.get("isrouting") else ctx.get("templatetype")
    if wanted is not None and not is_iso:
        wanted = wanted.strip().upper()
        if wanted not in TEMPLATE_TYPES:
            raise invalid_value(f"Invalid template type {wanted}: one of {', '.join(TEMPLATE_TYPES)}")
        if not caller.is_root_admin:
            raise permission_denied("Only the root admin may change the type of a template")
        values["template_type"] = wanted
    if ctx.get("cleanupdetails"):
        values["details"] = {}
    elif ctx.get("details"):
        values["details"] = {**t.details, **_details(ctx.get("details"))}
    updated = await ctx.db.images.update_template(t.id, values)
    ctx.announce(EventInfo(f"{_kind(is_iso)} {updated.name} updated", "Iso" if is_iso else "Template",
                           updated.uuid, updated.name))
    row = await _first_row(ctx.services, updated)
    if row is None:
        raise invalid_value(f"Please specify a valid {_kind(is_iso)}.")
    return ObjectResult(_name(is_iso), _obj(is_iso).render(row))


UPDATE_COMMON = [
    P("id", TEMPLATE, "the ID of the image file", required=True, related="listTemplates"),
    P("name", description="the name of the image file"),
    P("displaytext", description="the display text of the image", length=4096),
    P("ostypeid", OS_TYPE, "the ID of the OS type that best represents the OS of this image.",
      related="listOsTypes"),
    P("passwordenabled", "boolean", "true if the image supports the password reset feature; default is false"),
    P("bootable", "boolean", "true if image is bootable, false otherwise; available only for updateIso API"),
    P("requireshvm", "boolean", "true if the template requires HVM, false otherwise; available only for "
      "updateTemplate API"),
    P("sortkey", "integer", "sort key of the template, integer"),
    P("isdynamicallyscalable", "boolean", "true if template/ISO contains XS/VMWare tools inorder to support dynamic "
      "scaling of VM cpu/memory"),
    P("sshkeyenabled", "boolean", "true if the template supports the sshkey upload feature; default is false"),
    P("details", "map", "Details in key/value pairs using format details[i].keyname=keyvalue. Example: "
      "details[0].hypervisortoolsversion=xenserver61"),
    P("cleanupdetails", "boolean", "optional boolean field, which indicates if details should be cleaned up or "
      "not (if set to true, details removed for this resource, details field ignored; if false or not set, no "
      "action)"),
]


@command("updateTemplate", description="Updates attributes of a template.", roles=ALL, response=TEMPLATE_OBJ,
         event="TEMPLATE.UPDATE",
         java_class="org.apache.cloudstack.api.command.user.template.UpdateTemplateCmd",
         params=UPDATE_COMMON + [
             P("format", description="the format for the image"),
             P("isrouting", "boolean", "true if the template type is routing i.e., if template is used to deploy "
               "router"),
             P("templatetype", description="the type of the template. Valid options are: USER/VNF (for all users) "
               "and SYSTEM/ROUTING/BUILTIN (for admins only)."),
             P("templatetag", description="the tag for this template.", since="4.20.0"),
             P("deployasis", "boolean", "(VMware only) true if VM deployments should preserve all the "
               "configurations defined for this template"),
         ])
async def update_template(ctx: CallContext) -> Result:
    return await _update(ctx, False)


@command("updateIso", description="Updates an ISO file.", roles=ALL, response=ISO_OBJ, event="ISO.UPDATE",
         java_class="org.apache.cloudstack.api.command.user.iso.UpdateIsoCmd", params=UPDATE_COMMON)
async def update_iso(ctx: CallContext) -> Result:
    return await _update(ctx, True)


# -- delete -------------------------------------------------------------------------------------------

async def _delete_job(jc: JobContext, prepared: Prepared) -> Result:
    is_iso = bool(prepared.state["is_iso"])
    try:
        t = await jc.db.images.get_template_by_uuid(prepared.instance_uuid or "")
    except NotFound:
        raise invalid_value(f"Please specify a valid {_kind(is_iso)}.") from None
    removed = await jc.services.templates.delete(t, prepared.state.get("zone_id"))
    if not removed and prepared.state.get("zone_id") is not None:
        raise invalid_value(f"The {_kind(is_iso)} {t.name} is not in that zone")
    jc.announce(EventInfo(f"{_kind(is_iso)} {t.name} deleted", "Iso" if is_iso else "Template", t.uuid, t.name)
                .plain())
    return SuccessResult()


def _prepare_delete(ctx: CallContext, is_iso: bool) -> Prepared:
    if ctx.services.templates is None:
        raise internal("This management server has no template service")
    t = _target(ctx, ctx.caller, ctx.get("id"), is_iso)
    zone = ctx.get("zoneid")
    return Prepared("Iso" if is_iso else "Template", t.uuid, f"Template:{t.id}",
                    state={"resource_name": t.name, "is_iso": is_iso, "zone_id": None if zone is None else zone.id})


@command("deleteTemplate", description="Deletes a template from the system. All virtual machines using the deleted "
         "template will not be affected.", roles=ALL, response=SUCCESS_OBJ, event="TEMPLATE.DELETE", is_async=True,
         run=_delete_job, java_class="org.apache.cloudstack.api.command.user.template.DeleteTemplateCmd",
         params=[P("id", TEMPLATE, "the ID of the template", required=True, related="listTemplates"),
                 P("zoneid", ZONE, "the ID of zone of the template", related="listZones"),
                 P("forced", "boolean", "Force delete a template.", since="4.9+"),
                 P("issystem", "boolean", "Necessary if the template's type is system.", since="4.20.0")])
async def delete_template(ctx: CallContext) -> Prepared:
    return _prepare_delete(ctx, False)


@command("deleteIso", description="Deletes an ISO file.", roles=ALL, response=SUCCESS_OBJ, event="ISO.DELETE",
         is_async=True, run=_delete_job, java_class="org.apache.cloudstack.api.command.user.iso.DeleteIsoCmd",
         params=[P("id", TEMPLATE, "the ID of the ISO file", required=True, related="listIsos"),
                 P("zoneid", ZONE, "the ID of the zone of the ISO file. If not specified, the ISO will be deleted "
                   "from all the zones", related="listZones")])
async def delete_iso(ctx: CallContext) -> Prepared:
    return _prepare_delete(ctx, True)


# -- permissions --------------------------------------------------------------------------------------

async def _update_permissions(ctx: CallContext, is_iso: bool) -> Result:
    caller = ctx.caller
    t = _target(ctx, caller, ctx.get("id"), is_iso)
    if ctx.get("projectids"):
        raise invalid_value("Projects are not supported by this management server")
    op = (ctx.get("op") or "").strip().lower()
    names: Sequence[str] = ctx.get("accounts") or []
    if names and op not in ("add", "remove"):
        raise invalid_value("Invalid operation on accounts, the operation must be either 'add' or 'remove' in "
                            f"order to modify launch permissions. Given operation is: '{op}'")
    if op == "reset" and names:
        raise invalid_value("Accounts can't be specified with the reset operation")
    values: dict[str, Any] = {}
    if ctx.get("ispublic") is not None:
        public = bool(ctx.get("ispublic"))
        if public and not caller.is_admin and not ctx.api.settings.bool("allow.public.user.templates"):
            raise invalid_value("Only private templates/ISO can be created.")
        values["public"] = public
    if ctx.get("isfeatured") is not None:
        if not caller.is_root_admin:
            raise permission_denied("Only the root admin may mark templates featured")
        values["featured"] = bool(ctx.get("isfeatured"))
    if ctx.get("isextractable") is not None:
        if not caller.is_root_admin and not t.extractable:
            raise permission_denied("Only the root admin may make a template extractable")
        values["extractable"] = bool(ctx.get("isextractable"))
    account_ids: list[int] = []
    for name in names:
        try:
            account = await ctx.db.accounts.find_account(name, t.domain_id)
        except NotFound:
            raise invalid_value(f"Unable to find account {name} in domain {t.domain_name}") from None
        if account.id == t.account_id:
            continue
        account_ids.append(account.id)
    if values:
        await ctx.db.images.update_template(t.id, values)
    if op in ("add", "remove", "reset") and (account_ids or op == "reset"):
        await ctx.db.images.change_permissions(t.id, op, account_ids)
    ctx.announce(EventInfo(f"permissions of {_kind(is_iso)} {t.name} updated", "Iso" if is_iso else "Template",
                           t.uuid, t.name))
    return SuccessResult()


PERMISSION_PARAMS = [
    P("accounts", "list", "a comma delimited list of accounts within caller's domain. If specified, \"op\" "
      "parameter has to be passed in."),
    P("id", TEMPLATE, "the template ID", required=True, related="listTemplates"),
    P("isextractable", "boolean", "true if the template/iso is extractable, false other wise. Can be set only by "
      "root admin"),
    P("isfeatured", "boolean", "true for featured template/iso, false otherwise"),
    P("ispublic", "boolean", "true for public template/iso, false for private templates/isos"),
    P("op", description="permission operator (add, remove, reset)"),
    P("projectids", "list", "a comma delimited list of projects. If specified, \"op\" parameter has to be passed "
      "in.", related="listProjects"),
]


@command("updateTemplatePermissions", description="Updates a template visibility permissions. A public template "
         "is visible to all accounts within the same domain. A private template is visible only to the owner of "
         "the template. A privileged template is a private template with account permissions added. Only accounts "
         "specified under the template permissions are visible to them.", roles=ALL, response=SUCCESS_OBJ,
         event="TEMPLATE.UPDATE",
         java_class="org.apache.cloudstack.api.command.user.template.UpdateTemplatePermissionsCmd",
         params=PERMISSION_PARAMS)
async def update_template_permissions(ctx: CallContext) -> Result:
    return await _update_permissions(ctx, False)


@command("updateIsoPermissions", description="Updates ISO permissions", roles=ALL, response=SUCCESS_OBJ,
         event="ISO.UPDATE", java_class="org.apache.cloudstack.api.command.user.iso.UpdateIsoPermissionsCmd",
         params=PERMISSION_PARAMS)
async def update_iso_permissions(ctx: CallContext) -> Result:
    return await _update_permissions(ctx, True)


async def _list_permissions(ctx: CallContext, is_iso: bool) -> Result:
    t = _target(ctx, ctx.caller, ctx.get("id"), is_iso)
    permitted = await ctx.db.images.permitted(t.id)
    body = TEMPLATE_PERMISSION_OBJ.render({
        "id": t.uuid, "ispublic": t.public, "domainid": t.domain_uuid,
        "account": [p.account_name for p in permitted], "projectids": None})
    return ObjectResult("templatepermission", body)


PERMISSION_LIST_PARAMS = [
    P("id", TEMPLATE, "the template ID", required=True, related="listTemplates"),
    P("account", description="List template visibility and permissions for the specified account. Must be used "
      "with the domainId parameter."),
    P("domainid", "uuid", "List template visibility and permissions by domain. If used with the account "
      "parameter, specifies in which domain the specified account exists.", related="listDomains"),
    P("projectid", "uuid", "List template visibility and permissions for the specified project",
      related="listProjects"),
]


@command("listTemplatePermissions", description="List template visibility and all accounts that have permissions "
         "to view this template.", roles=ALL, response=TEMPLATE_PERMISSION_OBJ,
         java_class="org.apache.cloudstack.api.command.user.template.ListTemplatePermissionsCmd",
         params=PERMISSION_LIST_PARAMS)
async def list_template_permissions(ctx: CallContext) -> Result:
    return await _list_permissions(ctx, False)


@command("listIsoPermissions", description="List iso visibility and all accounts that have permissions to view "
         "this iso.", roles=ALL, response=TEMPLATE_PERMISSION_OBJ,
         java_class="org.apache.cloudstack.api.command.user.iso.ListIsoPermissionsCmd",
         params=PERMISSION_LIST_PARAMS)
async def list_iso_permissions(ctx: CallContext) -> Result:
    return await _list_permissions(ctx, True)


# -- extract ------------------------------------------------------------------------------------------

async def _extract_job(jc: JobContext, prepared: Prepared) -> Result:
    is_iso = bool(prepared.state["is_iso"])
    t = await jc.db.images.get_template_by_uuid(prepared.instance_uuid or "")
    copies = await jc.db.images.copies_of(t.id)
    zone_id = prepared.state.get("zone_id")
    copy = next((c for c in copies if (zone_id is None or c.zone_id == zone_id) and c.ready), None)
    if copy is None:
        raise invalid_value(f"The {_kind(is_iso)} {t.name} is not ready in "
                            f"{'that zone' if zone_id is not None else 'any zone'}")
    url, _expires = await jc.services.templates.extract_url(t, copy)
    obj = EXTRACT_ISO_OBJ if is_iso else EXTRACT_TEMPLATE_OBJ
    jc.announce(EventInfo(f"{_kind(is_iso)} {t.name} extracted", "Iso" if is_iso else "Template", t.uuid, t.name)
                .plain())
    body = obj.render({
        "id": t.uuid, "name": t.name, "extractId": f"{t.uuid}-{copy.zone_id}", "uploadpercentage": 100,
        "status": "DOWNLOAD_URL_CREATED", "accountid": t.account_uuid, "created": int(jc.clock.seconds()),
        "state": "DOWNLOAD_URL_CREATED", "storagetype": "SecondaryStorage", "zoneid": copy.zone_uuid,
        "zonename": copy.zone_name, "extractMode": "HTTP_DOWNLOAD", "url": url})
    return ObjectResult(_name(is_iso), body)


async def _prepare_extract(ctx: CallContext, is_iso: bool) -> Prepared:
    if ctx.services.templates is None:
        raise internal("This management server has no template service")
    t: Template = ctx.get("id")
    if t.is_iso != is_iso or not await see_template(ctx, ctx.caller, t):
        raise invalid_value(f"Please specify a valid {_kind(is_iso)}.")
    mode = ctx.get("mode").strip().upper()
    if mode not in EXTRACT_MODES:
        raise invalid_value(f"Please specify a valid extract Mode. Supported modes: {', '.join(EXTRACT_MODES)}")
    if mode == "FTP_UPLOAD":
        raise invalid_value("FTP_UPLOAD is not supported by this management server: use HTTP_DOWNLOAD")
    if not ctx.caller.is_root_admin and not t.extractable:
        raise invalid_value(f"Unable to extract {_kind(is_iso)} id={t.uuid} as it's not extractable")
    zone = ctx.get("zoneid")
    return Prepared("Iso" if is_iso else "Template", t.uuid, f"Template:{t.id}",
                    state={"resource_name": t.name, "is_iso": is_iso, "zone_id": None if zone is None else zone.id})


EXTRACT_PARAMS = [
    P("mode", description="the mode of extraction - HTTP_DOWNLOAD or FTP_UPLOAD", required=True),
    P("url", description="the url to which the ISO would be extracted", length=2048),
    P("zoneid", ZONE, "the ID of the zone where the ISO is originally located", related="listZones"),
]


@command("extractTemplate", description="Extracts a template", roles=ALL, response=EXTRACT_TEMPLATE_OBJ,
         event="TEMPLATE.EXTRACT", is_async=True, run=_extract_job,
         java_class="org.apache.cloudstack.api.command.user.template.ExtractTemplateCmd",
         params=[P("id", TEMPLATE_ANY, "the ID of the template", required=True, related="listTemplates"),
                 *EXTRACT_PARAMS])
async def extract_template(ctx: CallContext) -> Prepared:
    return await _prepare_extract(ctx, False)


@command("extractIso", description="Extracts an ISO", roles=ALL, response=EXTRACT_ISO_OBJ, event="ISO.EXTRACT",
         is_async=True, run=_extract_job, java_class="org.apache.cloudstack.api.command.user.iso.ExtractIsoCmd",
         params=[P("id", TEMPLATE_ANY, "the ID of the ISO file", required=True, related="listIsos"),
                 *EXTRACT_PARAMS])
async def extract_iso(ctx: CallContext) -> Prepared:
    return await _prepare_extract(ctx, True)


# -- copy ---------------------------------------------------------------------------------------------

async def _copy_job(jc: JobContext, prepared: Prepared) -> Result:
    is_iso = bool(prepared.state["is_iso"])
    t = await jc.db.images.get_template_by_uuid(prepared.instance_uuid or "")
    made: list[TemplateCopy] = []
    for zone_id in prepared.state["zone_ids"]:
        try:
            made.append(await jc.services.templates.copy_to_zone(t, zone_id))
        except Conflict:
            zone = await jc.db.infra.get_zone(zone_id)
            raise invalid_value(f"The {_kind(is_iso)} {t.name} is already in zone {zone.name}") from None
    jc.announce(EventInfo(f"{_kind(is_iso)} {t.name} copied", "Iso" if is_iso else "Template", t.uuid, t.name)
                .plain())
    t = await jc.db.images.get_template(t.id)
    return ObjectResult(_name(is_iso), _obj(is_iso).render(TemplateInZone(t, made[0])))


async def _prepare_copy(ctx: CallContext, is_iso: bool) -> Prepared:
    if ctx.services.templates is None:
        raise internal("This management server has no template service")
    t: Template = ctx.get("id")
    if t.is_iso != is_iso or not await see_template(ctx, ctx.caller, t):
        raise invalid_value(f"Please specify a valid {_kind(is_iso)}.")
    if not may_manage(ctx.caller, t) and not (t.public and ctx.caller.is_admin):
        raise permission_denied(f"Account {ctx.caller.account.name} does not have permission to copy "
                                f"{_kind(is_iso)} {t.name}")
    dest = ctx.get("destzoneid")
    dests = ctx.get("destzoneids") or []
    if dest is not None and dests:
        raise invalid_value("Both destzoneid and destzoneids cannot be specified at the same time")
    zones = [dest] if dest is not None else list(dests)
    if not zones:
        raise invalid_value("Either destzoneid or destzoneids parameters have to be specified.")
    source = ctx.get("sourcezoneid")
    have = {c.zone_id for c in await ctx.db.images.copies_of(t.id)}
    if source is not None and source.id not in have:
        raise invalid_value(f"The {_kind(is_iso)} {t.name} is not in zone {source.name}")
    for z in zones:
        if source is not None and z.id == source.id:
            raise invalid_value("Please specify different source and destination zones.")
        if z.id in have:
            raise invalid_value(f"The {_kind(is_iso)} {t.name} is already in zone {z.name}")
    return Prepared("Iso" if is_iso else "Template", t.uuid, f"Template:{t.id}",
                    state={"resource_name": t.name, "is_iso": is_iso,
                           "zone_ids": list(dict.fromkeys(z.id for z in zones))})


COPY_PARAMS = [
    P("destzoneid", ZONE, "ID of the zone the template is being copied to.", related="listZones"),
    P("sourcezoneid", ZONE, "ID of the zone the template is currently hosted on. If not specified and template is "
      "cross-zone, then we will sync this template to region wide image store.", related="listZones"),
    P("destzoneids", "list", "A list of IDs of the zones that the template needs to be copied to.Specify this "
      "list if the template needs to copied to multiple zones in one go. Do not specify destzoneid and "
      "destzoneids together, however one of them is required.", element=ZONE, related="listZones"),
]


@command("copyTemplate", description="Copies a template from one zone to another.", roles=ALL,
         response=TEMPLATE_OBJ, event="TEMPLATE.COPY", is_async=True, run=_copy_job,
         java_class="org.apache.cloudstack.api.command.user.template.CopyTemplateCmd",
         params=[P("id", TEMPLATE_ANY, "Template ID.", required=True, related="listTemplates"), *COPY_PARAMS])
async def copy_template(ctx: CallContext) -> Prepared:
    return await _prepare_copy(ctx, False)


@command("copyIso", description="Copies an iso from one zone to another.", roles=ALL, response=ISO_OBJ,
         event="ISO.COPY", is_async=True, run=_copy_job,
         java_class="org.apache.cloudstack.api.command.user.iso.CopyIsoCmd",
         params=[P("id", TEMPLATE_ANY, "Template ID.", required=True, related="listIsos"), *COPY_PARAMS])
async def copy_iso(ctx: CallContext) -> Prepared:
    return await _prepare_copy(ctx, True)
