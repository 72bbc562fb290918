"""Stored values of global settings (the defaults live in `cloudd.settings`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import DBComponent

C = model.configuration


class ConfigurationComponent(DBComponent):
    def all(self) -> Deferred[dict[str, str | None]]:
        def thd(conn: Connection) -> dict[str, str | None]:
            return {n: v for n, v in conn.execute(sa.select(C.c.name, C.c.value))}

        return self.pool.do(thd)

    def set(self, name: str, value: str | None) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            updated = conn.execute(C.update().where(C.c.name == name).values(value=value, updated=self.now()))
            if not updated.rowcount:
                conn.execute(C.insert().values(name=name, value=value, updated=self.now()))

        return self.pool.do(thd)

    def reset(self, name: str) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(C.delete().where(C.c.name == name))

        return self.pool.do(thd)
