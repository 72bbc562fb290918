"""Primary storage: the storage pool state machine, the work behind the storage pool commands, and the
periodic refresh of every pool's capacity and use.

A pool is a libvirt storage pool named by the pool's UUID, defined on every Up and Enabled host of its
cluster (scope CLUSTER) or zone (scope ZONE) through the host connections of the `Hypervisors` service:
`nfs://server/export` becomes a `netfs` pool mounted at `<mount base>/<uuid>` on the hosts;
`SharedMountPoint:///path`, `file:///path` or a bare absolute path a `dir` pool on that directory. A
pool is stored only once at least one host has it; when every host fails, nothing is stored.

States (CloudStack's StoragePoolStatus) change only by compare-and-set through `POOL`:
Up <-> Disabled; Up/ErrorInMaintenance -> PrepareForMaintenance -> Maintenance (or
ErrorInMaintenance when a host could not let go of it); Maintenance/ErrorInMaintenance ->
CancelMaintenance -> Up (or back to Maintenance); Maintenance -> Removed. A job that died between
two of them is returned by `recover_pool` to ErrorInMaintenance or Maintenance.

`StorageManager` is a service (setName("storage")): every `storage.stats.interval` ms on the injected
clock it reads each live pool's figures from its hosts and stores them, defining the pool again on a
host of its scope that lost it or never had it (`connect_host` does the same for one host at once).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from cloudd.db.base import NotFound, new_uuid
from cloudd.db.storage import AttachableHost, NewPool, PoolFilter, PoolInUse, StoragePool
from cloudd.errors import in_use, internal, invalid_value
from cloudd.hypervisor.errors import HostUnreachable, HypervisorError
from cloudd.hypervisor.facts import PoolFacts
from cloudd.hypervisor.pools import pool_spec
from cloudd.jobs.recovery import recovers
from cloudd.orchestration.states import InvalidTransition, StateMachine

if TYPE_CHECKING:
    from cloudd.db.infra import Cluster, Pod, Zone
    from cloudd.db.jobs import Job
    from cloudd.orchestration.context import Services


class PoolState(Enum):
    """A storage pool's state (CloudStack's StoragePoolStatus, the states cloudd uses)."""

    UP = "Up"
    DISABLED = "Disabled"
    PREPARE_FOR_MAINTENANCE = "PrepareForMaintenance"
    MAINTENANCE = "Maintenance"
    ERROR_IN_MAINTENANCE = "ErrorInMaintenance"
    CANCEL_MAINTENANCE = "CancelMaintenance"
    REMOVED = "Removed"


S = PoolState
POOL = StateMachine("StoragePool", PoolState, {
    (S.UP, "disable"): S.DISABLED,
    (S.DISABLED, "enable"): S.UP,
    (S.UP, "maintain"): S.PREPARE_FOR_MAINTENANCE,
    (S.ERROR_IN_MAINTENANCE, "maintain"): S.PREPARE_FOR_MAINTENANCE,
    (S.PREPARE_FOR_MAINTENANCE, "maintained"): S.MAINTENANCE,
    (S.PREPARE_FOR_MAINTENANCE, "fail"): S.ERROR_IN_MAINTENANCE,
    (S.MAINTENANCE, "cancel"): S.CANCEL_MAINTENANCE,
    (S.ERROR_IN_MAINTENANCE, "cancel"): S.CANCEL_MAINTENANCE,
    (S.CANCEL_MAINTENANCE, "up"): S.UP,
    (S.CANCEL_MAINTENANCE, "cancel_failed"): S.MAINTENANCE,
    (S.MAINTENANCE, "remove"): S.REMOVED,
})

# the only provider: pools on the hosts' libvirt
DEFAULT_PROVIDER = "DefaultPrimary"
# hypervisors whose hosts may share a zone-wide pool
ZONE_WIDE_HYPERVISORS = ("KVM", "Simulator")
TYPE_NFS, TYPE_SHARED_MOUNT, TYPE_FILESYSTEM = "NetworkFilesystem", "SharedMountPoint", "Filesystem"


@dataclass(frozen=True)
class PoolLocation:
    """Where a pool's storage is, read from its URL."""

    pool_type: str  # NetworkFilesystem, SharedMountPoint or Filesystem
    kind: str  # libvirt's pool type: netfs or dir
    host_address: str  # the NFS server, or "localhost"
    path: str  # the export, or the directory


def parse_pool_url(url: str) -> PoolLocation:
    """The storage a createStoragePool URL names, or 431 saying what is wrong with it."""
    text = url.strip()
    if text.startswith("/"):
        return PoolLocation(TYPE_FILESYSTEM, "dir", "localhost", _directory(text, url))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "nfs":
        server = parts.hostname or ""
        if not server:
            raise invalid_value(f"The NFS URL {url} names no server: use nfs://server/export")
        export = unquote(parts.path)
        if not export or export == "/":
            raise invalid_value(f"The NFS URL {url} names no export path: use nfs://server/export")
        try:
            spec = pool_spec("check", "netfs", "/mnt/check", server, export)
        except HypervisorError as exc:
            raise invalid_value(f"Invalid storage pool URL {url}: {exc}") from None
        return PoolLocation(TYPE_NFS, "netfs", server, spec.nfs_export or export)
    if scheme in ("sharedmountpoint", "file"):
        host = parts.hostname or "localhost"
        if host != "localhost":
            raise invalid_value(f"A {parts.scheme} URL names a directory on the hosts, not on {host}: "
                                f"use {parts.scheme}:///path")
        pool_type = TYPE_SHARED_MOUNT if scheme == "sharedmountpoint" else TYPE_FILESYSTEM
        return PoolLocation(pool_type, "dir", "localhost", _directory(unquote(parts.path), url))
    raise invalid_value(f"Unsupported storage pool URL {url}: the supported forms are nfs://server/export, "
                        "SharedMountPoint:///path, file:///path and an absolute directory path")


def _directory(path: str, url: str) -> str:
    try:
        return pool_spec("check", "dir", path).path
    except HypervisorError as exc:
        raise invalid_value(f"Invalid storage pool URL {url}: {exc}") from None


def split_tags(tags: str | list[str] | None) -> list[str]:
    """Tags given as "a,b" or as a list: stripped, empty ones dropped, each once, in order."""
    if tags is None:
        return []
    items = tags.split(",") if isinstance(tags, str) else tags
    out: list[str] = []
    for item in items:
        tag = item.strip()
        if tag and tag not in out:
            if len(tag) > 255:
                raise invalid_value(f"The storage tag {tag[:32]}... is longer than 255 characters")
            out.append(tag)
    return out


@dataclass(frozen=True)
class Attached:
    """One host's answer to defining a pool."""

    host: AttachableHost
    facts: PoolFacts | None
    error: str | None = None


class StorageManager(MultiService):
    """The work behind the storage pool commands, and the periodic refresh of pool figures."""

    log = Logger()

    def __init__(self, services: Services, mount_base: str = "/mnt") -> None:
        super().__init__()
        self.orchestration = services
        self.mount_base = mount_base
        self._refreshing: Deferred[None] | None = None
        self.timer = TimerService(60.0, self._refresh_tick)
        self.timer.clock = services.clock
        self.timer.setName("storage-stats")
        self.timer.setServiceParent(self)

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        # the period as stored when the service starts (the settings are loaded from the database by then)
        self.timer.step = max(self.orchestration.settings.int("storage.stats.interval"), 1000) / 1000.0
        super().startService()

    # --- helpers -------------------------------------------------------------------------------------

    @property
    def hypervisors(self) -> Any:
        hv = self.orchestration.hypervisors
        if hv is None:
            raise internal("no hypervisor driver is configured on this management server")
        return hv

    def local_path(self, location: PoolLocation, uuid: str) -> str:
        """Where the pool is on each host: its directory, or the NFS export's mount point."""
        if location.kind == "dir":
            return location.path
        return posixpath.join(self.mount_base, uuid)

    async def _ensure_on(self, host: AttachableHost, uuid: str, location: PoolLocation) -> Attached:
        try:
            conn = await self.hypervisors.connect(host.url)
            if location.kind == "netfs":
                facts = await conn.ensure_pool(uuid, "netfs", self.local_path(location, uuid), location.host_address,
                                               location.path)
            else:
                facts = await conn.ensure_pool(uuid, "dir", location.path)
        except HypervisorError as exc:
            self.log.warn("storage pool {pool} could not be defined on host {host}: {error}", pool=uuid,
                          host=host.name, error=str(exc))
            return Attached(host, None, f"{host.name}: {exc}")
        return Attached(host, facts)

    async def _ensure_on_all(self, hosts: list[AttachableHost], uuid: str, location: PoolLocation) -> list[Attached]:
        results = await gatherResults(
            [Deferred.fromCoroutine(self._ensure_on(h, uuid, location)) for h in hosts], consumeErrors=True)
        return list(results)

    async def _remove_from(self, host_url: str, host_name: str, uuid: str) -> str | None:
        """Undefine the pool on one host; the reason when that failed."""
        try:
            conn = await self.hypervisors.connect(host_url)
            await conn.delete_pool(uuid)
        except HypervisorError as exc:
            self.log.warn("storage pool {pool} could not be removed from host {host}: {error}", pool=uuid,
                          host=host_name, error=str(exc))
            return f"{host_name}: {exc}"
        return None

    # --- create ------------------------------------------------------------------------------------

    async def create_pool(self, *, zone: Zone, pod: Pod | None, cluster: Cluster | None, name: str, url: str,
                          scope: str | None = None, hypervisor: str | None = None, tags: list[str] | None = None,
                          capacity_bytes: int | None = None, capacity_iops: int | None = None,
                          managed: bool = False, provider: str | None = None) -> StoragePool:
        """Define a pool on the hosts of its cluster or zone and store it (createStoragePool)."""
        if not name.strip():
            raise invalid_value("The storage pool name must not be empty")
        if provider is not None and provider.strip().lower() != DEFAULT_PROVIDER.lower():
            raise invalid_value(f"invalid storage provider name {provider}; the only provider is {DEFAULT_PROVIDER}")
        if managed:
            raise invalid_value(f"The {DEFAULT_PROVIDER} storage provider does not support managed storage")
        if capacity_bytes is not None and capacity_bytes <= 0:
            raise invalid_value("capacitybytes must be a positive number of bytes")
        if capacity_iops is not None and capacity_iops < 0:
            raise invalid_value("capacityiops must not be negative")
        scope_name = (scope or "cluster").strip().upper()
        if scope_name not in ("CLUSTER", "ZONE"):
            raise invalid_value(f"invalid scope for pool {scope}: use cluster or zone")
        location = parse_pool_url(url)
        if scope_name == "CLUSTER":
            if cluster is None or pod is None:
                raise invalid_value("Cluster id and pod id are required for a cluster-wide storage pool")
            if pod.zone_id != zone.id:
                raise invalid_value(f"Pod {pod.name} does not belong to zone {zone.name}")
            if cluster.pod_id != pod.id:
                raise invalid_value(f"Cluster {cluster.name} does not belong to pod {pod.name}")
            pool_hypervisor: str | None = cluster.hypervisor
            hosts = await self.orchestration.db.storage.attachable_hosts(zone.id, cluster_id=cluster.id)
            where = f"cluster {cluster.name}"
        else:
            if not hypervisor:
                raise invalid_value("hypervisor type can't be null for a zone-wide storage pool")
            matched = [h for h in ZONE_WIDE_HYPERVISORS if h.lower() == hypervisor.strip().lower()]
            if not matched:
                raise invalid_value(f"zone wide storage pool is not supported for hypervisor type {hypervisor}")
            pool_hypervisor = matched[0]
            pod = cluster = None
            hosts = await self.orchestration.db.storage.attachable_hosts(zone.id, hypervisor=pool_hypervisor)
            where = f"zone {zone.name}"
        _, same = await self.orchestration.db.storage.search(PoolFilter(zone_id=zone.id, host_address=location.host_address,
                                                                   path=location.path))
        if same:
            raise in_use(f"Storage pool {url} is already in use by storage pool {same[0].name} ({same[0].uuid})")
        if not hosts:
            raise internal(f"No host up to associate a storage pool with in {where}")
        uuid = new_uuid()
        attached = await self._ensure_on_all(hosts, uuid, location)
        good = [a for a in attached if a.facts is not None]
        if not good:
            reasons = "; ".join(a.error or "" for a in attached)
            raise internal(f"Failed to add storage pool {name}: {reasons}")
        facts = good[0].facts
        assert facts is not None
        new = NewPool(uuid=uuid, name=name.strip(), zone_id=zone.id, pod_id=pod.id if pod else None,
                      cluster_id=cluster.id if cluster else None, scope=scope_name, pool_type=location.pool_type,
                      host_address=location.host_address, path=location.path, url=url.strip(),
                      hypervisor=pool_hypervisor, provider=DEFAULT_PROVIDER, managed=False, state=S.UP.value,
                      capacity_bytes=facts.capacity_bytes, used_bytes=facts.used_bytes,
                      available_bytes=facts.available_bytes, capacity_limit=capacity_bytes,
                      capacity_iops=capacity_iops)
        try:
            pool = await self.orchestration.db.storage.create(
                new, split_tags(tags), [(a.host.id, self.local_path(location, uuid)) for a in good])
        except BaseException as exc:
            # the hosts must not keep a pool nothing knows about
            for a in good:
                await self._remove_from(a.host.url, a.host.name, uuid)
            if isinstance(exc, PoolInUse):
                raise in_use(str(exc)) from None
            raise
        self.log.info("storage pool {name} ({uuid}) created on {count} host(s) of {where}", name=pool.name,
                      uuid=pool.uuid, count=len(good), where=where)
        return pool

    async def connect_host(self, host_id: int) -> int:
        """Define on a host that joined (or came back) every live pool of its cluster, and every zone-wide
        pool of its zone and hypervisor, as CloudStack does when a host connects; how many it has now.
        A pool the host cannot define is logged and left to the next call."""
        host = await self.orchestration.db.infra.get_host(host_id)
        target = AttachableHost(host.id, host.uuid, host.name, host.url, host.hypervisor, host.cluster_id)
        _, pools = await self.orchestration.db.storage.search(
            PoolFilter(zone_id=host.zone_id, states=(S.UP.value, S.DISABLED.value)))
        count = 0
        for pool in pools:
            if pool.scope == "CLUSTER" and (host.cluster_id is None or pool.cluster_id != host.cluster_id):
                continue
            if pool.scope == "ZONE" and pool.hypervisor != host.hypervisor:
                continue
            location = self._location(pool)
            attached = await self._ensure_on(target, pool.uuid, location)
            if attached.facts is not None:
                await self.orchestration.db.storage.add_pool_host(pool.id, host.id,
                                                                  self.local_path(location, pool.uuid))
                count += 1
        return count

    # --- update --------------------------------------------------------------------------------------

    async def update_pool(self, pool: StoragePool, *, name: str | None = None, tags: list[str] | None = None,
                          capacity_bytes: int | None = None, capacity_iops: int | None = None,
                          enabled: bool | None = None) -> StoragePool:
        """Rename, retag, resize or enable/disable a pool (updateStoragePool)."""
        if name is not None and not name.strip():
            raise invalid_value("The storage pool name must not be empty")
        if capacity_bytes is not None and capacity_bytes <= 0:
            raise invalid_value("capacitybytes must be a positive number of bytes")
        if capacity_iops is not None and capacity_iops < 0:
            raise invalid_value("capacityiops must not be negative")
        new_tags = None if tags is None else split_tags(tags)
        if any(v is not None for v in (name, new_tags, capacity_bytes, capacity_iops)):
            pool = await self.orchestration.db.storage.update(pool.id, name=None if name is None else name.strip(),
                                                         tags=new_tags, capacity_limit=capacity_bytes,
                                                         capacity_iops=capacity_iops)
        if enabled is not None:
            event = "enable" if enabled else "disable"
            try:
                await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, pool.state, event)
            except InvalidTransition:
                raise invalid_value(f"Primary storage with id {pool.uuid} cannot be {event}d. Storage pool state : "
                                    f"{pool.state}") from None
            pool = await self.orchestration.db.storage.get(pool.id)
        return pool

    # --- delete --------------------------------------------------------------------------------------

    async def delete_pool(self, pool: StoragePool, forced: bool = False) -> None:
        """Forget a pool in maintenance and undefine it on its hosts (deleteStoragePool)."""
        if pool.state != S.MAINTENANCE.value:
            raise invalid_value(f"Unable to delete storage due to it is not in Maintenance state, id: {pool.uuid}")
        volumes = await self.orchestration.db.storage.count_volumes(pool.id)
        if volumes:
            raise in_use(f"Cannot delete pool {pool.name} as there are {volumes} volumes on it")
        hosts = await self.orchestration.db.storage.pool_hosts(pool.id)
        await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, pool.state, "remove")
        for h in hosts:
            if h.host_state == "Up":
                await self._remove_from(h.host_url, h.host_name, pool.uuid)
        self.log.info("storage pool {name} ({uuid}) deleted", name=pool.name, uuid=pool.uuid)

    # --- maintenance ---------------------------------------------------------------------------------

    async def begin_maintenance(self, pool: StoragePool) -> None:
        """The synchronous part of enableStorageMaintenance: the pool moves to PrepareForMaintenance, or
        the caller learns at once that it cannot (431) or that another command moved it first (530)."""
        try:
            await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, pool.state, "maintain")
        except InvalidTransition:
            raise invalid_value(f"Primary storage with id {pool.uuid} is not ready for migration, as the status "
                                f"is:{pool.state}") from None

    async def finish_maintenance(self, pool_uuid: str) -> StoragePool:
        """The job of enableStorageMaintenance: every Up host lets go of the pool, then Maintenance; when
        a host could not, ErrorInMaintenance and 530 naming it."""
        pool = await self.orchestration.db.storage.get_by_uuid(pool_uuid)
        hosts = await self.orchestration.db.storage.pool_hosts(pool.id)
        failures = []
        for h in hosts:
            if h.host_state != "Up":
                continue
            reason = await self._remove_from(h.host_url, h.host_name, pool.uuid)
            if reason is not None:
                failures.append(reason)
        if failures:
            await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, S.PREPARE_FOR_MAINTENANCE, "fail")
            raise internal(f"Failed to prepare storage pool {pool.name} for maintenance: {'; '.join(failures)}")
        await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, S.PREPARE_FOR_MAINTENANCE, "maintained")
        return await self.orchestration.db.storage.get(pool.id)

    async def begin_cancel(self, pool: StoragePool) -> None:
        """The synchronous part of cancelStorageMaintenance: Maintenance -> CancelMaintenance."""
        try:
            await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, pool.state, "cancel")
        except InvalidTransition:
            raise invalid_value(f"Primary storage with id {pool.uuid} is not ready to complete migration, as the "
                                f"status is:{pool.state}") from None

    async def finish_cancel(self, pool_uuid: str) -> StoragePool:
        """The job of cancelStorageMaintenance: the pool is defined again on the Up hosts of its scope,
        then Up; when every host failed, back to Maintenance and 530 with the reasons."""
        pool = await self.orchestration.db.storage.get_by_uuid(pool_uuid)
        location = self._location(pool)
        hosts = await self._scope_hosts(pool)
        attached = await self._ensure_on_all(hosts, pool.uuid, location)
        good = [a for a in attached if a.facts is not None]
        if hosts and not good:
            await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, S.CANCEL_MAINTENANCE, "cancel_failed")
            reasons = "; ".join(a.error or "" for a in attached)
            raise internal(f"Failed to cancel maintenance of storage pool {pool.name}: {reasons}")
        for a in good:
            await self.orchestration.db.storage.add_pool_host(pool.id, a.host.id, self.local_path(location, pool.uuid))
        if good and good[0].facts is not None:
            f = good[0].facts
            await self.orchestration.db.storage.set_stats(pool.id, f.capacity_bytes, f.used_bytes, f.available_bytes)
        await POOL.apply(self.orchestration.db.storage.cas_pool_state, pool.id, S.CANCEL_MAINTENANCE, "up")
        return await self.orchestration.db.storage.get(pool.id)

    # --- figures -------------------------------------------------------------------------------------

    def _refresh_tick(self) -> Deferred[None]:
        if self._refreshing is not None:
            return self._refreshing
        d = self._refreshing = Deferred.fromCoroutine(self._guarded_refresh())

        def done(result: object) -> object:
            self._refreshing = None
            return result

        d.addBoth(done)
        return d

    async def _guarded_refresh(self) -> None:
        # a failure must not stop the timer
        try:
            await self.refresh()
        except Exception:
            self.log.failure("refreshing the storage pool figures failed")

    async def refresh(self) -> int:
        """Read every live pool's figures from one of its Up hosts and store them; how many were read."""
        if self.orchestration.hypervisors is None:
            return 0
        _, pools = await self.orchestration.db.storage.search(PoolFilter(states=(S.UP.value, S.DISABLED.value)))
        read = 0
        for pool in pools:
            if await self.refresh_pool(pool):
                read += 1
        return read

    async def refresh_pool(self, pool: StoragePool) -> bool:
        """Read the pool's figures from its hosts and store the first host's; whether any host answered.

        On the way the pool is reconciled with the hosts that should have it (Up and Enabled, in its
        cluster or zone): a host that lost it (a restarted simulated host, a libvirtd whose pools were
        removed by hand) or that joined since gets it defined again, as CloudStack sends a host its pools
        when it connects."""
        db = self.orchestration.db.storage
        hosts = await self._scope_hosts(pool)
        refs = {r.host_id for r in await db.pool_hosts(pool.id)}
        location = self._location(pool)
        facts: PoolFacts | None = None
        for h in hosts:
            if h.id in refs:
                try:
                    conn = await self.hypervisors.connect(h.url)
                    read = await conn.pool_facts(pool.uuid)
                    facts = facts or read
                    continue
                except HostUnreachable as exc:
                    self.log.debug("pool {pool} not read on {host}: {error}", pool=pool.uuid, host=h.name,
                                   error=str(exc))
                    continue
                except HypervisorError as exc:
                    self.log.info("storage pool {pool} is missing on host {host} ({error}); defining it again",
                                  pool=pool.uuid, host=h.name, error=str(exc))
            attached = await self._ensure_on(h, pool.uuid, location)
            if attached.facts is not None:
                await db.add_pool_host(pool.id, h.id, self.local_path(location, pool.uuid))
                facts = facts or attached.facts
        if facts is None:
            return False
        return bool(await db.set_stats(pool.id, facts.capacity_bytes, facts.used_bytes, facts.available_bytes))

    async def _scope_hosts(self, pool: StoragePool) -> list[AttachableHost]:
        """The hosts that should have the pool: Up and Enabled, of its cluster, or of its zone and hypervisor."""
        if pool.scope == "CLUSTER":
            return list(await self.orchestration.db.storage.attachable_hosts(pool.zone_id, cluster_id=pool.cluster_id))
        return list(await self.orchestration.db.storage.attachable_hosts(pool.zone_id, hypervisor=pool.hypervisor))

    @staticmethod
    def _location(pool: StoragePool) -> PoolLocation:
        return PoolLocation(pool.pool_type, "netfs" if pool.pool_type == TYPE_NFS else "dir", pool.host_address,
                            pool.path)


def storage_manager(services: Services) -> StorageManager:
    """The wired manager, or one made for this call (tests, tools) when none is wired."""
    manager = services.storage
    if isinstance(manager, StorageManager):
        return manager
    return StorageManager(services)


@recovers("StoragePool")
async def recover_pool(services: Services, job: Job) -> None:
    """A maintenance job died with its process: leave the pool in a state an operator can act from."""
    try:
        pool = await services.db.storage.get_by_uuid(job.instance_uuid or "")
    except NotFound:
        return
    if pool.state == S.PREPARE_FOR_MAINTENANCE.value:
        await POOL.apply_any(services.db.storage.cas_pool_state, pool.id, "fail")
    elif pool.state == S.CANCEL_MAINTENANCE.value:
        await POOL.apply_any(services.db.storage.cas_pool_state, pool.id, "cancel_failed")
