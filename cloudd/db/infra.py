"""Zones, pods, clusters and hosts (and host tags): the infrastructure component.

It owns every read and write of those tables: lookups by id and UUID, the searches behind the list
commands, creation, updates, removal (refused while something still lives inside), and the
compare-and-set of a host's two states (connection `state`, operator `resource_state`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import (
    DBComponent,
    Page,
    contains,
    insert_id,
    new_uuid,
    thd_count_and_page,
    thd_exists,
    thd_live_row,
    thd_tags_of,
    thd_update_live,
)
from cloudd.errors import in_use, invalid_value

Z, PD, C, H, HT = model.zones, model.pods, model.clusters, model.hosts, model.host_tags


@dataclass(frozen=True)
class Zone:
    id: int
    uuid: str
    name: str
    description: str | None
    dns1: str | None
    dns2: str | None
    ip6_dns1: str | None
    ip6_dns2: str | None
    internal_dns1: str | None
    internal_dns2: str | None
    guest_cidr: str | None
    network_domain: str | None
    network_type: str
    security_groups: bool
    local_storage: bool
    domain_id: int | None
    allocation_state: str
    tags: str | None
    created: int


@dataclass(frozen=True)
class Pod:
    id: int
    uuid: str
    name: str
    zone_id: int
    zone_uuid: str
    zone_name: str
    gateway: str | None
    netmask: str | None
    start_ip: str | None
    end_ip: str | None
    allocation_state: str
    created: int


@dataclass(frozen=True)
class Cluster:
    id: int
    uuid: str
    name: str
    zone_id: int
    zone_uuid: str
    zone_name: str
    pod_id: int
    pod_uuid: str
    pod_name: str
    hypervisor: str
    cluster_type: str
    allocation_state: str
    managed_state: str
    created: int


@dataclass(frozen=True)
class Host:
    id: int
    uuid: str
    name: str
    type: str
    zone_id: int
    zone_uuid: str
    zone_name: str
    pod_id: int | None
    pod_uuid: str | None
    pod_name: str | None
    cluster_id: int | None
    cluster_uuid: str | None
    cluster_name: str | None
    url: str
    hypervisor: str | None
    hypervisor_version: str | None
    ip_address: str | None
    state: str
    resource_state: str
    cpus: int | None
    cpu_speed: int | None
    cpu_sockets: int | None
    memory: int | None
    cpu_model: str | None
    arch: str | None
    version: str | None
    last_pinged: int | None
    state_changed: int | None
    created: int
    tags: tuple[str, ...] = ()


def _zone(r: Any) -> Zone:
    return Zone(r.id, r.uuid, r.name, r.description, r.dns1, r.dns2, r.ip6_dns1, r.ip6_dns2, r.internal_dns1,
                r.internal_dns2, r.guest_cidr, r.network_domain, r.network_type, bool(r.security_groups),
                bool(r.local_storage), r.domain_id, r.allocation_state, r.tags, r.created)


def pod_select() -> sa.Select:
    return sa.select(PD, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name")).select_from(
        PD.join(Z, PD.c.zone_id == Z.c.id))


def _pod(r: Any) -> Pod:
    return Pod(r.id, r.uuid, r.name, r.zone_id, r.zone_uuid, r.zone_name, r.gateway, r.netmask, r.start_ip,
               r.end_ip, r.allocation_state, r.created)


def cluster_select() -> sa.Select:
    return sa.select(C, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name"), PD.c.uuid.label("pod_uuid"),
                     PD.c.name.label("pod_name")).select_from(
        C.join(Z, C.c.zone_id == Z.c.id).join(PD, C.c.pod_id == PD.c.id))


def _cluster(r: Any) -> Cluster:
    return Cluster(r.id, r.uuid, r.name, r.zone_id, r.zone_uuid, r.zone_name, r.pod_id, r.pod_uuid, r.pod_name,
                   r.hypervisor, r.cluster_type, r.allocation_state, r.managed_state, r.created)


def host_select() -> sa.Select:
    """A host's columns in the order of the `Host` fields (before `tags`), so rows map by position: a
    listing maps a thousand of them, and reading each by name was most of the query's time."""
    return sa.select(
        H.c.id, H.c.uuid, H.c.name, H.c.type, H.c.zone_id, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name"),
        H.c.pod_id, PD.c.uuid.label("pod_uuid"), PD.c.name.label("pod_name"), H.c.cluster_id,
        C.c.uuid.label("cluster_uuid"), C.c.name.label("cluster_name"), H.c.url, H.c.hypervisor,
        H.c.hypervisor_version, H.c.ip_address, H.c.state, H.c.resource_state, H.c.cpus, H.c.cpu_speed,
        H.c.cpu_sockets, H.c.memory, H.c.cpu_model, H.c.arch, H.c.version, H.c.last_pinged, H.c.state_changed,
        H.c.created,
    ).select_from(
        H.join(Z, H.c.zone_id == Z.c.id).outerjoin(PD, H.c.pod_id == PD.c.id).outerjoin(C, H.c.cluster_id == C.c.id))


def _host(r: Any, tags: tuple[str, ...] = ()) -> Host:
    return Host(*r, tags)  # type: ignore[call-arg]


@dataclass(frozen=True)
class ZoneFilter:
    ids: tuple[int, ...] | None = None
    name: str | None = None
    network_type: str | None = None
    keyword: str | None = None
    # only zones open for allocation (Enabled)
    enabled_only: bool = False
    domain_id: int | None = None
    # a caller below the root admin: public zones and those dedicated to its domain or an ancestor
    visible_to_path: str | None = None


@dataclass(frozen=True)
class PodFilter:
    uuid: str | None = None
    name: str | None = None
    zone_id: int | None = None
    allocation_state: str | None = None
    keyword: str | None = None


@dataclass(frozen=True)
class ClusterFilter:
    uuid: str | None = None
    name: str | None = None
    zone_id: int | None = None
    pod_id: int | None = None
    hypervisor: str | None = None
    cluster_type: str | None = None
    allocation_state: str | None = None
    managed_state: str | None = None
    keyword: str | None = None


@dataclass(frozen=True)
class HostFilter:
    uuid: str | None = None
    name: str | None = None
    zone_id: int | None = None
    pod_id: int | None = None
    cluster_id: int | None = None
    type: str | None = None
    state: str | None = None
    resource_state: str | None = None
    hypervisor: str | None = None
    keyword: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class NewHost:
    """A host as discovered by its first connection, ready to store."""

    name: str
    zone_id: int
    pod_id: int | None
    cluster_id: int | None
    url: str
    hypervisor: str
    hypervisor_version: str | None
    ip_address: str | None
    state: str
    resource_state: str
    cpus: int
    cpu_speed: int
    cpu_sockets: int
    memory: int
    cpu_model: str | None
    arch: str | None
    version: str | None
    type: str = "Routing"
    tags: tuple[str, ...] = field(default=())


class InfraComponent(DBComponent):
    """Zones, pods, clusters and hosts: reads, searches, writes and the host state compare-and-set."""

    def thd_get_zone(self, conn: Connection, zone_id: int) -> Zone:
        return _zone(thd_live_row(conn, sa.select(Z), Z.c.id, zone_id))

    def get_zone(self, zone_id: int) -> Deferred[Zone]:
        return self.pool.do(lambda conn: self.thd_get_zone(conn, zone_id))

    def get_zone_by_uuid(self, uuid: str) -> Deferred[Zone]:
        return self.get_live(sa.select(Z), Z.c.uuid, uuid, _zone)

    def get_pod_by_uuid(self, uuid: str) -> Deferred[Pod]:
        return self.get_live(pod_select(), PD.c.uuid, uuid, _pod)

    def get_cluster_by_uuid(self, uuid: str) -> Deferred[Cluster]:
        return self.get_live(cluster_select(), C.c.uuid, uuid, _cluster)

    def thd_get_host(self, conn: Connection, host_id: int) -> Host:
        row = thd_live_row(conn, host_select(), H.c.id, host_id)
        return _host(row, thd_tags_of(conn, HT.c.host_id, [host_id])[host_id])

    def get_host(self, host_id: int) -> Deferred[Host]:
        return self.pool.do(lambda conn: self.thd_get_host(conn, host_id))

    def get_host_by_uuid(self, uuid: str) -> Deferred[Host]:
        return self.pool.do(
            lambda conn: self.thd_get_host(conn, thd_live_row(conn, sa.select(H.c.id), H.c.uuid, uuid).id))

    def cas_host_state(self, host_id: int, expected: Iterable[str], new: str, **values: Any) -> Deferred[bool]:
        """Compare-and-set of a host's connection state (`state`); `state_changed` is set too."""
        return self.cas_state(H, host_id, expected, new, state_changed=self.now(), **values)

    # --- zones ------------------------------------------------------------------------------------

    def create_zone(self, values: Mapping[str, Any]) -> Deferred[Zone]:
        """Store a zone (column values); 431 when a live zone has that name already."""
        def thd(conn: Connection) -> Zone:
            if thd_exists(conn, Z, Z.c.name == values["name"]):
                raise invalid_value(f"A zone with name {values['name']} already exists")
            result = conn.execute(Z.insert().values(uuid=new_uuid(), created=self.now(), **values))
            return self.thd_get_zone(conn, insert_id(result))

        return self.pool.do(thd)

    def update_zone(self, zone_id: int, values: Mapping[str, Any]) -> Deferred[Zone]:
        def thd(conn: Connection) -> Zone:
            name = values.get("name")
            if name is not None and thd_exists(conn, Z, Z.c.name == name, except_id=zone_id):
                raise invalid_value(f"A zone with name {name} already exists")
            if values:
                thd_update_live(conn, Z, zone_id, **values)
            return self.thd_get_zone(conn, zone_id)

        return self.pool.do(thd)

    def remove_zone(self, zone_id: int) -> Deferred[None]:
        """Mark a zone removed; 536 while pods or hosts live in it."""
        def thd(conn: Connection) -> None:
            zone = self.thd_get_zone(conn, zone_id)
            self.thd_remove_unused(conn, Z, zone_id, (PD.c.zone_id, H.c.zone_id), in_use(
                f"The zone {zone.name} is not deletable because there are pods or hosts in this zone"))

        return self.pool.do(thd)

    def search_zones(self, f: ZoneFilter, page: Page) -> Deferred[tuple[int, list[Zone]]]:
        def thd(conn: Connection) -> tuple[int, list[Zone]]:
            q = sa.select(Z).where(Z.c.removed.is_(None))
            if f.ids is not None:
                q = q.where(Z.c.id.in_(f.ids))
            if f.name is not None:
                q = q.where(Z.c.name == f.name)
            if f.network_type is not None:
                q = q.where(sa.func.lower(Z.c.network_type) == f.network_type.lower())
            if f.keyword:
                q = q.where(contains(Z.c.name, f.keyword))
            if f.enabled_only:
                q = q.where(Z.c.allocation_state == "Enabled")
            if f.domain_id is not None:
                q = q.where(Z.c.domain_id == f.domain_id)
            if f.visible_to_path is not None:
                D = model.domains
                ancestors = sa.select(D.c.id).where(sa.literal(f.visible_to_path).like(D.c.path + "%"),
                                                    D.c.removed.is_(None))
                q = q.where(sa.or_(Z.c.domain_id.is_(None), Z.c.domain_id.in_(ancestors)))
            total, rows = thd_count_and_page(conn, q, [Z.c.id], page)
            return total, [_zone(r) for r in rows]

        return self.pool.do(thd)

    # --- pods -------------------------------------------------------------------------------------

    def thd_get_pod(self, conn: Connection, pod_id: int) -> Pod:
        return _pod(thd_live_row(conn, pod_select(), PD.c.id, pod_id))

    def get_pod(self, pod_id: int) -> Deferred[Pod]:
        return self.pool.do(lambda conn: self.thd_get_pod(conn, pod_id))

    @staticmethod
    def _thd_check_pod_name(conn: Connection, zone_id: int, name: str, pod_id: int | None = None) -> None:
        if thd_exists(conn, PD, PD.c.zone_id == zone_id, PD.c.name == name, except_id=pod_id):
            raise invalid_value(f"A pod with name {name} already exists in the zone")

    def create_pod(self, values: Mapping[str, Any]) -> Deferred[Pod]:
        def thd(conn: Connection) -> Pod:
            zone = self.thd_get_zone(conn, values["zone_id"])
            self._thd_check_pod_name(conn, zone.id, values["name"])
            result = conn.execute(PD.insert().values(uuid=new_uuid(), created=self.now(), **values))
            return self.thd_get_pod(conn, insert_id(result))

        return self.pool.do(thd)

    def update_pod(self, pod_id: int, values: Mapping[str, Any]) -> Deferred[Pod]:
        def thd(conn: Connection) -> Pod:
            pod = self.thd_get_pod(conn, pod_id)
            if values.get("name") is not None:
                self._thd_check_pod_name(conn, pod.zone_id, values["name"], pod_id)
            if values:
                conn.execute(PD.update().where(PD.c.id == pod_id).values(**values))
            return self.thd_get_pod(conn, pod_id)

        return self.pool.do(thd)

    def remove_pod(self, pod_id: int) -> Deferred[None]:
        """Mark a pod removed; 536 while clusters or hosts live in it."""
        def thd(conn: Connection) -> None:
            pod = self.thd_get_pod(conn, pod_id)
            self.thd_remove_unused(conn, PD, pod_id, (C.c.pod_id, H.c.pod_id), in_use(
                f"The pod {pod.name} is not deletable because there are clusters or hosts in this pod"))

        return self.pool.do(thd)

    def search_pods(self, f: PodFilter, page: Page) -> Deferred[tuple[int, list[Pod]]]:
        def thd(conn: Connection) -> tuple[int, list[Pod]]:
            q = pod_select().where(PD.c.removed.is_(None))
            if f.uuid is not None:
                q = q.where(PD.c.uuid == f.uuid)
            if f.name is not None:
                q = q.where(PD.c.name == f.name)
            if f.zone_id is not None:
                q = q.where(PD.c.zone_id == f.zone_id)
            if f.allocation_state is not None:
                q = q.where(PD.c.allocation_state == f.allocation_state)
            if f.keyword:
                q = q.where(contains(PD.c.name, f.keyword))
            total, rows = thd_count_and_page(conn, q, [PD.c.id], page)
            return total, [_pod(r) for r in rows]

        return self.pool.do(thd)

    # --- clusters ---------------------------------------------------------------------------------

    def thd_get_cluster(self, conn: Connection, cluster_id: int) -> Cluster:
        return _cluster(thd_live_row(conn, cluster_select(), C.c.id, cluster_id))

    def get_cluster(self, cluster_id: int) -> Deferred[Cluster]:
        return self.pool.do(lambda conn: self.thd_get_cluster(conn, cluster_id))

    @staticmethod
    def _thd_check_cluster_name(conn: Connection, pod_id: int, name: str, cluster_id: int | None = None) -> None:
        if thd_exists(conn, C, C.c.pod_id == pod_id, C.c.name == name, except_id=cluster_id):
            raise invalid_value(f"A cluster with name {name} already exists in the pod")

    def create_cluster(self, values: Mapping[str, Any]) -> Deferred[Cluster]:
        def thd(conn: Connection) -> Cluster:
            pod = self.thd_get_pod(conn, values["pod_id"])
            if pod.zone_id != values["zone_id"]:
                raise invalid_value(f"The pod {pod.name} does not belong to the given zone")
            self._thd_check_cluster_name(conn, pod.id, values["name"])
            result = conn.execute(C.insert().values(uuid=new_uuid(), created=self.now(), **values))
            return self.thd_get_cluster(conn, insert_id(result))

        return self.pool.do(thd)

    def update_cluster(self, cluster_id: int, values: Mapping[str, Any]) -> Deferred[Cluster]:
        def thd(conn: Connection) -> Cluster:
            cluster = self.thd_get_cluster(conn, cluster_id)
            if values.get("name") is not None:
                self._thd_check_cluster_name(conn, cluster.pod_id, values["name"], cluster_id)
            if values:
                conn.execute(C.update().where(C.c.id == cluster_id).values(**values))
            return self.thd_get_cluster(conn, cluster_id)

        return self.pool.do(thd)

    def remove_cluster(self, cluster_id: int) -> Deferred[None]:
        """Mark a cluster removed; 536 while hosts live in it."""
        def thd(conn: Connection) -> None:
            cluster = self.thd_get_cluster(conn, cluster_id)
            self.thd_remove_unused(conn, C, cluster_id, (H.c.cluster_id,), in_use(
                f"The cluster {cluster.name} is not deletable because there are hosts in this cluster"))

        return self.pool.do(thd)

    def search_clusters(self, f: ClusterFilter, page: Page) -> Deferred[tuple[int, list[Cluster]]]:
        def thd(conn: Connection) -> tuple[int, list[Cluster]]:
            q = cluster_select().where(C.c.removed.is_(None))
            for column, value in ((C.c.uuid, f.uuid), (C.c.name, f.name), (C.c.zone_id, f.zone_id),
                                  (C.c.pod_id, f.pod_id), (C.c.cluster_type, f.cluster_type),
                                  (C.c.allocation_state, f.allocation_state), (C.c.managed_state, f.managed_state)):
                if value is not None:
                    q = q.where(column == value)
            if f.hypervisor is not None:
                q = q.where(sa.func.lower(C.c.hypervisor) == f.hypervisor.lower())
            if f.keyword:
                q = q.where(contains(C.c.name, f.keyword))
            total, rows = thd_count_and_page(conn, q, [C.c.id], page)
            return total, [_cluster(r) for r in rows]

        return self.pool.do(thd)

    # --- hosts ------------------------------------------------------------------------------------

    def create_host(self, new: NewHost) -> Deferred[Host]:
        """Store a discovered host with its tags; 431 when a live host has that URL already."""
        def thd(conn: Connection) -> Host:
            if thd_exists(conn, H, H.c.url == new.url):
                raise invalid_value(f"A host with the URL {new.url} already exists")
            now = self.now()
            result = conn.execute(H.insert().values(
                uuid=new_uuid(), name=new.name, type=new.type, zone_id=new.zone_id, pod_id=new.pod_id,
                cluster_id=new.cluster_id, url=new.url, hypervisor=new.hypervisor,
                hypervisor_version=new.hypervisor_version, ip_address=new.ip_address, state=new.state,
                resource_state=new.resource_state, cpus=new.cpus, cpu_speed=new.cpu_speed,
                cpu_sockets=new.cpu_sockets, memory=new.memory, cpu_model=new.cpu_model, arch=new.arch,
                version=new.version, last_pinged=now, state_changed=now, created=now))
            host_id = insert_id(result)
            self._thd_set_tags(conn, host_id, new.tags)
            return self.thd_get_host(conn, host_id)

        return self.pool.do(thd)

    @staticmethod
    def _thd_set_tags(conn: Connection, host_id: int, tags: Iterable[str]) -> None:
        conn.execute(HT.delete().where(HT.c.host_id == host_id))
        seen: list[str] = []
        for tag in tags:
            if tag and tag not in seen:
                seen.append(tag)
        if seen:
            conn.execute(HT.insert(), [{"host_id": host_id, "tag": t} for t in seen])

    def update_host(self, host_id: int, values: Mapping[str, Any],
                    tags: Iterable[str] | None = None) -> Deferred[Host]:
        """Change a host's plain columns (never its states) and, when given, replace its tags."""
        if "state" in values or "resource_state" in values:
            raise ValueError("host states change by compare-and-set only")
        wanted = None if tags is None else list(tags)

        def thd(conn: Connection) -> Host:
            self.thd_get_host(conn, host_id)
            url = values.get("url")
            if url is not None and thd_exists(conn, H, H.c.url == url, except_id=host_id):
                raise invalid_value(f"A host with the URL {url} already exists")
            if values:
                conn.execute(H.update().where(H.c.id == host_id).values(**values))
            if wanted is not None:
                self._thd_set_tags(conn, host_id, wanted)
            return self.thd_get_host(conn, host_id)

        return self.pool.do(thd)

    def cas_resource_state(self, host_id: int, expected: Iterable[str], new: str, **values: Any) -> Deferred[bool]:
        """Compare-and-set of a host's operator state (`resource_state`)."""
        wanted = list(expected)

        def thd(conn: Connection) -> bool:
            result = conn.execute(H.update().where(H.c.id == host_id, H.c.removed.is_(None),
                                                   H.c.resource_state.in_(wanted))
                                  .values(resource_state=new, **values))
            return bool(result.rowcount == 1)

        return self.pool.do(thd)

    def remove_host(self, host_id: int, expected_states: list[str] | None = None) -> Deferred[bool]:
        """Mark a host Removed (state and `removed`), only if its connection state is one of
        `expected_states` when given; whether it was removed."""
        def thd(conn: Connection) -> bool:
            q = H.update().where(H.c.id == host_id, H.c.removed.is_(None))
            if expected_states is not None:
                q = q.where(H.c.state.in_(expected_states))
            now = self.now()
            result = conn.execute(q.values(state="Removed", state_changed=now, removed=now))
            return bool(result.rowcount == 1)

        return self.pool.do(thd)

    def touch_hosts(self, host_ids: Iterable[int]) -> Deferred[None]:
        """Record a successful ping of each host (one statement for a whole round)."""
        ids = list(host_ids)

        def thd(conn: Connection) -> None:
            if ids:
                conn.execute(H.update().where(H.c.id.in_(ids)).values(last_pinged=self.now()))

        return self.pool.do(thd)

    def search_hosts(self, f: HostFilter, page: Page) -> Deferred[tuple[int, list[Host]]]:
        def thd(conn: Connection) -> tuple[int, list[Host]]:
            q = host_select().where(H.c.removed.is_(None))
            for column, value in ((H.c.uuid, f.uuid), (H.c.name, f.name), (H.c.zone_id, f.zone_id),
                                  (H.c.pod_id, f.pod_id), (H.c.cluster_id, f.cluster_id)):
                if value is not None:
                    q = q.where(column == value)
            for column, value in ((H.c.type, f.type), (H.c.state, f.state),
                                  (H.c.resource_state, f.resource_state), (H.c.hypervisor, f.hypervisor)):
                if value is not None:
                    q = q.where(sa.func.lower(column) == value.lower())
            if f.keyword:
                q = q.where(contains(H.c.name, f.keyword))
            if f.tag is not None:
                q = q.where(H.c.id.in_(sa.select(HT.c.host_id).where(HT.c.tag == f.tag)))
            total, rows = thd_count_and_page(conn, q, [H.c.id], page)
            tags = thd_tags_of(conn, HT.c.host_id, [r.id for r in rows])
            return total, [_host(r, tags[r.id]) for r in rows]

        return self.pool.do(thd)

    def live_hosts(self, type: str = "Routing") -> Deferred[list[Host]]:
        """Every host not removed, of one type (the monitor's round)."""
        def thd(conn: Connection) -> list[Host]:
            rows = conn.execute(host_select().where(H.c.removed.is_(None), H.c.type == type)
                                .order_by(H.c.id)).all()
            tags = thd_tags_of(conn, HT.c.host_id, [r.id for r in rows])
            return [_host(r, tags[r.id]) for r in rows]

        return self.pool.do(thd)
