"""Event records (what listEvents shows)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import DBComponent, Page, Scope, apply_page, apply_scope, contains, insert_id, new_uuid

E = model.events
A = model.accounts
D = model.domains
U = model.users


@dataclass(frozen=True)
class Event:
    id: int
    uuid: str
    type: str
    state: str
    level: str
    description: str
    username: str | None
    account_id: int
    account_name: str
    domain_id: int
    domain_uuid: str
    domain_name: str
    domain_path: str
    resource_type: str | None
    resource_uuid: str | None
    resource_name: str | None
    start_id: int | None
    parent_uuid: str | None
    archived: bool
    created: int


@dataclass(frozen=True)
class NewEvent:
    type: str
    state: str
    level: str
    description: str
    user_id: int | None
    account_id: int
    domain_id: int
    resource_type: str | None = None
    resource_uuid: str | None = None
    resource_name: str | None = None
    start_id: int | None = None


def _select() -> sa.Select:
    parent = E.alias("parent")
    return sa.select(
        E, A.c.name.label("account_name"), D.c.uuid.label("domain_uuid"), D.c.name.label("domain_name"),
        D.c.path.label("domain_path"), U.c.username.label("username"), parent.c.uuid.label("parent_uuid"),
    ).select_from(
        E.join(A, E.c.account_id == A.c.id).join(D, E.c.domain_id == D.c.id)
        .outerjoin(U, E.c.user_id == U.c.id).outerjoin(parent, E.c.start_id == parent.c.id)
    )


def _event(m: sa.RowMapping) -> Event:
    return Event(
        id=m["id"], uuid=m["uuid"], type=m["type"], state=m["state"], level=m["level"],
        description=m["description"], username=m["username"], account_id=m["account_id"],
        account_name=m["account_name"], domain_id=m["domain_id"], domain_uuid=m["domain_uuid"],
        domain_name=m["domain_name"], domain_path=m["domain_path"], resource_type=m["resource_type"],
        resource_uuid=m["resource_uuid"], resource_name=m["resource_name"], start_id=m["start_id"],
        parent_uuid=m["parent_uuid"], archived=bool(m["archived"]), created=m["created"],
    )


class EventsComponent(DBComponent):
    def thd_record(self, conn: Connection, ev: NewEvent) -> int:
        return int(insert_id(conn.execute(E.insert().values(
            uuid=new_uuid(), type=ev.type, state=ev.state, level=ev.level, description=ev.description,
            user_id=ev.user_id, account_id=ev.account_id, domain_id=ev.domain_id,
            resource_type=ev.resource_type, resource_uuid=ev.resource_uuid, resource_name=ev.resource_name,
            start_id=ev.start_id, archived=0, created=self.now()))))

    def record(self, ev: NewEvent) -> Deferred[int]:
        return self.pool.do(lambda conn: self.thd_record(conn, ev))

    def search(self, scope: Scope, *, uuid: str | None = None, type: str | None = None, level: str | None = None,
             start: int | None = None, end: int | None = None, keyword: str | None = None,
             resource_uuid: str | None = None, resource_type: str | None = None, start_uuid: str | None = None,
             archived: bool = False, page: Page | None = None) -> Deferred[tuple[int, list[Event]]]:
        def thd(conn: Connection) -> tuple[int, list[Event]]:
            q = apply_scope(_select(), scope, E.c.account_id, E.c.domain_id, D)
            q = q.where(E.c.archived == int(archived))
            if uuid is not None:
                q = q.where(E.c.uuid == uuid)
            if type is not None:
                q = q.where(E.c.type == type)
            if level is not None:
                q = q.where(E.c.level == level)
            if start is not None:
                q = q.where(E.c.created >= start)
            if end is not None:
                q = q.where(E.c.created <= end)
            if keyword:
                q = q.where(sa.or_(contains(E.c.type, keyword), contains(E.c.description, keyword),
                                   contains(E.c.level, keyword)))
            if resource_uuid is not None:
                q = q.where(E.c.resource_uuid == resource_uuid)
            if resource_type is not None:
                q = q.where(E.c.resource_type == resource_type)
            if start_uuid is not None:
                parent = sa.select(E.c.id).where(E.c.uuid == start_uuid).scalar_subquery()
                q = q.where(sa.or_(E.c.start_id == parent, E.c.id == parent))
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(apply_page(q.order_by(E.c.id.desc()), page or Page())).all()
            return int(total), [_event(r._mapping) for r in rows]

        return self.pool.do(thd)
