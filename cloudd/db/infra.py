"""Zones, pods, clusters and hosts (and host tags): the infrastructure component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import DBComponent, NotFound

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
    return sa.select(H, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name"), PD.c.uuid.label("pod_uuid"),
                     PD.c.name.label("pod_name"), C.c.uuid.label("cluster_uuid"),
                     C.c.name.label("cluster_name")).select_from(
        H.join(Z, H.c.zone_id == Z.c.id).outerjoin(PD, H.c.pod_id == PD.c.id).outerjoin(C, H.c.cluster_id == C.c.id))


def _host(r: Any, tags: tuple[str, ...] = ()) -> Host:
    return Host(r.id, r.uuid, r.name, r.type, r.zone_id, r.zone_uuid, r.zone_name, r.pod_id, r.pod_uuid, r.pod_name,
                r.cluster_id, r.cluster_uuid, r.cluster_name, r.url, r.hypervisor, r.hypervisor_version,
                r.ip_address, r.state, r.resource_state, r.cpus, r.cpu_speed, r.cpu_sockets, r.memory, r.cpu_model,
                r.arch, r.version, r.last_pinged, r.state_changed, r.created, tags)


class InfraComponent(DBComponent):
    """Reads by id and UUID; the writes and searches belong to the commands that need them."""

    def thd_get_zone(self, conn: Connection, zone_id: int) -> Zone:
        row = conn.execute(sa.select(Z).where(Z.c.id == zone_id, Z.c.removed.is_(None))).first()
        if row is None:
            raise NotFound(zone_id)
        return _zone(row)

    def get_zone(self, zone_id: int) -> Deferred[Zone]:
        return self.pool.do(lambda conn: self.thd_get_zone(conn, zone_id))

    def get_zone_by_uuid(self, uuid: str) -> Deferred[Zone]:
        def thd(conn: Connection) -> Zone:
            row = conn.execute(sa.select(Z).where(Z.c.uuid == uuid, Z.c.removed.is_(None))).first()
            if row is None:
                raise NotFound(uuid)
            return _zone(row)

        return self.pool.do(thd)

    def get_pod_by_uuid(self, uuid: str) -> Deferred[Pod]:
        def thd(conn: Connection) -> Pod:
            row = conn.execute(pod_select().where(PD.c.uuid == uuid, PD.c.removed.is_(None))).first()
            if row is None:
                raise NotFound(uuid)
            return _pod(row)

        return self.pool.do(thd)

    def get_cluster_by_uuid(self, uuid: str) -> Deferred[Cluster]:
        def thd(conn: Connection) -> Cluster:
            row = conn.execute(cluster_select().where(C.c.uuid == uuid, C.c.removed.is_(None))).first()
            if row is None:
                raise NotFound(uuid)
            return _cluster(row)

        return self.pool.do(thd)

    def thd_get_host(self, conn: Connection, host_id: int) -> Host:
        row = conn.execute(host_select().where(H.c.id == host_id, H.c.removed.is_(None))).first()
        if row is None:
            raise NotFound(host_id)
        tags = tuple(t for (t,) in conn.execute(sa.select(HT.c.tag).where(HT.c.host_id == host_id)
                                               .order_by(HT.c.id)).all())
        return _host(row, tags)

    def get_host(self, host_id: int) -> Deferred[Host]:
        return self.pool.do(lambda conn: self.thd_get_host(conn, host_id))

    def get_host_by_uuid(self, uuid: str) -> Deferred[Host]:
        def thd(conn: Connection) -> Host:
            row = conn.execute(sa.select(H.c.id).where(H.c.uuid == uuid, H.c.removed.is_(None))).first()
            if row is None:
                raise NotFound(uuid)
            return self.thd_get_host(conn, row.id)

        return self.pool.do(thd)

    def cas_host_state(self, host_id: int, expected: list[str], new: str, **values: Any) -> Deferred[bool]:
        """Compare-and-set of a host's connection state (`state`); `state_changed` is set too."""
        return self.cas_state(H, host_id, expected, new, state_changed=self.now(), **values)
