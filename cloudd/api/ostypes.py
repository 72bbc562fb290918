"""Guest OS commands: listOsTypes and listOsCategories, and their response objects.

Every caller may list them; OS types an operator hid from users (`fordisplay` false) are listed only
to the root admin, who alone may filter on `fordisplay`.
"""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, Param, command
from cloudd.api.results import ListResult, Result
from cloudd.errors import permission_denied
from cloudd.orchestration.context import Services

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
                 P("fordisplay", "boolean", "list resources by display flag; only ROOT admin is eligible to pass "
                   "this parameter", since="4.18.1")])
async def list_os_types(ctx: CallContext) -> Result:
    for_display = ctx.get("fordisplay")
    if not ctx.caller.is_root_admin:
        if for_display is not None:
            raise permission_denied("Parameter fordisplay can only be passed by ROOT admin")
        for_display = True
    os_type, category = ctx.get("id"), ctx.get("oscategoryid")
    total, types = await ctx.db.ostypes.search(
        os_id=os_type.id if os_type is not None else None, category_id=category.id if category is not None else None,
        description=ctx.get("description"), keyword=ctx.get("keyword"), for_display=for_display, page=page_of(ctx))
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
