"""Domain commands: createDomain, listDomains, listDomainChildren, updateDomain, deleteDomain."""

from __future__ import annotations

from cloudd.api import access
from cloudd.api.access import domain_param
from cloudd.api.binding import is_uuid
from cloudd.api.context import CallContext
from cloudd.api.errors import in_use, invalid_value, permission_denied
from cloudd.api.fields import DOMAIN_FIELDS, SUCCESS_FIELDS, doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ADMINS, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.api.views import domain_view
from cloudd.db.base import NotFound
from cloudd.db.connector import DBConnector
from cloudd.db.domains import Domain
from cloudd.db.jobs import Job
from cloudd.jobs.recovery import recovers
from cloudd.orchestration.context import JobContext, Services

P = Param
DOMAIN = doc("domain", *DOMAIN_FIELDS)
NAME_RULES = "names may not contain '/' and are at most 255 characters"


def _check_name(name: str) -> None:
    if "/" in name or not name.strip():
        raise invalid_value(f"Invalid domain name {name}: {NAME_RULES}")


@command("createDomain", description="Creates a domain", roles=ROOT, response=DOMAIN, event="DOMAIN.CREATE",
         params=[P("name", description="creates domain with this name", required=True),
                 P("parentdomainid", "uuid", "assigns new domain a parent domain by domain ID of the parent. If no "
                   "parent domain is specified, the ROOT domain is assumed.", related="listDomains"),
                 P("networkdomain", description="Network domain for networks in the domain"),
                 P("domainid", description="Domain UUID, required for adding domain from another Region")])
async def create_domain(ctx: CallContext) -> Result:
    name = ctx.get("name")
    _check_name(name)
    parent = await domain_param(ctx, "parentdomainid") or await ctx.db.domains.get_by_path("/")
    if not access.can_see_domain(ctx.caller, parent):
        raise permission_denied(f"Account {ctx.caller.account.name} does not have permission on domain {parent.name}")
    custom = ctx.get("domainid")
    if custom is not None and not is_uuid(custom):
        raise invalid_value("domainid must be a lower-case UUID")
    domain = await ctx.db.domains.create(name, parent, ctx.get("networkdomain"), custom)
    ctx.announce(EventInfo(f"Domain Name: {domain.name}, Parent Domain: {parent.name}", "Domain",
                                    domain.uuid, domain.name))
    return ObjectResult("domain", domain_view(domain))


@command("listDomains", description="Lists domains and provides detailed information for listed domains",
         roles=ADMINS, response=DOMAIN, listing=True,
         params=[P("id", "uuid", "List domain by domain ID.", related="listDomains"),
                 P("name", description="List domain by domain name."),
                 P("level", "integer", "List domains by domain level."),
                 P("listall", "boolean", "If set to false, list only resources belonging to the command's caller; "
                   "if set to true - list resources that the caller is authorized to see. Default value is false"),
                 P("details", "list", "comma separated list of domain details requested, value can be a list of "
                   "[ all, resource, min]")])
async def list_domains(ctx: CallContext) -> Result:
    caller = ctx.caller
    domain_id = None
    if ctx.get("id") is not None:
        domain = await _visible_or_none(ctx, ctx.get("id"))
        if domain is None:
            return ListResult("domain", [], 0)
        domain_id = domain.id
    subtree = None if caller.is_root_admin else caller.domain_path
    exact = domain_id
    if domain_id is None and not ctx.get("listall") and ctx.get("name") is None and ctx.get("level") is None \
            and not ctx.get("keyword"):
        exact = caller.account.domain_id
    total, items = await ctx.db.domains.search(subtree=subtree, exact_id=exact, name=ctx.get("name"),
                                                 keyword=ctx.get("keyword"), level=ctx.get("level"),
                                                 page=page_of(ctx))
    return ListResult("domain", [domain_view(d) for d in items], total)


async def _visible_or_none(ctx: CallContext, uuid: str) -> Domain | None:
    try:
        domain = await ctx.db.domains.get_by_uuid(uuid)
    except NotFound:
        return None
    return domain if access.can_see_domain(ctx.caller, domain) else None


@command("listDomainChildren", description="Lists all children domains belonging to a specified domain",
         roles=ADMINS, response=DOMAIN, listing=True,
         params=[P("id", "uuid", "list children of domain by the parent domain ID.", related="listDomains"),
                 P("name", description="list children domains by name"),
                 P("isrecursive", "boolean", "to return the entire tree, use the value \"true\". To return the "
                   "first level children, use the value \"false\"."),
                 P("listall", "boolean", "If set to false, list only resources belonging to the command's caller; "
                   "if set to true - list resources that the caller is authorized to see. Default value is false")])
async def list_domain_children(ctx: CallContext) -> Result:
    parent = await domain_param(ctx, "id")
    if parent is None:
        parent = await ctx.db.domains.get(ctx.caller.account.domain_id)
    recursive = ctx.get("isrecursive") or ctx.get("listall")
    total, items = await ctx.db.domains.search(
        below=parent.path if recursive else None, parent_id=None if recursive else parent.id,
        name=ctx.get("name"), keyword=ctx.get("keyword"), page=page_of(ctx))
    return ListResult("domain", [domain_view(d) for d in items], total)


@command("updateDomain", description="Updates a domain with a new name", roles=ROOT, response=DOMAIN,
         event="DOMAIN.UPDATE",
         params=[P("id", "uuid", "ID of domain to update", required=True, related="listDomains"),
                 P("name", description="updates domain with this name"),
                 P("networkdomain", description="Network domain for the domain's networks; empty string will "
                   "update domainName with NULL value")])
async def update_domain(ctx: CallContext) -> Result:
    domain = await domain_param(ctx, "id")
    assert domain is not None
    if ctx.get("name") is not None:
        _check_name(ctx.get("name"))
    updated = await ctx.db.domains.update(domain, ctx.get("name"), ctx.get("networkdomain"))
    ctx.announce(EventInfo(f"Domain Id: {domain.uuid}, Domain Name: {updated.name}", "Domain",
                                    domain.uuid, updated.name))
    return ObjectResult("domain", domain_view(updated))


async def _delete_domain_job(ctx: JobContext, prepared: Prepared) -> Result:
    db = ctx.db
    domain = await db.domains.get_by_uuid(prepared.instance_uuid or "")
    # Inactive while the job works: a crash leaves it to recovery, which makes it Active again.
    await db.domains.set_state(domain.id, "Inactive")
    try:
        if prepared.state.get("cleanup"):
            _, children = await db.domains.search(below=domain.path)
            for child in sorted(children, key=lambda d: -d.level):
                await _remove_accounts(db, child)
                await db.domains.remove(child.id)
            await _remove_accounts(db, domain)
        else:
            if domain.has_child or await db.accounts.count_accounts_in_subtree(domain.path):
                raise in_use(f"Can't delete the domain yet because it has accounts and/or child domains: "
                             f"{domain.name}")
        await db.domains.remove(domain.id)
    except BaseException:
        await db.domains.set_state(domain.id, "Active")
        raise
    ctx.identity_changed()
    ctx.announce(EventInfo(f"Domain Id: {domain.uuid}, Domain Name: {domain.name}", "Domain",
                                    domain.uuid, domain.name))
    return SuccessResult()


async def _remove_accounts(db: DBConnector, domain: Domain) -> None:
    for account_id in await db.accounts.account_ids_in_domain(domain.id):
        await db.accounts.remove_account(account_id)


@command("deleteDomain", description="Deletes a specified domain", roles=ROOT, response=doc("success", *SUCCESS_FIELDS),
         event="DOMAIN.DELETE", is_async=True, run=_delete_domain_job,
         java_class="org.apache.cloudstack.api.command.admin.domain.DeleteDomainCmd",
         params=[P("id", "uuid", "ID of domain to delete", required=True, related="listDomains"),
                 P("cleanup", "boolean", "true if all domain resources (child domains, accounts) have to be "
                   "cleaned up, false otherwise")])
async def delete_domain(ctx: CallContext) -> Prepared:
    domain = await domain_param(ctx, "id")
    assert domain is not None
    if domain.parent_id is None:
        raise invalid_value("Can't delete ROOT domain")
    if domain.path == ctx.caller.domain_path:
        raise permission_denied("A domain admin can not delete its own domain")
    if not ctx.get("cleanup") and (
            domain.has_child or await ctx.db.accounts.count_accounts_in_subtree(domain.path)):
        raise in_use(f"Can't delete the domain yet because it has accounts and/or child domains: {domain.name}")
    return Prepared("Domain", domain.uuid, f"Domain:{domain.id}",
                    state={"cleanup": bool(ctx.get("cleanup")), "resource_name": domain.name})


@recovers("Domain")
async def _recover_domain(services: Services, job: Job) -> None:
    try:
        domain = await services.db.domains.get_by_uuid(job.instance_uuid or "")
    except NotFound:
        return
    if domain.state != "Active":
        await services.db.domains.set_state(domain.id, "Active")

