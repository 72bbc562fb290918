"""listEvents and listEventTypes."""

from __future__ import annotations

from cloudd.api import access
from cloudd.api.context import CallContext
from cloudd.api.fields import EVENT_FIELDS, doc
from cloudd.api.paging import page_of
from cloudd.api.registry import ALL, Field, Param, Registry, command
from cloudd.api.results import ListResult, Result
from cloudd.api.views import event_view

P = Param
EVENT = doc("event", *EVENT_FIELDS)

def event_types(registry: Registry) -> list[str]:
    return sorted({c.event for c in registry if c.event})


@command("listEvents", description="A command to list events.", roles=ALL, response=EVENT, listing=True, owned=True,
         params=[P("id", "uuid", "the ID of the event", related="listEvents"),
                 P("type", description="the event type (see event types)"),
                 P("level", description="the event level (INFO, WARN, ERROR)"),
                 P("startdate", "date", "the start date range of the list you want to retrieve (use format "
                   "\"yyyy-MM-dd\" or the new format \"yyyy-MM-dd HH:mm:ss\")", with_time=True),
                 P("enddate", "date", "the end date range of the list you want to retrieve (use format "
                   "\"yyyy-MM-dd\" or the new format \"yyyy-MM-dd HH:mm:ss\")", with_time=True),
                 P("duration", "integer", "the duration of the event"),
                 P("entrytime", "integer", "the time the event was entered"),
                 P("startid", "uuid", "the parent/start ID of the event, when provided this will only return "
                   "events which have the start ID provided", related="listEvents"),
                 P("resourceid", "string", "the ID of the resource associated with the event"),
                 P("resourcetype", description="the type of the resource associated with the event"),
                 P("archived", "boolean", "true to list archived events otherwise false")])
async def list_events(ctx: CallContext) -> Result:
    scope = await access.owner_scope(ctx)
    end = ctx.get("enddate")
    total, events = await ctx.api.db.events.search(
        scope, uuid=ctx.get("id"), type=ctx.get("type"), level=ctx.get("level"),
        start=int(ctx.get("startdate")) if ctx.get("startdate") is not None else None,
        end=int(end) if end is not None else None, keyword=ctx.get("keyword"),
        resource_uuid=ctx.get("resourceid"), resource_type=ctx.get("resourcetype"), start_uuid=ctx.get("startid"),
        archived=bool(ctx.get("archived")), page=page_of(ctx))
    return ListResult("event", [event_view(e) for e in events], total)


@command("listEventTypes", description="List Event Types", roles=ALL,
         response=doc("eventtype", Field("name", "Event Type")))
async def list_event_types(ctx: CallContext) -> Result:
    types = event_types(ctx.api.registry)
    return ListResult("eventtype", [{"name": t} for t in types], len(types))
