"""The secondary-storage VM of each zone with an image store: its row in `system_vms`, kept in step
with the supervised `twistd ssvm` child that plays it in the embedded setup.

`SystemVmManager` starts a zone's ssvm when the zone gets its first image store (`ensure_zone`), and
at start re-adopts (starts again) the ssvm of every zone with a store. The supervisor tells it of
every state change (`on_state`): the row moves by compare-and-set through `SYSTEM_VM`, and a VM that
dies raises an `AlertType.SSVM` alert. Each time a zone's ssvm answers again (its agent's resync)
the template downloads of the zone are read back (`services.templates.resync_zone`) and the store's
capacity is stored.

`supervisor` is `cloudd.agents.supervisor.SsvmSupervisor` (or anything with its `start_vm`,
`stop_vm`, `agent` and `endpoint`); it is built after this manager, whose `on_state` it calls, and
handed over with `attach`.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from cloudd.agents.service import AgentState, describe
from cloudd.db.base import NotFound
from cloudd.errors import internal, invalid_value
from cloudd.orchestration.alerts import AlertType
from cloudd.orchestration.states import StateMachine

if TYPE_CHECKING:
    from cloudd.agents.service import ApplianceAgent
    from cloudd.db.images import ImageStore, SystemVm
    from cloudd.orchestration.context import Services

SSVM_TYPE = "secondarystoragevm"
LOOPBACK = "127.0.0.1"
GIB = 2**30


class SystemVmState(enum.Enum):
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ERROR = "Error"
    DESTROYED = "Destroyed"


_S = SystemVmState
_LIVE = (_S.STARTING, _S.RUNNING, _S.STOPPING, _S.STOPPED, _S.ERROR)
SYSTEM_VM: StateMachine[SystemVmState] = StateMachine("SystemVm", SystemVmState, {
    # from Stopping too: a VM whose stop was cut short by a management server restart (its child is gone)
    **{(s, "start"): _S.STARTING for s in (_S.STARTING, _S.RUNNING, _S.STOPPING, _S.STOPPED, _S.ERROR)},
    **{(s, "running"): _S.RUNNING for s in (_S.STARTING, _S.RUNNING, _S.ERROR)},
    **{(s, "fail"): _S.ERROR for s in (_S.STARTING, _S.RUNNING, _S.STOPPING, _S.ERROR)},
    **{(s, "stop"): _S.STOPPING for s in (_S.STARTING, _S.RUNNING, _S.ERROR, _S.STOPPING)},
    **{(s, "stopped"): _S.STOPPED for s in (_S.STOPPING, _S.STOPPED, _S.ERROR, _S.STARTING)},
    **{(s, "destroy"): _S.DESTROYED for s in (_S.STOPPED, _S.ERROR)},
})

# the supervisor's states (cloudd.agents.supervisor.VmState values) -> the event they are
EVENT_OF = {"Starting": "start", "Running": "running", "Stopping": "stop", "Stopped": "stopped", "Error": "fail"}


def ssvm_settings(services: Services) -> str:
    """The appliance's TOML settings from the global settings: the private networks templates may come
    from (`secstorage.allowed.internal.sites`; an entry that is not a network is left out, logged, so
    that the appliance still starts) and the size limit (`max.template.iso.size`, GiB)."""
    settings = services.settings
    sites = []
    for text in settings.str("secstorage.allowed.internal.sites").split(","):
        if not text.strip():
            continue
        try:
            sites.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            SystemVmManager.log.warn("secstorage.allowed.internal.sites: {entry!r} is not a network; ignored",
                                     entry=text.strip()[:64])
    cidrs = ", ".join(f'"{s}"' for s in sites)
    size = max(settings.int("max.template.iso.size"), 1) * GIB
    return f"[download]\nallowed_cidrs = [{cidrs}]\nmax_size = {size}\n"


class SystemVmManager(Service):
    log = Logger()

    def __init__(self, services: Services, supervisor: Any = None) -> None:
        self.setName("systemvms")
        self.services = services
        self.supervisor = supervisor
        self._zone_vm: dict[int, int] = {}
        self._locks: dict[int, DeferredLock] = {}
        self._pending: set[Deferred[Any]] = set()
        self.adopted: Deferred[None] | None = None

    def attach(self, supervisor: Any) -> None:
        self.supervisor = supervisor

    # -- start and adoption ------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        self.adopted = self._track(Deferred.fromCoroutine(self.adopt()))

    async def adopt(self) -> None:
        """Start (again) the ssvm of every zone with an image store; a zone that fails is logged and
        left to the next start."""
        seen: set[int] = set()
        for store in await self.services.db.images.all_stores():
            if store.zone_id in seen:
                continue
            seen.add(store.zone_id)
            try:
                await self.ensure_zone(store)
            except Exception as exc:
                self.log.error("could not start the secondary storage VM of zone {zone}: {error}",
                               zone=store.zone_name, error=describe(exc))

    async def ensure_zone(self, store: ImageStore) -> SystemVm:
        """The zone's ssvm, created when it has none, started (serving `store`) when not running."""
        if self.supervisor is None:
            raise internal("No secondary storage VM supervisor is configured on this management server")
        db = self.services.db.images
        async with self._lock(store.zone_id):
            vm = await db.vm_of_zone(store.zone_id, SSVM_TYPE)
            if vm is None:
                vm = await db.create_vm(vm_type=SSVM_TYPE, zone_id=store.zone_id, store_id=store.id,
                                        state=_S.STARTING.value, address=LOOPBACK)
                self.log.info("created {name} for zone {zone}", name=vm.name, zone=store.zone_name)
            self._zone_vm[store.zone_id] = vm.id
            await self._start(vm, store)
            return await db.get_vm(vm.id)

    async def _start(self, vm: SystemVm, store: ImageStore) -> None:
        zone_id = vm.zone_id

        async def resync(agent: ApplianceAgent[Any]) -> None:
            await self._resync(zone_id, store.id, agent)

        await self.supervisor.start_vm(vm.id, store.path, settings=ssvm_settings(self.services), resync=resync)
        endpoint = self.supervisor.endpoint(vm.id)
        if endpoint is not None:
            await self.services.db.images.set_vm_endpoint(vm.id, endpoint.control_url, endpoint.public_url)

    async def _resync(self, zone_id: int, store_id: int, agent: ApplianceAgent[Any]) -> None:
        """The zone's ssvm answers (again): read its downloads back and store its capacity."""
        templates = self.services.templates
        if templates is not None:
            await templates.resync_zone(zone_id, agent)
        try:
            capacity = await agent.call(lambda c: c.storage())
        except Exception as exc:
            self.log.warn("could not read the capacity of image store {store}: {error}", store=store_id,
                          error=describe(exc))
            return
        await self.services.db.images.set_store_capacity(store_id, capacity.total, capacity.used_by_store)

    # -- what the template work reads --------------------------------------------------------------

    def agent_for_zone(self, zone_id: int) -> ApplianceAgent[Any] | None:
        """The zone's ssvm agent, None when the zone has none supervised here."""
        vm_id = self._zone_vm.get(zone_id)
        if vm_id is None or self.supervisor is None:
            return None
        agent: ApplianceAgent[Any] | None = self.supervisor.agent(vm_id)
        return agent

    def ready_agent(self, zone_id: int) -> ApplianceAgent[Any] | None:
        """The zone's ssvm agent when it is Up."""
        agent = self.agent_for_zone(zone_id)
        return agent if agent is not None and agent.state is AgentState.UP else None

    # -- the supervisor's reports ------------------------------------------------------------------

    def on_state(self, vm_id: int, state: Any) -> None:
        """The supervisor's callback: store the state (in order, per VM) and alert when the VM dies."""
        value = getattr(state, "value", state)
        event = EVENT_OF.get(str(value))
        if event is None:
            self.log.warn("unknown system VM state {state} for VM {vm}", state=value, vm=vm_id)
            return
        self._track(Deferred.fromCoroutine(self._record(vm_id, event)))

    async def _record(self, vm_id: int, event: str) -> None:
        async with self._lock(-vm_id):
            db = self.services.db.images
            try:
                vm = await db.get_vm(vm_id)
            except NotFound:
                return
            target = await SYSTEM_VM.apply_any(db.cas_vm_state, vm_id, event)
            if target is None:
                return
            if target is _S.ERROR and vm.state != _S.ERROR.value:
                supervised = self.supervisor.get(vm_id) if self.supervisor is not None else None
                how = getattr(supervised, "last_exit", None) or "unknown cause"
                await self.services.alerts.raise_alert(
                    AlertType.SSVM, f"Secondary Storage Vm {vm.name} in zone {vm.zone_name} stopped unexpectedly "
                    f"({how}); it is being restarted", zone_id=vm.zone_id, key=f"ssvm:{vm.id}")
            if target is _S.RUNNING:
                endpoint = self.supervisor.endpoint(vm_id) if self.supervisor is not None else None
                if endpoint is not None:
                    await db.set_vm_endpoint(vm_id, endpoint.control_url, endpoint.public_url)

    # -- operator commands -------------------------------------------------------------------------

    async def stop(self, vm: SystemVm) -> SystemVm:
        if self.supervisor is None:
            raise internal("No secondary storage VM supervisor is configured on this management server")
        if vm.state == _S.STOPPED.value:
            raise invalid_value(f"Unable to stop system vm {vm.name}: it is already stopped")
        await self.supervisor.stop_vm(vm.id)
        # the supervisor's reports are stored in order; wait for them before answering
        async with self._lock(-vm.id):
            pass
        if (await self.services.db.images.get_vm(vm.id)).state != _S.STOPPED.value:
            await SYSTEM_VM.apply_any(self.services.db.images.cas_vm_state, vm.id, "stopped")
        return await self.services.db.images.get_vm(vm.id)

    async def start(self, vm: SystemVm) -> SystemVm:
        store = await self._store_of(vm)
        SYSTEM_VM.next(vm.state, "start")
        return await self.ensure_zone(store)

    async def reboot(self, vm: SystemVm) -> SystemVm:
        if vm.state != _S.RUNNING.value:
            raise invalid_value(f"Unable to reboot system vm {vm.name}: it is in state {vm.state}")
        await self.stop(vm)
        return await self.ensure_zone(await self._store_of(vm))

    async def destroy(self, vm: SystemVm) -> SystemVm:
        """Stop and remove the VM; the zone, if it still has an image store, gets a new one."""
        if vm.state != _S.STOPPED.value:
            vm = await self.stop(vm)
        await SYSTEM_VM.apply(self.services.db.images.cas_vm_state, vm.id, vm.state, "destroy")
        await self.services.db.images.remove_vm(vm.id, _S.DESTROYED.value)
        self._zone_vm.pop(vm.zone_id, None)
        stores = await self.services.db.images.stores_in_zone(vm.zone_id)
        if stores:
            await self.ensure_zone(stores[0])
        return vm

    async def _store_of(self, vm: SystemVm) -> ImageStore:
        stores = await self.services.db.images.stores_in_zone(vm.zone_id)
        if not stores:
            raise invalid_value(f"Zone {vm.zone_name} of system vm {vm.name} has no image store")
        return stores[0]

    async def zone_removed_store(self, zone_id: int) -> None:
        """The zone's last image store is gone: stop and destroy its ssvm."""
        vm = await self.services.db.images.vm_of_zone(zone_id, SSVM_TYPE)
        if vm is None:
            return
        if self.supervisor is not None:
            await self.supervisor.stop_vm(vm.id)
            async with self._lock(-vm.id):
                pass
        await self.services.db.images.remove_vm(vm.id, _S.DESTROYED.value)
        self._zone_vm.pop(zone_id, None)

    # -- helpers -----------------------------------------------------------------------------------

    def _lock(self, key: int) -> DeferredLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        return lock

    def _track(self, d: Deferred[Any]) -> Deferred[Any]:
        self._pending.add(d)

        def done(result: object) -> None:
            self._pending.discard(d)

        def failed(failure: Any) -> None:
            self.log.failure("system VM bookkeeping failed", failure)

        d.addErrback(failed)
        d.addBoth(done)
        return d

    def stopService(self) -> Deferred[None] | None:  # noqa: N802 (Twisted API)
        super().stopService()
        return None
