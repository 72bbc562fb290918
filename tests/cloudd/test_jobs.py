"""Tests for async jobs: the queryAsyncJobResult shape, per-object serialisation, events, and recovery.

In-process tests use `make_cloud` (real DB, real command layer, fake clock) with a test-only async
command whose job waits on a Deferred the test fires, registered into that cloud's registry only.
Recovery is tested twice: in process, by starting a second JobRunner on the rows a first one left,
and with the real daemon killed with SIGKILL and restarted on the database it left behind.
"""

from __future__ import annotations

import json
import os
import time
import uuid as uuidlib
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from cloudd.api.context import CallContext
from cloudd.api.errors import in_use
from cloudd.api.registry import ALL, Param, command
from cloudd.api.results import ObjectResult, Prepared, Result
from cloudd.db import model
from cloudd.db.base import Scope
from cloudd.db.enginestrategy import create_engine, db_now
from cloudd.db.jobs import PENDING, SUCCEEDED, Job
from cloudd.jobs import recovery
from cloudd.jobs.runner import PEER_TEXT, RESTART_TEXT, SYNC_POLL_SECONDS, JobRunner
from cloudd.orchestration.context import JobContext
from cloudd.web.signing import sign
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.daemon import CloudDaemon, HttpResult, http
from tests.util.db import test_db_url, using_server_db, wipe

EPOCH = 1_750_000_000
DATE_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$"
WAIT_CMD = "org.cloudd.test.WaitForGateCmd"


class Gates:
    """The test-only command `waitForGate`: its job waits for the test to open a named gate."""

    def __init__(self) -> None:
        self.gates: dict[str, Deferred[Any]] = {}
        self.started: list[str] = []

    def open(self, name: str, value: Any = None) -> None:
        self.gates[name].callback(value)

    def fail(self, name: str, exc: Exception) -> None:
        self.gates[name].errback(exc)

    def install(self, cloud: Cloud) -> None:
        async def run(ctx: JobContext, prepared: Prepared) -> Result:
            name = prepared.state["gate"]
            self.started.append(name)
            answer = await self.gates[name]
            return ObjectResult("gate", {"name": name, "answer": answer})

        @command("waitForGate", description="Test only: a job that waits for a gate", roles=ALL,
                 event="TEST.GATE", is_async=True, run=run, java_class=WAIT_CMD,
                 params=[Param("object", required=True), Param("gate", required=True)])
        async def prepare(ctx: CallContext) -> Prepared:
            name = ctx.get("gate")
            self.gates[name] = Deferred()
            return Prepared("TestObject", f"obj-{ctx.get('object')}", f"Test:{ctx.get('object')}",
                            state={"gate": name, "resource_name": ctx.get("object")})

        cloud.api.registry.add(prepare)


class JobTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(EPOCH)
        self.gates = Gates()
        self.gates.install(self.cloud)

    def call(self, command: str, **params: Any) -> Response:
        return self.cloud.signed(command, **params)

    def submit(self, obj: str, gate: str) -> str:
        res = self.call("waitForGate", object=obj, gate=gate)
        self.assertEqual(res.status, 200, res.body)
        self.assertEqual(list(res.json()), ["waitforgateresponse"])
        body = res.inner()
        self.assertEqual(list(body), ["jobid"])
        jobid: str = body["jobid"]
        return jobid

    def query(self, jobid: str) -> dict[str, Any]:
        res = self.call("queryAsyncJobResult", jobid=jobid)
        self.assertEqual(res.status, 200, res.body)
        self.assertEqual(list(res.json()), ["queryasyncjobresultresponse"])
        out: dict[str, Any] = res.inner()
        return out

    def job_row(self, msid: int, instance_uuid: str = "x") -> str:
        """A pending job row as another (or an earlier) management server would have stored it."""
        user = self.successResultOf(self.cloud.db.accounts.get_user_by_api_key(self.cloud.admin.apikey))
        job = self.successResultOf(self.cloud.db.jobs.create(
            user_id=user.id, account_id=user.account.id, domain_id=user.account.domain_id, command="waitForGate",
            cmd=WAIT_CMD, cmd_info="{}", instance_type="TestObject", instance_uuid=instance_uuid,
            sync_object=f"Test:{instance_uuid}", msid=msid))
        return job.uuid

    def age_heartbeat(self, msid: int, seconds: int) -> None:
        """Make a server's last heartbeat `seconds` old by the database's clock (the only one that counts)."""
        self.cloud.db.pool.do_sync(lambda conn: conn.execute(model.mshosts.update().where(
            model.mshosts.c.id == msid).values(last_heartbeat=db_now() - seconds)).rowcount)

    def events(self, type: str) -> list[tuple[str, str, str, bool]]:
        """(state, level, description, has parent) of every event of `type`, oldest first."""
        _, evs = self.successResultOf(self.cloud.db.events.search(Scope(), type=type))
        return [(e.state, e.level, e.description, e.parent_uuid is not None) for e in reversed(evs)]


class QueryAsyncJobResultTests(JobTestCase):
    """queryAsyncJobResult shows every field of spec §3.4 through a job's life."""

    def test_pending_then_succeeded(self) -> None:
        """A job answers jobid at once; pending it has status 0 and no result; finished, status 1 and a result."""
        jobid = self.submit("a", "g1")
        pending = self.query(jobid)
        admin = self.cloud.admin
        user = self.successResultOf(self.cloud.db.accounts.get_user_by_api_key(admin.apikey))
        self.assertEqual(pending["jobid"], jobid)
        self.assertEqual(pending["jobstatus"], 0)
        self.assertEqual(pending["jobprocstatus"], 0)
        self.assertEqual(pending["jobresultcode"], 0)
        self.assertNotIn("jobresult", pending)
        self.assertNotIn("jobresulttype", pending)
        self.assertNotIn("completed", pending)
        self.assertEqual(pending["cmd"], WAIT_CMD)
        self.assertEqual((pending["jobinstancetype"], pending["jobinstanceid"]), ("TestObject", "obj-a"))
        self.assertEqual((pending["userid"], pending["accountid"], pending["account"]),
                         (user.uuid, user.account.uuid, "admin"))
        self.assertEqual((pending["domainid"], pending["domainpath"]), (user.account.domain_uuid, "ROOT"))
        self.assertRegex(pending["created"], DATE_RE)
        self.assertEqual(pending["managementserverid"], "ms-test")
        self.assertIsInstance(pending["jobstatus"], int)

        self.cloud.reactor.advance(5)
        self.gates.open("g1", 42)
        done = self.query(jobid)
        self.assertEqual((done["jobstatus"], done["jobresultcode"], done["jobresulttype"]), (1, 0, "object"))
        self.assertEqual(done["jobresult"], {"gate": {"name": "g1", "answer": 42}})
        self.assertRegex(done["completed"], DATE_RE)
        self.assertEqual(done["created"], pending["created"])
        self.assertNotEqual(done["completed"], done["created"])

    def test_api_error_keeps_its_code(self) -> None:
        """A job failing with an API error has status 2, that error's code, and errorcode/errortext."""
        jobid = self.submit("a", "g1")
        self.gates.fail("g1", in_use("the gate is in use"))
        out = self.query(jobid)
        self.assertEqual((out["jobstatus"], out["jobresultcode"], out["jobresulttype"]), (2, 536, "object"))
        self.assertEqual(out["jobresult"], {"errorcode": 536, "errortext": "the gate is in use"})
        self.assertIn("completed", out)

    def test_unexpected_error_is_530(self) -> None:
        """Any other exception fails the job with 530 and its message (logged as a failure)."""
        jobid = self.submit("a", "g1")
        self.gates.fail("g1", RuntimeError("the gate fell off"))
        self.flushLoggedErrors(RuntimeError)
        out = self.query(jobid)
        self.assertEqual((out["jobstatus"], out["jobresultcode"]), (2, 530))
        self.assertEqual(out["jobresult"], {"errorcode": 530, "errortext": "the gate fell off"})

    def test_unknown_job(self) -> None:
        """An unknown job id is a 431 error, not an empty result."""
        res = self.call("queryAsyncJobResult", jobid=str(uuidlib.uuid4()))
        self.assertEqual(res.status, 431)
        self.assertIn("Unable to find async job", res.inner()["errortext"])

    def test_list_async_jobs(self) -> None:
        """listAsyncJobs returns the same objects under `asyncjobs`."""
        jobid = self.submit("a", "g1")
        self.gates.open("g1")
        res = self.call("listAsyncJobs", listall="true")
        self.assertEqual(res.status, 200, res.body)
        body = res.inner()
        self.assertEqual(body["count"], 1)
        self.assertEqual(body["asyncjobs"][0], self.query(jobid))


class SerialisationTests(JobTestCase):
    """One running job per sync object; jobs on other objects run at once."""

    def test_same_object_waits(self) -> None:
        """A second job on the same object starts only after the first finishes; another object's runs at once."""
        first = self.submit("a", "a1")
        second = self.submit("a", "a2")
        other = self.submit("b", "b1")
        self.assertEqual(self.gates.started, ["a1", "b1"])
        self.assertEqual(self.query(second)["jobstatus"], 0)
        self.assertEqual([e[0] for e in self.events("TEST.GATE")],
                         ["Scheduled", "Started", "Scheduled", "Scheduled", "Started"])
        self.gates.open("b1")
        self.assertEqual(self.query(other)["jobstatus"], 1)
        self.assertEqual(self.gates.started, ["a1", "b1"])
        self.gates.open("a1")
        self.assertEqual(self.query(first)["jobstatus"], 1)
        self.assertEqual(self.gates.started, ["a1", "b1", "a2"])
        self.assertEqual(self.query(second)["jobstatus"], 0)
        self.gates.open("a2")
        self.assertEqual(self.query(second)["jobstatus"], 1)
        self.assertEqual(self.cloud.jobs._locks, {})

    def test_failure_releases_the_object(self) -> None:
        """A failed job releases its object for the next one."""
        self.submit("a", "a1")
        second = self.submit("a", "a2")
        self.gates.fail("a1", in_use("busy"))
        self.assertEqual(self.gates.started, ["a1", "a2"])
        self.gates.open("a2")
        self.assertEqual(self.query(second)["jobstatus"], 1)


class EventTests(JobTestCase):
    """Async commands record Scheduled, Started and Completed events with their event type."""

    def test_success_events(self) -> None:
        """Scheduled at submission, Started when run, Completed (INFO) at the end, linked to the first."""
        self.submit("a", "g1")
        self.assertEqual([e[0] for e in self.events("TEST.GATE")], ["Scheduled", "Started"])
        self.gates.open("g1")
        evs = self.events("TEST.GATE")
        self.assertEqual([(s, lvl) for s, lvl, _, _ in evs],
                         [("Scheduled", "INFO"), ("Started", "INFO"), ("Completed", "INFO")])
        self.assertEqual([p for *_, p in evs], [False, True, True])
        self.assertIn("waitForGate is scheduled", evs[0][2])

    def test_failure_events(self) -> None:
        """A failed job's Completed event has level ERROR and carries the error text."""
        self.submit("a", "g1")
        self.gates.fail("g1", in_use("busy gate"))
        evs = self.events("TEST.GATE")
        self.assertEqual([(s, lvl) for s, lvl, _, _ in evs],
                         [("Scheduled", "INFO"), ("Started", "INFO"), ("Completed", "ERROR")])
        self.assertIn("busy gate", evs[2][2])

    def test_delete_domain_events(self) -> None:
        """A real async command (deleteDomain) records its DOMAIN.DELETE events and succeeds."""
        dom = self.call("createDomain", name="d1").inner()["domain"]
        jobid = self.call("deleteDomain", id=dom["id"]).inner()["jobid"]
        out = self.query(jobid)
        self.assertEqual((out["jobstatus"], out["jobresult"]), (1, {"success": True}))
        self.assertEqual((out["jobinstancetype"], out["jobinstanceid"]), ("Domain", dom["id"]))
        self.assertEqual(out["cmd"], "org.apache.cloudstack.api.command.admin.domain.DeleteDomainCmd")
        self.assertEqual([e[0] for e in self.events("DOMAIN.DELETE")], ["Scheduled", "Started", "Completed"])


class RecoveryTests(JobTestCase):
    """JobRunner.prepare fails the jobs of dead processes with 530 and returns their resources."""

    def restart(self, runid: str = "run-2") -> list[Job]:
        """What a restarted management server does first, on the database the old one left."""
        runner = JobRunner(self.cloud.api.services, "ms-test", "test")
        self.cloud.jobs = self.cloud.api.jobs = runner
        orphans: list[Job] = self.successResultOf(Deferred.fromCoroutine(runner.prepare(runid)))
        return orphans

    def assert_restart_failed(self, jobid: str) -> None:
        out = self.query(jobid)
        self.assertEqual((out["jobstatus"], out["jobresultcode"], out["jobresulttype"]), (2, 530, "object"))
        self.assertEqual(out["jobresult"], {"errorcode": 530, "errortext": RESTART_TEXT})
        self.assertEqual(RESTART_TEXT, "job cancelled because of management server restart or shutdown")

    def test_own_and_dead_peer_jobs_failed(self) -> None:
        """Own jobs from an earlier run and a stale peer's jobs fail with 530; a live peer's job is left alone."""
        threshold = self.cloud.api.settings.int("cluster.heartbeat.threshold") // 1000
        own = self.cloud.jobs.mshost
        assert own is not None
        dead = self.successResultOf(self.cloud.db.jobs.register_mshost("peer-dead", "h2", "r"))
        self.age_heartbeat(dead.id, threshold + 5)
        live = self.successResultOf(self.cloud.db.jobs.register_mshost("peer-live", "h3", "r"))
        own_job = self.job_row(own.id, "o")
        dead_job = self.job_row(dead.id, "d")
        live_job = self.job_row(live.id, "l")
        orphans = self.restart()
        self.assertEqual(sorted(j.uuid for j in orphans), sorted([own_job, dead_job]))
        self.assert_restart_failed(own_job)
        self.assert_restart_failed(dead_job)
        self.assertEqual(self.query(live_job)["jobstatus"], 0)
        self.assertEqual(self.successResultOf(self.cloud.db.jobs.get_by_uuid(live_job)).status, PENDING)
        # the restarted server owns the same mshost row
        assert self.cloud.jobs.mshost is not None
        self.assertEqual(self.cloud.jobs.mshost.id, own.id)

    def test_failing_hook_does_not_stop_recovery(self) -> None:
        """A recovery hook that raises is logged; the other orphans are still recovered."""
        recovered: list[str] = []

        async def broken(api: Any, job: Job) -> None:
            raise RuntimeError("hook failed")

        async def fine(api: Any, job: Job) -> None:
            recovered.append(job.uuid)

        self.patch(recovery, "HOOKS", {"Broken": broken, "TestObject": fine})
        own = self.cloud.jobs.mshost
        assert own is not None
        first = self.job_row(own.id, "a")
        self.cloud.db.pool.do_sync(lambda conn: conn.execute(model.async_jobs.update().where(
            model.async_jobs.c.uuid == first).values(instance_type="Broken")).rowcount)
        second = self.job_row(own.id, "b")
        self.assertEqual(len(self.restart()), 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(recovered, [second])
        self.assert_restart_failed(first)
        self.assert_restart_failed(second)

    def test_peer_just_inside_threshold_kept(self) -> None:
        """A peer whose last heartbeat is younger than the threshold keeps its jobs."""
        threshold = self.cloud.api.settings.int("cluster.heartbeat.threshold") // 1000
        peer = self.successResultOf(self.cloud.db.jobs.register_mshost("peer", "h2", "r"))
        job = self.job_row(peer.id)
        self.age_heartbeat(peer.id, threshold - 5)
        self.assertEqual(self.restart(), [])
        self.assertEqual(self.query(job)["jobstatus"], 0)

    def test_dead_delete_domain_recovered_and_retried(self) -> None:
        """A deleteDomain job that died mid-way leaves the domain Inactive; restart makes it Active and
        fails the job with 530; the same deleteDomain then succeeds. The dead job, should it ever finish,
        changes nothing (completion is exactly once)."""
        domains = self.cloud.db.domains
        dom = self.call("createDomain", name="doomed").inner()["domain"]
        stuck: Deferred[None] = Deferred()
        domains.remove = lambda domain_id: stuck  # type: ignore[method-assign]
        try:
            jobid = self.call("deleteDomain", id=dom["id"]).inner()["jobid"]
            self.assertEqual(self.query(jobid)["jobstatus"], 0)
            listed = self.call("listDomains", id=dom["id"]).inner()["domain"]
            self.assertEqual(listed[0]["state"], "Inactive")
            self.restart()
        finally:
            del domains.remove
        self.assert_restart_failed(jobid)
        self.assertEqual(self.call("listDomains", id=dom["id"]).inner()["domain"][0]["state"], "Active")

        # the old run's job wakes up after all: its late failure does not overwrite the stored result
        stuck.errback(ConnectionError("the old process is gone"))
        self.flushLoggedErrors(ConnectionError)
        self.assert_restart_failed(jobid)

        retry = self.call("deleteDomain", id=dom["id"]).inner()["jobid"]
        out = self.query(retry)
        self.assertEqual((out["jobstatus"], out["jobresultcode"], out["jobresult"]), (1, 0, {"success": True}))
        self.assertEqual(self.call("listDomains", id=dom["id"]).inner(), {})


class ClusterTests(JobTestCase):
    """Several management servers on one database: failover of a dead peer's jobs while running, and
    one running job per object across processes."""

    def test_running_server_fails_a_peer_that_stops_heart_beating(self) -> None:
        """A peer's pending job is failed by a running server's heartbeat once the peer is stale."""
        self.cloud.jobs.startService()
        self.addCleanup(lambda: self.cloud.jobs.running and self.cloud.jobs.stopService())
        peer = self.successResultOf(self.cloud.db.jobs.register_mshost("peer", "h2", "r"))
        peer_job = self.job_row(peer.id, "p")
        self.cloud.reactor.advance(60)
        self.assertEqual(self.query(peer_job)["jobstatus"], 0)
        threshold = self.cloud.api.settings.int("cluster.heartbeat.threshold") // 1000
        self.age_heartbeat(peer.id, threshold + 5)
        self.cloud.reactor.advance(1.5)
        out = self.query(peer_job)
        self.assertEqual((out["jobstatus"], out["jobresultcode"]), (2, 530))
        self.assertEqual(out["jobresult"]["errortext"], PEER_TEXT)

    def test_job_waits_for_an_earlier_job_of_another_server(self) -> None:
        """A job on an object that another server's earlier job still holds starts only after that one ends."""
        peer = self.successResultOf(self.cloud.db.jobs.register_mshost("peer", "h2", "r"))
        peer_job = self.job_row(peer.id, "a")  # holds Test:a, the object waitForGate(object=a) serialises on
        mine = self.submit("a", "g1")
        self.assertEqual(self.gates.started, [])
        self.cloud.reactor.advance(SYNC_POLL_SECONDS)
        self.assertEqual(self.gates.started, [])
        peer_row = self.successResultOf(self.cloud.db.jobs.get_by_uuid(peer_job))
        self.assertTrue(self.successResultOf(self.cloud.db.jobs.complete(peer_row.id, SUCCEEDED, 0, "{}")))
        self.cloud.reactor.advance(SYNC_POLL_SECONDS)
        self.assertEqual(self.gates.started, ["g1"])
        self.gates.open("g1")
        self.assertEqual(self.query(mine)["jobstatus"], 1)


class RunnerServiceTests(JobTestCase):
    """The JobRunner as a service: heartbeats, clean-up of old jobs and sessions, orderly stop."""

    def mshost(self) -> tuple[str, int]:
        assert self.cloud.jobs.mshost is not None
        msid = self.cloud.jobs.mshost.id
        row: tuple[str, int] = self.cloud.db.pool.do_sync(lambda conn: tuple(conn.execute(
            sa.select(model.mshosts.c.state, model.mshosts.c.last_heartbeat)
            .where(model.mshosts.c.id == msid)).one()))
        return row

    def start(self) -> None:
        self.cloud.jobs.startService()
        self.addCleanup(lambda: self.cloud.jobs.running and self.cloud.jobs.stopService())

    def db_time(self) -> int:
        return int(self.successResultOf(self.cloud.db.jobs.db_time()))

    def set_heartbeat(self, value: int) -> None:
        assert self.cloud.jobs.mshost is not None
        msid = self.cloud.jobs.mshost.id
        self.cloud.db.pool.do_sync(lambda conn: conn.execute(model.mshosts.update().where(
            model.mshosts.c.id == msid).values(last_heartbeat=value)).rowcount)

    def test_heartbeat(self) -> None:
        """Running, the server heart-beats every cluster.heartbeat.interval of the injected clock, and
        stores the database's time, not its own (the fake clock is more than a year behind it)."""
        self.start()
        self.set_heartbeat(0)
        self.cloud.reactor.advance(1.4)
        self.assertEqual(self.mshost(), ("Up", 0))
        self.cloud.reactor.advance(0.1)
        state, beat = self.mshost()
        self.assertEqual(state, "Up")
        self.assertLessEqual(abs(beat - self.db_time()), 2)
        self.assertGreater(beat, EPOCH + 3600 * 24 * 365)

    def test_heartbeat_survives_a_failure(self) -> None:
        """A failed heartbeat is logged and the next one still runs (the timer loop does not end)."""
        self.start()
        jobs_db = self.cloud.db.jobs
        jobs_db.heartbeat = lambda msid: fail(ConnectionError("db away"))  # type: ignore[method-assign]
        self.set_heartbeat(0)
        self.cloud.reactor.advance(1.5)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertEqual(self.mshost()[1], 0)
        del jobs_db.heartbeat
        self.cloud.reactor.advance(1.5)
        self.assertLessEqual(abs(self.mshost()[1] - self.db_time()), 2)

    def test_gc(self) -> None:
        """Finished jobs older than job.expire.minutes and idle sessions are removed; pending jobs stay."""
        user = self.successResultOf(self.cloud.db.accounts.get_user_by_api_key(self.cloud.admin.apikey))
        done = self.submit("a", "g1")
        self.gates.open("g1")
        pending = self.submit("b", "g2")
        self.successResultOf(self.cloud.db.sessions.create("sid", "key", user.id, 60))
        self.start()
        self.cloud.reactor.advance(1440 * 60 + 61)
        self.assertEqual(self.call("queryAsyncJobResult", jobid=done).status, 431)
        self.assertEqual(self.query(pending)["jobstatus"], 0)
        self.assertIsNone(self.successResultOf(self.cloud.db.sessions.touch("sid")))
        self.gates.open("g2")

    def test_stop_waits_for_jobs_and_marks_down(self) -> None:
        """stopService ends the timers, waits for the running job to finish, then marks the server Down."""
        self.start()
        jobid = self.submit("a", "g1")
        d = self.cloud.jobs.stopService()
        self.assertNoResult(d)
        self.assertEqual(self.mshost()[0], "Up")
        self.gates.open("g1")
        self.successResultOf(d)
        self.assertEqual(self.query(jobid)["jobstatus"], 1)
        self.assertEqual(self.mshost()[0], "Down")
        self.assertEqual(self.cloud.reactor.getDelayedCalls(), [])


def _signed(daemon: CloudDaemon, creds: dict[str, str], command: str, **params: str) -> HttpResult:
    p = {"command": command, "response": "json", "apiKey": creds["apikey"], **params}
    p["signature"] = sign(p, creds["secretkey"])
    return http(daemon.endpoint + "?" + urlencode(p))


class CrashRecoveryDaemonTests(SynchronousTestCase):
    """The real daemon, killed with SIGKILL during a deleteDomain, recovers on restart."""

    def crash_and_recover(self, db_url: str | None, extra_args: list[str]) -> None:
        basedir = os.path.abspath(self.mktemp())
        daemon = CloudDaemon(basedir, db_url=db_url, extra_args=extra_args)
        self.addCleanup(daemon.stop)
        daemon.start()
        creds = daemon.credentials()
        res = _signed(daemon, creds, "createDomain", name="doomed")
        self.assertEqual(res.status, 200, res.body)
        dom_uuid = res.inner()["domain"]["id"]
        daemon.kill()

        # what a deleteDomain job that died with its process leaves behind
        with open(os.path.join(basedir, "management-server-id")) as f:
            ms_uuid = f.read().strip()
        engine = create_engine(db_url or "sqlite:///%(basedir)s/cloudd.sqlite", basedir)
        self.addCleanup(engine.dispose)
        jobid = str(uuidlib.uuid4())
        with engine.begin() as conn:
            d, u, a, m = model.domains, model.users, model.accounts, model.mshosts
            dom_id = conn.execute(sa.select(d.c.id).where(d.c.uuid == dom_uuid)).scalar_one()
            user_id, account_id, domain_id = conn.execute(
                sa.select(u.c.id, a.c.id, a.c.domain_id).select_from(u.join(a, u.c.account_id == a.c.id))
                .where(u.c.api_key == creds["apikey"])).one()
            msid = conn.execute(sa.select(m.c.id).where(m.c.uuid == ms_uuid)).scalar_one()
            conn.execute(d.update().where(d.c.id == dom_id).values(state="Inactive"))
            conn.execute(model.async_jobs.insert().values(
                uuid=jobid, user_id=user_id, account_id=account_id, domain_id=domain_id, command="deleteDomain",
                cmd="org.apache.cloudstack.api.command.admin.domain.DeleteDomainCmd",
                cmd_info=json.dumps({"id": dom_uuid}), instance_type="Domain", instance_uuid=dom_uuid,
                sync_object=f"Domain:{dom_id}", status=0, proc_status=0, result_code=0, msid=msid,
                created=int(time.time())))  # noqa: TID251 (a row "from the past" for a real process)
        engine.dispose()

        daemon.start()
        out = _signed(daemon, creds, "queryAsyncJobResult", jobid=jobid)
        self.assertEqual(out.status, 200, out.body)
        job = out.inner()
        self.assertEqual((job["jobstatus"], job["jobresultcode"]), (2, 530))
        self.assertEqual(job["jobresult"], {"errorcode": 530, "errortext": RESTART_TEXT})
        listed = _signed(daemon, creds, "listDomains", id=dom_uuid).inner()["domain"]
        self.assertEqual(listed[0]["state"], "Active")

        retry = _signed(daemon, creds, "deleteDomain", id=dom_uuid)
        self.assertEqual(retry.status, 200, retry.body)
        retry_id = retry.inner()["jobid"]
        deadline = time.monotonic() + 30
        while True:
            job = _signed(daemon, creds, "queryAsyncJobResult", jobid=retry_id).inner()
            if job["jobstatus"] != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # noqa: TID251 (polling a real process)
        self.assertEqual((job["jobstatus"], job["jobresultcode"], job["jobresult"]), (1, 0, {"success": True}))
        self.assertEqual(_signed(daemon, creds, "listDomains", id=dom_uuid).inner(), {})
        self.assertIn("failed orphaned job", daemon.log())

    def test_sqlite(self) -> None:
        """kill -9, a crashed deleteDomain's rows, restart: job 530, domain Active, delete retried (SQLite)."""
        self.crash_and_recover(None, [])

    def test_server_database(self) -> None:
        """The same on the server database named by CLOUDD_TEST_DB_URL."""
        if not using_server_db():
            raise SkipTest("CLOUDD_TEST_DB_URL names no server database")
        wipe(test_db_url())
        self.crash_and_recover(test_db_url(), ["--upgrade-db"])
