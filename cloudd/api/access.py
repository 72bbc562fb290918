"""Access decisions: which commands a role may call, which owners a caller may see or manage.

Command permission (spec/api.md §6.2): the root admin may call everything; otherwise the role's
rules in their order decide (first match wins, `*` wildcards), then the command's declared role
types. Ownership: a user sees its own account; a domain or resource admin its domain subtree;
the root admin everything. Managing another account or user additionally requires a strictly
higher role type (or the same type where the operator allows it) and every API permission the
target has (CVE-2025-47713/47849).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from cloudd.api.context import RANK, Caller
from cloudd.api.errors import ApiError, invalid_value, param_error, permission_denied, unsupported
from cloudd.db.base import NotFound, Scope

if TYPE_CHECKING:
    from cloudd.api.context import CallContext
    from cloudd.api.registry import Command
    from cloudd.db.accounts import Account, User
    from cloudd.db.domains import Domain


@lru_cache(maxsize=4096)
def _pattern(rule: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in rule.split("*")) + "$")


def rule_decision(rules: Sequence[tuple[str, str]], api_name: str) -> bool | None:
    """allow → True, deny → False, no rule matched → None."""
    for rule, permission in rules:
        if _pattern(rule).match(api_name):
            return permission.lower() == "allow"
    return None


def role_allows(role_type: str, is_root: bool, rules: Sequence[tuple[str, str]], cmd: Command) -> bool:
    if is_root:
        return True
    decided = rule_decision(rules, cmd.name)
    if decided is not None:
        return decided
    return role_type in cmd.roles


def permitted(role_type: str, is_root: bool, rules: Sequence[tuple[str, str]], commands: Iterable[Command]) -> set[str]:
    return {c.name for c in commands if role_allows(role_type, is_root, rules, c)}


def not_available(api_name: str, caller: Caller) -> ApiError:
    return unsupported(f"The API [{api_name}] does not exist or is not available for the account "
                       f"{caller.account.name}.")


# --- ownership ------------------------------------------------------------------------------------

def can_see_account(caller: Caller, account: Account) -> bool:
    if caller.is_root_admin:
        return True
    if caller.is_admin:
        return account.domain_path.startswith(caller.domain_path)
    return account.id == caller.account.id


def can_see_domain(caller: Caller, domain: Domain) -> bool:
    if caller.is_root_admin:
        return True
    if caller.is_admin:
        return domain.path.startswith(caller.domain_path)
    return domain.id == caller.account.domain_id


def deny_account(caller: Caller, account: Account) -> ApiError:
    return permission_denied(f"Account {caller.account.name} does not have permission to operate within "
                             f"account {account.name} in domain {account.domain_name}")


async def check_manage_account(ctx: CallContext, account: Account, *, same_account_ok: bool = False) -> None:
    """Raise unless the caller may change `account` (or its users)."""
    caller = ctx.caller
    if caller.is_root_admin:
        return
    if account.id == caller.account.id:
        if same_account_ok:
            return
        raise deny_account(caller, account)
    if not caller.is_admin or not account.domain_path.startswith(caller.domain_path):
        raise deny_account(caller, account)
    mine, theirs = RANK[caller.role_type], RANK[account.role_type]
    if theirs > mine:
        raise deny_account(caller, account)
    if theirs == mine:
        allowed = {t.strip() for t in ctx.api.settings.str(
            "role.types.allowed.for.operations.on.accounts.of.same.role.type").split(",")}
        if caller.role_type not in allowed:
            raise deny_account(caller, account)
    if account.role_type == "Admin" and account.role_is_default:
        raise deny_account(caller, account)
    if not await ctx.api.permissions_cover(caller.account, account):
        raise deny_account(caller, account)


async def check_manage_user(ctx: CallContext, user: User) -> None:
    """Raise unless the caller may change `user` (itself always, same-account peers by setting)."""
    caller = ctx.caller
    if user.id == caller.user.id:
        return
    same_ok = ctx.api.settings.bool("allow.operations.on.users.in.same.account")
    await check_manage_account(ctx, user.account, same_account_ok=same_ok and caller.is_admin)


# --- resolving ids in parameters ---------------------------------------------------------------

def _not_found(ctx: CallContext, name: str, value: str) -> ApiError:
    return param_error(
        f"Unable to execute API command {ctx.command.short_name} due to invalid value. Invalid parameter "
        f"{name} value={value} due to incorrect long value format, or entity does not exist or due to "
        "incorrect parameter annotation for the field in api cmd class.")


async def domain_param(ctx: CallContext, name: str = "domainid", *, see: bool = True) -> Domain | None:
    value = ctx.get(name)
    if value is None:
        return None
    try:
        domain = await ctx.api.db.domains.get_by_uuid(value)
    except NotFound:
        raise _not_found(ctx, name, value) from None
    if see and not can_see_domain(ctx.caller, domain):
        raise permission_denied(f"Account {ctx.caller.account.name} does not have permission to access "
                                f"domain {domain.name}")
    return domain


async def account_param(ctx: CallContext, name: str = "id") -> Account:
    value = ctx.get(name)
    try:
        account = await ctx.api.db.accounts.get_account_by_uuid(value)
    except NotFound:
        raise _not_found(ctx, name, value) from None
    if not can_see_account(ctx.caller, account):
        # A UUID authorises nothing: the same answer as for an unknown id.
        raise _not_found(ctx, name, value)
    return account


async def user_param(ctx: CallContext, name: str = "id") -> User:
    value = ctx.get(name)
    try:
        user = await ctx.api.db.accounts.get_user_by_uuid(value)
    except NotFound:
        raise _not_found(ctx, name, value) from None
    if user.id != ctx.caller.user.id and not (ctx.caller.is_admin and can_see_account(ctx.caller, user.account)):
        raise _not_found(ctx, name, value)
    return user


async def account_by_name(ctx: CallContext, domain: Domain | None) -> Account | None:
    """The account named by `account` (+ `domainid`), as most commands take an owner."""
    name = ctx.get("account")
    if name is None:
        return None
    if domain is None:
        domain_id, domain_name = ctx.caller.account.domain_id, ctx.caller.account.domain_name
    else:
        domain_id, domain_name = domain.id, domain.name
    try:
        account = await ctx.api.db.accounts.find_account(name, domain_id)
    except NotFound:
        raise invalid_value(f"Unable to find account {name} in domain {domain_name}") from None
    if not can_see_account(ctx.caller, account):
        raise invalid_value(f"Unable to find account {name} in domain {domain_name}")
    return account


async def owner_scope(ctx: CallContext) -> Scope:
    """The owners a list command may show, from listall/isrecursive/account/domainid (api.md §4.2)."""
    caller = ctx.caller
    domain = await domain_param(ctx)
    if ctx.get("account") is not None:
        if ctx.get("projectid") is not None:
            raise invalid_value("Account and projectId can't be specified together")
        try:
            account = await account_by_name(ctx, domain)
        except ApiError:
            dname = domain.name if domain else caller.account.domain_name
            raise invalid_value(f"could not find account {ctx.get('account')} in domain {dname}") from None
        assert account is not None
        return Scope(account_ids=(account.id,))
    if not caller.is_admin:
        return Scope(account_ids=(caller.account.id,))
    if domain is not None:
        return Scope(domain_path=domain.path) if ctx.get("isrecursive") else Scope(domain_id=domain.id)
    if ctx.get("listall") or ctx.get("id") is not None:
        return Scope() if caller.is_root_admin else Scope(domain_path=caller.domain_path)
    return Scope(account_ids=(caller.account.id,))
