"""Account commands: create, list, update, enable, disable, lock, delete."""

from __future__ import annotations

from cloudd.api import access
from cloudd.api.access import account_by_name, account_param, check_manage_account, domain_param
from cloudd.api.binding import is_uuid
from cloudd.api.context import ACCOUNT_TYPE_FOR_ROLE, RANK, ROLE_FOR_ACCOUNT_TYPE, CallContext
from cloudd.api.errors import invalid_value, param_error, permission_denied
from cloudd.api.fields import ACCOUNT_FIELDS, SUCCESS_FIELDS, doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ADMINS, ALL, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.api.views import account_view
from cloudd.db.accounts import Account
from cloudd.db.base import NotFound
from cloudd.db.roles import Role
from cloudd.orchestration.context import JobContext
from cloudd.util.passwords import hash_password

P = Param
ACCOUNT = doc("account", *ACCOUNT_FIELDS)
SUCCESS = doc("success", *SUCCESS_FIELDS)
ACCOUNT_TYPE_HELP = "Type of the account. Specify 0 for user, 1 for root admin, and 2 for domain admin"


async def view(ctx: CallContext | JobContext, account: Account) -> dict[str, object]:
    users = await ctx.db.accounts.users_of_accounts([account.id])
    return account_view(account, users.get(account.id, []))


async def resolve_role(ctx: CallContext) -> Role:
    """The role of a new account from `roleid` and/or `accounttype`; never above the caller's."""
    db = ctx.db
    role = None
    if ctx.get("roleid") is not None:
        try:
            role = await db.roles.get_by_uuid(ctx.get("roleid"))
        except NotFound:
            raise invalid_value("Invalid role id provided") from None
    account_type = ctx.get("accounttype")
    if account_type is not None and account_type not in ROLE_FOR_ACCOUNT_TYPE:
        raise invalid_value(f"Invalid account type {account_type} given; unable to create user")
    if role is None:
        if account_type is None:
            raise invalid_value("Either account type or role ID must be passed while creating account.")
        role = await db.roles.default_for_type(ROLE_FOR_ACCOUNT_TYPE[account_type])
    elif account_type is not None and ROLE_FOR_ACCOUNT_TYPE[account_type] != role.role_type:
        raise invalid_value("Role and account type do not match")
    caller = ctx.caller
    if not caller.is_root_admin:
        mine, theirs = RANK[caller.role_type], RANK[role.role_type]
        allowed = {t.strip() for t in ctx.api.settings.str(
            "role.types.allowed.for.operations.on.accounts.of.same.role.type").split(",")}
        if theirs > mine or (theirs == mine and caller.role_type not in allowed) or role.role_type == "Admin":
            raise permission_denied(f"Account {caller.account.name} can not create an account with role "
                                    f"{role.name}")
        rules = await ctx.api.rules_for(role.id)
        theirs_set = access.permitted(role.role_type, False, rules, ctx.api.registry)
        if not theirs_set <= await ctx.api.permitted_commands(caller.account):
            raise permission_denied(f"Account {caller.account.name} can not create an account with role "
                                    f"{role.name}")
    return role


def check_password_value(ctx: CallContext, password: str) -> None:
    if not password:
        raise invalid_value("Empty passwords are not allowed")
    if len(password) < ctx.api.settings.int("user.password.min.length"):
        raise invalid_value("The password is shorter than the minimum length allowed")


def check_name(label: str, value: str) -> None:
    if not value.strip():
        raise invalid_value(f"{label} is empty")


USER_PARAMS = [
    P("username", description="Unique username.", required=True),
    P("password", description="Clear text password (Default hashed to SHA256SALT). If you wish to use any "
      "other hashing algorithm, you would need to write a custom authentication adapter.", required=True,
      secret=True),
    P("firstname", description="firstname", required=True),
    P("lastname", description="lastname", required=True),
    P("email", description="email", required=True),
    P("timezone", description="Specifies a timezone for this command."),
]


@command("createAccount", description="Creates an account", roles=ADMINS, response=ACCOUNT, event="ACCOUNT.CREATE",
         params=[*USER_PARAMS,
                 P("accounttype", "integer", ACCOUNT_TYPE_HELP),
                 P("roleid", "uuid", "Creates the account under the specified role.", related="listRoles"),
                 P("account", description="Name of the account to be created. The user will be added to this "
                   "newly created account. If no account is specified, the username will be used as the account "
                   "name."),
                 P("domainid", "uuid", "Creates the user under the specified domain.", related="listDomains"),
                 P("networkdomain", description="Network domain for the account's networks"),
                 P("accountdetails", "map", "details for the account used to store specific parameters"),
                 P("accountid", description="Account UUID, required for adding account from external "
                   "provisioning system"),
                 P("userid", description="User UUID, required for adding account from external provisioning "
                   "system")])
async def create_account(ctx: CallContext) -> Result:
    check_name("Username", ctx.get("username"))
    check_password_value(ctx, ctx.get("password"))
    role = await resolve_role(ctx)
    domain = await domain_param(ctx) or await ctx.db.domains.get(ctx.caller.account.domain_id)
    if domain.state != "Active":
        raise invalid_value(f"The domain {domain.name} is being deleted")
    name = ctx.get("account") or ctx.get("username")
    for label, custom in (("accountid", ctx.get("accountid")), ("userid", ctx.get("userid"))):
        if custom is not None and not is_uuid(custom):
            raise invalid_value(f"{label} must be a lower-case UUID")
    pw_hash = await ctx.api.blocking(hash_password, ctx.get("password"))
    account = await ctx.db.accounts.create_account(
        name=name, account_type=ACCOUNT_TYPE_FOR_ROLE[role.role_type], role_id=role.id, domain_id=domain.id,
        network_domain=ctx.get("networkdomain"), account_uuid=ctx.get("accountid"), username=ctx.get("username"),
        password_hash=pw_hash, firstname=ctx.get("firstname"), lastname=ctx.get("lastname"),
        email=ctx.get("email"), timezone=ctx.get("timezone"), user_uuid=ctx.get("userid"))
    ctx.announce(EventInfo(f"Account Name: {account.name}, Domain Id: {domain.uuid}", "Account",
                                    account.uuid, account.name, account))
    return ObjectResult("account", await view(ctx, account))


@command("listAccounts", description="Lists accounts and provides detailed account information for listed "
         "accounts", roles=ALL, response=ACCOUNT, listing=True, owned=True,
         params=[P("id", "uuid", "list account by account ID", related="listAccounts"),
                 P("name", description="list account by account name"),
                 P("accounttype", "integer", "list accounts by account type. Valid account types are 1 (admin), "
                   "2 (domain-admin), and 0 (user)."),
                 P("state", description="list accounts by state. Valid states are enabled, disabled, and locked."),
                 P("iscleanuprequired", "boolean", "list accounts by cleanuprequired attribute (values are true "
                   "or false)"),
                 P("details", "list", "comma separated list of account details requested")])
async def list_accounts(ctx: CallContext) -> Result:
    scope = await access.owner_scope(ctx)
    total, accounts = await ctx.db.accounts.list_accounts(
        scope, uuid=ctx.get("id"), name=ctx.get("name"), account_type=ctx.get("accounttype"),
        state=ctx.get("state"), keyword=ctx.get("keyword"), page=page_of(ctx))
    users = await ctx.db.accounts.users_of_accounts([a.id for a in accounts])
    return ListResult("account", [account_view(a, users.get(a.id, [])) for a in accounts], total)


async def target_account(ctx: CallContext) -> Account:
    """The account named by `id`, or by `account` + `domainid`."""
    if ctx.get("id") is not None:
        return await account_param(ctx, "id")
    if ctx.get("account") is None or ctx.get("domainid") is None:
        raise param_error(f"Unable to execute API command {ctx.command.short_name} due to missing parameter id")
    account = await account_by_name(ctx, await domain_param(ctx))
    assert account is not None
    return account


ID_OR_NAME = [P("id", "uuid", "Account id", related="listAccounts"),
              P("account", description="Account name"),
              P("domainid", "uuid", "Domain ID of the account", related="listDomains")]


@command("updateAccount", description="Updates account information for the authenticated user", roles=ADMINS,
         response=ACCOUNT, event="ACCOUNT.UPDATE",
         params=[*ID_OR_NAME,
                 P("newname", description="new name for the account"),
                 P("networkdomain", description="Network domain for the account's networks; empty string will "
                   "update domainName with NULL value"),
                 P("roleid", "uuid", "The UUID of the dynamic role to set for the account", related="listRoles"),
                 P("accountdetails", "map", "Details for the account used to store specific parameters")])
async def update_account(ctx: CallContext) -> Result:
    account = await target_account(ctx)
    await check_manage_account(ctx, account)
    role_id = None
    if ctx.get("roleid") is not None:
        role = await resolve_role(ctx)
        if role.role_type != account.role_type:
            raise invalid_value("The role's type must match the account's type")
        role_id = role.id
    if ctx.get("newname") is not None:
        check_name("Account name", ctx.get("newname"))
    updated = await ctx.db.accounts.update_account(account, name=ctx.get("newname"),
                                                       network_domain=ctx.get("networkdomain"), role_id=role_id)
    ctx.identity_changed()
    ctx.announce(EventInfo(f"Account Id: {account.uuid}, Account Name: {updated.name}", "Account",
                                    account.uuid, updated.name, updated))
    return ObjectResult("account", await view(ctx, updated))


async def _changeable(ctx: CallContext) -> Account:
    account = await target_account(ctx)
    if account.id == ctx.caller.account.id:
        raise invalid_value("An account can not disable, lock or delete itself")
    if account.is_default:
        raise permission_denied(f"The system account {account.name} can not be disabled, locked or deleted")
    await check_manage_account(ctx, account)
    return account


async def _set_state(ctx: CallContext | JobContext, account: Account, state: str) -> Account:
    updated = await ctx.db.accounts.set_account_state(account.id, state)
    ctx.identity_changed()
    ctx.announce(EventInfo(f"Account Id: {account.uuid}, Account Name: {account.name}, State: {state}",
                                    "Account", account.uuid, account.name, account))
    return updated


async def _disable_job(ctx: JobContext, prepared: Prepared) -> Result:
    account = await ctx.db.accounts.get_account_by_uuid(prepared.instance_uuid or "")
    updated = await _set_state(ctx, account, "locked" if prepared.state["lock"] else "disabled")
    return ObjectResult("account", await view(ctx, updated))


@command("disableAccount", description="Disables an account", roles=ADMINS, response=ACCOUNT,
         event="ACCOUNT.DISABLE", is_async=True, run=_disable_job,
         java_class="org.apache.cloudstack.api.command.admin.account.DisableAccountCmd",
         params=[*ID_OR_NAME,
                 P("lock", "boolean", "If true, only lock the account; else disable the account", required=True)])
async def disable_account(ctx: CallContext) -> Prepared:
    account = await _changeable(ctx)
    return Prepared("Account", account.uuid, f"Account:{account.id}",
                    state={"lock": bool(ctx.get("lock")), "resource_name": account.name, "event_owner": account})


@command("enableAccount", description="Enables an account", roles=ADMINS, response=ACCOUNT, event="ACCOUNT.ENABLE",
         params=ID_OR_NAME)
async def enable_account(ctx: CallContext) -> Result:
    account = await target_account(ctx)
    await check_manage_account(ctx, account)
    return ObjectResult("account", await view(ctx, await _set_state(ctx, account, "enabled")))


@command("lockAccount", description="This deprecated function used to locks an account. Look for the API "
         "DisableAccount instead", roles=ADMINS, response=ACCOUNT, event="ACCOUNT.DISABLE",
         params=[P("account", description="Locks the specified account.", required=True),
                 P("domainid", "uuid", "Locks the specified account on this domain.", required=True,
                   related="listDomains")])
async def lock_account(ctx: CallContext) -> Result:
    account = await _changeable(ctx)
    return ObjectResult("account", await view(ctx, await _set_state(ctx, account, "locked")))


async def _delete_job(ctx: JobContext, prepared: Prepared) -> Result:
    account = await ctx.db.accounts.get_account_by_uuid(prepared.instance_uuid or "")
    await ctx.db.accounts.remove_account(account.id)
    ctx.identity_changed()
    ctx.announce(EventInfo(f"Account Id: {account.uuid}, Account Name: {account.name}", "Account",
                                    account.uuid, account.name, account))
    return SuccessResult()


@command("deleteAccount", description="Deletes an account and all users in the account", roles=ADMINS,
         response=SUCCESS, event="ACCOUNT.DELETE", is_async=True, run=_delete_job,
         java_class="org.apache.cloudstack.api.command.admin.account.DeleteAccountCmd",
         params=[P("id", "uuid", "Account id", required=True, related="listAccounts")])
async def delete_account(ctx: CallContext) -> Prepared:
    account = await _changeable(ctx)
    return Prepared("Account", account.uuid, f"Account:{account.id}",
                    state={"resource_name": account.name, "event_owner": account})
