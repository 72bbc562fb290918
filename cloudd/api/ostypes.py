"""Guest OS commands: listOsTypes and listOsCategories, addGuestOs, updateGuestOs and removeGuestOs, and
their response objects.

Every caller may list them; OS types an operator hid from users (`fordisplay` false) are listed only
to the root admin, who alone may filter on `fordisplay` (others' `fordisplay` is ignored). The root admin may add OS types of his own,
and rename, hide or remove those (never CloudStack's).
"""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.db.base import NotFound
from cloudd.db.ostypes import OsType
from cloudd.errors import invalid_value
from cloudd.orchestration.context import EventInfo, JobContext, Services

P = Param


async def _os_type(s: Services, uuid: str) -> Any:
    return await s.db.ostypes.get_by_uuid(uuid)


async def _os_category(s: Services, uuid: str) -> Any:
    return await s.db.ostypes.get_category_by_uuid(uuid)


OS_TYPE = Entity("GuestOS", _os_type)
OS_CATEGORY = Entity("GuestOsCategory", _os_category)

OS_TYPE_OBJ = ResponseObject(
    "ostype",
    Out("id", "the ID of the OS type", source="uuid"),
    Out("name", "the name of the OS type", source="name"),
    Out("description", "the name/description of the OS type", source="name"),
    Out("oscategoryid", "the ID of the OS category", source="category_uuid"),
    Out("oscategoryname", "the name of the OS category", source="category_name"),
    Out("isuserdefined", "is the guest OS user defined", "boolean", source="is_user_defined"),
    Out("fordisplay", "is the guest OS visible for the users", "boolean", source="for_display"),
)

OS_CATEGORY_OBJ = ResponseObject(
    "oscategory",
    Out("id", "the ID of the OS category", source="uuid"),
    Out("name", "the name of the OS category"),
)


@command("listOsTypes", description="Lists all supported OS types for this cloud.", roles=ALL,
         response=OS_TYPE_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.user.guest.ListGuestOsCmd",
         params=[P("id", OS_TYPE, "list by Os type Id", related="listOsTypes"),
                 P("oscategoryid", OS_CATEGORY, "list by Os Category id", related="listOsCategories"),
                 P("description", description="list os by description", since="3.0.1"),
                 P("fordisplay", "boolean", "list resources by display flag; only ROOT admin is eligible to "
                   "pass this parameter", since="4.18.1")])
async def list_os_types(ctx: CallContext) -> Result:
    # CloudStack ignores a parameter the caller may not pass: others see the displayed types only
    for_display = ctx.get("fordisplay") if ctx.caller.is_root_admin else True
    os_type, category = ctx.get("id"), ctx.get("oscategoryid")
    total, types = await ctx.db.ostypes.search(
        os_id=os_type.id if os_type is not None else None,
        category_id=category.id if category is not None else None, description=ctx.get("description"),
        keyword=ctx.get("keyword"), for_display=for_display, page=page_of(ctx))
    return ListResult("ostype", [OS_TYPE_OBJ.render(t) for t in types], total)


@command("listOsCategories", description="Lists all supported OS categories for this cloud.", roles=ALL,
         response=OS_CATEGORY_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.user.guest.ListGuestOsCategoriesCmd",
         params=[P("id", OS_CATEGORY, "list Os category by id", related="listOsCategories"),
                 P("name", description="list os category by name", since="3.0.1")])
async def list_os_categories(ctx: CallContext) -> Result:
    category = ctx.get("id")
    total, categories = await ctx.db.ostypes.search_categories(
        category_id=category.id if category is not None else None, name=ctx.get("name"),
        keyword=ctx.get("keyword"), page=page_of(ctx))
    return ListResult("oscategory", [OS_CATEGORY_OBJ.render(c) for c in categories], total)


# --- user-defined OS types ------------------------------------------------------------------------

def _display_name(value: str | None) -> str:
    name = (value or "").strip()
    if not name:
        raise invalid_value("The guest OS display name must not be empty")
    return name


async def _unique(ctx: CallContext, name: str, except_id: int | None = None) -> None:
    if await ctx.db.ostypes.name_in_use(name, except_id):
        raise invalid_value(f"The specified Guest OS name : {name} already exists. Please specify a unique "
                            "name")


def _user_defined(os_type: OsType, action: str) -> None:
    if not os_type.is_user_defined:
        raise invalid_value(f"Unable to {action} system defined guest OS")


async def _added_guest_os(jc: JobContext, prepared: Prepared) -> Result:
    os_type = await jc.db.ostypes.get_by_uuid(prepared.instance_uuid or "")
    jc.announce(EventInfo(f"Guest OS Id: {os_type.uuid}", "GuestOs", os_type.uuid, os_type.name))
    return ObjectResult("ostype", OS_TYPE_OBJ.render(os_type))


@command("addGuestOs", description="Add a new guest OS type", roles=ROOT, response=OS_TYPE_OBJ,
         event="GUEST.OS.ADD", is_async=True, creates=True, run=_added_guest_os, since="4.4.0",
         java_class="org.apache.cloudstack.api.command.admin.guest.AddGuestOsCmd",
         params=[P("oscategoryid", OS_CATEGORY, "ID of Guest OS category", required=True,
                   related="listOsCategories"),
                 P("osdisplayname", description="Unique display name for Guest OS", required=True),
                 P("name", description="Optional name for Guest OS"),
                 P("details", "map", "Map of (key/value pairs)"),
                 P("fordisplay", "boolean", "whether this guest OS is available for end users",
                   field="forDisplay")])
async def add_guest_os(ctx: CallContext) -> Prepared:
    name = _display_name(ctx.get("osdisplayname"))
    await _unique(ctx, name)
    os_type = await ctx.db.ostypes.add(ctx.get("oscategoryid").id, name, ctx.get("fordisplay") is not False)
    return Prepared("GuestOs", os_type.uuid, created_id=os_type.uuid, state={"resource_name": name})


async def _update_guest_os(jc: JobContext, prepared: Prepared) -> Result:
    try:
        os_type = await jc.db.ostypes.get_by_uuid(prepared.instance_uuid or "")
    except NotFound:
        raise invalid_value("Guest OS not found. Please specify a valid ID for the Guest OS") from None
    updated = await jc.db.ostypes.update(os_type.id, name=prepared.state.get("name"),
                                         for_display=prepared.state.get("for_display"))
    jc.announce(EventInfo(f"Guest OS Id: {os_type.uuid}", "GuestOs", os_type.uuid, updated.name))
    return ObjectResult("ostype", OS_TYPE_OBJ.render(updated))


@command("updateGuestOs", description="Updates the information about Guest OS", roles=ROOT,
         response=OS_TYPE_OBJ,
         event="GUEST.OS.UPDATE", is_async=True, run=_update_guest_os, since="4.4.0",
         java_class="org.apache.cloudstack.api.command.admin.guest.UpdateGuestOsCmd",
         params=[P("id", OS_TYPE, "UUID of the Guest OS", required=True, related="listOsTypes"),
                 P("osdisplayname", description="Unique display name for Guest OS", required=True),
                 P("details", "map", "Map of (key/value pairs)"),
                 P("fordisplay", "boolean", "whether this guest OS is available for end users",
                   field="forDisplay")])
async def update_guest_os(ctx: CallContext) -> Prepared:
    os_type: OsType = ctx.get("id")
    _user_defined(os_type, "modify")
    name = _display_name(ctx.get("osdisplayname"))
    await _unique(ctx, name, os_type.id)
    return Prepared("GuestOs", os_type.uuid, sync_object=f"GuestOs:{os_type.id}",
                    state={"name": name, "for_display": ctx.get("fordisplay"), "resource_name": name})


async def _remove_guest_os(jc: JobContext, prepared: Prepared) -> Result:
    try:
        os_type = await jc.db.ostypes.get_by_uuid(prepared.instance_uuid or "")
        await jc.db.ostypes.remove(os_type.id)
    except NotFound:
        raise invalid_value("Guest OS not found. Please specify a valid ID for the Guest OS") from None
    jc.announce(EventInfo(f"Guest OS Id: {os_type.uuid}", "GuestOs", os_type.uuid, os_type.name))
    return SuccessResult()


@command("removeGuestOs", description="Removes a Guest OS from listing.", roles=ROOT,
         response=doc("success", *SUCCESS_FIELDS), event="GUEST.OS.REMOVE", is_async=True,
         run=_remove_guest_os,
         since="4.4.0", java_class="org.apache.cloudstack.api.command.admin.guest.RemoveGuestOsCmd",
         params=[P("id", OS_TYPE, "ID of the guest OS", required=True, related="listOsTypes")])
async def remove_guest_os(ctx: CallContext) -> Prepared:
    os_type: OsType = ctx.get("id")
    _user_defined(os_type, "remove")
    return Prepared("GuestOs", os_type.uuid, sync_object=f"GuestOs:{os_type.id}",
                    state={"resource_name": os_type.name})
