"""Async jobs: created in the request, run by this process, finished exactly once.

A job serialises on its sync object (one running job per resource); its parameters are stored
without secrets, and the job body receives the full set in memory. On start the runner registers
this management server, fails every job left unfinished by a dead process (an earlier run of this
server, or a peer whose heartbeat stopped) with 530, and returns the resources those jobs held to
a stable state through the recovery hooks of `cloudd.jobs.recovery`.

Running, the runner heart-beats every `cluster.heartbeat.interval` and:

* fails the jobs of peers whose heartbeat is older than `cluster.heartbeat.threshold`, by the
  database's clock (never the local one, which may be wrong);
* fences itself when it has not reached the database for longer than that threshold, as
  CloudStack's cluster manager does: the peers now count it as dead and fail its jobs, so it starts
  no job, cancels the bodies of the jobs it holds, and, once the database answers again, fails
  those jobs (those a peer has not failed already) before it heart-beats and takes jobs again.
  The silence is counted in heartbeat ticks, so a step of the wall clock fences nothing; a process
  that did not run at all for that long (suspended) finds, by the database's clock, that its
  previous heartbeat is older than the threshold, and fails what it holds in the same way;
* cancels a job that has held its sync object for longer than `job.cancel.threshold.minutes`
  (CloudStack's "Job is cancelled as it has been blocking others for too long"), its age measured
  on the database's clock from the moment it started.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredLock, gatherResults
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from cloudd.db.jobs import FAILED, SUCCEEDED, Job
from cloudd.errors import CloudError, internal, to_cloud_error
from cloudd.jobs import recovery
from cloudd.orchestration.context import Actor, EventInfo, JobContext, Services

if TYPE_CHECKING:
    from cloudd.db.jobs import MsHost

RESTART_TEXT = "job cancelled because of management server restart or shutdown"
PEER_TEXT = "job cancelled because its management server stopped heart-beating"
FENCED_TEXT = "job cancelled because its management server lost its database connection"
LOST_TEXT = "job cancelled because its result could not be stored while the database was unreachable"
# CloudStack's text for a job failed by job.cancel.threshold.minutes
CANCEL_TEXT = "Job is cancelled as it has been blocking others for too long"
FENCED_REFUSAL = "this management server has lost its database connection and starts no job; retry on another one"
# how often a job waiting behind another process's job on the same object looks again
SYNC_POLL_SECONDS = 0.5


# a job body: the work, run with the job's context; its result is the `jobresult` object
Body = Callable[[JobContext], Coroutine[Any, Any, dict[str, Any]]]


@dataclass(frozen=True)
class JobSpec:
    """What a job is: stored (command, its redacted parameters, what it acts on), announced (events)
    and run (its body, with the parameters in memory, secrets included)."""

    command: str
    cmd_class: str
    cmd_info: str
    actor: Actor
    body: Body
    params: dict[str, Any] = field(default_factory=dict)
    event: str | None = None
    instance_type: str | None = None
    instance_uuid: str | None = None
    sync_object: str | None = None
    resource_name: str | None = None
    # the account (id, domain id) the resource belongs to, when not the actor's
    owner: tuple[int, int] | None = None

    def event_info(self, text: str) -> EventInfo:
        return EventInfo(text, self.instance_type, self.instance_uuid, self.resource_name, self.owner)


@dataclass
class HeldJob:
    """A job this process has accepted and not yet finished in the database."""

    job: Job
    # the database's time when the body started, None while waiting for its object
    started: int | None = None
    body: Deferred[dict[str, Any]] | None = None
    # why the runner ended it (fencing, the cancel threshold), None while it may run
    reason: str | None = None
    # its run ended but the database never recorded the end
    finished: bool = False


class JobRunner(MultiService):
    log = Logger()

    def __init__(self, services: Services, ms_uuid: str, name: str | None = None) -> None:
        super().__init__()
        self.orchestration = services
        self.db = services.db
        self.settings = services.settings
        self.clock = services.clock
        self.ms_uuid = ms_uuid
        self.ms_name = name or socket.gethostname()
        self.mshost: MsHost | None = None
        self._locks: dict[str, DeferredLock] = {}
        self._running: set[Deferred[None]] = set()
        self.held: dict[int, HeldJob] = {}
        # True while this server has not reached the database for longer than the heartbeat threshold
        self.fenced = False
        # seconds of heartbeat ticks since the database last took a heartbeat
        self.silent = 0.0
        # the database's time of the last heartbeat it took
        self.last_beat: int | None = None
        self._interval = 1.5
        self._beating: Deferred[None] | None = None

    def _threshold(self) -> float:
        return self.settings.int("cluster.heartbeat.threshold") / 1000.0

    async def prepare(self, runid: str) -> list[Job]:
        """Register this server and fail orphaned jobs; called before the API listens."""
        db = self.db
        self.mshost = await db.jobs.register_mshost(self.ms_uuid, self.ms_name, runid)
        orphans = await db.jobs.fail_orphans(self.mshost.id, int(self._threshold()), RESTART_TEXT)
        for job in orphans:
            self.log.warn("failed orphaned job {job} ({command})", job=job.uuid, command=job.command)
            await self._recover(job)
        self._interval = max(self.settings.int("cluster.heartbeat.interval") / 1000.0, 0.1)
        heartbeat = TimerService(self._interval, self._heartbeat)
        heartbeat.clock = self.clock
        heartbeat.setName("heartbeat")
        heartbeat.setServiceParent(self)
        gc = TimerService(60, self._gc)
        gc.clock = self.clock
        gc.setName("job-gc")
        gc.setServiceParent(self)
        return orphans

    async def _recover(self, job: Job) -> None:
        try:
            await recovery.recover(self.orchestration, job)
        except Exception:
            self.log.failure("while returning the resources of job {job} to a stable state", job=job.uuid)

    def _heartbeat(self) -> None:
        """One timer tick: fence when the database has been out of reach too long, and heart-beat
        unless the previous heartbeat is still waiting for the database."""
        self.silent += self._interval
        if not self.fenced and self.silent > self._threshold():
            self._fence(self.silent)
        if self._beating is None:
            d = self._beating = Deferred.fromCoroutine(self._beat())

            def done(_: object) -> None:
                self._beating = None

            d.addBoth(done)

    def _fence(self, silent: float) -> None:
        self.fenced = True
        self.log.error(
            "no database contact for {silent:.0f}s (cluster.heartbeat.threshold {threshold:.0f}s): fenced; "
            "peers take over this server's jobs, so it starts none and stops the {held} it holds, and fails "
            "them when the database is back", silent=silent, threshold=self._threshold(), held=len(self.held))
        for held in list(self.held.values()):
            self._end(held, FENCED_TEXT)

    @staticmethod
    def _end(held: HeldJob, reason: str) -> None:
        if held.reason is None:
            held.reason = reason
        if held.body is not None and not held.body.called:
            held.body.cancel()

    async def _beat(self) -> None:
        """Heart-beat, then fail the jobs of peers that stopped heart-beating and cancel jobs past the
        cancel threshold (never raises). A fenced server first fails the jobs it held."""
        assert self.mshost is not None
        try:
            was_fenced = self.fenced
            if was_fenced or any(h.finished for h in self.held.values()):
                await self._fail_held(everything=was_fenced)
            db_now = await self.db.jobs.heartbeat(self.mshost.id)
            self.silent = 0.0
            gap = db_now - self.last_beat if self.last_beat is not None else 0
            self.last_beat = db_now
            if self.fenced:
                if not was_fenced:
                    # fenced while this heartbeat waited for the database
                    await self._fail_held(everything=True)
                self.fenced = False
                self.log.info("the database is reachable again: this server takes jobs again")
            elif gap > self._threshold() and self.held:
                # this process did not run (suspended, stalled) for longer than the threshold: its peers may
                # have taken its jobs over, as if it had been cut off
                self.log.error("this server's previous heartbeat is {gap}s old by the database's clock "
                               "(cluster.heartbeat.threshold {threshold:.0f}s): stopping and failing the {held} "
                               "jobs it holds", gap=gap, threshold=self._threshold(), held=len(self.held))
                for held in list(self.held.values()):
                    self._end(held, FENCED_TEXT)
                await self._fail_held(everything=True)
            self._cancel_overdue(db_now)
            for job in await self.db.jobs.fail_orphans(self.mshost.id, int(self._threshold()), PEER_TEXT,
                                                            include_own=False):
                self.log.warn("failed job {job} ({command}) of a management server that stopped heart-beating",
                              job=job.uuid, command=job.command)
                await self._recover(job)
        except sa.exc.DBAPIError as exc:
            self.log.warn("heartbeat failed: the database is unreachable ({error})", error=type(exc.orig).__name__)
        except Exception:
            self.log.failure("heartbeat failed")

    async def _fail_held(self, everything: bool) -> None:
        """Fail, in the database, the jobs this server held when it fenced itself (`everything`) or those
        whose end could not be stored; a job a peer has failed already is left as the peer left it."""
        chosen = [h for h in self.held.values() if everything or h.finished]
        if everything:
            for held in chosen:
                self._end(held, FENCED_TEXT)
        fenced = [h.job.id for h in chosen if h.reason == FENCED_TEXT]
        lost = [h.job.id for h in chosen if h.reason != FENCED_TEXT]
        failed = set(await self.db.jobs.fail_jobs(fenced, FENCED_TEXT))
        failed.update(await self.db.jobs.fail_jobs(lost, LOST_TEXT))
        for held in chosen:
            if held.finished:
                del self.held[held.job.id]
            if held.job.id in failed:
                self.log.warn("failed job {job} ({command}) that this server held while the database was "
                              "unreachable", job=held.job.uuid, command=held.job.command)
                await self._recover(held.job)
            else:
                self.log.info("job {job} ({command}) was already ended by another management server",
                              job=held.job.uuid, command=held.job.command)

    def _cancel_overdue(self, db_now: int) -> None:
        minutes = self.settings.int("job.cancel.threshold.minutes")
        if minutes <= 0:
            return
        overdue = [h for h in self.held.values() if h.reason is None and h.started is not None
                   and h.job.sync_object is not None and db_now - h.started > minutes * 60]
        for held in overdue:
            if held.reason is None:
                self.log.warn("cancelling job {job} ({command}): it has held {object} for more than "
                              "job.cancel.threshold.minutes ({minutes})", job=held.job.uuid,
                              command=held.job.command, object=held.job.sync_object, minutes=minutes)
                self._end(held, CANCEL_TEXT)

    def _gc(self) -> Deferred[None]:
        max_age = self.settings.int("job.expire.minutes") * 60

        async def clean() -> None:
            try:
                await self.db.jobs.expunge_expired(max_age)
                await self.db.sessions.expire()
            except sa.exc.DBAPIError as exc:
                self.log.warn("job and session clean-up failed: the database is unreachable ({error})",
                              error=type(exc.orig).__name__)
            except Exception:
                self.log.failure("job and session clean-up failed")

        return Deferred.fromCoroutine(clean())

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        if self._beating is not None:
            await self._beating
        if self._running:
            await gatherResults(list(self._running), consumeErrors=True)
        if self.mshost is not None:
            await self.db.jobs.mark_down(self.mshost.id)

    def _lock(self, key: str) -> DeferredLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        return lock

    async def submit(self, spec: JobSpec) -> str:
        """Store the job, record its Scheduled event, start it; returns the job id."""
        assert self.mshost is not None
        if self.fenced:
            raise internal(FENCED_REFUSAL)
        actor = spec.actor
        owner_account, owner_domain = spec.owner or (actor.account_id, actor.domain_id)
        job = await self.db.jobs.create(
            user_id=actor.user_id, account_id=actor.account_id, domain_id=actor.domain_id,
            command=spec.command, cmd=spec.cmd_class, cmd_info=spec.cmd_info,
            instance_type=spec.instance_type, instance_uuid=spec.instance_uuid,
            sync_object=spec.sync_object, msid=self.mshost.id)
        self.held[job.id] = HeldJob(job)
        events = self.orchestration.events
        start_id = (await events.record(actor, spec.event, "Scheduled", spec.event_info(f"{spec.command} is scheduled"))
                    if spec.event else None)
        d = Deferred.fromCoroutine(self._run(spec, job, start_id))
        self._running.add(d)

        def done(result: object) -> object:
            self._running.discard(d)
            return result

        d.addBoth(done)
        def crashed(f: Failure) -> None:
            if f.check(sa.exc.DBAPIError):
                self.log.warn("job {job} ({command}) ended but the database could not store it ({error}); it is "
                              "failed once the database answers", job=job.uuid, command=spec.command,
                              error=type(getattr(f.value, "orig", None)).__name__)
            else:
                self.log.failure("job {job} crashed", f, job=job.uuid)

        d.addErrback(crashed)
        return job.uuid

    async def _run(self, spec: JobSpec, job: Job, start_id: int | None) -> None:
        held = self.held[job.id]
        key = spec.sync_object or f"job:{job.uuid}"
        lock = self._lock(key)
        await lock.acquire()
        stored = False
        try:
            stored = await self._run_held(spec, held, start_id)
        finally:
            if stored:
                self.held.pop(job.id, None)
            else:
                # the end was not stored: the next heartbeat that reaches the database fails the job
                held.finished = True
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)

    async def _run_held(self, spec: JobSpec, held: HeldJob, start_id: int | None) -> bool:
        """Run the job and store its end; False when it was ended (fenced) before it started."""
        job = held.job
        events = self.orchestration.events
        if spec.sync_object is not None:
            # another management server may hold the same object: wait for its earlier jobs
            while held.reason is None and await self.db.jobs.waiting_behind(job.id, spec.sync_object):
                await deferLater(self.clock, SYNC_POLL_SECONDS)
        if held.reason is not None:
            # fenced before it could start: failed when the database is back, by this server or a peer
            return False
        held.started = await self.db.jobs.db_time()
        if spec.event:
            await events.record(spec.actor, spec.event, "Started", spec.event_info(f"{spec.command} has started"),
                                start_id=start_id)
        jc = JobContext(self.orchestration, spec.actor, job.uuid, dict(spec.params))

        try:
            held.body = Deferred.fromCoroutine(spec.body(jc))
            result = await held.body
        except Exception as exc:
            err = exc if isinstance(exc, CloudError) else None
            if held.reason is not None:
                err = internal(held.reason)
            elif err is None:
                self.log.failure("job {job} ({command}) failed", job=job.uuid, command=spec.command)
                err = to_cloud_error(exc, reveal=False)
                err.text = str(exc) or err.text
            body = {"errorcode": err.code, "errortext": err.text}
            ended = await self.db.jobs.complete(job.id, FAILED, err.code, json.dumps(body, ensure_ascii=False))
            if ended and held.reason is not None:
                # stopped in the middle: return what it held to a stable state, as after a crash
                await self._recover(job)
            if spec.event:
                await events.record(spec.actor, spec.event, "Completed",
                                    spec.event_info(f"Error while {spec.command}: {err.text}"), level="ERROR",
                                    start_id=start_id)
            return True
        await self.db.jobs.complete(job.id, SUCCEEDED, 0, json.dumps(result, ensure_ascii=False))
        if spec.event:
            info = jc.event or spec.event_info(f"Successfully completed {spec.command}")
            await events.record(spec.actor, spec.event, "Completed", info, start_id=start_id)
        return True
