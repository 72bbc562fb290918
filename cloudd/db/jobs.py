"""Async jobs and the management-server processes that own them.

Heartbeats are written, and compared, with the database's clock (`db_now`): a management server
whose local clock is wrong neither takes over a live peer's jobs nor misses a dead one's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import (
    DBComponent,
    NotFound,
    Page,
    Scope,
    apply_page,
    apply_scope,
    contains,
    insert_id,
    new_uuid,
)
from cloudd.db.enginestrategy import db_now

J = model.async_jobs
M = model.mshosts
A = model.accounts
U = model.users
D = model.domains

PENDING, SUCCEEDED, FAILED, CANCELLED = 0, 1, 2, 3


@dataclass(frozen=True)
class Job:
    id: int
    uuid: str
    user_id: int
    user_uuid: str
    account_id: int
    account_uuid: str
    account_name: str
    domain_id: int
    domain_uuid: str
    domain_path: str
    command: str
    cmd: str
    cmd_info: str
    instance_type: str | None
    instance_uuid: str | None
    sync_object: str | None
    status: int
    proc_status: int
    result_code: int
    result: str | None
    msid: int | None
    ms_uuid: str | None
    ms_name: str | None
    created: int
    completed: int | None


@dataclass(frozen=True)
class MsHost:
    id: int
    uuid: str
    name: str
    runid: str


def _select() -> sa.Select:
    return sa.select(
        J, U.c.uuid.label("user_uuid"), A.c.uuid.label("account_uuid"), A.c.name.label("account_name"),
        D.c.uuid.label("domain_uuid"), D.c.path.label("domain_path"), M.c.uuid.label("ms_uuid"),
        M.c.name.label("ms_name"),
    ).select_from(
        J.join(U, J.c.user_id == U.c.id).join(A, J.c.account_id == A.c.id).join(D, J.c.domain_id == D.c.id)
        .outerjoin(M, J.c.msid == M.c.id)
    )


def _job(m: sa.RowMapping) -> Job:
    return Job(
        id=m["id"], uuid=m["uuid"], user_id=m["user_id"], user_uuid=m["user_uuid"], account_id=m["account_id"],
        account_uuid=m["account_uuid"], account_name=m["account_name"], domain_id=m["domain_id"],
        domain_uuid=m["domain_uuid"], domain_path=m["domain_path"], command=m["command"], cmd=m["cmd"],
        cmd_info=m["cmd_info"], instance_type=m["instance_type"], instance_uuid=m["instance_uuid"],
        sync_object=m["sync_object"], status=m["status"], proc_status=m["proc_status"],
        result_code=m["result_code"], result=m["result"], msid=m["msid"], ms_uuid=m["ms_uuid"],
        ms_name=m["ms_name"], created=m["created"], completed=m["completed"],
    )


class JobsComponent(DBComponent):
    def thd_get(self, conn: Connection, job_id: int) -> Job:
        row = conn.execute(_select().where(J.c.id == job_id)).first()
        if row is None:
            raise NotFound(job_id)
        return _job(row._mapping)

    def get_by_uuid(self, uuid: str) -> Deferred[Job]:
        def thd(conn: Connection) -> Job:
            row = conn.execute(_select().where(J.c.uuid == uuid)).first()
            if row is None:
                raise NotFound(uuid)
            return _job(row._mapping)

        return self.pool.do(thd)

    def create(self, *, user_id: int, account_id: int, domain_id: int, command: str, cmd: str, cmd_info: str,
               instance_type: str | None, instance_uuid: str | None, sync_object: str | None,
               msid: int) -> Deferred[Job]:
        def thd(conn: Connection) -> Job:
            jid = insert_id(conn.execute(J.insert().values(
                uuid=new_uuid(), user_id=user_id, account_id=account_id, domain_id=domain_id, command=command,
                cmd=cmd, cmd_info=cmd_info, instance_type=instance_type, instance_uuid=instance_uuid,
                sync_object=sync_object, status=PENDING, proc_status=0, result_code=0, msid=msid,
                created=self.now())))
            return self.thd_get(conn, int(jid))

        return self.pool.do(thd)

    def waiting_behind(self, job_id: int, sync_object: str) -> Deferred[int]:
        """How many unfinished jobs on `sync_object`, from any process, were created before `job_id`."""

        def thd(conn: Connection) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(J).where(
                J.c.sync_object == sync_object, J.c.status == PENDING, J.c.id < job_id)).scalar_one())

        return self.pool.do(thd)

    def complete(self, job_id: int, status: int, result_code: int, result: str | None) -> Deferred[bool]:
        """Finish a job once; a second completion changes nothing and returns False."""

        def thd(conn: Connection) -> bool:
            res = conn.execute(J.update().where(J.c.id == job_id, J.c.status == PENDING).values(
                status=status, result_code=result_code, result=result, completed=self.now()))
            return bool(res.rowcount)

        return self.pool.do(thd)

    def search(self, scope: Scope, *, uuid: str | None = None, start: int | None = None, keyword: str | None = None,
             page: Page | None = None) -> Deferred[tuple[int, list[Job]]]:
        def thd(conn: Connection) -> tuple[int, list[Job]]:
            q = apply_scope(_select(), scope, J.c.account_id, J.c.domain_id, D)
            if uuid is not None:
                q = q.where(J.c.uuid == uuid)
            if start is not None:
                q = q.where(J.c.created >= start)
            if keyword:
                q = q.where(sa.or_(contains(J.c.command, keyword), contains(J.c.cmd, keyword)))
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(apply_page(q.order_by(J.c.id.desc()), page or Page())).all()
            return int(total), [_job(r._mapping) for r in rows]

        return self.pool.do(thd)

    def expunge_older_than(self, cutoff: int) -> Deferred[int]:
        def thd(conn: Connection) -> int:
            res = conn.execute(J.delete().where(J.c.created < cutoff, J.c.status != PENDING))
            return int(res.rowcount or 0)

        return self.pool.do(thd)

    def expunge_expired(self, max_age: int) -> Deferred[int]:
        """Delete the finished jobs created more than `max_age` seconds ago by the database's clock, so
        a server whose own clock is far ahead does not delete every finished job at once."""
        def thd(conn: Connection) -> int:
            res = conn.execute(J.delete().where(J.c.created < db_now() - max_age, J.c.status != PENDING))
            return int(res.rowcount or 0)

        return self.pool.do(thd)

    # --- management-server processes ------------------------------------------------------------

    def db_time(self) -> Deferred[int]:
        """The database's clock, in seconds since the epoch."""

        def thd(conn: Connection) -> int:
            return int(conn.execute(sa.select(db_now())).scalar_one())

        return self.pool.do(thd)

    def register_mshost(self, uuid: str, name: str, runid: str) -> Deferred[MsHost]:
        def thd(conn: Connection) -> MsHost:
            row = conn.execute(sa.select(M).where(M.c.uuid == uuid)).first()
            if row is None:
                mid = insert_id(conn.execute(M.insert().values(uuid=uuid, name=name, runid=runid, state="Up",
                                                     last_heartbeat=db_now())))
            else:
                mid = row._mapping["id"]
                conn.execute(M.update().where(M.c.id == mid).values(name=name, runid=runid, state="Up",
                                                                    last_heartbeat=db_now()))
            return MsHost(int(mid), uuid, name, runid)

        return self.pool.do(thd)

    def heartbeat(self, msid: int) -> Deferred[int]:
        """Record that this server is alive, at the database's time, which is returned."""

        def thd(conn: Connection) -> int:
            now = int(conn.execute(sa.select(db_now())).scalar_one())
            conn.execute(M.update().where(M.c.id == msid).values(last_heartbeat=now, state="Up"))
            return now

        return self.pool.do(thd)

    def mark_down(self, msid: int) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(M.update().where(M.c.id == msid).values(state="Down"))

        return self.pool.do(thd)

    def fail_orphans(self, own_msid: int, threshold: int, text: str,
                     include_own: bool = True) -> Deferred[list[Job]]:
        """Fail every unfinished job owned by a dead process: an earlier run of this server (at start,
        before this run owns any job, `include_own`), or a peer whose last heartbeat is more than
        `threshold` seconds old by the database's clock, or that is marked Down. Returns the jobs as
        they were before failing."""

        def thd(conn: Connection) -> list[Job]:
            stale_before = int(conn.execute(sa.select(db_now())).scalar_one()) - threshold
            peers_dead = sa.and_(M.c.id != own_msid,
                                 sa.or_(M.c.last_heartbeat < stale_before, M.c.state == "Down"))
            dead = sa.select(M.c.id).where(sa.or_(M.c.id == own_msid, peers_dead) if include_own else peers_dead)
            orphan_filter = sa.and_(J.c.status == PENDING, sa.or_(J.c.msid.in_(dead), J.c.msid.is_(None)))
            jobs = [_job(r._mapping) for r in conn.execute(_select().where(orphan_filter))]
            if jobs:
                _thd_fail(conn, [j.id for j in jobs], text, self.now())
            return jobs

        return self.pool.do(thd)

    def fail_jobs(self, job_ids: list[int], text: str) -> Deferred[list[int]]:
        """Fail those of `job_ids` that are still unfinished with 530 and `text`; returns their ids."""

        def thd(conn: Connection) -> list[int]:
            if not job_ids:
                return []
            pending = [int(i) for i in conn.execute(sa.select(J.c.id).where(
                J.c.id.in_(job_ids), J.c.status == PENDING)).scalars()]
            if pending:
                _thd_fail(conn, pending, text, self.now())
            return pending

        return self.pool.do(thd)


def _thd_fail(conn: Connection, job_ids: list[int], text: str, now: int) -> None:
    result = json.dumps({"errorcode": 530, "errortext": text}, ensure_ascii=False)
    conn.execute(J.update().where(J.c.id.in_(job_ids), J.c.status == PENDING).values(
        status=FAILED, result_code=530, result=result, completed=now))
