"""Global settings: listConfigurations and updateConfiguration."""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.errors import invalid_value
from cloudd.api.fields import doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ROOT, Field, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result
from cloudd.api.service import EventInfo
from cloudd.settings import BY_NAME, SETTINGS, InvalidSettingValue, Setting, parse_value

P = Param
F = Field
CONFIG = doc("configuration", F("name", "the name of the configuration"), F("value", "the value of the configuration"),
             F("defaultvalue", "the default value of the configuration"),
             F("category", "the category of the configuration"), F("description", "the description of the "
               "configuration"), F("scope", "scope(zone/cluster/pool/account) of the parameter that needs to be "
               "updated"), F("type", "the type of the configuration value"),
             F("isdynamic", "true if the configuration is dynamic", "boolean"),
             F("component", "the component of the configuration"))


def config_view(s: Setting, value: str) -> dict[str, Any]:
    return {"category": s.category, "name": s.name, "value": value, "defaultvalue": s.default,
            "description": s.description, "scope": "Global", "type": s.type, "isdynamic": True,
            "component": "cloudd"}


@command("listConfigurations", description="Lists all configurations.", roles=ROOT, response=CONFIG, listing=True,
         params=[P("name", description="lists configuration by name"),
                 P("category", description="lists configurations by category")])
async def list_configurations(ctx: CallContext) -> Result:
    settings = ctx.api.settings
    items = []
    for s in SETTINGS:
        if ctx.get("name") is not None and ctx.get("name").lower() not in s.name.lower():
            continue
        if ctx.get("category") is not None and ctx.get("category").lower() != s.category.lower():
            continue
        kw = ctx.get("keyword")
        if kw and kw.lower() not in s.name.lower():
            continue
        items.append(config_view(s, settings.raw(s.name)))
    page = page_of(ctx)
    end = None if page.limit is None else page.offset + page.limit
    return ListResult("configuration", items[page.offset:end], len(items))


@command("updateConfiguration", description="Updates a configuration.", roles=ROOT, response=CONFIG,
         event="CONFIGURATION.VALUE.EDIT",
         params=[P("name", description="the name of the configuration", required=True),
                 P("value", description="the value of the configuration", length=4095)])
async def update_configuration(ctx: CallContext) -> Result:
    setting = BY_NAME.get(ctx.get("name"))
    if setting is None:
        raise invalid_value(f"Configuration {ctx.get('name')} does not exist")
    value = ctx.get("value")
    if value is None:
        # no value: back to the default, which then follows the code's default if it changes
        await ctx.api.db.configuration.reset(setting.name)
        ctx.api.settings.set(setting.name, setting.default)
    else:
        try:
            parse_value(setting, value)
        except InvalidSettingValue as exc:
            raise invalid_value(str(exc)) from None
        await ctx.api.db.configuration.set(setting.name, value)
        ctx.api.settings.set(setting.name, value)
    ctx.extras["event"] = EventInfo(f"Value of {setting.name} changed", "Configuration", None, setting.name)
    return ObjectResult("configuration", config_view(setting, ctx.api.settings.raw(setting.name)))
