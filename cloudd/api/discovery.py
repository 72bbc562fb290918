"""API discovery: listApis (what cmk/cloudmonkey `sync` reads) and listCapabilities."""

from __future__ import annotations

from typing import Any

import cloudd
from cloudd.api.context import CallContext
from cloudd.api.errors import internal
from cloudd.api.fields import doc
from cloudd.api.registry import ALL, Command, Field, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result

P = Param
F = Field

PARAM_FIELDS = (F("name", "the api parameter name"), F("description", "description of the api parameter"),
                F("type", "parameter type"), F("length", "length of the parameter", "integer"),
                F("required", "true if this parameter is required for the api request", "boolean"),
                F("since", "version of CloudStack the api was introduced in"),
                F("related", "comma separated related apis to get the parameter"))
RESPONSE_FIELDS = (F("name", "the name of the api response field"),
                   F("description", "description of the api response field"),
                   F("type", "response field type"),
                   F("response", "api response fields", "set"))
API = doc("api", F("name", "the name of the api command"), F("description", "description of the api"),
          F("since", "version of CloudStack the api was introduced in"),
          F("isasync", "true if api is asynchronous", "boolean"), F("related", "comma separated related apis"),
          F("params", "the list params the api accepts", "set", PARAM_FIELDS),
          F("response", "api response fields", "set", RESPONSE_FIELDS),
          F("type", "response field type"))


def _field(f: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "description": f.description, "type": f.type}
    if f.children:
        out["response"] = [_field(c) for c in f.children]
    return out


def _param(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "description": p.description, "type": p.type, "length": p.length,
                           "required": p.required}
    if p.since is not None:
        out["since"] = p.since
    if p.related is not None:
        out["related"] = p.related
    return out


def api_view(cmd: Command, related: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": cmd.name, "description": cmd.description, "isasync": cmd.is_async}
    if cmd.since is not None:
        out["since"] = cmd.since
    if related:
        out["related"] = ",".join(related)
    out["params"] = [_param(p) for p in cmd.params]
    fields = list(cmd.response.fields) if cmd.response is not None else []
    if cmd.is_async:
        fields += [F("jobid", "the UUID of the latest async job acting on this object"),
                   F("jobstatus", "the current status of the latest async job acting on this object", "integer")]
    out["response"] = [_field(f) for f in fields]
    return out


@command("listApis", description="lists all available apis on the server, provided by the Api Discovery plugin",
         roles=ALL, response=API, since="4.1.0",
         params=[P("name", description="API name")])
async def list_apis(ctx: CallContext) -> Result:
    api = ctx.api
    allowed = await api.permitted_commands(ctx.caller.account)
    cmds = [c for c in api.registry if c.name in allowed or c.authenticator]
    if ctx.get("name") is not None:
        cmds = [c for c in cmds if c.name == ctx.get("name")]
        if not cmds:
            raise internal("Api Discovery plugin was unable to find an api by that name or process any apis")
    names = {c.name for c in cmds}
    items = [api_view(c, [r for r in api.registry.related_to(c) if r in names]) for c in cmds]
    return ListResult("api", items, len(items))


CAPABILITY = doc("capability", F("cloudstackversion", "version of the cloud stack"),
                 F("securitygroupsenabled", "true if security groups support is enabled, false otherwise", "boolean"),
                 F("dynamicrolesenabled", "true if dynamic role-based api checker is enabled, false otherwise",
                   "boolean"),
                 F("apilimitinterval", "time interval (in seconds) to reset api count", "integer"),
                 F("apilimitmax", "Max allowed number of api requests within the specified interval", "integer"),
                 F("defaultuipagesize", "default page size in the UI for various views", "long"))


@command("listCapabilities", description="Lists capabilities", roles=ALL, response=CAPABILITY)
async def list_capabilities(ctx: CallContext) -> Result:
    s = ctx.api.settings
    return ObjectResult("capability", {
        "securitygroupsenabled": False, "dynamicrolesenabled": True,
        "cloudstackversion": cloudd.CLOUDSTACK_VERSION, "userpublictemplateenabled": True,
        "supportELB": "false", "projectinviterequired": False, "allowusercreateprojects": True,
        "customdiskofferingminsize": 1, "customdiskofferingmaxsize": 1024, "regionsecondaryenabled": False,
        "apilimitinterval": s.int("api.throttling.interval"), "kvmsnapshotenabled": True,
        "apilimitmax": s.int("api.throttling.max"), "allowuserviewdestroyedvm": False,
        "allowuserexpungerecovervm": s.bool("allow.user.expunge.recover.vm"),
        "allowuserexpungerecovervolume": True, "allowuserviewalldomainaccounts": False,
        "kubernetesserviceenabled": False, "kubernetesclusterexperimentalfeaturesenabled": False,
        "defaultuipagesize": 20, "customhypervisordisplayname": "Custom",
    })
