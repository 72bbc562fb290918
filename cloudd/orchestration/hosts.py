"""Hypervisor hosts: their two state machines, the work behind the host commands, and the host
monitor.

A host has two independent states, each changed only by compare-and-set through its machine:

* `Status` (the `state` column), the connection as the monitor sees it: Connecting, Up,
  Disconnected, Down, Alert, Removed;
* `ResourceState` (`resource_state`), the operator's intent: Enabled, Disabled,
  PrepareForMaintenance, Maintenance, ErrorInMaintenance.

`HostManager` is a service: it keeps one libvirt connection per stored host (through the
`Hypervisors` service, whose thread pool runs every libvirt call), checks every host each
`ping.interval` seconds on the injected clock, and moves a host Up -> Disconnected when a check
fails, Disconnected -> Down after `host.disconnect.down.seconds`, and back Up when a check succeeds,
each change with an alert (AlertType.HOST), an event and a log line. Nothing here knows about API
callers: commands, jobs and recovery call the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import Logger

from cloudd.db.base import NotFound
from cloudd.db.infra import Cluster, Host, NewHost, Pod, Zone
from cloudd.errors import internal, invalid_value
from cloudd.hypervisor import HypervisorError, hypervisor_of, parse_host_uri
from cloudd.jobs.recovery import recovers
from cloudd.orchestration.alerts import AlertType
from cloudd.orchestration.context import EventInfo
from cloudd.orchestration.states import StateMachine

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from cloudd.db.jobs import Job
    from cloudd.orchestration.context import Services


class Status(Enum):
    """A host's connection state (CloudStack's Status)."""

    CONNECTING = "Connecting"
    UP = "Up"
    DISCONNECTED = "Disconnected"
    DOWN = "Down"
    ALERT = "Alert"
    REMOVED = "Removed"


class ResourceState(Enum):
    """What the operator wants of a host (CloudStack's ResourceState)."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PREPARE_FOR_MAINTENANCE = "PrepareForMaintenance"
    MAINTENANCE = "Maintenance"
    ERROR_IN_MAINTENANCE = "ErrorInMaintenance"


# events, worded so that InvalidTransition reads "Unable to <event> the host: it is in state X"
CONNECT, DISCONNECT, MARK_DOWN, RECONNECT, FAIL_CONNECT, REMOVE = (
    "connect", "disconnect", "mark down", "reconnect", "fail to connect", "remove")
ENABLE, DISABLE, START_MAINTENANCE, COMPLETE_MAINTENANCE, FAIL_MAINTENANCE, CANCEL_MAINTENANCE = (
    "enable", "disable", "start maintenance on", "complete maintenance of", "fail maintenance of",
    "cancel maintenance of")

S, R = Status, ResourceState
STATUS: StateMachine[Status] = StateMachine("Host", Status, {
    **{(s, CONNECT): S.UP for s in (S.CONNECTING, S.DISCONNECTED, S.DOWN, S.ALERT)},
    **{(s, DISCONNECT): S.DISCONNECTED for s in (S.UP, S.CONNECTING)},
    (S.DISCONNECTED, MARK_DOWN): S.DOWN,
    **{(s, RECONNECT): S.CONNECTING for s in (S.UP, S.DISCONNECTED, S.DOWN, S.ALERT)},
    (S.CONNECTING, FAIL_CONNECT): S.ALERT,
    **{(s, REMOVE): S.REMOVED for s in S if s is not S.REMOVED},
})
RESOURCE: StateMachine[ResourceState] = StateMachine("Host", ResourceState, {
    (R.ENABLED, DISABLE): R.DISABLED,
    (R.DISABLED, ENABLE): R.ENABLED,
    **{(s, START_MAINTENANCE): R.PREPARE_FOR_MAINTENANCE for s in (R.ENABLED, R.DISABLED, R.ERROR_IN_MAINTENANCE)},
    (R.PREPARE_FOR_MAINTENANCE, COMPLETE_MAINTENANCE): R.MAINTENANCE,
    (R.PREPARE_FOR_MAINTENANCE, FAIL_MAINTENANCE): R.ERROR_IN_MAINTENANCE,
    **{(s, CANCEL_MAINTENANCE): R.ENABLED
       for s in (R.PREPARE_FOR_MAINTENANCE, R.MAINTENANCE, R.ERROR_IN_MAINTENANCE)},
})

# a host may be deleted without `forced` in these states
DELETABLE_RESOURCE = {R.MAINTENANCE, R.ERROR_IN_MAINTENANCE, R.DISABLED}
DELETABLE_STATUS = {S.DOWN, S.DISCONNECTED, S.ALERT}

HOST_EVENT_DISCONNECTED, HOST_EVENT_DOWN, HOST_EVENT_UP = "HOST.DISCONNECTED", "HOST.DOWN", "HOST.UP"


def host_label(host: Host) -> str:
    return f"{host.name} (id:{host.uuid})"


@dataclass(frozen=True)
class HostPlacement:
    """Where a new host goes."""

    zone: Zone
    pod: Pod
    cluster: Cluster


class HostManager(Service):
    """Host connections, host state changes, and the periodic check of every host; setName("hosts")."""

    log = Logger()

    def __init__(self, services: Services) -> None:
        self.services = services
        self._next: IDelayedCall | None = None
        self._round: Deferred[None] | None = None

    @property
    def hypervisors(self) -> Any:
        hv = self.services.hypervisors
        if hv is None:
            raise internal("no hypervisor driver is configured on this management server")
        return hv

    # --- the monitor ------------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        # the first round opens a connection to every stored host
        self._schedule(0)

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        super().stopService()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if self._round is not None:
            await self._round
        hv = self.services.hypervisors
        if hv is None:
            return
        try:
            hosts = await self.services.db.infra.live_hosts()
        except Exception:
            self.log.failure("could not list the hosts to close their connections")
            return
        for host in hosts:
            conn = hv.connection(host.url)
            if conn is not None:
                await conn.close()

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._next = self.services.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._next = None
        d = self._round = Deferred.fromCoroutine(self._guarded_round())

        def done(_: object) -> None:
            self._round = None
            self._schedule(max(self.services.settings.int("ping.interval"), 1))

        d.addBoth(done)

    async def _guarded_round(self) -> None:
        try:
            await self.check_all()
        except Exception:
            self.log.failure("host check round failed")

    async def check_all(self) -> None:
        """Check every host once (all at the same time)."""
        hosts = await self.services.db.infra.live_hosts()
        answered = await gatherResults([Deferred.fromCoroutine(self.check(h)) for h in hosts], consumeErrors=True)
        await self.services.db.infra.touch_hosts(h.id for h, ok in zip(hosts, answered, strict=True) if ok)

    async def check(self, host: Host) -> bool:
        """One check of one host: its connection answers, or it is opened again. Whether it answered."""
        try:
            hv = self.hypervisors
            conn = hv.connection(host.url)
            if conn is None:
                await hv.connect(host.url)
            else:
                await conn.ping()
        except HypervisorError as exc:
            await self._failed(host, str(exc))
            return False
        await self._answered(host)
        return True

    async def _answered(self, host: Host) -> None:
        db = self.services.db
        if STATUS.allows(host.state, CONNECT):
            if await STATUS.apply_any(db.infra.cas_host_state, host.id, CONNECT) is not None:
                self.log.info("host {name} ({uuid}) is up again", name=host.name, uuid=host.uuid)
                await self._announce(host, f"Host is up: {host_label(host)}", HOST_EVENT_UP)
                await self.attach_storage(host)

    async def _failed(self, host: Host, reason: str) -> None:
        db = self.services.db
        status = STATUS.state(host.state)
        if STATUS.allows(status, DISCONNECT):
            if await STATUS.apply_any(db.infra.cas_host_state, host.id, DISCONNECT) is not None:
                self.log.warn("host {name} ({uuid}) is disconnected: {reason}", name=host.name, uuid=host.uuid,
                              reason=reason)
                await self._announce(host, f"Host is disconnected: {host_label(host)}", HOST_EVENT_DISCONNECTED,
                                     reason)
        elif status is S.DISCONNECTED:
            limit = self.services.settings.int("host.disconnect.down.seconds")
            since = host.state_changed or host.created
            if self.services.clock.seconds() - since >= limit:
                if await STATUS.apply_any(db.infra.cas_host_state, host.id, MARK_DOWN) is not None:
                    self.log.warn("host {name} ({uuid}) is down: disconnected for {limit}s ({reason})",
                                  name=host.name, uuid=host.uuid, limit=limit, reason=reason)
                    await self._announce(host, f"Host is down: {host_label(host)}", HOST_EVENT_DOWN, reason)

    async def _announce(self, host: Host, subject: str, event: str, reason: str | None = None) -> None:
        services = self.services
        await services.alerts.raise_alert(AlertType.HOST, subject, zone_id=host.zone_id, pod_id=host.pod_id,
                                          cluster_id=host.cluster_id)
        text = subject if reason is None else f"{subject}: {reason}"
        await services.events.record(await services.system_actor(), event, "Completed",
                                     EventInfo(text, "Host", host.uuid, host.name),
                                     level="INFO" if event == HOST_EVENT_UP else "WARN")

    # --- adding, reconnecting, removing -----------------------------------------------------------

    def check_url(self, url: str, hypervisor: str) -> str:
        """The hypervisor name as stored ("KVM", "Simulator") when `url` is a host URI this driver
        manages and matches `hypervisor`; 431 otherwise."""
        try:
            parsed = parse_host_uri(url)
        except HypervisorError as exc:
            raise invalid_value(str(exc)) from None
        kind = hypervisor_of(parsed.uri)
        if hypervisor.lower() != kind.lower():
            raise invalid_value(f"The hypervisor {hypervisor} does not match the URL: {kind} serves this URL "
                                f"(test:// is Simulator, qemu URIs are KVM)")
        return kind

    async def add_host(self, where: HostPlacement, url: str, hypervisor: str, tags: tuple[str, ...] = (),
                       allocation_state: str | None = None) -> Host:
        """Connect to a new host, read its CPU and memory, and store it Up. The connection failing is
        530 with libvirt's reason, and nothing is stored."""
        kind = self.check_url(url, hypervisor)
        if where.cluster.hypervisor.lower() != kind.lower():
            raise invalid_value(f"Can't add host whose hypervisor is {kind} to a cluster of hypervisor "
                                f"{where.cluster.hypervisor}")
        resource = R.DISABLED if (allocation_state or "").lower() == "disabled" else R.ENABLED
        hv = self.hypervisors
        had = hv.connection(url) is not None
        try:
            conn = await hv.connect(url)
            facts = await conn.facts()
        except HypervisorError as exc:
            raise internal(f"Unable to add the host: {exc}") from None
        try:
            host: Host = await self.services.db.infra.create_host(NewHost(
                name=facts.hostname or url, zone_id=where.zone.id, pod_id=where.pod.id, cluster_id=where.cluster.id,
                url=url, hypervisor=kind, hypervisor_version=facts.hypervisor_version or None,
                ip_address=urlsplit(url).hostname or "127.0.0.1", state=S.UP.value, resource_state=resource.value,
                cpus=facts.cpus, cpu_speed=facts.cpu_mhz, cpu_sockets=facts.cpu_sockets, memory=facts.memory_bytes,
                cpu_model=facts.cpu_model or None, arch=facts.arch or None, version=facts.libvirt_version or None,
                tags=tags))
        except BaseException:
            if not had:
                await conn.close()
            raise
        self.log.info("added host {name} ({uuid}) at {url}: {cpus} CPUs at {mhz} MHz, {memory} bytes",
                      name=host.name, uuid=host.uuid, url=url, cpus=facts.cpus, mhz=facts.cpu_mhz,
                      memory=facts.memory_bytes)
        await self.attach_storage(host)
        return host

    async def attach_storage(self, host: Host) -> None:
        """Define on a host that joined, or came back, the primary storage pools it should have (when
        primary storage is managed here); a failure is logged and left to the next time."""
        storage = self.services.storage
        if storage is None:
            return
        try:
            await storage.connect_host(host.id)
        except Exception:
            self.log.failure("defining the storage pools of host {name} ({uuid})", name=host.name, uuid=host.uuid)

    async def reconnect(self, host: Host) -> Host:
        """Close the host's connection, open it again and read its facts again."""
        db = self.services.db
        await STATUS.apply(db.infra.cas_host_state, host.id, host.state, RECONNECT)
        hv = self.hypervisors
        old = hv.connection(host.url)
        if old is not None:
            await old.close()
        try:
            conn = await hv.connect(host.url)
            facts = await conn.facts()
        except HypervisorError as exc:
            await STATUS.apply(db.infra.cas_host_state, host.id, S.CONNECTING, FAIL_CONNECT)
            await self._announce(host, f"Unable to reconnect the host: {host_label(host)}", HOST_EVENT_DISCONNECTED,
                                 str(exc))
            raise internal(f"Failed to reconnect the host {host.name}: {exc}") from None
        await db.infra.update_host(host.id, {
            "hypervisor_version": facts.hypervisor_version or None, "cpus": facts.cpus, "cpu_speed": facts.cpu_mhz,
            "cpu_sockets": facts.cpu_sockets, "memory": facts.memory_bytes, "cpu_model": facts.cpu_model or None,
            "arch": facts.arch or None, "version": facts.libvirt_version or None,
            "last_pinged": int(self.services.clock.seconds())})
        await STATUS.apply(db.infra.cas_host_state, host.id, S.CONNECTING, CONNECT)
        await self.attach_storage(host)
        return await db.infra.get_host(host.id)

    async def url_changed(self, old_url: str) -> None:
        """A host's URL was changed: its old connection is closed; the next check opens the new one."""
        hv = self.services.hypervisors
        conn = hv.connection(old_url) if hv is not None else None
        if conn is not None:
            await conn.close()

    async def remove(self, host: Host, forced: bool = False) -> None:
        """Remove a host: allowed in maintenance, disabled, or when it is not connected, or `forced`;
        its connection is closed."""
        if not forced and RESOURCE.state(host.resource_state) not in DELETABLE_RESOURCE \
                and STATUS.state(host.state) not in DELETABLE_STATUS:
            raise invalid_value(f"Host {host.name} cannot be deleted as it is not in maintenance mode. Either put "
                                "the host into maintenance or perform a forced deletion.")
        STATUS.next(host.state, REMOVE)
        if not await self.services.db.infra.remove_host(host.id, [host.state]):
            raise internal(f"The host {host.name} changed state while it was being deleted; retry the operation")
        hv = self.services.hypervisors
        conn = hv.connection(host.url) if hv is not None else None
        if conn is not None:
            await conn.close()
        self.log.info("removed host {name} ({uuid})", name=host.name, uuid=host.uuid)

    # --- the operator's state ---------------------------------------------------------------------

    async def set_allocation(self, host: Host, allocation: str) -> None:
        """updateHost allocationstate=Enable|Disable."""
        event = ENABLE if allocation.lower() == "enable" else DISABLE
        await RESOURCE.apply(self.services.db.infra.cas_resource_state, host.id, host.resource_state, event)

    async def prepare_maintenance(self, host: Host) -> Host:
        """Enabled (or Disabled) -> PrepareForMaintenance -> Maintenance; with no VMs to move, the second
        step follows at once (after `host.maintenance.test.delay.ms`, a pause only tests set)."""
        db = self.services.db
        await RESOURCE.apply(db.infra.cas_resource_state, host.id, host.resource_state, START_MAINTENANCE)
        delay = self.services.settings.int("host.maintenance.test.delay.ms")
        if delay > 0:
            await deferLater(self.services.clock, delay / 1000.0)
        await RESOURCE.apply(db.infra.cas_resource_state, host.id, R.PREPARE_FOR_MAINTENANCE, COMPLETE_MAINTENANCE)
        return await db.infra.get_host(host.id)

    async def cancel_maintenance(self, host: Host) -> Host:
        db = self.services.db
        await RESOURCE.apply(db.infra.cas_resource_state, host.id, host.resource_state, CANCEL_MAINTENANCE)
        return await db.infra.get_host(host.id)


@recovers("Host")
async def recover_host(services: Services, job: Job) -> None:
    """A host job died with its process: a maintenance half done becomes ErrorInMaintenance (the
    operator cancels or retries it), a reconnection half done becomes Disconnected (the monitor's
    next check brings it Up)."""
    try:
        host = await services.db.infra.get_host_by_uuid(job.instance_uuid or "")
    except NotFound:
        return
    infra = services.db.infra
    if RESOURCE.state(host.resource_state) is R.PREPARE_FOR_MAINTENANCE:
        await RESOURCE.apply(infra.cas_resource_state, host.id, R.PREPARE_FOR_MAINTENANCE, FAIL_MAINTENANCE)
        HostManager.log.warn("host {name} ({uuid}): maintenance interrupted by job {job}; now ErrorInMaintenance",
                             name=host.name, uuid=host.uuid, job=job.uuid)
    if STATUS.state(host.state) is S.CONNECTING:
        await STATUS.apply(infra.cas_host_state, host.id, S.CONNECTING, DISCONNECT)
