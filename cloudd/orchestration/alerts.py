"""Raising alerts for operators, with CloudStack's alert types and names.

An alert is also logged (warn), so an operator without the UI sees it in the log. Repeated alerts
about one subject are rate-limited per (type, zone, pod, cluster, subject key) by `quiet_seconds`,
as CloudStack does not mail the same alert twice in a row.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from cloudd.db.alerts import Alert
    from cloudd.db.connector import DBConnector


class AlertType(IntEnum):
    """AlertManager.AlertType codes (the `type` field of listAlerts)."""

    MEMORY = 0
    CPU = 1
    STORAGE = 2
    STORAGE_ALLOCATED = 3
    PUBLIC_IP = 4
    PRIVATE_IP = 5
    SECONDARY_STORAGE = 6
    HOST = 7
    USERVM = 8
    DOMAIN_ROUTER = 9
    CONSOLE_PROXY = 10
    ROUTING = 11
    STORAGE_MISC = 12
    USAGE_SERVER = 13
    MANAGEMENT_NODE = 14
    DOMAIN_ROUTER_MIGRATE = 15
    CONSOLE_PROXY_MIGRATE = 16
    USERVM_MIGRATE = 17
    VLAN = 18
    SSVM = 19
    USAGE_SERVER_RESULT = 20
    STORAGE_DELETE = 21
    UPDATE_RESOURCE_COUNT = 22
    USAGE_SANITY_RESULT = 23
    DIRECT_ATTACHED_PUBLIC_IP = 24
    LOCAL_STORAGE = 25
    RESOURCE_LIMIT_EXCEEDED = 26
    SYNC = 27
    UPLOAD_FAILED = 28
    OOBM_AUTH_ERROR = 29


# the `name` CloudStack gives each type (ALERT.<...>)
ALERT_NAMES = {
    AlertType.MEMORY: "ALERT.MEMORY", AlertType.CPU: "ALERT.CPU", AlertType.STORAGE: "ALERT.STORAGE",
    AlertType.STORAGE_ALLOCATED: "ALERT.STORAGE.ALLOCATED", AlertType.PUBLIC_IP: "ALERT.NETWORK.PUBLICIP",
    AlertType.PRIVATE_IP: "ALERT.NETWORK.PRIVATEIP", AlertType.SECONDARY_STORAGE: "ALERT.STORAGE.SECONDARY",
    AlertType.HOST: "ALERT.COMPUTE.HOST", AlertType.USERVM: "ALERT.USERVM",
    AlertType.DOMAIN_ROUTER: "ALERT.SERVICE.DOMAINROUTER", AlertType.CONSOLE_PROXY: "ALERT.SERVICE.CONSOLEPROXY",
    AlertType.ROUTING: "ALERT.NETWORK.ROUTING", AlertType.STORAGE_MISC: "ALERT.STORAGE.MISC",
    AlertType.USAGE_SERVER: "ALERT.USAGE", AlertType.MANAGEMENT_NODE: "ALERT.MANAGEMENT",
    AlertType.DOMAIN_ROUTER_MIGRATE: "ALERT.NETWORK.DOMAINROUTERMIGRATE",
    AlertType.CONSOLE_PROXY_MIGRATE: "ALERT.SERVICE.CONSOLEPROXYMIGRATE",
    AlertType.USERVM_MIGRATE: "ALERT.USERVM.MIGRATE", AlertType.VLAN: "ALERT.NETWORK.VLAN",
    AlertType.SSVM: "ALERT.SERVICE.SSVM", AlertType.USAGE_SERVER_RESULT: "ALERT.USAGE.RESULT",
    AlertType.STORAGE_DELETE: "ALERT.STORAGE.DELETE", AlertType.UPDATE_RESOURCE_COUNT: "ALERT.RESOURCE.COUNT",
    AlertType.USAGE_SANITY_RESULT: "ALERT.USAGE.SANITY", AlertType.DIRECT_ATTACHED_PUBLIC_IP:
    "ALERT.NETWORK.DIRECTPUBLICIP", AlertType.LOCAL_STORAGE: "ALERT.STORAGE.LOCAL",
    AlertType.RESOURCE_LIMIT_EXCEEDED: "ALERT.RESOURCE.EXCEED", AlertType.SYNC: "ALERT.TYPE.SYNC",
    AlertType.UPLOAD_FAILED: "ALERT.UPLOAD.FAILED", AlertType.OOBM_AUTH_ERROR: "ALERT.OOBM.AUTHERROR",
}


class Alerts:
    log = Logger()

    def __init__(self, db: DBConnector, clock: IReactorTime, quiet_seconds: float = 0.0) -> None:
        self.db = db
        self.clock = clock
        self.quiet_seconds = quiet_seconds
        self._last: dict[tuple[object, ...], float] = {}

    async def raise_alert(self, type: AlertType, subject: str, *, zone_id: int | None = None,
                          pod_id: int | None = None, cluster_id: int | None = None,
                          key: str | None = None) -> Alert | None:
        """Store and log an alert; None when the same alert (same `key`, or subject) was raised less
        than `quiet_seconds` ago."""
        ident = (int(type), zone_id, pod_id, cluster_id, key or subject)
        now = self.clock.seconds()
        last = self._last.get(ident)
        if last is not None and now - last < self.quiet_seconds:
            return None
        self._last[ident] = now
        self.log.warn("alert {name}: {subject}", name=ALERT_NAMES[type], subject=subject)
        return await self.db.alerts.record(int(type), ALERT_NAMES[type], subject, zone_id, pod_id, cluster_id)
