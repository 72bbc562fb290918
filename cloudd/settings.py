"""Typed global settings: every name, type, default and meaning in one table.

Values stored in the `configuration` table override the defaults; `listConfigurations` and
`updateConfiguration` work on this table. Readers use the typed getters, so a stored value that
no longer parses falls back to the default instead of breaking a request.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    type: str  # Boolean, Integer, String
    default: str
    category: str
    description: str
    secret: bool = False


class InvalidSettingValue(ValueError):
    pass


_S = Setting
SETTINGS: tuple[Setting, ...] = (
    # API transport
    _S("default.page.size", "Integer", "500", "Advanced",
       "Default and maximum page size of list commands; -1 means unlimited."),
    _S("integration.api.port", "Integer", "0", "Advanced",
       "Port of the unauthenticated integration API on 127.0.0.1; 0 or less means no listener at all. "
       "Read at start."),
    _S("json.content.type", "String", "application/json; charset=UTF-8", "Advanced",
       "Content-Type of JSON responses."),
    _S("enforce.post.requests.and.timestamps", "Boolean", "false", "Advanced",
       "Refuse signed requests without signatureVersion=3 and expires, and state-changing commands sent "
       "with GET."),
    _S("api.signature.version3.required", "Boolean", "false", "Advanced",
       "Refuse signed requests without signatureVersion=3 and expires. When false, requests without an "
       "expiry (as libcloud sends) are accepted, counted and logged; an expires is enforced whenever present."),
    _S("api.request.expires.max.seconds", "Integer", "1020", "Advanced",
       "How far in the future a signed request's expires may lie; later ones are refused with 401."),
    _S("api.request.body.max.bytes", "Integer", "4194304", "Advanced",
       "Largest request body accepted on the API port, checked against Content-Length and while the body "
       "arrives; a larger one is answered 413 and its connection closed (room for 1 MiB of user data in "
       "base64)."),
    _S("api.request.parameters.max", "Integer", "1000", "Advanced",
       "Most parameters one API request may carry (query string and form body together), counted before "
       "any decoding; more are refused with 431 (Tomcat's maxParameterCount)."),
    _S("api.key.access", "Boolean", "true", "Advanced", "Allow API key access for users."),
    # sessions
    _S("session.timeout", "Integer", "1800", "Advanced", "Seconds of inactivity after which a login session ends."),
    _S("api.sessionkey.check.locations", "String", "CookieAndParameter", "Advanced",
       "Where a session call's sessionkey must come from: CookieAndParameter (both, equal; the default, "
       "which a cross-site request cannot forge), ParameterOnly, or CookieOrParameter (any supplied copy "
       "must match)."),
    _S("api.sessionkey.cookie.samesite", "String", "Lax", "Advanced",
       "SameSite attribute of the sessionkey cookie: Lax, Strict or None."),
    _S("enable.secure.session.cookie", "Boolean", "false", "Advanced",
       "Mark session cookies Secure (set when the API is served over HTTPS)."),
    _S("api.session.origin.check", "Boolean", "true", "Advanced",
       "Refuse session-cookie requests whose Origin (else Referer) names another site, or that a browser "
       "marks Sec-Fetch-Site: cross-site (403)."),
    # forwarded addresses
    _S("proxy.header.verify", "Boolean", "false", "Advanced",
       "Believe the client address from proxy.header.names, only when the peer is in proxy.cidr."),
    _S("proxy.header.names", "String", "X-Forwarded-For", "Advanced",
       "Comma-separated headers carrying the client address behind a proxy."),
    _S("proxy.cidr", "String", "", "Advanced", "Comma-separated networks of trusted proxies."),
    # throttling
    _S("api.throttling.enabled", "Boolean", "false", "Advanced",
       "Limit API requests per account and per client address."),
    _S("api.throttling.interval", "Integer", "1", "Advanced", "Throttling window in seconds."),
    _S("api.throttling.max", "Integer", "25", "Advanced", "Requests allowed per account in a window."),
    _S("api.throttling.address.max", "Integer", "100", "Advanced",
       "Requests allowed per client address in a window."),
    _S("api.throttling.cachesize", "Integer", "50000", "Advanced", "Most counters kept at once."),
    _S("api.login.failures.max", "Integer", "5", "Advanced",
       "Failed logins allowed per user, and ten times that per address, in api.login.failures.window."),
    _S("api.login.failures.window", "Integer", "300", "Advanced", "Seconds over which failed logins count."),
    # accounts and roles
    _S("role.types.allowed.for.operations.on.accounts.of.same.role.type", "String",
       "Admin, DomainAdmin, ResourceAdmin", "Advanced",
       "Role types whose accounts may operate on accounts of the same role type."),
    _S("allow.operations.on.users.in.same.account", "Boolean", "true", "Advanced",
       "Allow users to operate on other users of the same account (subject to role checks)."),
    _S("user.password.min.length", "Integer", "1", "Advanced", "Shortest password accepted."),
    # jobs and cluster
    _S("job.expire.minutes", "Integer", "1440", "Advanced", "Minutes a finished job stays queryable."),
    _S("job.cancel.threshold.minutes", "Integer", "60", "Advanced",
       "A job that has held its resource (and so blocked the jobs queued behind it) longer than this, "
       "counted on the database's clock from its start, is failed with 530 and the next job starts; 0 turns "
       "the check off."),
    _S("vm.job.lock.timeout", "Integer", "1800", "Advanced", "Seconds to wait for a VM's job lock."),
    _S("log.hide.password", "Boolean", "true", "Advanced", "Never show passwords in job results and logs."),
    _S("cluster.heartbeat.interval", "Integer", "1500", "Advanced", "Milliseconds between heartbeats."),
    _S("cluster.heartbeat.threshold", "Integer", "150000", "Advanced",
       "Milliseconds without a heartbeat after which a management server counts as dead."),
    _S("management.server.maintenance.timeout", "Integer", "60", "Advanced",
       "Minutes to wait for jobs before maintenance."),
    _S("ca.plugin.root.auth.strictness", "Boolean", "true", "Advanced",
       "Require CA-signed client certificates on the appliance control channel."),
    _S("js.interpretation.enabled", "Boolean", "false", "Advanced",
       "Never evaluated: cloudd interprets no user expressions; kept for compatibility."),
    # resources
    _S("resourcecount.check.interval", "Integer", "300", "Advanced",
       "Seconds between resource count recalculations."),
    _S("resource.reservation.cleanup.delay", "Integer", "3600", "Advanced",
       "Seconds after which stale resource reservations are removed."),
    _S("expunge.delay", "Integer", "86400", "Advanced", "Seconds before a destroyed VM is expunged."),
    _S("allow.user.expunge.recover.vm", "Boolean", "false", "Advanced", "Let users expunge and recover VMs."),
    _S("list.vm.default.details.stats", "Boolean", "true", "Advanced", "Include statistics when listing VMs."),
    # guests, user data and config drives
    _S("vm.userdata.max.length", "Integer", "32768", "Advanced",
       "Longest base64 user data accepted (POST; at most 1048576)."),
    _S("vm.configdrive.label", "String", "config-2", "Advanced", "Volume label of config drive ISOs."),
    _S("vm.configdrive.primarypool.enabled", "Boolean", "false", "Advanced",
       "Keep config drive ISOs on primary storage."),
    _S("vm.configdrive.force.host.cache.use", "Boolean", "false", "Advanced",
       "Keep config drive ISOs in the host cache."),
    _S("metadata.allow.expose.domain", "Boolean", "false", "Advanced", "Expose the domain in VM metadata."),
    _S("allow.expose.domain.in.metadata", "Boolean", "false", "Advanced",
       "Alias of metadata.allow.expose.domain."),
    _S("global.allow.expose.host.hostname", "Boolean", "false", "Advanced",
       "Expose the host name in VM metadata."),
    _S("vm.metadata.manufacturer", "String", "Apache Software Foundation", "Advanced",
       "SMBIOS manufacturer of guests."),
    _S("vm.metadata.product", "String", "", "Advanced", "SMBIOS product of guests."),
    # secondary storage
    # offerings
    _S("custom.diskoffering.size.min", "Integer", "1", "Advanced",
       "Minimum size in GB for custom disk offering."),
    _S("custom.diskoffering.size.max", "Integer", "1024", "Advanced",
       "Maximum size in GB for custom disk offering."),
    _S("max.template.iso.size", "Integer", "50", "Advanced", "Largest template or ISO download, in GiB."),
    _S("secstorage.allowed.internal.sites", "String", "", "Advanced",
       "Comma-separated private networks templates may be downloaded from."),
    _S("allow.public.user.templates", "Boolean", "true", "Advanced",
       "If false, users will not be able to create public templates."),
    _S("extract.url.expiration.interval", "Integer", "14400", "Advanced",
       "Seconds an extracted template's or ISO's signed download URL stays valid (at most the ssvm's "
       "urls.max_ttl, 7 days)."),
    # hosts and their monitor
    _S("ping.interval", "Integer", "60", "Advanced",
       "Seconds between two checks of every host's libvirt connection (read before each round)."),
    _S("host.disconnect.down.seconds", "Integer", "180", "Advanced",
       "Seconds a host may stay Disconnected (its checks failing) before it is marked Down."),
    _S("host.maintenance.test.delay.ms", "Integer", "0", "Hidden",
       "Test only: milliseconds a maintenance job waits between PrepareForMaintenance and Maintenance."),
    # primary storage and capacity
    _S("storage.stats.interval", "Integer", "60000", "Advanced",
       "Milliseconds between reads of every primary storage pool's capacity and use from its hosts."),
    _S("capacity.check.period", "Integer", "300000", "Advanced",
       "Milliseconds between checks of the capacities against their notification thresholds."),
    _S("cpu.overprovisioning.factor", "Float", "1.0", "Advanced",
       "Used for CPU overprovisioning calculation; available CPU will be (actualCpuCapacity * "
       "cpu.overprovisioning.factor)."),
    _S("mem.overprovisioning.factor", "Float", "1.0", "Advanced",
       "Used for memory overprovisioning calculation."),
    _S("storage.overprovisioning.factor", "Float", "2.0", "Storage",
       "Used for storage overprovisioning calculation; available storage will be (actualStorageSize * "
       "storage.overprovisioning.factor)."),
    _S("cluster.memory.allocated.capacity.notificationthreshold", "Float", "0.75", "Alert",
       "Percentage (as a value between 0 and 1) of memory utilization above which alerts will be sent about "
       "low memory available."),
    _S("cluster.cpu.allocated.capacity.notificationthreshold", "Float", "0.75", "Alert",
       "Percentage (as a value between 0 and 1) of cpu utilization above which alerts will be sent about low "
       "cpu available."),
    _S("pool.storage.capacity.notificationthreshold", "Float", "0.85", "Alert",
       "Percentage (as a value between 0 and 1) of storage utilization above which alerts will be sent about "
       "low storage available."),
    _S("pool.storage.allocated.capacity.disablethreshold", "Float", "0.85", "Alert",
       "Percentage (as a value between 0 and 1) of allocated storage utilization above which allocators will "
       "disable using the pool for low allocated storage available; alerts are sent above it too."),
    _S("zone.secstorage.capacity.notificationthreshold", "Float", "0.75", "Alert",
       "Percentage (as a value between 0 and 1) of secondary storage utilization above which alerts will be "
       "sent about low storage available."),
    _S("zone.virtualnetwork.publicip.capacity.notificationthreshold", "Float", "0.75", "Alert",
       "Percentage (as a value between 0 and 1) of public IP address space utilization above which alerts "
       "will be sent."),
    _S("pod.privateip.capacity.notificationthreshold", "Float", "0.75", "Alert",
       "Percentage (as a value between 0 and 1) of private IP address space utilization above which alerts "
       "will be sent."),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def parse_value(setting: Setting, value: str) -> Any:
    """The typed value of `value` for `setting`, or InvalidSettingValue."""
    if setting.type == "Boolean":
        low = value.strip().lower()
        if low not in ("true", "false"):
            raise InvalidSettingValue(f"Please enter either 'true' or 'false' for {setting.name}")
        return low == "true"
    if setting.type == "Integer":
        try:
            return int(value.strip())
        except ValueError:
            raise InvalidSettingValue(f"Please enter a valid integer value for {setting.name}") from None
    if setting.type == "Float":
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidSettingValue(f"Please enter a valid decimal value for {setting.name}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidSettingValue(f"Please enter a valid decimal value for {setting.name}")
        return number
    return value


class Settings:
    """The current values: defaults overlaid with what the database stores."""

    def __init__(self, stored: Mapping[str, str | None] | None = None) -> None:
        self._values: dict[str, Any] = {}
        self.load(stored or {})

    def load(self, stored: Mapping[str, str | None]) -> None:
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = stored.get(s.name)
            try:
                values[s.name] = parse_value(s, raw if raw is not None else s.default)
            except InvalidSettingValue:
                values[s.name] = parse_value(s, s.default)
        self._values = values

    def set(self, name: str, value: str) -> None:
        self._values[name] = parse_value(BY_NAME[name], value)

    def get(self, name: str) -> Any:
        return self._values[name]

    def int(self, name: str) -> int:  # noqa: A003
        return int(self._values[name])

    def bool(self, name: str) -> bool:
        return bool(self._values[name])

    def float(self, name: str) -> builtins.float:  # noqa: A003
        return builtins.float(self._values[name])

    def str(self, name: builtins.str) -> builtins.str:
        return builtins.str(self._values[name])

    def raw(self, name: builtins.str) -> builtins.str:
        v = self._values[name]
        if isinstance(v, bool):
            return "true" if v else "false"
        return builtins.str(v)
