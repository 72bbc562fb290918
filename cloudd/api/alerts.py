"""Alert commands: listAlerts, deleteAlerts and archiveAlerts (the alerts `cloudd.orchestration.alerts`
raises)."""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import INFRA, ROOT, Param, command
from cloudd.api.results import ListResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.alerts import AlertFilter
from cloudd.errors import internal, invalid_value
from cloudd.orchestration.context import Services

P = Param


async def _alert(s: Services, uuid: str) -> Any:
    return await s.db.alerts.get_by_uuid(uuid)


ALERT = Entity("Alert", _alert)

ALERT_OBJ = ResponseObject(
    "alert",
    Out("id", "the id of the alert", source="uuid"),
    Out("type", "One of the following alert types: MEMORY = 0, CPU = 1, STORAGE = 2, STORAGE_ALLOCATED = 3, "
        "PUBLIC_IP = 4, PRIVATE_IP = 5, SECONDARY_STORAGE = 6, HOST = 7, USERVM = 8, DOMAIN_ROUTER = 9, "
        "CONSOLE_PROXY = 10, ROUTING = 11: lost connection to default route (to the gateway), STORAGE_MISC = 12, "
        "USAGE_SERVER = 13, MANAGEMENT_NODE = 14, DOMAIN_ROUTER_MIGRATE = 15, CONSOLE_PROXY_MIGRATE = 16, "
        "USERVM_MIGRATE = 17, VLAN = 18, SSVM = 19, USAGE_SERVER_RESULT = 20, STORAGE_DELETE = 21, "
        "UPDATE_RESOURCE_COUNT = 22, USAGE_SANITY_RESULT = 23, DIRECT_ATTACHED_PUBLIC_IP = 24, LOCAL_STORAGE = 25, "
        "RESOURCE_LIMIT_EXCEEDED = 26, SYNC = 27, UPLOAD_FAILED = 28, OOBM_AUTH_ERROR = 29", "short"),
    Out("name", "the name of the alert"),
    Out("description", "description of the alert", source="subject"),
    Out("sent", "the date and time the alert was sent", "date", source="created"),
)
SUCCESS = doc("success", *SUCCESS_FIELDS)


def _type(value: str | None) -> int | None:
    """An alert type given as text (CloudStack declares it a string): its number, or 431."""
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise invalid_value(f"Invalid alert type {value[:32]}: the type is a number, as listed by listAlertTypes") \
            from None
    if not 0 <= number < 2**15:
        raise invalid_value(f"Invalid alert type {number}")
    return number


@command("listAlerts", description="Lists all alerts.", roles=INFRA, response=ALERT_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.admin.resource.ListAlertsCmd",
         params=[P("id", ALERT, "The ID of the alert", related="listAlerts"),
                 P("type", description="List by alert type"),
                 P("name", description="List by alert name", since="4.3")])
async def list_alerts(ctx: CallContext) -> Result:
    alert = ctx.get("id")
    f = AlertFilter(uuid=alert.uuid if alert else None, type=_type(ctx.get("type")), name=ctx.get("name"),
                    keyword=ctx.get("keyword"))
    total, alerts = await ctx.db.alerts.search(f, page_of(ctx))
    return ListResult("alert", [ALERT_OBJ.render(a) for a in alerts], total)


def _selection(ctx: CallContext, what: str) -> tuple[list[str] | None, int | None, int | None, int | None]:
    ids = ctx.get("ids")
    kind = _type(ctx.get("type"))
    start, end = ctx.get("startdate"), ctx.get("enddate")
    if not ids and kind is None and end is None:
        raise invalid_value(f"either ids, type{', startdate' if what == 'archive' else ''} or enddate must be "
                            "specified")
    if start is not None and end is None:
        raise invalid_value("enddate must be specified with startdate parameter")
    if start is not None and end is not None and start > end:
        raise invalid_value("startdate must be before enddate")
    uuids = [a.uuid for a in ids] if ids else None
    return uuids, kind, None if start is None else int(start), None if end is None else int(end)


@command("deleteAlerts", description="Delete one or more alerts.", roles=ROOT, response=SUCCESS, event="ALERTS.DELETE",
         java_class="org.apache.cloudstack.api.command.admin.resource.DeleteAlertsCmd",
         params=[P("ids", "list", "The IDs of the alerts", element=ALERT, related="listAlerts"),
                 P("enddate", "date", "End date range to delete alerts (including) this date (use format "
                   "\"yyyy-MM-dd\" or the new format \"yyyy-MM-dd HH:mm:ss\")", with_time=True),
                 P("startdate", "date", "Start date range to delete alerts (including) this date (use format "
                   "\"yyyy-MM-dd\" or the new format \"yyyy-MM-dd HH:mm:ss\")", with_time=True),
                 P("type", description="Delete by alert type")])
async def delete_alerts(ctx: CallContext) -> Result:
    uuids, kind, start, end = _selection(ctx, "delete")
    count = await ctx.db.alerts.delete(uuids, kind, start, end, require_all=True)
    if count < 0:
        raise internal("Unable to delete Alerts, one or more parameters has invalid values")
    ctx.announce(EventInfo(f"Deleted {count} alert(s)", "Alert"))
    return SuccessResult()


@command("archiveAlerts", description="Archive one or more alerts.", roles=ROOT, response=SUCCESS,
         event="ALERTS.ARCHIVE",
         java_class="org.apache.cloudstack.api.command.admin.resource.ArchiveAlertsCmd",
         params=[P("ids", "list", "the IDs of the alerts", element=ALERT, related="listAlerts"),
                 P("enddate", "date", "end date range to archive alerts (including) this date (use format "
                   "\"yyyy-MM-dd\" or the new format \"yyyy-MM-dd HH:mm:ss\")", with_time=True),
                 P("startdate", "date", "start date range to archive alerts (including) this date (use format "
                   "\"yyyy-MM-dd\" or the new format \"yyyy-MM-dd HH:mm:ss\")", with_time=True),
                 P("type", description="archive by alert type")])
async def archive_alerts(ctx: CallContext) -> Result:
    uuids, kind, start, end = _selection(ctx, "archive")
    count = await ctx.db.alerts.archive(uuids, kind, start, end, require_all=True)
    if count < 0:
        raise internal("Unable to archive Alerts, one or more parameters has invalid values")
    ctx.announce(EventInfo(f"Archived {count} alert(s)", "Alert"))
    return SuccessResult()
