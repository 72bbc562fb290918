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
from cloudd.db.base import (
    DBComponent,
    NotFound,
    Page,
    contains,
    insert_id,
    new_uuid,
    thd_count_and_page,
    thd_exists,
    thd_live_row,
    thd_one,
    thd_update_live,
)

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
            row = thd_one(conn, sa.select(CAT).where(CAT.c.uuid == uuid), uuid)
            return OsCategory(row.id, row.uuid, row.name)

        return self.pool.do(thd)

    def thd_get(self, conn: Connection, os_id: int) -> OsType:
        return _os(thd_live_row(conn, _select(), OS.c.id, os_id))

    def get(self, os_id: int) -> Deferred[OsType]:
        return self.pool.do(lambda conn: self.thd_get(conn, os_id))

    def get_by_uuid(self, uuid: str) -> Deferred[OsType]:
        return self.get_live(_select(), OS.c.uuid, uuid, _os)

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
            total, rows = thd_count_and_page(conn, sa.select(CAT).where(*where), [CAT.c.id], page)
            return total, [OsCategory(r.id, r.uuid, r.name) for r in rows]

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
            total, rows = thd_count_and_page(conn, _select().where(*where), [OS.c.id], page)
            return total, [_os(r) for r in rows]

        return self.pool.do(thd)

    def add(self, category_id: int, name: str, for_display: bool = True) -> Deferred[OsType]:
        def thd(conn: Connection) -> OsType:
            os_id = insert_id(conn.execute(OS.insert().values(
                uuid=new_uuid(), category_id=category_id, display_name=name, is_user_defined=1,
                for_display=int(for_display), created=self.now())))
            return self.thd_get(conn, os_id)

        return self.pool.do(thd)

    def thd_name_in_use(self, conn: Connection, name: str, except_id: int | None = None) -> bool:
        return thd_exists(conn, OS, OS.c.display_name == name, except_id=except_id)

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
                thd_update_live(conn, OS, os_id, **values)
            return self.thd_get(conn, os_id)

        return self.pool.do(thd)

    def remove(self, os_id: int) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            if not self.thd_mark_removed(conn, OS, os_id):
                raise NotFound(os_id)

        return self.pool.do(thd)
