"""Jobs when the database goes away or clocks disagree: self-fencing, job.cancel.threshold.minutes,
the database's clock for every age, and the pool's exponential backoff.

In-process on in-memory SQLite with the fake reactor: an outage is every pool transaction failing
as a connection refused by MySQL would (error 2003); the database's clock is SQLite's real one,
while the injected clock starts more than a year behind it (a skew the runner must not notice).
The same behaviours against MariaDB through a TCP proxy that is cut are in
tests/integration/test_db_outage.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model
from cloudd.db.enginestrategy import db_now, should_retry
from cloudd.db.jobs import FAILED, PENDING
from cloudd.db.pool import DBThreadPool
from cloudd.jobs.runner import CANCEL_TEXT, FENCED_REFUSAL, FENCED_TEXT, PEER_TEXT
from tests.cloudd.test_jobs import JobTestCase
from tests.util.reactor import FakeReactor


class _DriverError(Exception):
    """Stands in for a PyMySQL error: the MySQL error number first."""


def refused() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, _DriverError(2003, "Can't connect to MySQL server"))


class Outage:
    """Makes every transaction of a pool fail as a refused connection while `down` is True."""

    def __init__(self, pool: DBThreadPool) -> None:
        self.down = False
        self.attempts = 0
        run = pool._run

        def flaky(fn: Callable[[Connection], Any]) -> Any:
            if self.down:
                self.attempts += 1
                raise refused()
            return run(fn)

        pool._run = flaky  # type: ignore[method-assign]


class RunnerTestCase(JobTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.outage = Outage(self.cloud.db.pool)
        self.threshold = self.cloud.api.settings.int("cluster.heartbeat.threshold") / 1000
        self.cloud.jobs.startService()
        self.addCleanup(self.stop)

    def stop(self) -> None:
        self.outage.down = False
        if self.cloud.jobs.running:
            d = self.cloud.jobs.stopService()
            self.cloud.reactor.pump([1] * 60)
            self.successResultOf(d)

    def tick(self, seconds: float, step: float = 1.5) -> None:
        """Let `seconds` pass on the injected clock in heartbeat-sized steps."""
        n = int(seconds / step)
        self.cloud.reactor.pump([step] * n)

    def row(self, jobid: str) -> tuple[int, int, str | None]:
        job = self.successResultOf(self.cloud.db.jobs.get_by_uuid(jobid))
        return job.status, job.result_code, job.result

    def peer_fails(self, jobid: str) -> None:
        """What a peer's heartbeat does with this server's job once this server looks dead to it."""
        with self.cloud.db.engine.begin() as conn:
            conn.execute(model.async_jobs.update().where(model.async_jobs.c.uuid == jobid).values(
                status=FAILED, result_code=530, result=f'{{"errorcode": 530, "errortext": "{PEER_TEXT}"}}'))


class FencingTests(RunnerTestCase):
    """A server that cannot reach its database for longer than the heartbeat threshold fences itself."""

    def test_short_outage_does_not_fence(self) -> None:
        """An outage shorter than the threshold: no fencing, the held job runs on and finishes."""
        jobid = self.submit("a", "g1")
        self.outage.down = True
        self.tick(self.threshold - 3)
        self.assertFalse(self.cloud.jobs.fenced)
        self.outage.down = False
        self.tick(3)
        self.gates.open("g1", 1)
        self.assertEqual(self.row(jobid)[0], 1)
        self.assertEqual(self.gates.started, ["g1"])

    def test_fence_then_fail_held_jobs_on_return(self) -> None:
        """Past the threshold: fenced (logged), the running body is stopped and the waiting job never starts;
        when the database answers, held jobs a peer did not fail are failed with FENCED_TEXT, the peer's
        result stays, new jobs are refused until then, and accepted again after."""
        running = self.submit("a", "g1")
        waiting = self.submit("a", "g2")
        other = self.submit("b", "g3")
        self.assertEqual(self.gates.started, ["g1", "g3"])
        self.outage.down = True
        with capturedLogs() as events:
            self.tick(self.threshold - 1.5)
            self.assertFalse(self.cloud.jobs.fenced)
            self.tick(3)
        self.assertTrue(self.cloud.jobs.fenced)
        fenced = [e for e in events if "fenced" in e.get("log_format", "")]
        self.assertEqual(len(fenced), 1)
        self.assertEqual(fenced[0]["held"], 3)
        # the bodies were cancelled: a gate opened now changes nothing
        self.assertTrue(self.gates.gates["g1"].called)
        self.assertTrue(self.gates.gates["g3"].called)
        # meanwhile a peer saw this server's heartbeat stop and failed one of its jobs
        self.peer_fails(running)
        # the database is back, but the next heartbeat has not run yet: still fenced, no new job
        self.outage.down = False
        res = self.call("waitForGate", object="c", gate="g4")
        self.assertEqual(res.status, 530, res.body)
        self.assertEqual(res.inner()["errortext"], FENCED_REFUSAL)
        with capturedLogs() as events:
            self.tick(1.5)
        self.assertFalse(self.cloud.jobs.fenced)
        self.assertIn("the database is reachable again: this server takes jobs again",
                      [e.get("log_format") for e in events])
        self.assertEqual(self.gates.started, ["g1", "g3"])
        self.assertEqual(self.row(running)[2], f'{{"errorcode": 530, "errortext": "{PEER_TEXT}"}}')
        for jobid in (waiting, other):
            out = self.query(jobid)
            self.assertEqual((out["jobstatus"], out["jobresultcode"]), (2, 530))
            self.assertEqual(out["jobresult"]["errortext"], FENCED_TEXT)
        self.assertEqual(self.cloud.jobs.held, {})
        self.assertEqual(self.cloud.jobs._locks, {})
        again = self.submit("a", "g5")
        self.gates.open("g5")
        self.assertEqual(self.query(again)["jobstatus"], 1)

    def test_wall_clock_step_does_not_fence(self) -> None:
        """The local clock leaping a day between two heartbeats (a wall-clock step) fences nothing: the
        silence is counted in heartbeat ticks, and the database's clock says the heartbeats never stopped."""
        jobid = self.submit("a", "g1")
        self.cloud.reactor.advance(86400)
        self.tick(3)
        self.assertFalse(self.cloud.jobs.fenced)
        self.assertEqual(self.row(jobid)[0], PENDING)
        self.gates.open("g1")
        self.assertEqual(self.row(jobid)[0], 1)

    def test_suspended_process_fails_what_it_held(self) -> None:
        """A process that did not run for longer than the threshold (suspended) finds its previous heartbeat
        that old by the database's clock: its peers may have taken its jobs over, so it stops and fails them."""
        jobid = self.submit("a", "g1")
        self.tick(1.5)
        jobs_db = self.cloud.db.jobs
        heartbeat = type(jobs_db).heartbeat
        gap = int(self.threshold) + 10
        jobs_db.heartbeat = lambda msid: heartbeat(jobs_db, msid).addCallback(  # type: ignore[method-assign]
            lambda now: now + gap)
        with capturedLogs() as events:
            self.tick(1.5)
        self.assertFalse(self.cloud.jobs.fenced)
        self.assertTrue(self.gates.gates["g1"].called)
        self.assertEqual(self.query(jobid)["jobresult"]["errortext"], FENCED_TEXT)
        self.assertEqual(len([e for e in events if "previous heartbeat" in e.get("log_format", "")]), 1)
        self.assertEqual(self.cloud.jobs.held, {})


class CancelThresholdTests(RunnerTestCase):
    """job.cancel.threshold.minutes: a job holding its object longer is failed, by the database's clock."""

    def backdate(self, jobid: str, seconds: int) -> None:
        """Make a running job's start, taken from the database's clock, `seconds` older."""
        job = self.successResultOf(self.cloud.db.jobs.get_by_uuid(jobid))
        held = self.cloud.jobs.held[job.id]
        assert held.started is not None
        held.started -= seconds

    def test_cancelled_after_threshold(self) -> None:
        """At 59 minutes the job runs on; past 60 it fails with CloudStack's text and the next job starts."""
        first = self.submit("a", "g1")
        second = self.submit("a", "g2")
        self.backdate(first, 59 * 60)
        self.tick(1.5)
        self.assertEqual(self.row(first)[0], PENDING)
        self.backdate(first, 60 + 2)
        with capturedLogs() as events:
            self.tick(1.5)
        out = self.query(first)
        self.assertEqual((out["jobstatus"], out["jobresultcode"]), (2, 530))
        self.assertEqual(out["jobresult"]["errortext"], CANCEL_TEXT)
        self.assertEqual(CANCEL_TEXT, "Job is cancelled as it has been blocking others for too long")
        self.assertEqual(len([e for e in events if "cancelling job" in e.get("log_format", "")]), 1)
        self.assertEqual(self.gates.started, ["g1", "g2"])
        self.gates.open("g2")
        self.assertEqual(self.query(second)["jobstatus"], 1)
        self.assertEqual([e[:2] for e in self.events("TEST.GATE")][-3:],
                         [("Completed", "ERROR"), ("Started", "INFO"), ("Completed", "INFO")])

    def test_local_clock_does_not_count(self) -> None:
        """Two hours on the local clock while the database's clock stands still cancel nothing."""
        jobid = self.submit("a", "g1")
        self.tick(2 * 3600, step=60)
        self.assertEqual(self.row(jobid)[0], PENDING)
        self.gates.open("g1")
        self.assertEqual(self.row(jobid)[0], 1)

    def test_setting_is_read_each_pass(self) -> None:
        """A lower job.cancel.threshold.minutes applies to a job already running; 0 turns it off."""
        jobid = self.submit("a", "g1")
        self.backdate(jobid, 6 * 60)
        self.cloud.api.settings.set("job.cancel.threshold.minutes", "0")
        self.tick(1.5)
        self.assertEqual(self.row(jobid)[0], PENDING)
        self.cloud.api.settings.set("job.cancel.threshold.minutes", "5")
        self.tick(1.5)
        self.assertEqual(self.query(jobid)["jobresult"]["errortext"], CANCEL_TEXT)


class DatabaseClockTests(RunnerTestCase):
    """Heartbeat staleness is judged by the database's clock whatever the local clock says."""

    def setUp(self) -> None:
        super().setUp()
        self.peer = self.successResultOf(self.cloud.db.jobs.register_mshost("peer", "h2", "r"))
        self.peer_job = self.job_row(self.peer.id, "p")

    def test_local_clock_far_ahead_takes_no_live_peer_over(self) -> None:
        """Ten years ahead locally: the peer, heart-beating by the database's clock, keeps its job."""
        self.cloud.reactor.advance(10 * 365 * 86400)
        self.tick(3)
        self.assertFalse(self.cloud.jobs.fenced)
        self.assertEqual(self.row(self.peer_job)[0], PENDING)

    def test_local_clock_behind_still_sees_a_dead_peer(self) -> None:
        """The local clock is over a year behind the database's; a peer silent for the threshold by the
        database's clock is still found dead at once."""
        local = self.cloud.reactor.seconds()
        db = self.successResultOf(self.cloud.db.jobs.db_time())
        self.assertGreater(db - local, 300 * 86400)
        self.age_heartbeat(self.peer.id, int(self.threshold) + 5)
        self.tick(1.5)
        self.assertEqual(self.query(self.peer_job)["jobresult"]["errortext"], PEER_TEXT)

    def test_db_now(self) -> None:
        """db_now() is the database's clock in whole seconds; the local clock is not involved."""
        now = self.cloud.db.pool.do_sync(lambda conn: conn.execute(sa.select(db_now())).scalar_one())
        self.assertIsInstance(now, int)
        self.assertLessEqual(abs(now - self.successResultOf(self.cloud.db.jobs.db_time())), 2)
        self.assertNotAlmostEqual(now, self.cloud.reactor.seconds(), delta=86400)


class BackoffTests(SynchronousTestCase):
    """DBThreadPool retries a retryable error after exponentially growing waits on the injected clock."""

    def pool(self, **kw: float) -> tuple[FakeReactor, DBThreadPool, list[float]]:
        reactor = FakeReactor()
        engine = sa.create_engine("sqlite://")
        pool = DBThreadPool(engine, reactor, reactor, threadpool=reactor.pool, **kw)  # type: ignore[arg-type]
        pool.start()
        self.addCleanup(pool.stop)
        return reactor, pool, []

    def flaky(self, reactor: FakeReactor, times: list[float], failures: int) -> Callable[[Connection], str]:
        def thd(conn: Connection) -> str:
            times.append(reactor.seconds())
            if len(times) <= failures:
                raise refused()
            return "ok"

        return thd

    def test_spacing_doubles(self) -> None:
        """Default: 0.1 s, then each wait doubles up to 5 s; the attempt happens only when the clock says."""
        reactor, pool, times = self.pool()
        d = pool.do(self.flaky(reactor, times, 7))
        self.assertEqual(times, [0])
        self.assertEqual([c.getTime() for c in reactor.getDelayedCalls()], [0.1])
        reactor.pump([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0])
        self.assertEqual(self.successResultOf(d), "ok")
        gaps = [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]
        self.assertEqual(gaps, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0])
        self.assertEqual(pool.retries, 7)

    def test_gives_up_after_max_retry_time(self) -> None:
        """Injected parameters: waits 1, 3, 5, 5, 5 fit in 20 s; the sixth failure reaches the caller."""
        reactor, pool, times = self.pool(backoff_start=1, backoff_mult=3, backoff_max=5, max_retry_time=20)
        self.assertEqual(pool.backoff(), [1, 3, 5, 5, 5])
        d = pool.do(self.flaky(reactor, times, 100))
        reactor.pump([1, 3, 5, 5, 5, 60])
        self.failureResultOf(d, sa.exc.OperationalError)
        self.assertEqual(times, [0, 1, 4, 9, 14, 19])
        self.flushLoggedErrors()

    def test_no_wait_for_other_errors(self) -> None:
        """A programming error is not retried at all."""
        reactor, pool, times = self.pool()

        def thd(conn: Connection) -> None:
            times.append(reactor.seconds())
            raise sa.exc.OperationalError("SELECT x", {}, _DriverError(1054, "Unknown column"))

        self.failureResultOf(pool.do(thd), sa.exc.OperationalError)
        self.assertEqual(times, [0])
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_connection_errors_are_retryable(self) -> None:
        """Refused (2003) and socket (2002) connections are worth another attempt, as are lost ones."""
        for code in (2002, 2003, 2006, 2013, 1205, 1213):
            self.assertTrue(should_retry(sa.exc.OperationalError("x", {}, _DriverError(code, "e"))), code)
        self.assertFalse(should_retry(sa.exc.OperationalError("x", {}, _DriverError(1054, "e"))))
