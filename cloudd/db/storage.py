"""The primary storage tables (storage pools, their tags, the hosts each pool is defined on), and the
read-only figures of hosts, pools and pods that capacity (listCapacity, the threshold checks) sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import (
    Conflict,
    DBComponent,
    NotFound,
    Page,
    contains,
    insert_id,
    thd_count_and_page,
    thd_count_live,
    thd_live_row,
    thd_tags_of,
    thd_update_live,
)

SP = model.storage_pools
SPT = model.storage_pool_tags
SPH = model.storage_pool_hosts
Z = model.zones
PD = model.pods
C = model.clusters
H = model.hosts
HT = model.host_tags

# states in which a pool is gone for good
REMOVED = "Removed"


class PoolInUse(Conflict):
    """Another pool of the zone already uses this server and path."""


@dataclass(frozen=True)
class StoragePool:
    id: int
    uuid: str
    name: str
    zone_id: int
    zone_uuid: str
    zone_name: str
    pod_id: int | None
    pod_uuid: str | None
    pod_name: str | None
    cluster_id: int | None
    cluster_uuid: str | None
    cluster_name: str | None
    scope: str
    pool_type: str
    host_address: str
    path: str
    url: str
    hypervisor: str | None
    provider: str
    managed: bool
    state: str
    capacity_bytes: int
    used_bytes: int
    available_bytes: int
    capacity_limit: int | None
    capacity_iops: int | None
    stats_updated: int | None
    created: int
    tags: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """What may be provisioned from the pool: the operator's limit when set, else its size."""
        return self.capacity_limit if self.capacity_limit is not None else self.capacity_bytes


@dataclass(frozen=True)
class NewPool:
    uuid: str
    name: str
    zone_id: int
    pod_id: int | None
    cluster_id: int | None
    scope: str
    pool_type: str
    host_address: str
    path: str
    url: str
    hypervisor: str | None
    provider: str
    managed: bool
    state: str
    capacity_bytes: int
    used_bytes: int
    available_bytes: int
    capacity_limit: int | None = None
    capacity_iops: int | None = None


@dataclass(frozen=True)
class PoolFilter:
    uuid: str | None = None
    name: str | None = None
    zone_id: int | None = None
    pod_id: int | None = None
    cluster_id: int | None = None
    host_address: str | None = None
    path: str | None = None
    scope: str | None = None
    state: str | None = None
    keyword: str | None = None
    states: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PoolHost:
    """One host a pool is defined on."""

    pool_id: int
    host_id: int
    host_uuid: str
    host_name: str
    host_url: str
    host_state: str
    resource_state: str
    local_path: str


@dataclass(frozen=True)
class AttachableHost:
    """A hypervisor host a new pool may be defined on (Routing, Up, Enabled)."""

    id: int
    uuid: str
    name: str
    url: str
    hypervisor: str | None
    cluster_id: int | None


@dataclass(frozen=True)
class Place:
    """A zone, pod or cluster as capacity names it."""

    zone_id: int
    zone_uuid: str
    zone_name: str
    pod_id: int | None = None
    pod_uuid: str | None = None
    pod_name: str | None = None
    cluster_id: int | None = None
    cluster_uuid: str | None = None
    cluster_name: str | None = None


@dataclass(frozen=True)
class HostFigures:
    """A host's compute figures and where it is."""

    place: Place
    host_id: int
    cpus: int
    cpu_speed: int
    memory: int


@dataclass(frozen=True)
class PodRange:
    place: Place
    start_ip: str | None
    end_ip: str | None


def pool_select() -> sa.Select:
    return sa.select(SP, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name"), PD.c.uuid.label("pod_uuid"),
                     PD.c.name.label("pod_name"), C.c.uuid.label("cluster_uuid"),
                     C.c.name.label("cluster_name")).select_from(
        SP.join(Z, SP.c.zone_id == Z.c.id).outerjoin(PD, SP.c.pod_id == PD.c.id)
        .outerjoin(C, SP.c.cluster_id == C.c.id))


def _pool(r: Any, tags: tuple[str, ...]) -> StoragePool:
    return StoragePool(r.id, r.uuid, r.name, r.zone_id, r.zone_uuid, r.zone_name, r.pod_id, r.pod_uuid, r.pod_name,
                       r.cluster_id, r.cluster_uuid, r.cluster_name, r.scope, r.pool_type, r.host_address, r.path,
                       r.url, r.hypervisor, r.provider, bool(r.managed), r.state, int(r.capacity_bytes),
                       int(r.used_bytes), int(r.available_bytes),
                       None if r.capacity_limit is None else int(r.capacity_limit),
                       None if r.capacity_iops is None else int(r.capacity_iops), r.stats_updated, r.created, tags)


def _zone_place(r: Any) -> Place:
    return Place(r.zone_id, r.zone_uuid, r.zone_name)


class StorageComponent(DBComponent):
    """Storage pools: stored once every host asked has the pool, changed by compare-and-set on state."""

    # -- reads --------------------------------------------------------------------------------------

    def thd_get(self, conn: Connection, pool_id: int) -> StoragePool:
        row = thd_live_row(conn, pool_select(), SP.c.id, pool_id)
        return _pool(row, thd_tags_of(conn, SPT.c.pool_id, [pool_id])[pool_id])

    def get(self, pool_id: int) -> Deferred[StoragePool]:
        return self.pool.do(lambda conn: self.thd_get(conn, pool_id))

    def get_by_uuid(self, uuid: str) -> Deferred[StoragePool]:
        return self.pool.do(
            lambda conn: self.thd_get(conn, thd_live_row(conn, sa.select(SP.c.id), SP.c.uuid, uuid).id))

    def search(self, f: PoolFilter, page: Page | None = None) -> Deferred[tuple[int, list[StoragePool]]]:
        def thd(conn: Connection) -> tuple[int, list[StoragePool]]:
            q = pool_select().where(SP.c.removed.is_(None))
            for column, value in ((SP.c.uuid, f.uuid), (SP.c.name, f.name), (SP.c.zone_id, f.zone_id),
                                  (SP.c.pod_id, f.pod_id), (SP.c.cluster_id, f.cluster_id),
                                  (SP.c.host_address, f.host_address), (SP.c.path, f.path)):
                if value is not None:
                    q = q.where(column == value)
            if f.scope is not None:
                q = q.where(sa.func.upper(SP.c.scope) == f.scope.upper())
            if f.state is not None:
                q = q.where(sa.func.lower(SP.c.state) == f.state.lower())
            if f.states is not None:
                q = q.where(SP.c.state.in_(list(f.states)))
            if f.keyword:
                q = q.where(contains(SP.c.name, f.keyword))
            total, rows = thd_count_and_page(conn, q, [SP.c.id], page or Page())
            tags = thd_tags_of(conn, SPT.c.pool_id, [r.id for r in rows])
            return total, [_pool(r, tags[r.id]) for r in rows]

        return self.pool.do(thd)

    def pool_hosts(self, pool_id: int) -> Deferred[list[PoolHost]]:
        def thd(conn: Connection) -> list[PoolHost]:
            rows = conn.execute(
                sa.select(SPH.c.pool_id, SPH.c.host_id, SPH.c.local_path, H.c.uuid, H.c.name, H.c.url, H.c.state,
                          H.c.resource_state)
                .select_from(SPH.join(H, SPH.c.host_id == H.c.id))
                .where(SPH.c.pool_id == pool_id, H.c.removed.is_(None)).order_by(SPH.c.host_id)).all()
            return [PoolHost(r.pool_id, r.host_id, r.uuid, r.name, r.url, r.state, r.resource_state, r.local_path)
                    for r in rows]

        return self.pool.do(thd)

    def attachable_hosts(self, zone_id: int, cluster_id: int | None = None,
                         hypervisor: str | None = None) -> Deferred[list[AttachableHost]]:
        """The Routing hosts of a zone (or one of its clusters) that are Up and Enabled."""
        def thd(conn: Connection) -> list[AttachableHost]:
            q = sa.select(H.c.id, H.c.uuid, H.c.name, H.c.url, H.c.hypervisor, H.c.cluster_id).where(
                H.c.zone_id == zone_id, H.c.type == "Routing", H.c.state == "Up", H.c.resource_state == "Enabled",
                H.c.removed.is_(None))
            if cluster_id is not None:
                q = q.where(H.c.cluster_id == cluster_id)
            if hypervisor is not None:
                q = q.where(H.c.hypervisor == hypervisor)
            return [AttachableHost(r.id, r.uuid, r.name, r.url, r.hypervisor, r.cluster_id)
                    for r in conn.execute(q.order_by(H.c.id)).all()]

        return self.pool.do(thd)

    def count_volumes(self, pool_id: int) -> Deferred[int]:
        """Volumes stored on the pool (none before the volumes table exists)."""
        def thd(conn: Connection) -> int:
            volumes = model.metadata.tables.get("volumes")
            if volumes is None or "pool_id" not in volumes.c:
                return 0
            q = sa.select(sa.func.count()).select_from(volumes).where(volumes.c.pool_id == pool_id)
            if "removed" in volumes.c:
                q = q.where(volumes.c.removed.is_(None))
            return int(conn.execute(q).scalar_one())

        return self.pool.do(thd)

    def count_live_pools(self, zone_id: int | None = None, pod_id: int | None = None,
                         cluster_id: int | None = None) -> Deferred[int]:
        """Pools not removed in a zone, pod or cluster (what deleting those must refuse while any is left)."""
        where = [column == value for column, value in ((SP.c.zone_id, zone_id), (SP.c.pod_id, pod_id),
                                                       (SP.c.cluster_id, cluster_id)) if value is not None]
        return self.pool.do(lambda conn: thd_count_live(conn, SP, *where))

    # -- writes -------------------------------------------------------------------------------------

    def create(self, new: NewPool, tags: Iterable[str], hosts: Iterable[tuple[int, str]]) -> Deferred[StoragePool]:
        """Store a pool, its tags and the hosts (id, local path) it is defined on; PoolInUse when a live
        pool of the zone has the same server and path."""
        tag_list = list(tags)
        host_list = list(hosts)

        def thd(conn: Connection) -> StoragePool:
            # the zone's row serialises concurrent creations in one zone on MariaDB
            conn.execute(sa.select(Z.c.id).where(Z.c.id == new.zone_id).with_for_update())
            taken = conn.execute(sa.select(SP.c.uuid).where(
                SP.c.zone_id == new.zone_id, SP.c.host_address == new.host_address, SP.c.path == new.path,
                SP.c.removed.is_(None))).first()
            if taken is not None:
                raise PoolInUse(f"Storage pool {new.url} is already in use by storage pool {taken.uuid}")
            now = self.now()
            result = conn.execute(SP.insert().values(
                uuid=new.uuid, name=new.name, zone_id=new.zone_id, pod_id=new.pod_id, cluster_id=new.cluster_id,
                scope=new.scope, pool_type=new.pool_type, host_address=new.host_address, path=new.path, url=new.url,
                hypervisor=new.hypervisor, provider=new.provider, managed=int(new.managed), state=new.state,
                capacity_bytes=new.capacity_bytes, used_bytes=new.used_bytes, available_bytes=new.available_bytes,
                capacity_limit=new.capacity_limit, capacity_iops=new.capacity_iops, stats_updated=now, created=now))
            pool_id = insert_id(result)
            for tag in tag_list:
                conn.execute(SPT.insert().values(pool_id=pool_id, tag=tag))
            for host_id, local_path in host_list:
                conn.execute(SPH.insert().values(pool_id=pool_id, host_id=host_id, local_path=local_path,
                                                 created=now))
            return self.thd_get(conn, pool_id)

        return self.pool.do(thd)

    def update(self, pool_id: int, *, name: str | None = None, tags: Iterable[str] | None = None,
               capacity_limit: int | None = None, capacity_iops: int | None = None) -> Deferred[StoragePool]:
        """Change what is given (None leaves a field as it is); the pool as it is now."""
        tag_list = None if tags is None else list(tags)

        def thd(conn: Connection) -> StoragePool:
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if capacity_limit is not None:
                values["capacity_limit"] = capacity_limit
            if capacity_iops is not None:
                values["capacity_iops"] = capacity_iops
            if values and not thd_update_live(conn, SP, pool_id, **values):
                raise NotFound(pool_id)
            if tag_list is not None:
                conn.execute(SPT.delete().where(SPT.c.pool_id == pool_id))
                for tag in tag_list:
                    conn.execute(SPT.insert().values(pool_id=pool_id, tag=tag))
            return self.thd_get(conn, pool_id)

        return self.pool.do(thd)

    def cas_pool_state(self, pool_id: int, expected: Iterable[str], new: str, **values: Any) -> Deferred[bool]:
        """Compare-and-set of a live pool's state; moving to Removed also marks it removed and forgets
        its hosts, in the same transaction."""
        wanted = list(expected)

        def thd(conn: Connection) -> bool:
            extra = dict(values)
            if new == REMOVED:
                extra["removed"] = self.now()
            result = conn.execute(SP.update().where(SP.c.id == pool_id, SP.c.state.in_(wanted),
                                                    SP.c.removed.is_(None)).values(state=new, **extra))
            if result.rowcount != 1:
                return False
            if new == REMOVED:
                conn.execute(SPH.delete().where(SPH.c.pool_id == pool_id))
            return True

        return self.pool.do(thd)

    def set_stats(self, pool_id: int, capacity: int, used: int, available: int) -> Deferred[bool]:
        """Store the figures a host reported; False when the pool is gone."""
        def thd(conn: Connection) -> bool:
            return thd_update_live(conn, SP, pool_id, capacity_bytes=capacity, used_bytes=used,
                                   available_bytes=available, stats_updated=self.now())

        return self.pool.do(thd)

    def add_pool_host(self, pool_id: int, host_id: int, local_path: str) -> Deferred[None]:
        """Record that the pool is defined on a host (again: nothing changes)."""
        def thd(conn: Connection) -> None:
            exists = conn.execute(sa.select(SPH.c.id).where(SPH.c.pool_id == pool_id,
                                                            SPH.c.host_id == host_id)).first()
            if exists is None:
                conn.execute(SPH.insert().values(pool_id=pool_id, host_id=host_id, local_path=local_path,
                                                 created=self.now()))

        return self.pool.do(thd)

    # -- capacity figures ---------------------------------------------------------------------------

    def places(self, zone_id: int | None = None, pod_id: int | None = None,
               cluster_id: int | None = None) -> Deferred[list[Place]]:
        """The live zones (pod_id and cluster_id None), or the pods, or the clusters, narrowed as given."""
        def thd(conn: Connection) -> list[Place]:
            if cluster_id is not None:
                q = sa.select(C.c.id.label("cluster_id"), C.c.uuid.label("cluster_uuid"),
                              C.c.name.label("cluster_name"), PD.c.id.label("pod_id"), PD.c.uuid.label("pod_uuid"),
                              PD.c.name.label("pod_name"), Z.c.id.label("zone_id"), Z.c.uuid.label("zone_uuid"),
                              Z.c.name.label("zone_name")).select_from(
                    C.join(PD, C.c.pod_id == PD.c.id).join(Z, C.c.zone_id == Z.c.id)).where(
                    C.c.id == cluster_id, C.c.removed.is_(None))
                return [Place(r.zone_id, r.zone_uuid, r.zone_name, r.pod_id, r.pod_uuid, r.pod_name, r.cluster_id,
                              r.cluster_uuid, r.cluster_name) for r in conn.execute(q).all()]
            if pod_id is not None:
                q = sa.select(PD.c.id.label("pod_id"), PD.c.uuid.label("pod_uuid"), PD.c.name.label("pod_name"),
                              Z.c.id.label("zone_id"), Z.c.uuid.label("zone_uuid"),
                              Z.c.name.label("zone_name")).select_from(PD.join(Z, PD.c.zone_id == Z.c.id)).where(
                    PD.c.id == pod_id, PD.c.removed.is_(None))
                return [Place(r.zone_id, r.zone_uuid, r.zone_name, r.pod_id, r.pod_uuid, r.pod_name)
                        for r in conn.execute(q).all()]
            zq = sa.select(Z.c.id.label("zone_id"), Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name")).where(
                Z.c.removed.is_(None))
            if zone_id is not None:
                zq = zq.where(Z.c.id == zone_id)
            return [_zone_place(r) for r in conn.execute(zq.order_by(Z.c.name, Z.c.id)).all()]

        return self.pool.do(thd)

    def host_figures(self, zone_id: int | None = None, pod_id: int | None = None, cluster_id: int | None = None,
                     tag: str | None = None) -> Deferred[list[HostFigures]]:
        """CPU and memory of the Routing hosts that are Up and Enabled, with where each is."""
        def thd(conn: Connection) -> list[HostFigures]:
            q = sa.select(H.c.id, H.c.cpus, H.c.cpu_speed, H.c.memory, Z.c.id.label("zone_id"),
                          Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name"), PD.c.id.label("pod_id"),
                          PD.c.uuid.label("pod_uuid"), PD.c.name.label("pod_name"), C.c.id.label("cluster_id"),
                          C.c.uuid.label("cluster_uuid"), C.c.name.label("cluster_name")).select_from(
                H.join(Z, H.c.zone_id == Z.c.id).outerjoin(PD, H.c.pod_id == PD.c.id)
                .outerjoin(C, H.c.cluster_id == C.c.id)).where(
                H.c.type == "Routing", H.c.state == "Up", H.c.resource_state == "Enabled", H.c.removed.is_(None),
                Z.c.removed.is_(None))
            for column, value in ((H.c.zone_id, zone_id), (H.c.pod_id, pod_id), (H.c.cluster_id, cluster_id)):
                if value is not None:
                    q = q.where(column == value)
            if tag is not None:
                q = q.where(H.c.id.in_(sa.select(HT.c.host_id).where(HT.c.tag == tag)))
            return [HostFigures(Place(r.zone_id, r.zone_uuid, r.zone_name, r.pod_id, r.pod_uuid, r.pod_name,
                                      r.cluster_id, r.cluster_uuid, r.cluster_name), r.id, int(r.cpus or 0),
                                int(r.cpu_speed or 0), int(r.memory or 0))
                    for r in conn.execute(q.order_by(H.c.id)).all()]

        return self.pool.do(thd)

    def pool_figures(self, zone_id: int | None = None, pod_id: int | None = None, cluster_id: int | None = None,
                     tag: str | None = None) -> Deferred[list[StoragePool]]:
        """The live pools (not removed, not in maintenance) of a zone, pod or cluster; zone-wide pools count
        in every pod and cluster of their zone."""
        def thd(conn: Connection) -> list[StoragePool]:
            q = pool_select().where(SP.c.removed.is_(None), SP.c.state.in_(["Up", "Disabled"]))
            if zone_id is not None:
                q = q.where(SP.c.zone_id == zone_id)
            if pod_id is not None:
                q = q.where(sa.or_(SP.c.pod_id == pod_id, SP.c.scope == "ZONE"))
            if cluster_id is not None:
                q = q.where(sa.or_(SP.c.cluster_id == cluster_id, SP.c.scope == "ZONE"))
            if tag is not None:
                q = q.where(SP.c.id.in_(sa.select(SPT.c.pool_id).where(SPT.c.tag == tag)))
            rows = conn.execute(q.order_by(SP.c.id)).all()
            tags = thd_tags_of(conn, SPT.c.pool_id, [r.id for r in rows])
            return [_pool(r, tags[r.id]) for r in rows]

        return self.pool.do(thd)

    def pod_ranges(self, zone_id: int | None = None, pod_id: int | None = None) -> Deferred[list[PodRange]]:
        """The private (management) address range of each live pod."""
        def thd(conn: Connection) -> list[PodRange]:
            q = sa.select(PD.c.id, PD.c.uuid, PD.c.name, PD.c.start_ip, PD.c.end_ip, Z.c.id.label("zone_id"),
                          Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name")).select_from(
                PD.join(Z, PD.c.zone_id == Z.c.id)).where(PD.c.removed.is_(None), Z.c.removed.is_(None))
            if zone_id is not None:
                q = q.where(PD.c.zone_id == zone_id)
            if pod_id is not None:
                q = q.where(PD.c.id == pod_id)
            return [PodRange(Place(r.zone_id, r.zone_uuid, r.zone_name, r.id, r.uuid, r.name), r.start_ip, r.end_ip)
                    for r in conn.execute(q.order_by(PD.c.id)).all()]

        return self.pool.do(thd)

    def secondary_figures(self, zone_id: int) -> Deferred[tuple[int, int]]:
        """(total, used) bytes of the zone's live image stores, (0, 0) before image stores exist."""
        def thd(conn: Connection) -> tuple[int, int]:
            stores = model.metadata.tables.get("image_stores")
            if stores is None or not {"zone_id", "total_size", "used_size"} <= set(stores.c.keys()):
                return 0, 0
            q = sa.select(sa.func.coalesce(sa.func.sum(stores.c.total_size), 0),
                          sa.func.coalesce(sa.func.sum(stores.c.used_size), 0)).where(stores.c.zone_id == zone_id)
            if "removed" in stores.c:
                q = q.where(stores.c.removed.is_(None))
            total, used = conn.execute(q).one()
            return int(total), int(used)

        return self.pool.do(thd)
