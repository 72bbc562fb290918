"""Image stores, system VMs, templates and ISOs, their copies in each zone's store, and who a private
template is shared with: the images component.

A template's copy in a zone (`TemplateCopy`) is its download in that zone's ssvm; its `state` is
CloudStack's download state and moves only by compare-and-set (`cas_copy_state`), while progress
(`percent`) is written only while the copy is still downloading, so a late progress report never
overwrites an end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import (
    Conflict,
    DBComponent,
    Page,
    apply_page,
    contains,
    escape_like,
    insert_id,
    new_uuid,
    thd_count_and_page,
    thd_count_live,
    thd_exists,
    thd_live_row,
    thd_one,
    thd_update_live,
)

IS, VM, T, TZ, TP = (model.image_stores, model.system_vms, model.templates, model.template_zones,
                     model.template_permissions)
Z, A, D, G = model.zones, model.accounts, model.domains, model.guest_os

# CloudStack's download states (VMTemplateStorageResourceAssoc.Status) of a template's copy
NOT_DOWNLOADED = "NOT_DOWNLOADED"
DOWNLOAD_IN_PROGRESS = "DOWNLOAD_IN_PROGRESS"
DOWNLOADED = "DOWNLOADED"
DOWNLOAD_ERROR = "DOWNLOAD_ERROR"
ABANDONED = "ABANDONED"
PENDING = (NOT_DOWNLOADED, DOWNLOAD_IN_PROGRESS)
ALL_ROWS = Page()


def _details(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ImageStore:
    id: int
    uuid: str
    name: str
    zone_id: int
    zone_uuid: str
    zone_name: str
    provider: str
    protocol: str
    url: str
    path: str
    readonly: bool
    details: dict[str, str]
    total_size: int | None
    used_size: int | None
    created: int


@dataclass(frozen=True)
class SystemVm:
    id: int
    uuid: str
    name: str
    vm_type: str
    zone_id: int
    zone_uuid: str
    zone_name: str
    store_id: int | None
    state: str
    public_ip: str | None
    private_ip: str | None
    link_local_ip: str | None
    control_url: str | None
    public_url: str | None
    state_changed: int | None
    created: int


@dataclass(frozen=True)
class Template:
    id: int
    uuid: str
    name: str
    display_text: str | None
    is_iso: bool
    format: str
    hypervisor: str | None
    os_type_uuid: str | None
    os_type_name: str | None
    template_type: str
    url: str | None
    checksum: str | None
    bits: int
    public: bool
    featured: bool
    extractable: bool
    password_enabled: bool
    sshkey_enabled: bool
    dynamically_scalable: bool
    requires_hvm: bool
    bootable: bool
    cross_zones: bool
    direct_download: bool
    deploy_as_is: bool
    template_tag: str | None
    details: dict[str, str]
    source_template_id: int | None
    account_id: int
    account_uuid: str
    account_name: str
    domain_id: int
    domain_uuid: str
    domain_name: str
    domain_path: str
    created: int


@dataclass(frozen=True)
class TemplateCopy:
    """A template's copy in one zone's image store (its download there)."""

    id: int
    template_id: int
    zone_id: int
    zone_uuid: str
    zone_name: str
    store_id: int
    download_id: str
    source_url: str
    state: str
    percent: int
    error: str | None
    install_path: str | None
    size: int | None
    physical_size: int | None
    checksum: str | None
    restarts: int
    created: int
    updated: int

    @property
    def ready(self) -> bool:
        return self.state == DOWNLOADED


@dataclass(frozen=True)
class TemplateInZone:
    """One row of listTemplates: a template and its copy in one zone."""

    template: Template
    copy: TemplateCopy


@dataclass(frozen=True)
class TemplateSearch:
    """What listTemplates/listIsos may show. A template is shown when any of the owner branches holds
    (owned by `owners`, owned in the domain subtree `subtree`, public, shared with `shared_with`,
    `everything`), then narrowed by the other fields."""

    is_iso: bool
    owners: tuple[int, ...] | None = None
    subtree: str | None = None
    public: bool = False
    shared_with: int | None = None
    everything: bool = False
    featured: bool | None = None
    ready_only: bool = False
    template_id: int | None = None
    template_ids: tuple[int, ...] | None = None
    template_type: str | None = None
    name: str | None = None
    keyword: str | None = None
    zone_id: int | None = None
    hypervisor: str | None = None
    bootable: bool | None = None
    is_public: bool | None = None
    exclude_owners: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Permitted:
    """An account a template is shared with."""

    account_id: int
    account_uuid: str
    account_name: str
    domain_id: int


def store_select() -> sa.Select:
    return sa.select(IS, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name")).select_from(
        IS.join(Z, IS.c.zone_id == Z.c.id))


def _store(r: Any) -> ImageStore:
    return ImageStore(r.id, r.uuid, r.name, r.zone_id, r.zone_uuid, r.zone_name, r.provider, r.protocol, r.url,
                      r.path, bool(r.readonly), _details(r.details), r.total_size, r.used_size, r.created)


def vm_select() -> sa.Select:
    return sa.select(VM, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name")).select_from(
        VM.join(Z, VM.c.zone_id == Z.c.id))


def _vm(r: Any) -> SystemVm:
    return SystemVm(r.id, r.uuid, r.name, r.vm_type, r.zone_id, r.zone_uuid, r.zone_name, r.store_id, r.state,
                    r.public_ip, r.private_ip, r.link_local_ip, r.control_url, r.public_url, r.state_changed,
                    r.created)


_T_OWNER = (A.c.uuid.label("account_uuid"), A.c.name.label("account_name"), D.c.uuid.label("domain_uuid"),
            D.c.name.label("domain_name"), D.c.path.label("domain_path"), G.c.display_name.label("os_type_name"))


def _owner_join(base: Any) -> Any:
    return base.join(A, T.c.account_id == A.c.id).join(D, T.c.domain_id == D.c.id).outerjoin(
        G, T.c.os_type_uuid == G.c.uuid)


def template_select() -> sa.Select:
    return sa.select(T, *_T_OWNER).select_from(_owner_join(T))


def _template(r: Any, prefix: str = "") -> Template:
    def g(name: str) -> Any:
        return getattr(r, prefix + name)

    return Template(
        g("id"), g("uuid"), g("name"), g("display_text"), bool(g("is_iso")), g("format"), g("hypervisor"),
        g("os_type_uuid"), r.os_type_name, g("template_type"), g("url"), g("checksum"), g("bits"), bool(g("public")),
        bool(g("featured")), bool(g("extractable")), bool(g("password_enabled")), bool(g("sshkey_enabled")),
        bool(g("dynamically_scalable")), bool(g("requires_hvm")), bool(g("bootable")), bool(g("cross_zones")),
        bool(g("direct_download")), bool(g("deploy_as_is")), g("template_tag"), _details(g("details")),
        g("source_template_id"), g("account_id"), r.account_uuid, r.account_name, g("domain_id"), r.domain_uuid,
        r.domain_name, r.domain_path, g("created"))


def copy_select() -> sa.Select:
    return sa.select(TZ, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name")).select_from(
        TZ.join(Z, TZ.c.zone_id == Z.c.id))


def _copy(r: Any, prefix: str = "") -> TemplateCopy:
    def g(name: str) -> Any:
        return getattr(r, prefix + name)

    return TemplateCopy(g("id"), g("template_id"), g("zone_id"), r.zone_uuid, r.zone_name, g("store_id"),
                        g("download_id"), g("source_url"), g("state"), g("percent"), g("error"),
                        g("install_path"), g("size"), g("physical_size"), g("checksum"), g("restarts"),
                        g("created"), g("updated"))


def download_id_for(template_id: int, copy_id: int) -> str:
    """The id of a copy's download in ssvm (`[A-Za-z0-9][A-Za-z0-9_-]{0,63}`)."""
    return f"t{template_id}-c{copy_id}"


class ImagesComponent(DBComponent):
    # -- image stores ------------------------------------------------------------------------------

    def add_store(self, *, name: str, zone_id: int, provider: str, protocol: str, url: str, path: str,
                  details: dict[str, str] | None = None) -> Deferred[ImageStore]:
        def thd(conn: Connection) -> ImageStore:
            sid = insert_id(conn.execute(IS.insert().values(
                uuid=new_uuid(), name=name, zone_id=zone_id, provider=provider, protocol=protocol, url=url,
                path=path, readonly=0, details=json.dumps(details) if details else None, created=self.now())))
            return self.thd_get_store(conn, sid)

        return self.pool.do(thd)

    def thd_get_store(self, conn: Connection, store_id: int) -> ImageStore:
        return _store(thd_live_row(conn, store_select(), IS.c.id, store_id))

    def get_store(self, store_id: int) -> Deferred[ImageStore]:
        return self.pool.do(lambda conn: self.thd_get_store(conn, store_id))

    def get_store_by_uuid(self, uuid: str) -> Deferred[ImageStore]:
        return self.get_live(store_select(), IS.c.uuid, uuid, _store)

    def search_stores(self, *, store_id: int | None = None, zone_id: int | None = None, name: str | None = None,
                      protocol: str | None = None, provider: str | None = None, keyword: str | None = None,
                      page: Page = ALL_ROWS) -> Deferred[tuple[int, list[ImageStore]]]:
        def thd(conn: Connection) -> tuple[int, list[ImageStore]]:
            where: list[Any] = [IS.c.removed.is_(None)]
            if store_id is not None:
                where.append(IS.c.id == store_id)
            if zone_id is not None:
                where.append(IS.c.zone_id == zone_id)
            if name is not None:
                where.append(IS.c.name == name)
            if protocol is not None:
                where.append(IS.c.protocol == protocol)
            if provider is not None:
                where.append(IS.c.provider == provider)
            if keyword:
                where.append(contains(IS.c.name, keyword))
            total, rows = thd_count_and_page(conn, store_select().where(*where), [IS.c.id], page)
            return total, [_store(r) for r in rows]

        return self.pool.do(thd)

    def stores_in_zone(self, zone_id: int) -> Deferred[list[ImageStore]]:
        return self.pool.do(lambda conn: [_store(r) for r in conn.execute(
            store_select().where(IS.c.zone_id == zone_id, IS.c.removed.is_(None)).order_by(IS.c.id)).all()])

    def all_stores(self) -> Deferred[list[ImageStore]]:
        return self.pool.do(lambda conn: [_store(r) for r in conn.execute(
            store_select().where(IS.c.removed.is_(None)).order_by(IS.c.id)).all()])

    def set_store_capacity(self, store_id: int, total: int, used: int) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(IS.update().where(IS.c.id == store_id).values(total_size=total, used_size=used))

        return self.pool.do(thd)

    def remove_store(self, store_id: int) -> Deferred[None]:
        """Remove a store that holds no template copy (Conflict otherwise)."""
        def thd(conn: Connection) -> None:
            used = thd_count_live(conn, TZ, TZ.c.store_id == store_id)
            if used:
                raise Conflict(f"{used} template(s) or ISO(s) are stored on it")
            self.thd_mark_removed(conn, IS, store_id)

        return self.pool.do(thd)

    # -- system VMs --------------------------------------------------------------------------------

    def create_vm(self, *, vm_type: str, zone_id: int, store_id: int | None, state: str,
                  address: str) -> Deferred[SystemVm]:
        """A system VM named `s-<id>-VM` (its id is known only once stored)."""
        def thd(conn: Connection) -> SystemVm:
            now = self.now()
            vm_id = insert_id(conn.execute(VM.insert().values(
                uuid=new_uuid(), name="", vm_type=vm_type, zone_id=zone_id, store_id=store_id, state=state,
                public_ip=address, private_ip=address, link_local_ip=address, state_changed=now, created=now)))
            conn.execute(VM.update().where(VM.c.id == vm_id).values(name=f"s-{vm_id}-VM"))
            return self.thd_get_vm(conn, vm_id)

        return self.pool.do(thd)

    def thd_get_vm(self, conn: Connection, vm_id: int) -> SystemVm:
        return _vm(thd_live_row(conn, vm_select(), VM.c.id, vm_id))

    def get_vm(self, vm_id: int) -> Deferred[SystemVm]:
        return self.pool.do(lambda conn: self.thd_get_vm(conn, vm_id))

    def get_vm_by_uuid(self, uuid: str) -> Deferred[SystemVm]:
        return self.get_live(vm_select(), VM.c.uuid, uuid, _vm)

    def vm_of_zone(self, zone_id: int, vm_type: str) -> Deferred[SystemVm | None]:
        def thd(conn: Connection) -> SystemVm | None:
            row = conn.execute(vm_select().where(VM.c.zone_id == zone_id, VM.c.vm_type == vm_type,
                                                 VM.c.removed.is_(None)).order_by(VM.c.id)).first()
            return None if row is None else _vm(row)

        return self.pool.do(thd)

    def search_vms(self, *, vm_id: int | None = None, zone_id: int | None = None, name: str | None = None,
                   state: str | None = None, vm_type: str | None = None, store_id: int | None = None,
                   keyword: str | None = None, page: Page = ALL_ROWS) -> Deferred[tuple[int, list[SystemVm]]]:
        def thd(conn: Connection) -> tuple[int, list[SystemVm]]:
            where: list[Any] = [VM.c.removed.is_(None)]
            for column, value in ((VM.c.id, vm_id), (VM.c.zone_id, zone_id), (VM.c.name, name),
                                  (VM.c.state, state), (VM.c.vm_type, vm_type), (VM.c.store_id, store_id)):
                if value is not None:
                    where.append(column == value)
            if keyword:
                where.append(contains(VM.c.name, keyword))
            total, rows = thd_count_and_page(conn, vm_select().where(*where), [VM.c.id], page)
            return total, [_vm(r) for r in rows]

        return self.pool.do(thd)

    def cas_vm_state(self, vm_id: int, expected: Iterable[str], new: str, **values: Any) -> Deferred[bool]:
        return self.cas_state(VM, vm_id, expected, new, state_changed=self.now(), **values)

    def set_vm_endpoint(self, vm_id: int, control_url: str | None, public_url: str | None) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(VM.update().where(VM.c.id == vm_id).values(control_url=control_url, public_url=public_url))

        return self.pool.do(thd)

    def remove_vm(self, vm_id: int, state: str) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            now = self.now()
            conn.execute(VM.update().where(VM.c.id == vm_id).values(state=state, state_changed=now, removed=now))

        return self.pool.do(thd)

    # -- templates ---------------------------------------------------------------------------------

    def create_template(self, values: dict[str, Any],
                        copies: Sequence[tuple[int, int]]) -> Deferred[tuple[Template, list[TemplateCopy]]]:
        """A template and its copies, one per (zone id, store id), each NOT_DOWNLOADED, in one
        transaction. `values` are the templates table's columns (details as a dict)."""
        def thd(conn: Connection) -> tuple[Template, list[TemplateCopy]]:
            now = self.now()
            row = dict(values)
            row["details"] = json.dumps(row["details"]) if row.get("details") else None
            tid = insert_id(conn.execute(T.insert().values(uuid=new_uuid(), created=now, **row)))
            made = [self.thd_add_copy(conn, tid, zone_id, store_id, row.get("url") or "")
                    for zone_id, store_id in copies]
            return self.thd_get_template(conn, tid), made

        return self.pool.do(thd)

    def thd_add_copy(self, conn: Connection, template_id: int, zone_id: int, store_id: int,
                     source_url: str) -> TemplateCopy:
        now = self.now()
        cid = insert_id(conn.execute(TZ.insert().values(
            template_id=template_id, zone_id=zone_id, store_id=store_id, download_id="", source_url=source_url,
            state=NOT_DOWNLOADED, percent=0, restarts=0, created=now, updated=now)))
        conn.execute(TZ.update().where(TZ.c.id == cid).values(download_id=download_id_for(template_id, cid)))
        return self.thd_get_copy(conn, cid)

    def add_copy(self, template_id: int, zone_id: int, store_id: int, source_url: str) -> Deferred[TemplateCopy]:
        """A new copy of a template in another zone (copyTemplate); Conflict when it has one there."""
        def thd(conn: Connection) -> TemplateCopy:
            if thd_exists(conn, TZ, TZ.c.template_id == template_id, TZ.c.zone_id == zone_id):
                raise Conflict("the template is already in that zone")
            conn.execute(T.update().where(T.c.id == template_id).values(cross_zones=0))
            return self.thd_add_copy(conn, template_id, zone_id, store_id, source_url)

        return self.pool.do(thd)

    def thd_get_template(self, conn: Connection, template_id: int) -> Template:
        return _template(thd_live_row(conn, template_select(), T.c.id, template_id))

    def get_template(self, template_id: int) -> Deferred[Template]:
        return self.pool.do(lambda conn: self.thd_get_template(conn, template_id))

    def get_template_by_uuid(self, uuid: str) -> Deferred[Template]:
        return self.get_live(template_select(), T.c.uuid, uuid, _template)

    def find_template(self, name: str, is_iso: bool, account_id: int) -> Deferred[Template | None]:
        """An account's live template (or ISO) of that name."""
        def thd(conn: Connection) -> Template | None:
            row = conn.execute(template_select().where(T.c.name == name, T.c.is_iso == int(is_iso),
                                                       T.c.account_id == account_id, T.c.removed.is_(None))).first()
            return None if row is None else _template(row)

        return self.pool.do(thd)

    def update_template(self, template_id: int, values: dict[str, Any]) -> Deferred[Template]:
        def thd(conn: Connection) -> Template:
            row = dict(values)
            if "details" in row:
                row["details"] = json.dumps(row["details"]) if row["details"] else None
            for key in list(row):
                if isinstance(row[key], bool):
                    row[key] = int(row[key])
            if row:
                thd_update_live(conn, T, template_id, **row)
            return self.thd_get_template(conn, template_id)

        return self.pool.do(thd)

    def remove_template(self, template_id: int, zone_id: int | None = None) -> Deferred[list[TemplateCopy]]:
        """Remove the template's copy in `zone_id`, or every copy and the template itself; the copies
        removed. A template whose last copy goes is removed too."""
        def thd(conn: Connection) -> list[TemplateCopy]:
            now = self.now()
            where: list[Any] = [TZ.c.template_id == template_id, TZ.c.removed.is_(None)]
            if zone_id is not None:
                where.append(TZ.c.zone_id == zone_id)
            gone = [_copy(r) for r in conn.execute(copy_select().where(*where)).all()]
            conn.execute(TZ.update().where(*where).values(removed=now, updated=now))
            if not thd_count_live(conn, TZ, TZ.c.template_id == template_id):
                conn.execute(T.update().where(T.c.id == template_id).values(removed=now))
                conn.execute(TP.delete().where(TP.c.template_id == template_id))
            return gone

        return self.pool.do(thd)

    def search_templates(self, q: TemplateSearch, page: Page = ALL_ROWS) -> Deferred[tuple[int, list[TemplateInZone]]]:
        def thd(conn: Connection) -> tuple[int, list[TemplateInZone]]:
            where = self._template_where(q)
            base = TZ.join(T, TZ.c.template_id == T.c.id)
            total = conn.execute(sa.select(sa.func.count()).select_from(base).where(*where)).scalar_one()
            ids = conn.execute(apply_page(sa.select(TZ.c.id).select_from(base).where(*where)
                                          .order_by(T.c.id, TZ.c.zone_id), page)).scalars().all()
            if not ids:
                return int(total), []
            tcols = [c.label("t_" + c.name) for c in T.c]
            query = sa.select(TZ, Z.c.uuid.label("zone_uuid"), Z.c.name.label("zone_name"), *tcols,
                              *_T_OWNER).select_from(
                _owner_join(TZ.join(Z, TZ.c.zone_id == Z.c.id).join(T, TZ.c.template_id == T.c.id))
            ).where(TZ.c.id.in_(ids))
            rows = {r.id: r for r in conn.execute(query).all()}
            return int(total), [TemplateInZone(_template(rows[i], "t_"), _copy(rows[i])) for i in ids]

        return self.pool.do(thd)

    @staticmethod
    def _template_where(q: TemplateSearch) -> list[Any]:
        where: list[Any] = [T.c.removed.is_(None), TZ.c.removed.is_(None), T.c.is_iso == int(q.is_iso)]
        if not q.everything:
            anyof: list[Any] = []
            if q.owners is not None:
                anyof.append(T.c.account_id.in_(q.owners))
            if q.subtree is not None:
                anyof.append(T.c.domain_id.in_(sa.select(D.c.id).where(
                    D.c.path.like(escape_like(q.subtree) + "%", escape="\\"))))
            if q.public:
                anyof.append(T.c.public == 1)
            if q.shared_with is not None:
                anyof.append(T.c.id.in_(sa.select(TP.c.template_id).where(TP.c.account_id == q.shared_with)))
            where.append(sa.or_(*anyof) if anyof else sa.false())
        if q.exclude_owners:
            where.append(T.c.account_id.not_in(q.exclude_owners))
        if q.featured is not None:
            where.append(T.c.featured == int(q.featured))
        if q.ready_only:
            where.append(TZ.c.state == DOWNLOADED)
        if q.template_id is not None:
            where.append(T.c.id == q.template_id)
        if q.template_ids is not None:
            where.append(T.c.id.in_(q.template_ids))
        if q.template_type is not None:
            where.append(T.c.template_type == q.template_type)
        if q.name is not None:
            where.append(T.c.name == q.name)
        if q.keyword:
            where.append(contains(T.c.name, q.keyword))
        if q.zone_id is not None:
            where.append(TZ.c.zone_id == q.zone_id)
        if q.hypervisor is not None:
            where.append(T.c.hypervisor == q.hypervisor)
        if q.bootable is not None:
            where.append(T.c.bootable == int(q.bootable))
        if q.is_public is not None:
            where.append(T.c.public == int(q.is_public))
        return where

    # -- copies (downloads) ------------------------------------------------------------------------

    def thd_get_copy(self, conn: Connection, copy_id: int) -> TemplateCopy:
        return _copy(thd_one(conn, copy_select().where(TZ.c.id == copy_id), copy_id))

    def get_copy(self, copy_id: int) -> Deferred[TemplateCopy]:
        return self.pool.do(lambda conn: self.thd_get_copy(conn, copy_id))

    def copies_of(self, template_id: int) -> Deferred[list[TemplateCopy]]:
        return self.pool.do(lambda conn: [_copy(r) for r in conn.execute(copy_select().where(
            TZ.c.template_id == template_id, TZ.c.removed.is_(None)).order_by(TZ.c.zone_id)).all()])

    def pending_copies(self, zone_id: int | None = None) -> Deferred[list[TemplateCopy]]:
        """Copies not yet downloaded nor failed (of live templates), oldest first."""
        def thd(conn: Connection) -> list[TemplateCopy]:
            where: list[Any] = [TZ.c.state.in_(PENDING), TZ.c.removed.is_(None)]
            if zone_id is not None:
                where.append(TZ.c.zone_id == zone_id)
            return [_copy(r) for r in conn.execute(copy_select().where(*where).order_by(TZ.c.id)).all()]

        return self.pool.do(thd)

    def cas_copy_state(self, copy_id: int, expected: Iterable[str], new: str, **values: Any) -> Deferred[bool]:
        return self.cas_state(TZ, copy_id, expected, new, updated=self.now(), **values)

    def set_copy_progress(self, copy_id: int, percent: int, **values: Any) -> Deferred[bool]:
        """Progress of a copy still downloading (nothing when it has ended meanwhile)."""
        def thd(conn: Connection) -> bool:
            result = conn.execute(TZ.update().where(TZ.c.id == copy_id, TZ.c.state == DOWNLOAD_IN_PROGRESS)
                                  .values(percent=percent, updated=self.now(), **values))
            return bool(result.rowcount == 1)

        return self.pool.do(thd)

    def removed_downloads(self, zone_id: int, download_ids: Sequence[str]) -> Deferred[list[str]]:
        """Those of `download_ids` whose copy in the zone was removed (their files may be deleted)."""
        def thd(conn: Connection) -> list[str]:
            if not download_ids:
                return []
            rows = conn.execute(sa.select(TZ.c.download_id).where(
                TZ.c.zone_id == zone_id, TZ.c.download_id.in_(list(download_ids)), TZ.c.removed.is_not(None)))
            return sorted(rows.scalars())

        return self.pool.do(thd)

    def zones_of_templates(self, template_ids: Sequence[int]) -> Deferred[dict[int, list[int]]]:
        def thd(conn: Connection) -> dict[int, list[int]]:
            out: dict[int, list[int]] = {}
            if not template_ids:
                return out
            for tid, zid in conn.execute(sa.select(TZ.c.template_id, TZ.c.zone_id).where(
                    TZ.c.template_id.in_(list(template_ids)), TZ.c.removed.is_(None))).all():
                out.setdefault(tid, []).append(zid)
            return out

        return self.pool.do(thd)

    # -- permissions -------------------------------------------------------------------------------

    def permitted(self, template_id: int) -> Deferred[list[Permitted]]:
        def thd(conn: Connection) -> list[Permitted]:
            rows = conn.execute(sa.select(A.c.id, A.c.uuid, A.c.name, A.c.domain_id).select_from(
                TP.join(A, TP.c.account_id == A.c.id)).where(TP.c.template_id == template_id, A.c.removed.is_(None))
                .order_by(A.c.id)).all()
            return [Permitted(r.id, r.uuid, r.name, r.domain_id) for r in rows]

        return self.pool.do(thd)

    def is_shared_with(self, template_id: int, account_id: int) -> Deferred[bool]:
        return self.pool.do(lambda conn: conn.execute(sa.select(TP.c.id).where(
            TP.c.template_id == template_id, TP.c.account_id == account_id)).first() is not None)

    def change_permissions(self, template_id: int, op: str, account_ids: Sequence[int]) -> Deferred[None]:
        """`add`, `remove` or `reset` (every account removed) the accounts a template is shared with."""
        def thd(conn: Connection) -> None:
            if op == "reset":
                conn.execute(TP.delete().where(TP.c.template_id == template_id))
                return
            have = set(conn.execute(sa.select(TP.c.account_id).where(TP.c.template_id == template_id)).scalars())
            if op == "add":
                for aid in dict.fromkeys(account_ids):
                    if aid not in have:
                        conn.execute(TP.insert().values(template_id=template_id, account_id=aid))
            elif op == "remove":
                if account_ids:
                    conn.execute(TP.delete().where(TP.c.template_id == template_id,
                                                   TP.c.account_id.in_(list(account_ids))))
            else:
                raise ValueError(op)

        return self.pool.do(thd)
