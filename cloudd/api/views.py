"""Response objects: stored data rendered with CloudStack's field names and types."""

from __future__ import annotations

import json
from typing import Any

from cloudd.db.accounts import Account, User
from cloudd.db.domains import Domain
from cloudd.db.events import Event
from cloudd.db.jobs import Job
from cloudd.db.roles import Role, RolePermission
from cloudd.util.dates import cs_date


def display_path(path: str) -> str:
    return "ROOT" + path.rstrip("/") if path != "/" else "ROOT"


def domain_view(d: Domain) -> dict[str, Any]:
    return {
        "id": d.uuid, "name": d.name, "level": d.level, "parentdomainid": d.parent_uuid,
        "parentdomainname": d.parent_name, "haschild": d.has_child, "networkdomain": d.network_domain,
        "path": display_path(d.path), "state": d.state, "created": cs_date(d.created),
    }


def user_view(u: User, *, caller_domain_path: str | None = None) -> dict[str, Any]:
    a = u.account
    out: dict[str, Any] = {
        "id": u.uuid, "username": u.username, "firstname": u.firstname, "lastname": u.lastname,
        "email": u.email, "created": cs_date(u.created), "state": u.state, "account": a.name,
        "accounttype": a.account_type, "usersource": "native", "roleid": a.role_uuid, "roletype": a.role_type,
        "rolename": a.role_name, "domainid": a.domain_uuid, "domain": a.domain_name, "timezone": u.timezone,
        "apikey": u.api_key, "accountid": a.uuid, "iscallerchilddomain": False, "isdefault": u.is_default,
        "is2faenabled": False, "is2famandated": False, "apikeyaccess": "INHERIT",
    }
    if caller_domain_path is not None:
        out["iscallerchilddomain"] = a.domain_path != caller_domain_path and a.domain_path.startswith(
            caller_domain_path)
    return out


def account_view(a: Account, users: list[User]) -> dict[str, Any]:
    return {
        "id": a.uuid, "name": a.name, "accounttype": a.account_type, "roleid": a.role_uuid,
        "roletype": a.role_type, "rolename": a.role_name, "domainid": a.domain_uuid, "domain": a.domain_name,
        "domainpath": display_path(a.domain_path), "networkdomain": a.network_domain, "state": a.state,
        "isdefault": a.is_default, "created": cs_date(a.created),
        "user": [user_view(u) for u in users], "apikeyaccess": "INHERIT",
    }


def role_view(r: Role) -> dict[str, Any]:
    return {"id": r.uuid, "name": r.name, "type": r.role_type, "description": r.description or "",
            "isdefault": r.is_default, "ispublic": True, "state": "ENABLED"}


def role_permission_view(p: RolePermission) -> dict[str, Any]:
    return {"id": p.uuid, "roleid": p.role_uuid, "rolename": p.role_name, "rule": p.rule,
            "permission": p.permission, "description": p.description or ""}


def event_view(e: Event) -> dict[str, Any]:
    return {
        "id": e.uuid, "username": e.username, "type": e.type, "level": e.level, "description": e.description,
        "account": e.account_name, "domainid": e.domain_uuid, "domain": e.domain_name,
        "domainpath": display_path(e.domain_path), "resourceid": e.resource_uuid,
        "resourcetype": e.resource_type, "resourcename": e.resource_name, "created": cs_date(e.created),
        "state": e.state, "parentid": e.parent_uuid, "archived": e.archived,
    }


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
    out["created"] = cs_date(j.created)
    if j.completed is not None:
        out["completed"] = cs_date(j.completed)
    out["jobid"] = j.uuid
    return out

