"""Service and disk offerings, and the domains and zones each is limited to: the offerings component.

An offering linked to no domain is public; one linked to domains is offered to those domains and
everything below them. An offering linked to no zone is offered in every zone. Deleting an offering
marks it removed (and Inactive); VMs and volumes made from it keep naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import (
    DBComponent,
    NotFound,
    Page,
    contains,
    escape_like,
    insert_id,
    new_uuid,
    thd_count_and_page,
    thd_one,
    thd_update_live,
)

SO, DO, OD, OZ = model.service_offerings, model.disk_offerings, model.offering_domains, model.offering_zones
ALL_ROWS = Page()
D, Z, C = model.domains, model.zones, model.clusters
SERVICE, DISK = "Service", "Disk"


@dataclass(frozen=True)
class Link:
    """A domain or zone an offering is limited to (`path` only for domains)."""

    id: int
    uuid: str
    name: str
    path: str = ""


@dataclass(frozen=True)
class DiskOffering:
    id: int
    uuid: str
    name: str
    display_text: str
    disk_size: int
    customized: bool
    customized_iops: bool | None
    min_iops: int | None
    max_iops: int | None
    storage_type: str
    provisioning_type: str
    tags: str | None
    cache_mode: str | None
    hypervisor_snapshot_reserve: int | None
    bytes_read_rate: int | None
    bytes_read_rate_max: int | None
    bytes_read_rate_max_length: int | None
    bytes_write_rate: int | None
    bytes_write_rate_max: int | None
    bytes_write_rate_max_length: int | None
    iops_read_rate: int | None
    iops_read_rate_max: int | None
    iops_read_rate_max_length: int | None
    iops_write_rate: int | None
    iops_write_rate_max: int | None
    iops_write_rate_max_length: int | None
    display_offering: bool
    disk_size_strictness: bool
    encrypt: bool
    sort_key: int
    state: str
    created: int
    domains: tuple[Link, ...] = ()
    zones: tuple[Link, ...] = ()


@dataclass(frozen=True)
class ServiceOffering:
    id: int
    uuid: str
    name: str
    display_text: str
    cpu: int | None
    speed: int | None
    ram_size: int | None
    min_cpu: int | None
    max_cpu: int | None
    min_memory: int | None
    max_memory: int | None
    storage_type: str
    provisioning_type: str
    offer_ha: bool
    limit_cpu_use: bool
    is_volatile: bool
    tags: str | None
    host_tags: str | None
    is_system: bool
    system_vm_type: str | None
    default_use: bool
    network_rate: int | None
    deployment_planner: str | None
    root_disk_size: int | None
    dynamic_scaling_enabled: bool
    disk_offering_id: int | None
    disk_offering_strictness: bool
    encrypt_root: bool
    customized_iops: bool | None
    min_iops: int | None
    max_iops: int | None
    hypervisor_snapshot_reserve: int | None
    cache_mode: str | None
    bytes_read_rate: int | None
    bytes_read_rate_max: int | None
    bytes_read_rate_max_length: int | None
    bytes_write_rate: int | None
    bytes_write_rate_max: int | None
    bytes_write_rate_max_length: int | None
    iops_read_rate: int | None
    iops_read_rate_max: int | None
    iops_read_rate_max_length: int | None
    iops_write_rate: int | None
    iops_write_rate_max: int | None
    iops_write_rate_max_length: int | None
    sort_key: int
    state: str
    created: int
    domains: tuple[Link, ...] = ()
    zones: tuple[Link, ...] = ()
    # the linked disk offering's UUID, name and display text (diskofferingid ...)
    disk_offering: Link | None = None
    disk_offering_display_text: str | None = None

    @property
    def customized(self) -> bool:
        """CPU count, speed or memory is chosen when the VM is deployed."""
        return self.cpu is None or self.speed is None or self.ram_size is None


@dataclass(frozen=True)
class OfferingFilter:
    """What a list of offerings is narrowed to; unset fields do not narrow.

    Visibility: with `ancestors` or `subtree` set, an offering linked to domains shows only when one
    of them is among `ancestors` (paths of the caller's domain and those above it) or below
    `subtree`; public offerings always show."""

    id: int | None = None
    name: str | None = None
    keyword: str | None = None
    ancestors: tuple[str, ...] | None = None
    subtree: str | None = None
    domain_id: int | None = None
    # with domain_id: also the offerings of the domains below it (listing's isrecursive)
    domain_path: str | None = None
    zone_id: int | None = None
    # service offerings only
    is_system: bool | None = None
    system_vm_type: str | None = None
    cpu: int | None = None
    memory: int | None = None
    speed: int | None = None
    # disk offerings only
    storage_type: str | None = None
    displayed_only: bool = False


OfferingT = TypeVar("OfferingT", ServiceOffering, DiskOffering)
FIELDS_OF = {ServiceOffering: {f.name for f in dataclasses.fields(ServiceOffering)},
             DiskOffering: {f.name for f in dataclasses.fields(DiskOffering)}}


class OfferingsComponent(DBComponent):
    """Reads, searches and writes of service and disk offerings."""

    # --- reads ----------------------------------------------------------------------------------

    def get_service_offering(self, offering_id: int) -> Deferred[ServiceOffering]:
        return self.pool.do(
            lambda conn: self.thd_get(conn, ServiceOffering, SO.c.id == offering_id, offering_id))

    def get_service_offering_by_uuid(self, uuid: str) -> Deferred[ServiceOffering]:
        return self.pool.do(lambda conn: self.thd_get(conn, ServiceOffering, SO.c.uuid == uuid, uuid))

    def get_disk_offering(self, offering_id: int) -> Deferred[DiskOffering]:
        return self.pool.do(
            lambda conn: self.thd_get(conn, DiskOffering, DO.c.id == offering_id, offering_id))

    def get_disk_offering_by_uuid(self, uuid: str) -> Deferred[DiskOffering]:
        return self.pool.do(lambda conn: self.thd_get(conn, DiskOffering, DO.c.uuid == uuid, uuid))

    def thd_get(self, conn: Connection, cls: type[OfferingT], where: Any, key: object) -> OfferingT:
        table = SO if cls is ServiceOffering else DO
        row = thd_one(conn, sa.select(table).where(where, table.c.removed.is_(None)), key)
        return self._thd_complete(conn, cls, [row])[0]

    def _thd_complete(self, conn: Connection, cls: type[OfferingT], rows: list[Any]) -> list[OfferingT]:
        """Offerings of `rows`, with their domains, zones (and linked disk offering)."""
        kind = SERVICE if cls is ServiceOffering else DISK
        ids = [r.id for r in rows]
        domains: dict[int, list[Link]] = {}
        zones: dict[int, list[Link]] = {}
        if ids:
            for r in conn.execute(sa.select(OD.c.offering_id, D.c.id, D.c.uuid, D.c.name, D.c.path)
                                  .select_from(OD.join(D, OD.c.domain_id == D.c.id))
                                  .where(OD.c.offering_type == kind, OD.c.offering_id.in_(ids))
                                  .order_by(OD.c.id)):
                domains.setdefault(r.offering_id, []).append(Link(r.id, r.uuid, r.name, r.path))
            for z in conn.execute(sa.select(OZ.c.offering_id, Z.c.id, Z.c.uuid, Z.c.name)
                                  .select_from(OZ.join(Z, OZ.c.zone_id == Z.c.id))
                                  .where(OZ.c.offering_type == kind, OZ.c.offering_id.in_(ids))
                                  .order_by(OZ.c.id)):
                zones.setdefault(z.offering_id, []).append(Link(z.id, z.uuid, z.name))
        disks: dict[int, Any] = {}
        if cls is ServiceOffering:
            linked = {r.disk_offering_id for r in rows if r.disk_offering_id is not None}
            if linked:
                disks = {r.id: r for r in conn.execute(
                    sa.select(DO.c.id, DO.c.uuid, DO.c.name, DO.c.display_text).where(DO.c.id.in_(linked)))}
        out = []
        names = FIELDS_OF[cls]
        for r in rows:
            values = {k: v for k, v in r._mapping.items() if k in names}
            values["domains"] = tuple(domains.get(r.id, ()))
            values["zones"] = tuple(zones.get(r.id, ()))
            if cls is ServiceOffering and r.disk_offering_id in disks:
                d = disks[r.disk_offering_id]
                values["disk_offering"] = Link(d.id, d.uuid, d.name)
                values["disk_offering_display_text"] = d.display_text
            out.append(cls(**_typed(cls, values)))
        return out

    # --- searches -------------------------------------------------------------------------------

    def search_service_offerings(self, f: OfferingFilter, page: Page = ALL_ROWS) -> Deferred[
            tuple[int, list[ServiceOffering]]]:
        return self.pool.do(lambda conn: self._thd_search(conn, ServiceOffering, f, page))

    def search_disk_offerings(self, f: OfferingFilter, page: Page = ALL_ROWS) -> Deferred[
            tuple[int, list[DiskOffering]]]:
        return self.pool.do(lambda conn: self._thd_search(conn, DiskOffering, f, page))

    def _thd_search(self, conn: Connection, cls: type[OfferingT], f: OfferingFilter,
                    page: Page) -> tuple[int, list[OfferingT]]:
        table, kind = (SO, SERVICE) if cls is ServiceOffering else (DO, DISK)
        where: list[Any] = [table.c.removed.is_(None), table.c.state == "Active"]
        if f.id is not None:
            where.append(table.c.id == f.id)
        if f.name is not None:
            where.append(table.c.name == f.name)
        if f.keyword:
            where.append(sa.or_(contains(table.c.name, f.keyword), contains(table.c.display_text, f.keyword)))
        linked = sa.select(OD.c.offering_id).where(OD.c.offering_type == kind)
        if f.ancestors is not None or f.subtree is not None:
            allowed = []
            if f.ancestors:
                allowed.append(D.c.path.in_(list(f.ancestors)))
            if f.subtree is not None:
                allowed.append(D.c.path.like(escape_like(f.subtree) + "%", escape="\\"))
            seen = (sa.select(OD.c.offering_id).select_from(OD.join(D, OD.c.domain_id == D.c.id))
                    .where(OD.c.offering_type == kind, sa.or_(*allowed) if allowed else sa.false()))
            where.append(sa.or_(table.c.id.not_in(linked), table.c.id.in_(seen)))
        if f.domain_path is not None:
            below = sa.select(D.c.id).where(D.c.path.like(escape_like(f.domain_path) + "%", escape="\\"))
            where.append(table.c.id.in_(linked.where(OD.c.domain_id.in_(below))))
        elif f.domain_id is not None:
            where.append(table.c.id.in_(linked.where(OD.c.domain_id == f.domain_id)))
        if f.zone_id is not None:
            zoned = sa.select(OZ.c.offering_id).where(OZ.c.offering_type == kind)
            where.append(sa.or_(table.c.id.not_in(zoned),
                                table.c.id.in_(zoned.where(OZ.c.zone_id == f.zone_id))))
        if cls is ServiceOffering:
            where.extend(_service_filters(f))
        else:
            if f.storage_type is not None:
                where.append(table.c.storage_type == f.storage_type)
            if f.displayed_only:
                where.append(table.c.display_offering == 1)
        total, rows = thd_count_and_page(conn, sa.select(table).where(*where), [table.c.sort_key, table.c.id],
                                         page)
        return total, self._thd_complete(conn, cls, rows)

    def zone_hypervisors(self, zone_id: int) -> Deferred[list[str]]:
        """The hypervisors of the zone's clusters (listHypervisors zoneid=...)."""
        def thd(conn: Connection) -> list[str]:
            return [h for (h,) in conn.execute(
                sa.select(C.c.hypervisor).where(C.c.zone_id == zone_id, C.c.removed.is_(None)).distinct()
                .order_by(C.c.hypervisor))]

        return self.pool.do(thd)

    # --- writes ---------------------------------------------------------------------------------

    def create_service_offering(self, values: Mapping[str, Any], domain_ids: Iterable[int] = (),
                                zone_ids: Iterable[int] = ()) -> Deferred[ServiceOffering]:
        return self.pool.do(
            lambda conn: self._thd_create(conn, ServiceOffering, values, domain_ids, zone_ids))

    def create_disk_offering(self, values: Mapping[str, Any], domain_ids: Iterable[int] = (),
                             zone_ids: Iterable[int] = ()) -> Deferred[DiskOffering]:
        return self.pool.do(lambda conn: self._thd_create(conn, DiskOffering, values, domain_ids, zone_ids))

    def _thd_create(self, conn: Connection, cls: type[OfferingT], values: Mapping[str, Any],
                    domain_ids: Iterable[int], zone_ids: Iterable[int]) -> OfferingT:
        table, kind = (SO, SERVICE) if cls is ServiceOffering else (DO, DISK)
        row = {k: _stored(v) for k, v in values.items()}
        row.update(uuid=new_uuid(), state="Active", created=self.now())
        offering_id = insert_id(conn.execute(table.insert().values(**row)))
        _thd_links(conn, kind, offering_id, domain_ids, zone_ids)
        return self.thd_get(conn, cls, table.c.id == offering_id, offering_id)

    def update_service_offering(self, offering_id: int, values: Mapping[str, Any],
                                domain_ids: Iterable[int] | None = None,
                                zone_ids: Iterable[int] | None = None) -> Deferred[ServiceOffering]:
        return self.pool.do(
            lambda conn: self._thd_update(conn, ServiceOffering, offering_id, values, domain_ids, zone_ids))

    def update_disk_offering(self, offering_id: int, values: Mapping[str, Any],
                             domain_ids: Iterable[int] | None = None,
                             zone_ids: Iterable[int] | None = None) -> Deferred[DiskOffering]:
        return self.pool.do(lambda conn: self._thd_update(conn, DiskOffering, offering_id, values, domain_ids,
                                                          zone_ids))

    def _thd_update(self, conn: Connection, cls: type[OfferingT], offering_id: int, values: Mapping[str, Any],
                    domain_ids: Iterable[int] | None, zone_ids: Iterable[int] | None) -> OfferingT:
        """Change the given columns; `domain_ids`/`zone_ids` (when not None) replace the links, an
        empty one making the offering public / offered in every zone."""
        table, kind = (SO, SERVICE) if cls is ServiceOffering else (DO, DISK)
        if values and not thd_update_live(conn, table, offering_id, **{k: _stored(v) for k, v in values.items()}):
            raise NotFound(offering_id)
        if domain_ids is not None:
            conn.execute(OD.delete().where(OD.c.offering_type == kind, OD.c.offering_id == offering_id))
            _thd_links(conn, kind, offering_id, domain_ids, ())
        if zone_ids is not None:
            conn.execute(OZ.delete().where(OZ.c.offering_type == kind, OZ.c.offering_id == offering_id))
            _thd_links(conn, kind, offering_id, (), zone_ids)
        return self.thd_get(conn, cls, table.c.id == offering_id, offering_id)

    def remove_service_offering(self, offering_id: int) -> Deferred[None]:
        return self.pool.do(lambda conn: self._thd_remove(conn, SO, offering_id))

    def remove_disk_offering(self, offering_id: int) -> Deferred[None]:
        return self.pool.do(lambda conn: self._thd_remove(conn, DO, offering_id))

    def _thd_remove(self, conn: Connection, table: sa.Table, offering_id: int) -> None:
        if not self.thd_mark_removed(conn, table, offering_id, state="Inactive"):
            raise NotFound(offering_id)


def _service_filters(f: OfferingFilter) -> list[Any]:
    where: list[Any] = []
    if f.is_system is not None:
        where.append(SO.c.is_system == int(f.is_system))
    if f.system_vm_type is not None:
        where.append(SO.c.system_vm_type == f.system_vm_type)
    # offerings that can give a VM this many CPUs / this much memory / this speed: a fixed offering
    # of at least that much, or a customized one whose bounds allow it
    if f.cpu is not None:
        where.append(sa.or_(SO.c.cpu >= f.cpu, sa.and_(
            SO.c.cpu.is_(None), sa.or_(SO.c.min_cpu.is_(None), SO.c.min_cpu <= f.cpu),
            sa.or_(SO.c.max_cpu.is_(None), SO.c.max_cpu >= f.cpu))))
    if f.memory is not None:
        where.append(sa.or_(SO.c.ram_size >= f.memory, sa.and_(
            SO.c.ram_size.is_(None), sa.or_(SO.c.min_memory.is_(None), SO.c.min_memory <= f.memory),
            sa.or_(SO.c.max_memory.is_(None), SO.c.max_memory >= f.memory))))
    if f.speed is not None:
        where.append(sa.or_(SO.c.speed >= f.speed, SO.c.speed.is_(None)))
    return where


def _thd_links(conn: Connection, kind: str, offering_id: int, domain_ids: Iterable[int],
               zone_ids: Iterable[int]) -> None:
    for domain_id in dict.fromkeys(domain_ids):
        conn.execute(OD.insert().values(offering_type=kind, offering_id=offering_id, domain_id=domain_id))
    for zone_id in dict.fromkeys(zone_ids):
        conn.execute(OZ.insert().values(offering_type=kind, offering_id=offering_id, zone_id=zone_id))


def _stored(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


_BOOLEANS = {cls: {f.name for f in dataclasses.fields(cls) if f.type in ("bool", "bool | None")}
             for cls in (ServiceOffering, DiskOffering)}


def _typed(cls: type[ServiceOffering] | type[DiskOffering], values: dict[str, Any]) -> dict[str, Any]:
    for name in _BOOLEANS[cls]:
        if values.get(name) is not None:
            values[name] = bool(values[name])
    return values
