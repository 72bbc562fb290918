"""Role commands: roles and their ordered allow/deny rules."""

from __future__ import annotations

from cloudd.api.context import RANK, CallContext
from cloudd.api.errors import invalid_value, param_error
from cloudd.api.fields import ROLE_FIELDS, ROLE_PERMISSION_FIELDS, SUCCESS_FIELDS, doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ADMINS, ROLE_TYPES, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.api.views import role_permission_view, role_view
from cloudd.db.base import Conflict, NotFound
from cloudd.db.roles import Role

P = Param
ROLE = doc("role", *ROLE_FIELDS)
PERMISSION = doc("rolepermission", *ROLE_PERMISSION_FIELDS)
SUCCESS = doc("success", *SUCCESS_FIELDS)
TYPES_HELP = "The type of the role, valid options are: Admin, ResourceAdmin, DomainAdmin, User"


def _role_type(value: str | None) -> str | None:
    if value is None:
        return None
    for t in ROLE_TYPES:
        if t.lower() == value.lower():
            return t
    raise invalid_value(f"Invalid role type provided: {value}; {TYPES_HELP}")


def _check_rule(rule: str) -> str:
    if not rule or not all(c.isalnum() or c == "*" for c in rule):
        raise invalid_value("Only API names and wildcards are allowed in a rule, e.g. list*")
    return rule


def _permission(value: str) -> str:
    if value.lower() not in ("allow", "deny"):
        raise invalid_value("Values for permission parameter should be: allow or deny")
    return value.lower()


async def role_by_id(ctx: CallContext, name: str = "id") -> Role:
    try:
        return await ctx.api.db.roles.get_by_uuid(ctx.get(name))
    except NotFound:
        raise invalid_value(f"Unable to find the role with the given {name}") from None


@command("listRoles", description="Lists dynamic roles in CloudStack", roles=ADMINS, response=ROLE, listing=True,
         since="4.9.0",
         params=[P("id", "uuid", "List role by role ID.", related="listRoles"),
                 P("name", description="List role by role name."),
                 P("type", description="List role by role type, valid options are: Admin, ResourceAdmin, "
                   "DomainAdmin, User.")])
async def list_roles(ctx: CallContext) -> Result:
    caller = ctx.caller
    # below the root admin, only roles of the caller's own rank or lower are shown
    visible = None if caller.is_root_admin else tuple(t for t in ROLE_TYPES if RANK[t] <= RANK[caller.role_type])
    total, roles = await ctx.api.db.roles.search(uuid=ctx.get("id"), name=ctx.get("name"),
                                               role_type=_role_type(ctx.get("type")), keyword=ctx.get("keyword"),
                                               page=page_of(ctx), role_types=visible)
    return ListResult("role", [role_view(r) for r in roles], total)


@command("createRole", description="Creates a role", roles=ROOT, response=ROLE, event="ROLE.CREATE", since="4.9.0",
         params=[P("name", description="Creates a role with this unique name", required=True),
                 P("type", description=TYPES_HELP),
                 P("roleid", "uuid", "ID of the role to be cloned from. Either roleid or type must be passed in",
                   related="listRoles"),
                 P("description", description="The description of the role")])
async def create_role(ctx: CallContext) -> Result:
    source = await role_by_id(ctx, "roleid") if ctx.get("roleid") is not None else None
    role_type = _role_type(ctx.get("type")) or (source.role_type if source else None)
    if role_type is None:
        raise param_error("Neither role type nor role ID is provided")
    if not ctx.get("name").strip():
        raise invalid_value("Role name is empty")
    role = await ctx.api.db.roles.create(ctx.get("name"), role_type, ctx.get("description"), source)
    ctx.api.identity_changed()
    ctx.extras["event"] = EventInfo(f"Role Name: {role.name}, Type: {role.role_type}", "Role", role.uuid, role.name)
    return ObjectResult("role", role_view(role))


@command("updateRole", description="Updates a role", roles=ROOT, response=ROLE, event="ROLE.UPDATE", since="4.9.0",
         params=[P("id", "uuid", "ID of the role", required=True, related="listRoles"),
                 P("name", description="creates a role with this unique name"),
                 P("type", description=TYPES_HELP),
                 P("description", description="The description of the role")])
async def update_role(ctx: CallContext) -> Result:
    role = await role_by_id(ctx)
    if role.is_default:
        raise invalid_value("Default roles cannot be updated")
    updated = await ctx.api.db.roles.update(role, ctx.get("name"), ctx.get("description"),
                                            _role_type(ctx.get("type")))
    ctx.api.identity_changed()
    ctx.extras["event"] = EventInfo(f"Role Id: {role.uuid}", "Role", role.uuid, updated.name)
    return ObjectResult("role", role_view(updated))


@command("deleteRole", description="Deletes a role", roles=ROOT, response=SUCCESS, event="ROLE.DELETE", since="4.9.0",
         params=[P("id", "uuid", "ID of the role", required=True, related="listRoles")])
async def delete_role(ctx: CallContext) -> Result:
    role = await role_by_id(ctx)
    if role.is_default:
        raise invalid_value("Default roles cannot be deleted")
    await ctx.api.db.roles.delete(role)
    ctx.api.identity_changed()
    ctx.extras["event"] = EventInfo(f"Role Id: {role.uuid}", "Role", role.uuid, role.name)
    return SuccessResult()


@command("listRolePermissions", description="Lists role permissions", roles=ADMINS, response=PERMISSION,
         since="4.9.0", params=[P("roleid", "uuid", "ID of the role", related="listRoles")])
async def list_role_permissions(ctx: CallContext) -> Result:
    if ctx.get("roleid") is not None:
        roles = [await role_by_id(ctx, "roleid")]
    else:
        _, roles = await ctx.api.db.roles.search()
    items: list[dict[str, object]] = []
    for role in roles:
        items.extend(role_permission_view(p) for p in await ctx.api.db.roles.rules(role.id))
    return ListResult("rolepermission", items, len(items))


@command("createRolePermission", description="Adds an API permission to a role", roles=ROOT, response=PERMISSION,
         event="ROLE.PERMISSION.CREATE", since="4.9.0",
         params=[P("roleid", "uuid", "ID of the role", required=True, related="listRoles"),
                 P("rule", description="The API name or wildcard rule such as list*", required=True),
                 P("permission", description="The rule permission, allow or deny. Default: deny.", required=True),
                 P("description", description="The description of the role permission")])
async def create_role_permission(ctx: CallContext) -> Result:
    role = await role_by_id(ctx, "roleid")
    if role.is_default and role.role_type == "Admin":
        raise invalid_value("The Root Admin role allows everything; its rules cannot be changed")
    perm = await ctx.api.db.roles.add_rule(role, _check_rule(ctx.get("rule")), _permission(ctx.get("permission")),
                                           ctx.get("description"))
    ctx.api.identity_changed()
    ctx.extras["event"] = EventInfo(f"Role Id: {role.uuid}, Rule: {perm.rule}, Permission: {perm.permission}",
                                    "Role", role.uuid, role.name)
    return ObjectResult("rolepermission", role_permission_view(perm))


@command("updateRolePermission", description="Updates a role permission order", roles=ROOT, response=SUCCESS,
         event="ROLE.PERMISSION.UPDATE", since="4.9.0",
         params=[P("roleid", "uuid", "ID of the role", required=True, related="listRoles"),
                 P("ruleorder", "list", "The parent role permission uuid, use 0 to move this rule at the top of "
                   "the list", element="uuid", length=65535),
                 P("ruleid", "uuid", "Role permission rule id", since="4.11"),
                 P("permission", description="Rule permission, can be: allow or deny", since="4.11")])
async def update_role_permission(ctx: CallContext) -> Result:
    role = await role_by_id(ctx, "roleid")
    db = ctx.api.db
    if ctx.get("ruleorder") is not None:
        try:
            await db.roles.reorder_rules(role, ctx.get("ruleorder"))
        except Conflict as exc:
            raise invalid_value(str(exc)) from None
    elif ctx.get("ruleid") is not None and ctx.get("permission") is not None:
        try:
            rule = await db.roles.get_rule(ctx.get("ruleid"))
        except NotFound:
            raise invalid_value("Invalid rule id provided") from None
        if rule.role_id != role.id:
            raise invalid_value("The rule does not belong to the role")
        await db.roles.update_rule(rule, _permission(ctx.get("permission")))
    else:
        raise invalid_value("Either ruleorder, or ruleid and permission must be provided")
    ctx.api.identity_changed()
    ctx.extras["event"] = EventInfo(f"Role Id: {role.uuid}", "Role", role.uuid, role.name)
    return SuccessResult()


@command("deleteRolePermission", description="Deletes a role permission", roles=ROOT, response=SUCCESS,
         event="ROLE.PERMISSION.DELETE", since="4.9.0",
         params=[P("id", "uuid", "ID of the role permission", required=True, related="listRolePermissions")])
async def delete_role_permission(ctx: CallContext) -> Result:
    try:
        rule = await ctx.api.db.roles.get_rule(ctx.get("id"))
    except NotFound:
        raise invalid_value("Invalid role permission id provided") from None
    await ctx.api.db.roles.delete_rule(rule.id)
    ctx.api.identity_changed()
    ctx.extras["event"] = EventInfo(f"Role Id: {rule.role_uuid}, Rule: {rule.rule}", "Role", rule.role_uuid,
                                    rule.role_name)
    return SuccessResult()
