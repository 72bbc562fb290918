"""Guest OS categories and types (listOsCategories, listOsTypes, addGuestOs ...): the OS types component.

The seeded rows are CloudStack's list (`cloudd.db.ostypes_data`); an operator may add, rename and
remove types of his own (`is_user_defined`), never the seeded ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import DBComponent, NotFound, Page, apply_page, contains, insert_id, new_uuid

CAT, OS = model.guest_os_categories, model.guest_os
ALL_ROWS = Page()


@dataclass(frozen=True)
class OsCategory:
    id: int
    uuid: str
    name: str


@dataclass(frozen=True)
class OsType:
    id: int
    uuid: str
    name: str
    category_id: int
    category_uuid: str
    category_name: str
    is_user_defined: bool
    for_display: bool
    created: int


def _select() -> sa.Select:
    return sa.select(OS, CAT.c.uuid.label("category_uuid"), CAT.c.name.label("category_name")).select_from(
        OS.join(CAT, OS.c.category_id == CAT.c.id))


def _os(r: Any) -> OsType:
    return OsType(r.id, r.uuid, r.display_name, r.category_id, r.category_uuid, r.category_name,
                  bool(r.is_user_defined), bool(r.for_display), r.created)


class OsTypesComponent(DBComponent):
    def get_category_by_uuid(self, uuid: str) -> Deferred[OsCategory]:
        def thd(conn: Connection) -> OsCategory:
            row = conn.execute(sa.select(CAT).where(CAT.c.uuid == uuid)).first()
            if row is None:
                raise NotFound(uuid)
            return OsCategory(row.id, row.uuid, row.name)

        return self.pool.do(thd)

    def thd_get(self, conn: Connection, os_id: int) -> OsType:
        row = conn.execute(_select().where(OS.c.id == os_id, OS.c.removed.is_(None))).first()
        if row is None:
            raise NotFound(os_id)
        return _os(row)

    def get(self, os_id: int) -> Deferred[OsType]:
        return self.pool.do(lambda conn: self.thd_get(conn, os_id))

    def get_by_uuid(self, uuid: str) -> Deferred[OsType]:
        def thd(conn: Connection) -> OsType:
            row = conn.execute(_select().where(OS.c.uuid == uuid, OS.c.removed.is_(None))).first()
            if row is None:
                raise NotFound(uuid)
            return _os(row)

        return self.pool.do(thd)

    def search_categories(self, *, category_id: int | None = None, name: str | None = None,
                          keyword: str | None = None,
                          page: Page = ALL_ROWS) -> Deferred[tuple[int, list[OsCategory]]]:
        def thd(conn: Connection) -> tuple[int, list[OsCategory]]:
            where: list[Any] = []
            if category_id is not None:
                where.append(CAT.c.id == category_id)
            if name is not None:
                where.append(CAT.c.name == name)
            if keyword:
                where.append(contains(CAT.c.name, keyword))
            total = conn.execute(sa.select(sa.func.count()).select_from(CAT).where(*where)).scalar_one()
            rows = conn.execute(apply_page(sa.select(CAT).where(*where).order_by(CAT.c.id), page)).all()
            return int(total), [OsCategory(r.id, r.uuid, r.name) for r in rows]

        return self.pool.do(thd)

    def search(self, *, os_id: int | None = None, category_id: int | None = None,
               description: str | None = None,
               keyword: str | None = None, for_display: bool | None = None,
               page: Page = ALL_ROWS) -> Deferred[tuple[int, list[OsType]]]:
        def thd(conn: Connection) -> tuple[int, list[OsType]]:
            where: list[Any] = [OS.c.removed.is_(None)]
            if os_id is not None:
                where.append(OS.c.id == os_id)
            if category_id is not None:
                where.append(OS.c.category_id == category_id)
            if description is not None:
                where.append(contains(OS.c.display_name, description))
            if keyword:
                where.append(contains(OS.c.display_name, keyword))
            if for_display is not None:
                where.append(OS.c.for_display == int(for_display))
            total = conn.execute(sa.select(sa.func.count()).select_from(OS).where(*where)).scalar_one()
            rows = conn.execute(apply_page(_select().where(*where).order_by(OS.c.id), page)).all()
            return int(total), [_os(r) for r in rows]

        return self.pool.do(thd)

    def add(self, category_id: int, name: str, for_display: bool = True) -> Deferred[OsType]:
        def thd(conn: Connection) -> OsType:
            os_id = insert_id(conn.execute(OS.insert().values(
                uuid=new_uuid(), category_id=category_id, display_name=name, is_user_defined=1,
                for_display=int(for_display), created=self.now())))
            return self.thd_get(conn, os_id)

        return self.pool.do(thd)

    def thd_name_in_use(self, conn: Connection, name: str, except_id: int | None = None) -> bool:
        q = sa.select(OS.c.id).where(OS.c.display_name == name, OS.c.removed.is_(None))
        if except_id is not None:
            q = q.where(OS.c.id != except_id)
        return conn.execute(q).first() is not None

    def name_in_use(self, name: str, except_id: int | None = None) -> Deferred[bool]:
        return self.pool.do(lambda conn: self.thd_name_in_use(conn, name, except_id))

    def update(self, os_id: int, *, name: str | None = None,
               for_display: bool | None = None) -> Deferred[OsType]:
        def thd(conn: Connection) -> OsType:
            values: dict[str, Any] = {}
            if name is not None:
                values["display_name"] = name
            if for_display is not None:
                values["for_display"] = int(for_display)
            if values:
                conn.execute(OS.update().where(OS.c.id == os_id, OS.c.removed.is_(None)).values(**values))
            return self.thd_get(conn, os_id)

        return self.pool.do(thd)

    def remove(self, os_id: int) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            result = conn.execute(OS.update().where(OS.c.id == os_id, OS.c.removed.is_(None))
                                  .values(removed=self.now()))
            if result.rowcount != 1:
                raise NotFound(os_id)

        return self.pool.do(thd)
