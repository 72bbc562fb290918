"""The domain tree."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import (
    Conflict,
    DBComponent,
    NotFound,
    Page,
    apply_page,
    contains,
    escape_like,
    insert_id,
    new_uuid,
    thd_lock_domain,
)

T = model.domains


@dataclass(frozen=True)
class Domain:
    id: int
    uuid: str
    name: str
    parent_id: int | None
    path: str
    level: int
    network_domain: str | None
    state: str
    created: int
    parent_uuid: str | None = None
    parent_name: str | None = None
    has_child: bool = False


def _select() -> sa.Select:
    parent = T.alias("parent")
    child = T.alias("child")
    has_child = (
        sa.select(sa.func.count())
        .select_from(child)
        .where(child.c.parent_id == T.c.id, child.c.removed.is_(None))
        .scalar_subquery()
    )
    return (
        sa.select(T, parent.c.uuid.label("parent_uuid"), parent.c.name.label("parent_name"),
                  has_child.label("children"))
        .select_from(T.outerjoin(parent, T.c.parent_id == parent.c.id))
        .where(T.c.removed.is_(None))
    )


def _row(r: sa.Row) -> Domain:
    m = r._mapping
    return Domain(
        id=m["id"], uuid=m["uuid"], name=m["name"], parent_id=m["parent_id"], path=m["path"],
        level=m["level"], network_domain=m["network_domain"], state=m["state"], created=m["created"],
        parent_uuid=m["parent_uuid"], parent_name=m["parent_name"], has_child=bool(m["children"]),
    )


def _child_path(parent_path: str, name: str) -> str:
    return parent_path + name + "/"


class DomainsComponent(DBComponent):
    def get(self, domain_id: int) -> Deferred[Domain]:
        return self.pool.do(lambda conn: self.thd_get(conn, domain_id))

    def thd_get(self, conn: Connection, domain_id: int) -> Domain:
        row = conn.execute(_select().where(T.c.id == domain_id)).first()
        if row is None:
            raise NotFound(domain_id)
        return _row(row)

    def get_by_uuid(self, uuid: str) -> Deferred[Domain]:
        def thd(conn: Connection) -> Domain:
            row = conn.execute(_select().where(T.c.uuid == uuid)).first()
            if row is None:
                raise NotFound(uuid)
            return _row(row)

        return self.pool.do(thd)

    def get_by_path(self, path: str) -> Deferred[Domain]:
        def thd(conn: Connection) -> Domain:
            row = conn.execute(_select().where(T.c.path == path)).first()
            if row is None:
                raise NotFound(path)
            return _row(row)

        return self.pool.do(thd)

    def thd_create_root(self, conn: Connection) -> int:
        return int(insert_id(conn.execute(T.insert().values(
            uuid=new_uuid(), name="ROOT", parent_id=None, path="/", level=0, state="Active",
            created=self.now()))))

    def create(self, name: str, parent: Domain, network_domain: str | None,
               uuid: str | None = None) -> Deferred[Domain]:
        def thd(conn: Connection) -> Domain:
            path = _child_path(parent.path, name)
            thd_lock_domain(conn, parent.id)
            clash = conn.execute(sa.select(T.c.id).where(
                T.c.parent_id == parent.id, sa.func.lower(T.c.name) == name.lower(),
                T.c.removed.is_(None))).first()
            if clash is not None:
                raise Conflict(f"Domain with name {name} already exists for the parent id={parent.uuid}")
            if uuid is not None and conn.execute(sa.select(T.c.id).where(T.c.uuid == uuid)).first():
                raise Conflict(f"Domain with uuid {uuid} already exists")
            new_id = insert_id(conn.execute(T.insert().values(
                uuid=uuid or new_uuid(), name=name, parent_id=parent.id, path=path,
                level=parent.level + 1, network_domain=network_domain, state="Active",
                created=self.now())))
            return self.thd_get(conn, int(new_id))

        return self.pool.do(thd)

    def search(self, subtree: str | None = None, exact_id: int | None = None, name: str | None = None,
             keyword: str | None = None, level: int | None = None, parent_id: int | None = None,
             below: str | None = None, page: Page | None = None) -> Deferred[tuple[int, list[Domain]]]:
        """Domains, filtered: `subtree` = a path and everything below it; `below` = strictly below."""

        def thd(conn: Connection) -> tuple[int, list[Domain]]:
            q = _select()
            if subtree is not None:
                q = q.where(T.c.path.like(escape_like(subtree) + "%", escape="\\"))
            if below is not None:
                q = q.where(T.c.path.like(escape_like(below) + "_%", escape="\\"))
            if exact_id is not None:
                q = q.where(T.c.id == exact_id)
            if name is not None:
                q = q.where(T.c.name == name)
            if keyword:
                q = q.where(contains(T.c.name, keyword))
            if level is not None:
                q = q.where(T.c.level == level)
            if parent_id is not None:
                q = q.where(T.c.parent_id == parent_id)
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(apply_page(q.order_by(T.c.path), page or Page())).all()
            return int(total), [_row(r) for r in rows]

        return self.pool.do(thd)

    def update(self, domain: Domain, name: str | None, network_domain: str | None) -> Deferred[Domain]:
        def thd(conn: Connection) -> Domain:
            values: dict[str, object] = {}
            if network_domain is not None:
                values["network_domain"] = network_domain
            if name is not None and name != domain.name:
                if domain.parent_id is None:
                    raise Conflict("ROOT domain can not be edited with a new name")
                thd_lock_domain(conn, domain.parent_id)
                clash = conn.execute(sa.select(T.c.id).where(
                    T.c.parent_id == domain.parent_id, sa.func.lower(T.c.name) == name.lower(),
                    T.c.id != domain.id, T.c.removed.is_(None))).first()
                if clash is not None:
                    raise Conflict(f"Domain with name {name} already exists for the parent")
                old = domain.path
                new = old[: len(old) - len(domain.name) - 1] + name + "/"
                values["name"] = name
                # rename the whole subtree's paths
                rows = conn.execute(sa.select(T.c.id, T.c.path).where(
                    T.c.path.like(escape_like(old) + "_%", escape="\\"))).all()
                for rid, rpath in rows:
                    conn.execute(T.update().where(T.c.id == rid).values(path=new + rpath[len(old):]))
                values["path"] = new
            if values:
                conn.execute(T.update().where(T.c.id == domain.id).values(**values))
            return self.thd_get(conn, domain.id)

        return self.pool.do(thd)

    def set_state(self, domain_id: int, state: str) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(T.update().where(T.c.id == domain_id).values(state=state))

        return self.pool.do(thd)

    def thd_set_state(self, conn: Connection, domain_id: int, state: str) -> None:
        conn.execute(T.update().where(T.c.id == domain_id).values(state=state))

    def remove(self, domain_id: int) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(T.update().where(T.c.id == domain_id).values(removed=self.now(), state="Inactive"))

        return self.pool.do(thd)
