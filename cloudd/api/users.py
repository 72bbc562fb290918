"""User commands: create, list, update, enable, disable, lock, delete, get, and API keys."""

from __future__ import annotations

from cloudd.api import access
from cloudd.api.access import (
    account_by_name,
    check_manage_account,
    check_manage_user,
    domain_param,
    user_param,
)
from cloudd.api.accounts import USER_PARAMS, check_name, check_password_value
from cloudd.api.binding import is_uuid
from cloudd.api.context import CallContext
from cloudd.api.errors import invalid_value, permission_denied
from cloudd.api.fields import SUCCESS_FIELDS, USER_FIELDS, USERKEYS_FIELDS, doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ADMINS, ALL, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.api.views import user_view
from cloudd.db.accounts import User
from cloudd.db.base import NotFound
from cloudd.orchestration.context import JobContext
from cloudd.util.passwords import check_password, hash_password, new_api_key

P = Param
USER = doc("user", *USER_FIELDS)
SUCCESS = doc("success", *SUCCESS_FIELDS)
USERKEYS = doc("userkeys", *USERKEYS_FIELDS)
ID = P("id", "uuid", "User id", required=True, related="listUsers")


def _event(user: User, what: str) -> EventInfo:
    return EventInfo(f"User Id: {user.uuid}, User Name: {user.username}{what}", "User", user.uuid, user.username,
                     user.account)


@command("createUser", description="Creates a user for an account that already exists", roles=ADMINS,
         response=USER, event="USER.CREATE",
         params=[P("account", description="Creates the user under the specified account. If no account is "
                   "specified, the username will be used as the account name.", required=True),
                 *USER_PARAMS,
                 P("domainid", "uuid", "Creates the user under the specified domain. Has to be accompanied with "
                   "the account parameter", related="listDomains"),
                 P("userid", description="User UUID, required for adding account from external provisioning "
                   "system")])
async def create_user(ctx: CallContext) -> Result:
    check_name("Username", ctx.get("username"))
    check_password_value(ctx, ctx.get("password"))
    account = await account_by_name(ctx, await domain_param(ctx))
    assert account is not None
    await check_manage_account(ctx, account, same_account_ok=ctx.caller.is_admin)
    custom = ctx.get("userid")
    if custom is not None and not is_uuid(custom):
        raise invalid_value("userid must be a lower-case UUID")
    pw_hash = await ctx.api.blocking(hash_password, ctx.get("password"))
    user = await ctx.db.accounts.create_user(
        account, username=ctx.get("username"), password_hash=pw_hash, firstname=ctx.get("firstname"),
        lastname=ctx.get("lastname"), email=ctx.get("email"), timezone=ctx.get("timezone"), uuid=custom)
    ctx.announce(_event(user, f", Account: {account.name}"))
    return ObjectResult("user", user_view(user))


@command("listUsers", description="Lists user accounts", roles=ADMINS, response=USER, listing=True, owned=True,
         params=[P("id", "uuid", "List user by ID.", related="listUsers"),
                 P("username", description="List user by the username"),
                 P("accounttype", "integer", "List users by account type. Valid types include admin, "
                   "domain-admin, read-only-admin, or user."),
                 P("state", description="List users by state of the user account."),
                 P("accountid", "uuid", "List users by account ID", related="listAccounts")])
async def list_users(ctx: CallContext) -> Result:
    scope = await access.owner_scope(ctx)
    account_id = None
    if ctx.get("accountid") is not None:
        try:
            account = await ctx.db.accounts.get_account_by_uuid(ctx.get("accountid"))
        except NotFound:
            return ListResult("user", [], 0)
        if not access.can_see_account(ctx.caller, account):
            return ListResult("user", [], 0)
        account_id = account.id
    total, users = await ctx.db.accounts.list_users(
        scope, uuid=ctx.get("id"), username=ctx.get("username"), account_id=account_id,
        account_type=ctx.get("accounttype"), state=ctx.get("state"), keyword=ctx.get("keyword"),
        page=page_of(ctx))
    return ListResult("user", [user_view(u, caller_domain_path=ctx.caller.domain_path) for u in users], total)


@command("updateUser", description="Updates a user account", roles=ALL, response=USER, event="USER.UPDATE",
         params=[ID,
                 P("username", description="Unique username"),
                 P("firstname", description="first name"),
                 P("lastname", description="last name"),
                 P("email", description="email"),
                 P("timezone", description="Specifies a timezone for this command."),
                 P("password", description="Clear text password (default hashed to SHA256SALT).", secret=True),
                 P("currentpassword", description="Current password that was being used by the user. You must "
                   "inform the current password when updating the password.", secret=True),
                 P("userapikey", description="The API key for the user. Must be specified with userSecretKey"),
                 P("usersecretkey", description="The secret key for the user. Must be specified with userApiKey",
                   secret=True),
                 P("mandate2fa", "boolean", "Provide true to mandate the User to configure 2FA at their next "
                   "login")])
async def update_user(ctx: CallContext) -> Result:
    user = await user_param(ctx)
    await check_manage_user(ctx, user)
    values: dict[str, object] = {}
    for name in ("username", "firstname", "lastname", "email", "timezone"):
        if ctx.get(name) is not None:
            values[name] = ctx.get(name)
    if "username" in values:
        check_name("Username", str(values["username"]))
    password = ctx.get("password")
    if password is not None:
        check_password_value(ctx, password)
        if user.id == ctx.caller.user.id and not ctx.caller.is_root_admin:
            current = ctx.get("currentpassword")
            stored = await ctx.db.accounts.password_hash(user.id)
            if not current or not await ctx.api.blocking(check_password, current, stored):
                raise invalid_value("Current password is incorrect")
        values["password_hash"] = await ctx.api.blocking(hash_password, password)
    api_key, secret = ctx.get("userapikey"), ctx.get("usersecretkey")
    if (api_key is None) != (secret is None):
        raise invalid_value("Please provide a userApiKey/userSecretKey pair")
    if api_key is not None:
        if not ctx.caller.is_admin:
            raise permission_denied("Only administrators may set user keys")
        values["api_key"], values["secret_key"] = api_key, secret
    updated = await ctx.db.accounts.update_user(user, values)
    ctx.identity_changed()
    ctx.announce(_event(updated, ""))
    return ObjectResult("user", user_view(updated))


async def _changeable(ctx: CallContext) -> User:
    user = await user_param(ctx)
    if user.id == ctx.caller.user.id:
        raise invalid_value("A user can not disable, lock or delete itself")
    if user.is_default:
        raise permission_denied(f"The default user {user.username} can not be disabled, locked or deleted")
    await check_manage_user(ctx, user)
    return user


async def _set_state(ctx: CallContext | JobContext, user: User, state: str) -> User:
    updated = await ctx.db.accounts.set_user_state(user.id, state)
    ctx.identity_changed()
    ctx.announce(_event(user, f", State: {state}"))
    return updated


async def _disable_job(ctx: JobContext, prepared: Prepared) -> Result:
    user = await ctx.db.accounts.get_user_by_uuid(prepared.instance_uuid or "")
    return ObjectResult("user", user_view(await _set_state(ctx, user, "disabled")))


@command("disableUser", description="Disables a user account", roles=ADMINS, response=USER, event="USER.DISABLE",
         is_async=True, run=_disable_job, java_class="org.apache.cloudstack.api.command.admin.user.DisableUserCmd",
         params=[P("id", "uuid", "Disables user by user ID.", required=True, related="listUsers")])
async def disable_user(ctx: CallContext) -> Prepared:
    user = await _changeable(ctx)
    return Prepared("User", user.uuid, f"User:{user.id}", state={"resource_name": user.username,
                                                                  "event_owner": user.account})


@command("enableUser", description="Enables a user account", roles=ADMINS, response=USER, event="USER.ENABLE",
         params=[P("id", "uuid", "Enables user by user ID.", required=True, related="listUsers")])
async def enable_user(ctx: CallContext) -> Result:
    user = await user_param(ctx)
    await check_manage_user(ctx, user)
    return ObjectResult("user", user_view(await _set_state(ctx, user, "enabled")))


@command("lockUser", description="Locks a user account", roles=ADMINS, response=USER, event="USER.LOCK",
         params=[P("id", "uuid", "Locks user by user ID.", required=True, related="listUsers")])
async def lock_user(ctx: CallContext) -> Result:
    user = await _changeable(ctx)
    return ObjectResult("user", user_view(await _set_state(ctx, user, "locked")))


@command("deleteUser", description="Deletes a user for an account", roles=ADMINS, response=SUCCESS,
         event="USER.DELETE",
         params=[P("id", "uuid", "id of the user to be deleted", required=True, related="listUsers")])
async def delete_user(ctx: CallContext) -> Result:
    user = await _changeable(ctx)
    await ctx.db.accounts.remove_user(user)
    ctx.identity_changed()
    ctx.announce(_event(user, ""))
    return SuccessResult()


@command("getUser", description="Find user account by API key", roles=ADMINS, response=USER,
         params=[P("userapikey", description="API key of the user", required=True)])
async def get_user(ctx: CallContext) -> Result:
    try:
        user = await ctx.db.accounts.get_user_by_api_key(ctx.get("userapikey"))
    except NotFound:
        user = None
    if user is None or not access.can_see_account(ctx.caller, user.account):
        raise invalid_value("Unable to find user by the given API key")
    return ObjectResult("user", user_view(user))


async def _keys_target(ctx: CallContext) -> User:
    user = await user_param(ctx)
    await check_manage_user(ctx, user)
    return user


@command("registerUserKeys", description="This command allows a user to register for the developer API, "
         "returning a secret key and an API key. This request is made through the integration API port, so it is "
         "a privileged command and must be made on behalf of a user. It is up to the implementer just how the "
         "username and password are entered, and then how that translates to an integration API request. Both "
         "secret key and API key should be returned to the user", roles=ALL, response=USERKEYS,
         event="REGISTER.USER.KEY", params=[P("id", "uuid", "User id", required=True, related="listUsers")])
async def register_user_keys(ctx: CallContext) -> Result:
    user = await _keys_target(ctx)
    api_key, secret = new_api_key(), new_api_key()
    await ctx.db.accounts.update_user(user, {"api_key": api_key, "secret_key": secret})
    ctx.identity_changed()
    ctx.announce(_event(user, ""))
    return ObjectResult("userkeys", {"apikey": api_key, "secretkey": secret})


@command("getUserKeys", description="This command allows the user to query the seceret and API keys for the "
         "account", roles=ALL, response=USERKEYS, since="4.10.0",
         params=[P("id", "uuid", "ID of the user whose keys are required", required=True, related="listUsers")])
async def get_user_keys(ctx: CallContext) -> Result:
    user = await _keys_target(ctx)
    if user.api_key is None:
        return ObjectResult("userkeys", {})
    creds = await ctx.db.accounts.credentials_by_api_key(user.api_key)
    return ObjectResult("userkeys", {"apikey": user.api_key, "secretkey": creds.secret_key})
