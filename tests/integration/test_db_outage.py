"""Jobs on MariaDB when the connection to it is cut: self-fencing, take-over by a peer, the
database's clock for every age, and the pool's backoff.

Two management servers run in this process on the real reactor and real threads: A reaches
MariaDB through a TCP proxy on loopback that the test cuts and restores (the shared server is never
stopped), B directly. Settings are shortened (heartbeat every 0.2 s, threshold 2 s) and the pool's
backoff parameters are injected small, so the whole module takes seconds. A's clock can be skewed
by years, and MariaDB's clock as A's sessions see it can be moved with `SET timestamp`.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

import cloudd.api
from cloudd import bootstrap
from cloudd.api.context import Caller
from cloudd.api.registry import Registry
from cloudd.api.service import ApiService
from cloudd.db import migrate, model
from cloudd.db.connector import DBConnector
from cloudd.db.enginestrategy import create_engine, db_now
from cloudd.db.jobs import PENDING
from cloudd.jobs.runner import CANCEL_TEXT, PEER_TEXT, JobRunner
from cloudd.orchestration.context import make_services
from cloudd.settings import Settings
from tests.cloudd.test_jobs import Gates
from tests.util.db import test_db_url, wipe

YEARS = 10 * 365 * 86400


class _Pipe(protocol.Protocol):
    peer: _Pipe | None = None

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802 (Twisted API)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.loseConnection()


class _Client(protocol.ClientFactory):
    def __init__(self, front: _Pipe) -> None:
        self.front = front

    def buildProtocol(self, addr: Any) -> _Pipe:  # noqa: N802 (Twisted API)
        back = _Pipe()
        back.peer, self.front.peer = self.front, back
        assert self.front.transport is not None
        self.front.transport.resumeProducing()  # type: ignore[attr-defined]
        return back

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:  # noqa: N802 (Twisted API)
        if self.front.transport is not None:
            self.front.transport.loseConnection()


class CuttableProxy(protocol.ServerFactory):
    """A loopback TCP proxy to MariaDB. Cut, it drops every open connection and resets each new one at
    once (recording when it came: one per connection attempt of the pool); restored, it forwards again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.cut_at: float | None = None
        self.refused: list[float] = []
        self.open: set[_Pipe] = set()
        self.port = reactor.listenTCP(0, self, interface="127.0.0.1")  # type: ignore[attr-defined]

    def buildProtocol(self, addr: Any) -> _Pipe:  # noqa: N802 (Twisted API)
        front = _Front(self)
        return front

    def cut(self) -> None:
        self.cut_at = reactor.seconds()  # type: ignore[attr-defined]
        for pipe in list(self.open):
            for end in (pipe, pipe.peer):
                if end is not None and end.transport is not None:
                    end.transport.abortConnection()  # type: ignore[attr-defined]

    def restore(self) -> None:
        self.cut_at = None

    def close(self) -> Deferred[None]:
        self.cut()
        d: Deferred[None] = self.port.stopListening()
        return d


class _Front(_Pipe):
    def __init__(self, proxy: CuttableProxy) -> None:
        self.proxy = proxy

    def connectionMade(self) -> None:  # noqa: N802 (Twisted API)
        assert self.transport is not None
        if self.proxy.cut_at is not None:
            self.proxy.refused.append(reactor.seconds())  # type: ignore[attr-defined]
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        self.proxy.open.add(self)
        self.transport.pauseProducing()  # type: ignore[attr-defined]
        reactor.connectTCP(*self.proxy.target, _Client(self))  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802 (Twisted API)
        self.proxy.open.discard(self)
        super().connectionLost(reason)


class SkewedClock:
    """The reactor's clock, `offset` seconds off: what a management server with a wrong clock sees."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def seconds(self) -> float:
        return float(reactor.seconds()) + self.offset  # type: ignore[attr-defined]

    def callLater(self, delay: float, f: Any, *args: Any, **kw: Any) -> IDelayedCall:  # noqa: N802
        return reactor.callLater(delay, f, *args, **kw)  # type: ignore[attr-defined,no-any-return]

    def getDelayedCalls(self) -> list[IDelayedCall]:  # noqa: N802
        return reactor.getDelayedCalls()  # type: ignore[attr-defined,no-any-return]


def _settings(threshold_ms: int) -> Settings:
    settings = Settings()
    settings.set("cluster.heartbeat.interval", "200")
    settings.set("cluster.heartbeat.threshold", str(threshold_ms))
    return settings


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds)  # type: ignore[arg-type]


class Server:
    """One management server: its DB connector, command layer and job runner."""

    def __init__(self, url: str, name: str, clock: Any, threshold_ms: int, sealing: dict[str, Any]) -> None:
        self.db = DBConnector(url, ".", reactor, clock, **sealing)  # type: ignore[arg-type]
        # short waits so that an outage of a few seconds spans several attempts
        self.db.pool.backoff_start, self.db.pool.backoff_mult = 0.05, 2.0
        self.db.pool.backoff_max, self.db.pool.max_retry_time = 0.4, 3.0
        services = make_services(self.db, clock, _settings(threshold_ms))
        self.runner = JobRunner(services, name, name)
        self.api = ApiService(services, Registry.scan(cloudd.api), name, jobs=self.runner)
        self.gates = Gates()
        self.gates.install(SimpleNamespace(api=self.api))  # type: ignore[arg-type]
        self.caller: Caller | None = None

    async def start(self, admin_key: str) -> None:
        await self.db.setup()
        self.caller = Caller(await self.db.accounts.get_user_by_api_key(admin_key))
        await self.runner.prepare("run-" + self.runner.ms_uuid)
        self.runner.startService()

    async def submit(self, obj: str, gate: str) -> tuple[int, dict[str, Any]]:
        assert self.caller is not None
        answer = await self.api.dispatch(self.caller, "waitForGate", {"object": obj, "gate": gate})
        return answer.status, answer.body

    async def stop(self) -> None:
        if self.runner.running:
            await self.runner.stopService()
        self.db.stopService()


class DbOutageTests(TestCase):
    timeout = 120

    async def _setup(self) -> None:
        url = test_db_url()
        if not url.startswith("mysql"):
            raise SkipTest("CLOUDD_TEST_DB_URL names no MariaDB/MySQL database (the proxy speaks to one)")
        wipe(url)
        direct = create_engine(url)
        self.addCleanup(direct.dispose)
        migrate.upgrade(direct)
        self.direct = direct
        u = sa.engine.make_url(url)
        self.proxy = CuttableProxy(u.host or "127.0.0.1", u.port or 3306)
        self.addCleanup(self.proxy.close)
        self.proxied_url = u.set(host="127.0.0.1", port=self.proxy.port.getHost().port).render_as_string(
            hide_password=False)
        self.url = url
        boot = DBConnector(url, ".", reactor, reactor)  # type: ignore[arg-type]
        boot.pool.start()
        self.addCleanup(boot.stopService)
        # every server seals and unseals API secrets with the same key, where the connector has one
        self.sealing = {"sealer": boot.sealer} if hasattr(boot, "sealer") else {}
        creds = await boot.pool.do(lambda conn: bootstrap.thd_bootstrap(boot, conn))
        assert creds is not None
        self.admin_key = creds.apikey
        # A's sessions see MariaDB's clock at `db_clock` when it is set (SET timestamp), else the real one
        self.db_clock: int | None = None

    def setUp(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._setup())

    async def server(self, name: str, proxied: bool, offset: float = 0, threshold_ms: int = 2000) -> Server:
        server = Server(self.proxied_url if proxied else self.url, name, SkewedClock(offset), threshold_ms,
                        self.sealing)
        if proxied:
            @event.listens_for(server.db.engine, "checkout")
            def _clock(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("SET timestamp = DEFAULT" if self.db_clock is None else
                            f"SET timestamp = {int(self.db_clock)}")
                cur.close()

        self.addCleanup(lambda: Deferred.fromCoroutine(server.stop()))
        await server.start(self.admin_key)
        return server

    def job(self, jobid: str) -> tuple[int, str | None]:
        with self.direct.begin() as conn:
            row = conn.execute(sa.select(model.async_jobs.c.status, model.async_jobs.c.result).where(
                model.async_jobs.c.uuid == jobid)).one()
        return int(row[0]), row[1]

    async def wait_for(self, check: Any, timeout: float = 20) -> None:
        waited = 0.0
        while not check():
            if waited > timeout:
                self.fail(f"condition not met in {timeout}s")
            await sleep(0.05)
            waited += 0.05

    def test_fenced_and_taken_over(self) -> Deferred[None]:
        """Cut from MariaDB past the threshold, A fences itself (its job body stopped, the waiting job
        never started) while B fails A's jobs; restored, A leaves B's results alone and takes jobs again."""
        return Deferred.fromCoroutine(self.fencing())

    async def fencing(self) -> None:
        a = await self.server("ms-a", proxied=True)
        await self.server("ms-b", proxied=False)  # B: the peer that takes A's jobs over
        status, body = await a.submit("x", "g1")
        self.assertEqual(status, 200, body)
        running = body["jobid"]
        status, body = await a.submit("x", "g2")
        waiting = body["jobid"]
        await self.wait_for(lambda: a.gates.started == ["g1"])

        self.proxy.cut()
        await self.wait_for(lambda: a.runner.fenced)
        self.assertTrue(a.gates.gates["g1"].called, "the fenced server stopped its job's body")
        # B saw A's heartbeat stop and took its jobs over
        await self.wait_for(lambda: self.job(running)[0] != PENDING and self.job(waiting)[0] != PENDING)
        self.assertIn(PEER_TEXT, self.job(running)[1] or "")
        self.assertGreater(len(self.proxy.refused), 3)
        self.assertGreater(a.db.pool.retries, 3)

        self.proxy.restore()
        await self.wait_for(lambda: not a.runner.fenced)
        # A failed nothing B had already failed, and started nothing it held
        self.assertIn(PEER_TEXT, self.job(running)[1] or "")
        self.assertIn(PEER_TEXT, self.job(waiting)[1] or "")
        self.assertEqual(a.gates.started, ["g1"])
        await self.wait_for(lambda: a.runner.held == {})
        status, body = await a.submit("x", "g3")
        self.assertEqual(status, 200, body)
        await self.wait_for(lambda: a.gates.started == ["g1", "g3"])
        a.gates.open("g3")
        await self.wait_for(lambda: self.job(body["jobid"])[0] == 1)

    async def backoff(self) -> None:
        a = await self.server("ms-a", proxied=True)
        await a.runner.stopService()  # only the test's transaction uses the pool
        waits = a.db.pool.backoff()
        self.proxy.cut()
        before = a.db.pool.retries
        failure = None
        try:
            await a.db.pool.do(lambda conn: conn.execute(sa.select(db_now())).scalar_one())
        except sa.exc.OperationalError as exc:
            failure = exc
        self.assertIsNotNone(failure, "the cut connection never failed the transaction")
        self.assertEqual(a.db.pool.retries - before, len(waits))
        # one connection attempt per try, spaced at least by the growing waits
        times = self.proxy.refused
        self.assertEqual(len(times), len(waits) + 1)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        for gap, wait in zip(gaps, waits, strict=True):
            self.assertGreaterEqual(gap, wait - 0.01)
        self.assertEqual(waits[:4], [0.05, 0.1, 0.2, 0.4])
        # restored in the middle of a backoff, the same transaction goes through
        d = a.db.pool.do(lambda conn: conn.execute(sa.select(db_now())).scalar_one())
        await sleep(0.3)
        self.proxy.restore()
        self.assertIsInstance(await d, int)

    def test_backoff(self) -> Deferred[None]:
        """Each retry of a transaction on the cut connection waits longer; restored, it goes through."""
        return Deferred.fromCoroutine(self.backoff())

    async def cancel_threshold(self) -> None:
        # MariaDB's clock leaps an hour below: a threshold longer than that keeps A from seeing its own
        # heartbeats as stopped (which would fail its jobs as fencing does)
        a = await self.server("ms-a", proxied=True, threshold_ms=7_200_000)
        status, body = await a.submit("y", "g1")
        first = body["jobid"]
        status, body = await a.submit("y", "g2")
        second = body["jobid"]
        await self.wait_for(lambda: a.gates.started == ["g1"])
        with self.direct.begin() as conn:
            now = int(conn.execute(sa.select(db_now())).scalar_one())
        # the local clock leaps two hours: nothing is cancelled
        a.api.clock.offset += 7200  # type: ignore[attr-defined]
        await sleep(0.6)
        self.assertEqual(self.job(first)[0], PENDING)
        # MariaDB's clock, as A's sessions see it, passes the threshold: the job is cancelled, the next starts
        self.db_clock = now + 3600 + 5
        await self.wait_for(lambda: self.job(first)[0] != PENDING)
        self.assertIn(CANCEL_TEXT, self.job(first)[1] or "")
        await self.wait_for(lambda: a.gates.started == ["g1", "g2"])
        self.assertEqual(self.job(second)[0], PENDING)
        a.gates.open("g2")
        await self.wait_for(lambda: self.job(second)[0] == 1)

    def test_cancel_threshold_on_database_clock(self) -> Deferred[None]:
        """job.cancel.threshold.minutes counts on MariaDB's clock: two local hours cancel nothing, an hour on
        MariaDB's clock cancels the job holding its object, and the next job on it starts."""
        return Deferred.fromCoroutine(self.cancel_threshold())

    async def skewed(self, offset: float) -> None:
        # B (live) never judges peers itself here: what happens to the dead peer's job is A's doing
        b = await self.server("ms-b", proxied=False, threshold_ms=3_600_000)
        a = await self.server("ms-a", proxied=True, offset=offset)
        status, body = await b.submit("z", "g1")
        live_job = body["jobid"]
        dead = await b.db.jobs.register_mshost("ms-dead", "h", "r")
        with self.direct.begin() as conn:
            conn.execute(model.mshosts.update().where(model.mshosts.c.id == dead.id).values(
                last_heartbeat=db_now() - 5))
            jobid = conn.execute(sa.select(model.async_jobs.c.user_id, model.async_jobs.c.account_id,
                                           model.async_jobs.c.domain_id).where(
                model.async_jobs.c.uuid == live_job)).one()
            conn.execute(model.async_jobs.insert().values(
                uuid="dead-job-" + os.urandom(4).hex(), user_id=jobid[0], account_id=jobid[1], domain_id=jobid[2],
                command="waitForGate", cmd="x", cmd_info="{}", sync_object="Test:dead", status=PENDING,
                proc_status=0, result_code=0, msid=dead.id, created=db_now() - 5))
        # a few of A's heartbeats: the dead peer's job is failed, the live peer's is left alone
        await sleep(1.0)
        with self.direct.begin() as conn:
            dead_status = conn.execute(sa.select(model.async_jobs.c.status).where(
                model.async_jobs.c.msid == dead.id)).scalar_one()
        self.assertEqual(dead_status, 2)
        self.assertEqual(self.job(live_job)[0], PENDING)
        self.assertFalse(a.runner.fenced)
        b.gates.open("g1")
        await self.wait_for(lambda: self.job(live_job)[0] == 1)

    def test_clock_far_ahead(self) -> Deferred[None]:
        """A's clock ten years ahead neither takes B's jobs over nor misses a dead peer."""
        return Deferred.fromCoroutine(self.skewed(YEARS))

    def test_clock_far_behind(self) -> Deferred[None]:
        """The same with A's clock ten years behind."""
        return Deferred.fromCoroutine(self.skewed(-YEARS))
