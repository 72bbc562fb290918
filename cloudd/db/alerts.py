"""The alerts table (listAlerts, archiveAlerts, deleteAlerts): what operators must look at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import DBComponent, Page, contains, insert_id, new_uuid, thd_count_and_page

T = model.alerts


@dataclass(frozen=True)
class Alert:
    id: int
    uuid: str
    type: int
    name: str
    subject: str
    zone_id: int | None
    pod_id: int | None
    cluster_id: int | None
    archived: bool
    created: int


def _alert(row: Any) -> Alert:
    return Alert(row.id, row.uuid, row.type, row.name, row.subject, row.zone_id, row.pod_id, row.cluster_id,
                 bool(row.archived), row.created)


@dataclass(frozen=True)
class AlertFilter:
    uuid: str | None = None
    type: int | None = None
    name: str | None = None
    keyword: str | None = None


class AlertsComponent(DBComponent):
    def record(self, type: int, name: str, subject: str, zone_id: int | None = None, pod_id: int | None = None,
               cluster_id: int | None = None) -> Deferred[Alert]:
        def thd(conn: Connection) -> Alert:
            uuid = new_uuid()
            result = conn.execute(T.insert().values(uuid=uuid, type=type, name=name, subject=subject[:999],
                                                    zone_id=zone_id, pod_id=pod_id, cluster_id=cluster_id,
                                                    archived=0, created=self.now()))
            row = conn.execute(sa.select(T).where(T.c.id == insert_id(result))).one()
            return _alert(row)

        return self.pool.do(thd)

    def get_by_uuid(self, uuid: str) -> Deferred[Alert]:
        """One alert that was not deleted, archived or not (NotFound otherwise)."""
        return self.get_live(sa.select(T), T.c.uuid, uuid, _alert)

    def search(self, f: AlertFilter, page: Page) -> Deferred[tuple[int, list[Alert]]]:
        def thd(conn: Connection) -> tuple[int, list[Alert]]:
            q = sa.select(T).where(T.c.removed.is_(None), T.c.archived == 0)
            if f.uuid is not None:
                q = q.where(T.c.uuid == f.uuid)
            if f.type is not None:
                q = q.where(T.c.type == f.type)
            if f.name is not None:
                q = q.where(T.c.name == f.name)
            if f.keyword:
                q = q.where(contains(T.c.subject, f.keyword))
            total, rows = thd_count_and_page(conn, q, [T.c.created.desc(), T.c.id.desc()], page)
            return total, [_alert(r) for r in rows]

        return self.pool.do(thd)

    def _select(self, uuids: list[str] | None, type: int | None, start: int | None, end: int | None) -> Any:
        cond: list[Any] = [T.c.removed.is_(None)]
        if uuids is not None:
            cond.append(T.c.uuid.in_(uuids))
        if type is not None:
            cond.append(T.c.type == type)
        if start is not None:
            cond.append(T.c.created >= start)
        if end is not None:
            cond.append(T.c.created <= end)
        return sa.and_(*cond)

    @staticmethod
    def _thd_some_missing(conn: Connection, cond: Any, uuids: list[str] | None) -> bool:
        if uuids is None:
            return False
        found = conn.execute(sa.select(sa.func.count()).select_from(T).where(cond)).scalar_one()
        return int(found) < len(set(uuids))

    def archive(self, uuids: list[str] | None, type: int | None, start: int | None, end: int | None,
                require_all: bool = False) -> Deferred[int]:
        """Archive the alerts that match (all of them when nothing is given); how many. With `require_all`,
        -1 and nothing changed when some of `uuids` names no alert that could be (as CloudStack)."""
        def thd(conn: Connection) -> int:
            cond = self._select(uuids, type, start, end)
            if require_all and self._thd_some_missing(conn, sa.and_(cond, T.c.archived == 0), uuids):
                return -1
            return int(conn.execute(T.update().where(cond, T.c.archived == 0).values(archived=1)).rowcount)

        return self.pool.do(thd)

    def delete(self, uuids: list[str] | None, type: int | None, start: int | None, end: int | None,
               require_all: bool = False) -> Deferred[int]:
        """Remove the alerts that match; how many. `require_all` as for `archive`."""
        def thd(conn: Connection) -> int:
            cond = self._select(uuids, type, start, end)
            if require_all and self._thd_some_missing(conn, cond, uuids):
                return -1
            return int(conn.execute(T.update().where(cond).values(removed=self.now())).rowcount)

        return self.pool.do(thd)
