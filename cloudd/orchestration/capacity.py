"""Capacity: what each zone, pod and cluster has and uses (listCapacity), and the periodic check that
raises an alert when a figure passes its `*.notificationthreshold` setting.

Capacities are computed from the stored figures each time, never cached:

* 0 memory and 1 CPU: the Up and Enabled Routing hosts (memory x `mem.overprovisioning.factor`,
  CPUs x MHz x `cpu.overprovisioning.factor`); what is used and allocated comes from the optional
  `allocated` source (VMs, when they exist), else 0;
* 2 primary storage used and 3 primary storage allocated: the live pools (their size, their use; the
  allocated total is the size x `storage.overprovisioning.factor`); zone-wide pools count in every pod
  and cluster of their zone;
* 5 private IPs: the pods' address ranges; 6 secondary storage: the zone's image stores when that
  table exists; 4 public IPs, 7 VLANs, 8 direct-attached public IPs and 9 local storage: 0 of 0 for now.

The check runs every `capacity.check.period` ms on the injected clock and alerts once per crossing:
a figure that stays above its threshold is not alerted again until it has gone below it.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from cloudd.db.storage import Place
from cloudd.orchestration.alerts import AlertType

if TYPE_CHECKING:
    from cloudd.orchestration.context import Services

MEMORY, CPU, STORAGE, STORAGE_ALLOCATED, PUBLIC_IP, PRIVATE_IP, SECONDARY_STORAGE, VLAN, DIRECT_PUBLIC_IP, \
    LOCAL_STORAGE = range(10)
# CapacityVO.getCapacityName
NAMES = {MEMORY: "MEMORY", CPU: "CPU", STORAGE: "STORAGE", STORAGE_ALLOCATED: "STORAGE_ALLOCATED",
         PUBLIC_IP: "VIRTUAL_NETWORK_PUBLIC_IP", PRIVATE_IP: "PRIVATE_IP", SECONDARY_STORAGE: "SECONDARY_STORAGE",
         VLAN: "VLAN", DIRECT_PUBLIC_IP: "DIRECT_ATTACHED_PUBLIC_IP", LOCAL_STORAGE: "LOCAL_STORAGE"}
TYPES = tuple(NAMES)
# the types computed per cluster, per pod, and per zone only
CLUSTER_TYPES = (MEMORY, CPU, STORAGE, STORAGE_ALLOCATED)
POD_TYPES = (PRIVATE_IP,)
ZONE_TYPES = (PUBLIC_IP, SECONDARY_STORAGE, VLAN, DIRECT_PUBLIC_IP, LOCAL_STORAGE)

# each checked type: its threshold setting, its alert type and the subject's words (AlertManagerImpl)
THRESHOLDS = {
    MEMORY: ("cluster.memory.allocated.capacity.notificationthreshold", AlertType.MEMORY,
             "Low Available Memory"),
    CPU: ("cluster.cpu.allocated.capacity.notificationthreshold", AlertType.CPU, "Low Unallocated CPU"),
    STORAGE: ("pool.storage.capacity.notificationthreshold", AlertType.STORAGE, "Low Available Storage"),
    STORAGE_ALLOCATED: ("pool.storage.allocated.capacity.disablethreshold", AlertType.STORAGE_ALLOCATED,
                        "Remaining unallocated Storage is low"),
    PRIVATE_IP: ("pod.privateip.capacity.notificationthreshold", AlertType.PRIVATE_IP,
                 "Number of unallocated private IPs is low"),
    SECONDARY_STORAGE: ("zone.secstorage.capacity.notificationthreshold", AlertType.SECONDARY_STORAGE,
                        "Low Available Secondary Storage"),
    PUBLIC_IP: ("zone.virtualnetwork.publicip.capacity.notificationthreshold", AlertType.PUBLIC_IP,
                "Number of unallocated virtual network public IPs is low"),
}


def _f32(value: float) -> float:
    """`value` as a Java float."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def percent_used(used: int, total: int) -> str:
    """CloudStack's percentused: (float) used / (float) total * 100f in DecimalFormat("##.##") (at most two
    decimals, half-even, no trailing zeros); "0" when the total is 0."""
    if total == 0:
        return "0"
    value = _f32(_f32(_f32(float(used)) / _f32(float(total))) * _f32(100.0))
    text = format(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class Allocated:
    """What the VMs of a zone, pod or cluster use and hold: memory bytes, CPU MHz, volume bytes."""

    memory_used: int = 0
    memory_allocated: int = 0
    cpu_used: int = 0
    cpu_allocated: int = 0
    storage_allocated: int = 0


AllocatedSource = Callable[[Place], Awaitable[Allocated]]


@dataclass(frozen=True)
class Capacity:
    type: int
    place: Place
    used: int
    total: int
    allocated: int | None = None

    @property
    def name(self) -> str:
        return NAMES[self.type]

    @property
    def percent(self) -> str:
        return percent_used(self.used, self.total)

    @property
    def ratio(self) -> float:
        return self.used / self.total if self.total else 0.0


async def _nothing_allocated(place: Place) -> Allocated:
    return Allocated()


def _range_size(start: str | None, end: str | None) -> int:
    if not start or not end:
        return 0
    try:
        first, last = int(ipaddress.ip_address(start)), int(ipaddress.ip_address(end))
    except ValueError:
        return 0
    return max(0, last - first + 1)


class CapacityManager(MultiService):
    """Computes capacities and checks them against their thresholds; setName("capacity")."""

    log = Logger()

    def __init__(self, services: Services, allocated: AllocatedSource | None = None) -> None:
        super().__init__()
        self.orchestration = services
        self.allocated: AllocatedSource = allocated or _nothing_allocated
        # (type, zone, pod, cluster) of the figures above their threshold at the last check
        self.above: set[tuple[int, int, int | None, int | None]] = set()
        self._checking: Deferred[None] | None = None
        self.timer = TimerService(60.0, self._check_tick)
        self.timer.clock = services.clock
        self.timer.setName("capacity-check")
        self.timer.setServiceParent(self)

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        # the period as stored when the service starts (the settings are loaded from the database by then)
        self.timer.step = max(self.orchestration.settings.int("capacity.check.period"), 1000) / 1000.0
        super().startService()

    # --- computing ---------------------------------------------------------------------------------

    async def capacities(self, *, zone_id: int | None = None, pod_id: int | None = None,
                         cluster_id: int | None = None, type: int | None = None, tag: str | None = None,
                         finest: bool = False) -> list[Capacity]:
        """The capacities of each zone (narrowed to a zone), or of a pod, or of a cluster. `finest` gives
        each type at the level it is kept at (clusters, pods, zones), as listCapacity sortby=usage."""
        if type is not None and type not in TYPES:
            return []
        wanted = TYPES if type is None else (type,)
        db = self.orchestration.db.storage
        out: list[Capacity] = []
        if cluster_id is not None or pod_id is not None:
            places = await db.places(pod_id=pod_id, cluster_id=cluster_id)
            level_types = CLUSTER_TYPES if cluster_id is not None else CLUSTER_TYPES + POD_TYPES
            for place in places:
                out += await self._at(place, [t for t in wanted if t in level_types], tag)
            return out
        for zone in await db.places(zone_id=zone_id):
            if not finest:
                out += await self._at(zone, list(wanted), tag)
                continue
            cluster_level = [t for t in wanted if t in CLUSTER_TYPES]
            pod_level = [t for t in wanted if t in POD_TYPES]
            zone_level = [t for t in wanted if t in ZONE_TYPES]
            if cluster_level:
                for cluster in await self._clusters_of(zone):
                    out += await self._at(cluster, cluster_level, tag)
            if pod_level:
                for pod in await db.pod_ranges(zone_id=zone.zone_id):
                    out += await self._at(pod.place, pod_level, tag)
            out += await self._at(zone, zone_level, tag)
        return out

    async def _clusters_of(self, zone: Place) -> list[Place]:
        hosts = await self.orchestration.db.storage.host_figures(zone_id=zone.zone_id)
        pools = await self.orchestration.db.storage.pool_figures(zone_id=zone.zone_id)
        ids = sorted({h.place.cluster_id for h in hosts if h.place.cluster_id is not None}
                     | {p.cluster_id for p in pools if p.cluster_id is not None})
        out: list[Place] = []
        for cluster_id in ids:
            out += await self.orchestration.db.storage.places(cluster_id=cluster_id)
        return out

    async def _at(self, place: Place, types: list[int], tag: str | None) -> list[Capacity]:
        if not types:
            return []
        db = self.orchestration.db.storage
        settings = self.orchestration.settings
        out: list[Capacity] = []
        allocated = await self.allocated(place) if set(types) & {MEMORY, CPU, STORAGE_ALLOCATED} else Allocated()
        if MEMORY in types or CPU in types:
            hosts = await db.host_figures(zone_id=place.zone_id, pod_id=place.pod_id, cluster_id=place.cluster_id,
                                          tag=tag)
            if MEMORY in types:
                total = int(sum(h.memory for h in hosts) * settings.float("mem.overprovisioning.factor"))
                out.append(Capacity(MEMORY, place, allocated.memory_used, total, allocated.memory_allocated))
            if CPU in types:
                total = int(sum(h.cpus * h.cpu_speed for h in hosts) * settings.float("cpu.overprovisioning.factor"))
                out.append(Capacity(CPU, place, allocated.cpu_used, total, allocated.cpu_allocated))
        if STORAGE in types or STORAGE_ALLOCATED in types:
            pools = await db.pool_figures(zone_id=place.zone_id, pod_id=place.pod_id, cluster_id=place.cluster_id,
                                          tag=tag)
            if STORAGE in types:
                out.append(Capacity(STORAGE, place, sum(p.used_bytes for p in pools),
                                    sum(p.total_bytes for p in pools)))
            if STORAGE_ALLOCATED in types:
                factor = settings.float("storage.overprovisioning.factor")
                total = int(sum(p.total_bytes for p in pools) * factor)
                out.append(Capacity(STORAGE_ALLOCATED, place, allocated.storage_allocated, total,
                                    allocated.storage_allocated))
        if PUBLIC_IP in types:
            out.append(Capacity(PUBLIC_IP, place, 0, 0))
        if PRIVATE_IP in types:
            ranges = await db.pod_ranges(zone_id=place.zone_id, pod_id=place.pod_id)
            out.append(Capacity(PRIVATE_IP, place, 0, sum(_range_size(r.start_ip, r.end_ip) for r in ranges)))
        if SECONDARY_STORAGE in types:
            total, used = await db.secondary_figures(place.zone_id)
            out.append(Capacity(SECONDARY_STORAGE, place, used, total))
        for kind in (VLAN, DIRECT_PUBLIC_IP, LOCAL_STORAGE):
            if kind in types:
                out.append(Capacity(kind, place, 0, 0))
        return out

    # --- the threshold check -----------------------------------------------------------------------

    def _check_tick(self) -> Deferred[None]:
        if self._checking is not None:
            return self._checking
        d = self._checking = Deferred.fromCoroutine(self._guarded_check())

        def done(result: object) -> object:
            self._checking = None
            return result

        d.addBoth(done)
        return d

    async def _guarded_check(self) -> None:
        # a failure must not stop the timer
        try:
            await self.check()
        except Exception:
            self.log.failure("the capacity check failed")

    async def check(self) -> int:
        """Compare every capacity with its threshold; alert on each one newly above it. How many alerts."""
        figures = await self.capacities(finest=True)
        raised = 0
        seen_above: set[tuple[int, int, int | None, int | None]] = set()
        for c in figures:
            rule = THRESHOLDS.get(c.type)
            if rule is None or c.total <= 0:
                continue
            setting, alert_type, words = rule
            key = (c.type, c.place.zone_id, c.place.pod_id, c.place.cluster_id)
            if c.ratio <= self.orchestration.settings.float(setting):
                continue
            seen_above.add(key)
            if key in self.above:
                continue
            subject = f"System Alert: {words} in {_where(c.place)}"
            self.log.warn("capacity {name} of {where} is {percent}% used (threshold {setting})", name=c.name,
                          where=_where(c.place), percent=c.percent, setting=setting)
            await self.orchestration.alerts.raise_alert(alert_type, subject, zone_id=c.place.zone_id,
                                                   pod_id=c.place.pod_id, cluster_id=c.place.cluster_id)
            raised += 1
        self.above = seen_above
        return raised


def _where(place: Place) -> str:
    if place.cluster_id is not None:
        return f"cluster {place.cluster_name} pod {place.pod_name} of availability zone {place.zone_name}"
    if place.pod_id is not None:
        return f"pod {place.pod_name} of availability zone {place.zone_name}"
    return f"availability zone {place.zone_name}"
