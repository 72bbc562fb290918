"""Response objects of the identity, event and job commands, each declared once: the declaration
renders the object here and documents it in listApis (`cloudd.api.fields` takes the docs from it)."""

from __future__ import annotations

import json
from typing import Any

from cloudd.api.objects import Out, ResponseObject
from cloudd.db.accounts import Account, User
from cloudd.db.domains import Domain
from cloudd.db.events import Event
from cloudd.db.jobs import Job
from cloudd.db.roles import Role, RolePermission


def display_path(path: str) -> str:
    return "ROOT" + path.rstrip("/") if path != "/" else "ROOT"


DOMAIN_OBJ = ResponseObject(
    "domain",
    Out("id", "the ID of the domain", source="uuid"),
    Out("name", "the name of the domain"),
    Out("level", "the level of the domain", "integer"),
    Out("parentdomainid", "the domain ID of the parent domain", source="parent_uuid"),
    Out("parentdomainname", "the domain name of the parent domain", source="parent_name"),
    Out("haschild", "whether the domain has one or more sub-domains", "boolean", source="has_child"),
    Out("networkdomain", "the network domain", source="network_domain"),
    Out("path", "the path of the domain", source=lambda d: display_path(d.path)),
    Out("state", "the state of the domain"),
    Out("created", "the date when this domain was created", "date"),
)
USER_OBJ = ResponseObject(
    "user",
    Out("id", "the user ID", source="uuid"),
    Out("username", "the user name"),
    Out("firstname", "the user firstname"),
    Out("lastname", "the user lastname"),
    Out("email", "the user email address"),
    Out("created", "the date and time the user account was created", "date"),
    Out("state", "the user state"),
    Out("account", "the account name of the user", source="account.name"),
    Out("accounttype", "the account type of the user", "integer", source="account.account_type"),
    Out("usersource", "the source type of the user", source=lambda u: "native"),
    Out("roleid", "the ID of the role", source="account.role_uuid"),
    Out("roletype", "the type of the role", source="account.role_type"),
    Out("rolename", "the name of the role", source="account.role_name"),
    Out("domainid", "the domain ID of the user", source="account.domain_uuid"),
    Out("domain", "the domain name of the user", source="account.domain_name"),
    Out("timezone", "the timezone user was created in"),
    Out("apikey", "the api key of the user", source="api_key"),
    Out("accountid", "the account ID of the user", source="account.uuid"),
    Out("iscallerchilddomain", "the boolean value representing if the updating target is in caller's child domain", "boolean", source=lambda u: False),
    Out("isdefault", "true if user is default, false otherwise", "boolean", source="is_default"),
    Out("is2faenabled", "true if user has two factor authentication enabled", "boolean", source=lambda u: False),
    Out("is2famandated", "true if user has two factor authentication is mandated", "boolean", source=lambda u: False),
    Out("apikeyaccess", "whether api key access is allowed or not", source=lambda u: "INHERIT"),
)
ACCOUNT_OBJ = ResponseObject(
    "account",
    Out("id", "the id of the account", source="uuid"),
    Out("name", "the name of the account"),
    Out("accounttype", "account type (admin, domain-admin, user)", "integer", source="account_type"),
    Out("roleid", "the ID of the role", source="role_uuid"),
    Out("roletype", "the type of the role (Admin, ResourceAdmin, DomainAdmin, User)", source="role_type"),
    Out("rolename", "the name of the role", source="role_name"),
    Out("domainid", "id of the Domain the account belongs to", source="domain_uuid"),
    Out("domain", "name of the Domain the account belongs to", source="domain_name"),
    Out("domainpath", "path of the Domain the account belongs to", source=lambda a: display_path(a.domain_path)),
    Out("networkdomain", "the network domain", source="network_domain"),
    Out("state", "the state of the account"),
    Out("isdefault", "true if account is default, false otherwise", "boolean", source="is_default"),
    Out("created", "the date when this account was created", "date"),
    Out("user", "the list of users associated with account", "list", source=lambda a: [], children=USER_OBJ),
    Out("apikeyaccess", "whether api key access is allowed or not", source=lambda a: "INHERIT"),
)
ROLE_OBJ = ResponseObject(
    "role",
    Out("id", "the ID of the role", source="uuid"),
    Out("name", "the name of the role"),
    Out("type", "the type of the role", source="role_type"),
    Out("description", "the description of the role", source=lambda r: r.description or ""),
    Out("isdefault", "true if role is default", "boolean", source="is_default"),
    Out("ispublic", "Indicates whether the role will be visible to all users (public) or only to root admins (private)", "boolean", source=lambda r: True),
    Out("state", "the state of the role", source=lambda r: "ENABLED"),
)
ROLE_PERMISSION_OBJ = ResponseObject(
    "rolepermission",
    Out("id", "the ID of the role permission", source="uuid"),
    Out("roleid", "the ID of the role to which the role permission belongs", source="role_uuid"),
    Out("rolename", "the name of the role to which the role permission belongs", source="role_name"),
    Out("rule", "the api name or wildcard rule"),
    Out("permission", "the permission type of the api name or wildcard rule, allow/deny"),
    Out("description", "the description of the role permission", source=lambda p: p.description or ""),
)
EVENT_OBJ = ResponseObject(
    "event",
    Out("id", "the ID of the event", source="uuid"),
    Out("username", "the name of the user who performed the action"),
    Out("type", "the type of the event (see event types)"),
    Out("level", "the event level (INFO, WARN, ERROR)"),
    Out("description", "a brief description of the event"),
    Out("account", "the account name for the account that owns the object being acted on in the event", source="account_name"),
    Out("domainid", "the id of the account's domain", source="domain_uuid"),
    Out("domain", "the name of the account's domain", source="domain_name"),
    Out("domainpath", "path of the Domain the account's domain belongs to", source=lambda e: display_path(e.domain_path)),
    Out("resourceid", "the id of the resource", source="resource_uuid"),
    Out("resourcetype", "the type of the resource", source="resource_type"),
    Out("resourcename", "the name of the resource", source="resource_name"),
    Out("created", "the date the event was created", "date"),
    Out("state", "the state of the event"),
    Out("parentid", "whether the event is parented", source="parent_uuid"),
    Out("archived", "whether the event has been archived or not", "boolean"),
)
JOB_OBJ = ResponseObject(
    "asyncjobs",
    Out("accountid", "the account id that executed the async command"),
    Out("account", "the account that executed the async command"),
    Out("domainid", "the domain id that executed the async command"),
    Out("domainpath", "the domain that executed the async command"),
    Out("userid", "the user that executed the async command"),
    Out("cmd", "the async command executed"),
    Out("jobstatus", "the current job status-should be 0 for PENDING", "integer"),
    Out("jobprocstatus", "the progress information of the PENDING job", "integer"),
    Out("jobresultcode", "the result code for the job", "integer"),
    Out("jobresulttype", "the result type"),
    Out("jobresult", "the result reason", "responseobject"),
    Out("jobinstancetype", "the instance/entity object related to the job"),
    Out("jobinstanceid", "the unique ID of the instance/entity object related to the job"),
    Out("managementserverid", "the msid of the management server on which the job is running"),
    Out("managementservername", "the management server name of the host"),
    Out("created", "the created date of the job", "date"),
    Out("completed", "the completed date of the job", "date"),
    Out("jobid", "the ID of the async job"),
)


def domain_view(d: Domain) -> dict[str, Any]:
    return DOMAIN_OBJ.render(d)


def user_view(u: User, *, caller_domain_path: str | None = None) -> dict[str, Any]:
    if caller_domain_path is None:
        return USER_OBJ.render(u)
    path = u.account.domain_path
    return USER_OBJ.render(u, iscallerchilddomain=path != caller_domain_path and path.startswith(caller_domain_path))


def account_view(a: Account, users: list[User]) -> dict[str, Any]:
    return ACCOUNT_OBJ.render(a, user=[user_view(u) for u in users])


def role_view(r: Role) -> dict[str, Any]:
    return ROLE_OBJ.render(r)


def role_permission_view(p: RolePermission) -> dict[str, Any]:
    return ROLE_PERMISSION_OBJ.render(p)


def event_view(e: Event) -> dict[str, Any]:
    return EVENT_OBJ.render(e)


def job_view(j: Job, *, with_ms: bool) -> dict[str, Any]:
    """The flat queryAsyncJobResult object (also an `asyncjobs` list entry)."""
    out: dict[str, Any] = {
        "accountid": j.account_uuid, "account": j.account_name, "domainid": j.domain_uuid,
        "domainpath": display_path(j.domain_path), "userid": j.user_uuid, "cmd": j.cmd,
        "jobstatus": j.status, "jobprocstatus": j.proc_status, "jobresultcode": j.result_code,
    }
    if j.status != 0 and j.result is not None:
        out["jobresulttype"] = "object"
        out["jobresult"] = json.loads(j.result)
    if j.instance_type is not None and j.instance_uuid is not None:
        out["jobinstancetype"] = j.instance_type
        out["jobinstanceid"] = j.instance_uuid
    if with_ms and j.ms_uuid is not None:
        out["managementserverid"] = j.ms_uuid
        out["managementservername"] = j.ms_name
    out["created"] = j.created
    if j.completed is not None:
        out["completed"] = j.completed
    out["jobid"] = j.uuid
    return JOB_OBJ.render(out)
