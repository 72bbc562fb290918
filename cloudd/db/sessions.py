"""Login sessions, shared by every management-server process through the database.

A session's key is stored only as a keyed hash (`Sealer.session_hash`); a presented key is hashed
and compared, so the database alone does not let anyone act in a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import DBComponent
from cloudd.util.sealing import Sealer

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from cloudd.db.pool import DBThreadPool

S = model.sessions


@dataclass(frozen=True)
class Session:
    id: str
    key_hash: str
    user_id: int
    created: int
    last_access: int
    timeout: int


class SessionsComponent(DBComponent):
    def __init__(self, pool: DBThreadPool, clock: IReactorTime, sealer: Sealer | None = None) -> None:
        super().__init__(pool, clock)
        self.sealer = sealer or Sealer.ephemeral()

    def create(self, session_id: str, session_key: str, user_id: int, timeout: int) -> Deferred[Session]:
        key_hash = self.sealer.session_hash(session_key)

        def thd(conn: Connection) -> Session:
            now = self.now()
            conn.execute(S.insert().values(id=session_id, key_hash=key_hash, user_id=user_id,
                                           created=now, last_access=now, timeout=timeout))
            return Session(session_id, key_hash, user_id, now, now, timeout)

        return self.pool.do(thd)

    def touch(self, session_id: str) -> Deferred[Session | None]:
        """Return the live session and record the access, or None (expired sessions are deleted)."""

        def thd(conn: Connection) -> Session | None:
            row = conn.execute(sa.select(S).where(S.c.id == session_id)).first()
            if row is None:
                return None
            m = row._mapping
            now = self.now()
            if now - m["last_access"] > m["timeout"]:
                conn.execute(S.delete().where(S.c.id == session_id))
                return None
            conn.execute(S.update().where(S.c.id == session_id).values(last_access=now))
            return Session(m["id"], m["key_hash"], m["user_id"], m["created"], now, m["timeout"])

        return self.pool.do(thd)

    def key_matches(self, session: Session, presented: str) -> bool:
        """Whether a presented session key is this session's (its hash is compared in constant time)."""
        return self.sealer.session_matches(session.key_hash, presented)

    def delete(self, session_id: str) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(S.delete().where(S.c.id == session_id))

        return self.pool.do(thd)

    def expire(self) -> Deferred[int]:
        def thd(conn: Connection) -> int:
            now = self.now()
            res = conn.execute(S.delete().where(S.c.last_access + S.c.timeout < now))
            return int(res.rowcount or 0)

        return self.pool.do(thd)
