"""Async jobs: created in the request, run by this process, finished exactly once.

A job serialises on its sync object (one running job per resource); its parameters are stored
without secrets, and the job body receives the full set in memory. On start the runner registers
this management server, fails every job left unfinished by a dead process (an earlier run of this
server, or a peer whose heartbeat stopped) with 530, and returns the resources those jobs held to
a stable state through the recovery hooks of `cloudd.jobs.recovery`.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredLock, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import Logger

from cloudd.api.context import CallContext
from cloudd.api.errors import ApiError
from cloudd.api.results import Prepared, job_result_of
from cloudd.api.service import ApiService, EventInfo
from cloudd.db.jobs import FAILED, SUCCEEDED, Job
from cloudd.jobs import recovery

if TYPE_CHECKING:
    from cloudd.db.jobs import MsHost

RESTART_TEXT = "job cancelled because of management server restart or shutdown"
PEER_TEXT = "job cancelled because its management server stopped heart-beating"
# how often a job waiting behind another process's job on the same object looks again
SYNC_POLL_SECONDS = 0.5


class JobRunner(MultiService):
    log = Logger()

    def __init__(self, api: ApiService, ms_uuid: str, name: str | None = None) -> None:
        super().__init__()
        self.api = api
        self.ms_uuid = ms_uuid
        self.ms_name = name or socket.gethostname()
        self.mshost: MsHost | None = None
        self._locks: dict[str, DeferredLock] = {}
        self._running: set[Deferred[None]] = set()
        api.jobs = self

    async def prepare(self, runid: str) -> list[Job]:
        """Register this server and fail orphaned jobs; called before the API listens."""
        db = self.api.db
        self.mshost = await db.jobs.register_mshost(self.ms_uuid, self.ms_name, runid)
        threshold = self.api.settings.int("cluster.heartbeat.threshold") / 1000.0
        stale_before = int(self.api.clock.seconds() - threshold)
        orphans = await db.jobs.fail_orphans(self.mshost.id, stale_before, RESTART_TEXT)
        for job in orphans:
            self.log.warn("failed orphaned job {job} ({command})", job=job.uuid, command=job.command)
            try:
                await recovery.recover(self.api, job)
            except Exception:
                self.log.failure("while returning the resources of job {job} to a stable state", job=job.uuid)
        interval = self.api.settings.int("cluster.heartbeat.interval") / 1000.0
        heartbeat = TimerService(max(interval, 0.1), self._heartbeat)
        heartbeat.clock = self.api.clock
        heartbeat.setName("heartbeat")
        heartbeat.setServiceParent(self)
        gc = TimerService(60, self._gc)
        gc.clock = self.api.clock
        gc.setName("job-gc")
        gc.setServiceParent(self)
        return orphans

    def _heartbeat(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._beat())

    async def _beat(self) -> None:
        """Heart-beat, then fail the jobs of peers that stopped heart-beating (never raises)."""
        assert self.mshost is not None
        try:
            await self.api.db.jobs.heartbeat(self.mshost.id)
            threshold = self.api.settings.int("cluster.heartbeat.threshold") / 1000.0
            stale_before = int(self.api.clock.seconds() - threshold)
            for job in await self.api.db.jobs.fail_orphans(self.mshost.id, stale_before, PEER_TEXT,
                                                            include_own=False):
                self.log.warn("failed job {job} ({command}) of a management server that stopped heart-beating",
                              job=job.uuid, command=job.command)
                await recovery.recover(self.api, job)
        except Exception:
            self.log.failure("heartbeat failed")

    def _gc(self) -> Deferred[None]:
        cutoff = int(self.api.clock.seconds() - self.api.settings.int("job.expire.minutes") * 60)
        async def clean() -> None:
            try:
                await self.api.db.jobs.expunge_older_than(cutoff)
                await self.api.db.sessions.expire()
            except Exception:
                self.log.failure("job and session clean-up failed")

        return Deferred.fromCoroutine(clean())

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        if self._running:
            await gatherResults(list(self._running), consumeErrors=True)
        if self.mshost is not None:
            await self.api.db.jobs.mark_down(self.mshost.id)

    def _lock(self, key: str) -> DeferredLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        return lock

    async def submit(self, ctx: CallContext, prepared: Prepared) -> str:
        """Store the job, record its Scheduled event, start it; returns the job id."""
        assert self.mshost is not None and ctx.command.run is not None
        cmd = ctx.command
        caller = ctx.caller
        job = await self.api.db.jobs.create(
            user_id=caller.user.id, account_id=caller.account.id, domain_id=caller.account.domain_id,
            command=cmd.name, cmd=cmd.java_class, cmd_info=self.api.cmd_info(cmd, ctx.params),
            instance_type=prepared.instance_type, instance_uuid=prepared.instance_uuid,
            sync_object=prepared.sync_object, msid=self.mshost.id)
        ctx.job_uuid = job.uuid
        info = self._event_info(ctx, prepared, f"{cmd.name} is scheduled")
        start_id = await self.api.record_event(caller, cmd.event, "Scheduled", info) if cmd.event else None
        d = Deferred.fromCoroutine(self._run(ctx, prepared, job, start_id))
        self._running.add(d)

        def done(result: object) -> object:
            self._running.discard(d)
            return result

        d.addBoth(done)
        d.addErrback(lambda f: self.log.failure("job {job} crashed", f, job=job.uuid))
        return job.uuid

    @staticmethod
    def _event_info(ctx: CallContext, prepared: Prepared, text: str) -> EventInfo:
        owner = prepared.state.get("event_owner")
        return EventInfo(text, prepared.instance_type, prepared.instance_uuid,
                         prepared.state.get("resource_name"), owner)

    async def _run(self, ctx: CallContext, prepared: Prepared, job: Job, start_id: int | None) -> None:
        cmd = ctx.command
        assert cmd.run is not None
        key = prepared.sync_object or f"job:{job.uuid}"
        lock = self._lock(key)
        await lock.acquire()
        try:
            if prepared.sync_object is not None:
                # another management server may hold the same object: wait for its earlier jobs
                while await self.api.db.jobs.waiting_behind(job.id, prepared.sync_object):
                    await deferLater(self.api.clock, SYNC_POLL_SECONDS)
            if cmd.event:
                await self.api.record_event(ctx.caller, cmd.event, "Started",
                                            self._event_info(ctx, prepared, f"{cmd.name} has started"),
                                            start_id=start_id)
            try:
                result = await cmd.run(ctx, prepared)
            except Exception as exc:
                err = exc if isinstance(exc, ApiError) else None
                if err is None:
                    self.log.failure("job {job} ({command}) failed", job=job.uuid, command=cmd.name)
                    err = self.api.translate(exc, None)
                    err.text = str(exc) or err.text
                body = {"errorcode": err.code, "errortext": err.text}
                await self.api.db.jobs.complete(job.id, FAILED, err.code, json.dumps(body, ensure_ascii=False))
                if cmd.event:
                    info = self._event_info(ctx, prepared, f"Error while {cmd.name}: {err.text}")
                    await self.api.record_event(ctx.caller, cmd.event, "Completed", info, level="ERROR",
                                                start_id=start_id)
                return
            await self.api.db.jobs.complete(job.id, SUCCEEDED, 0,
                                            json.dumps(job_result_of(result), ensure_ascii=False))
            if cmd.event:
                done = ctx.extras.get("event")
                info = done if isinstance(done, EventInfo) else self._event_info(
                    ctx, prepared, f"Successfully completed {cmd.name}")
                await self.api.record_event(ctx.caller, cmd.event, "Completed", info, start_id=start_id)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)
