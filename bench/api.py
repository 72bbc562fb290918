"""Benchmark of the query API: signed listCapabilities and a 500-user page of listUsers.

Run from a clone (``make bench``, or ``scripts/deps --test`` then)::

    .venv/bin/python bench/api.py [--duration 5] [--runs 5] [--connections 10]

It starts the real daemon (``twistd -n cloudd``) as a child process on a temporary base directory
(SQLite) on a free loopback port, seeds users directly into its database so that the admin's
``listUsers listall=true`` sees exactly ``--users`` (10,000) of them, and runs beside it the
reference: a bare twisted.web resource that answers a constant JSON body of the same size as the
listCapabilities answer, also under ``twistd -n`` (its own process, same reactor, same core, a
log file of its own) and with the same access-log treatment as cloudd: cloudd's access-log line
(`cloudd.web.accesslog.access_log_line`) gathered into one log event per tenth of a second
(`cloudd.web.site.GatheredAccessLog`). When ``CLOUDD_TEST_DB_URL`` names a MariaDB/MySQL database,
the whole measurement is repeated on a second daemon using that database (its tables are dropped
first).

Both servers are pinned to one core and the load generator to another. Each of the ``--runs``
rounds (at least five) measures the reference and cloudd back to back, in alternating order (the
reference first in odd rounds, cloudd first in even ones), so a drift in the machine's load
favours neither. For each subject it prints (bench/measure.py) the rate and the server's CPU time
per request (all its threads, from /proc/<pid>/stat), each as the median with the min-max spread,
and the ratios to the reference (median of the per-round ratios); a rate capped by the load
generator (its CPU near a full core) is flagged. For listUsers it also prints the median and p90
latency of sequential requests over one keep-alive connection.
Targets (the issue): signed listCapabilities at least 0.40x the bare resource by CPU per request;
listUsers median latency under 50 ms.

The load generator is ``wrk``. When it is missing and the script runs as root it installs it with
``apt-get install -y wrk`` (the only thing it ever installs); otherwise, or with ``--python-load``,
it uses a small asyncio keep-alive load generator, which is slower than wrk and so understates
both rates (the CPU per request stays meaningful).

Exit status: 0 whether or not the targets are met (this is a bench, not a test); non-zero only when
the setup fails (a server does not start, an answer is wrong, the seeding fails). Every process it
starts is stopped by its PID on the way out, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.measure import MIN_ROUNDS, LoadRun, Sample, Series, ServerCpu, rounds_note, run_load  # noqa: E402
from cloudd.web.signing import sign  # noqa: E402
from tests.util.daemon import CloudDaemon, TwistdProcess, twistd_argv, twistd_env  # noqa: E402
from tests.util.db import ENV as DB_URL_ENV  # noqa: E402
from tests.util.db import wipe  # noqa: E402

CAPABILITIES_TARGET = 0.40  # of the bare resource, by CPU per request
LIST_USERS_MEDIAN_TARGET_MS = 50.0

# The reference: a leaf resource answering a constant body, nothing else, under `twistd -n -y` (the
# reactor the daemon logged, twistd's own log file), with cloudd's access-log line gathered as
# cloudd's ApiSite gathers it.
REFERENCE_TAC = r"""
import os

from twisted.application import internet, service
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.python import log as legacy_log

from cloudd.web.accesslog import access_log_line
from cloudd.web.site import GatheredAccessLog

with open(os.environ["BENCH_BODY"], "rb") as f:
    BODY = f.read()


class Bare(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
        return BODY


class GatheredLogSite(Site):
    def startFactory(self):
        super().startFactory()
        if self._logFile is legacy_log.logfile:
            self._logFile = GatheredAccessLog(self.reactor)


application = service.Application("bare")
internet.TCPServer(int(os.environ["BENCH_PORT"]), GatheredLogSite(Bare(), logFormatter=access_log_line),
                   interface="127.0.0.1").setServiceParent(application)
"""

# short reactor names twistd accepts, by the class it logs
REACTOR_NAMES = {"EPollReactor": "epoll", "PollReactor": "poll", "SelectReactor": "select",
                 "AsyncioSelectorReactor": "asyncio"}


class SetupError(RuntimeError):
    """The bench could not be set up; nothing was measured."""


def pause(seconds: float) -> None:
    threading.Event().wait(seconds)


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the block (and the processes it starts, which inherit it) on one core."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# --- the servers ---------------------------------------------------------------------------------


class ReferenceServer(TwistdProcess):
    """The bare twisted.web resource under `twistd -n -y` in its own process."""

    def __init__(self, workdir: str, body: bytes, reactor_name: str) -> None:
        super().__init__("reference", os.path.join(workdir, "reference"))
        os.makedirs(self.basedir, exist_ok=True)
        self.body_path = os.path.join(self.basedir, "body.json")
        with open(self.body_path, "wb") as f:
            f.write(body)
        self.tac = os.path.join(self.basedir, "reference.tac")
        with open(self.tac, "w") as f:
            f.write(REFERENCE_TAC)
        self.reactor_name = reactor_name
        self.env = {"BENCH_BODY": self.body_path, "BENCH_PORT": str(self.port)}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/api?command=listCapabilities&response=json"

    def start(self, timeout: float = 60) -> None:
        reactor = ["-r", self.reactor_name] if self.reactor_name else []
        argv = twistd_argv("-n", "--pidfile=", "--logfile", self.log_path, *reactor, "-y", self.tac)
        self.proc = subprocess.Popen(argv, cwd=self.basedir, env=twistd_env(self.env), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"the reference server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pause(0.05)
        raise SetupError("the reference server did not start listening")


def daemon_reactor(daemon: CloudDaemon, timeout: float = 10) -> str:
    """The short name of the reactor the daemon runs on, from its log ("" = Twisted's default)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"reactor class: ([\w.]+)", daemon.log())
        if m:
            return REACTOR_NAMES.get(m.group(1).rstrip(".").rsplit(".", 1)[-1], "")
        pause(0.1)
    return ""


def seed_users(db_url: str, wanted: int) -> int:
    """Add users to a new account `bench` until the daemon's database holds `wanted` live users.

    Written directly into the database (on SQLite, WAL lets the running daemon go on), in one
    transaction, with one precomputed password hash. Returns the number of users added.
    """
    import sqlalchemy as sa

    from cloudd.db import model
    from cloudd.db.accounts import AccountsComponent
    from cloudd.db.enginestrategy import create_engine
    from cloudd.util.passwords import hash_password

    class Clock:
        def seconds(self) -> float:
            return time.time()  # noqa: TID251 (a bench's own wall clock for `created`)

    engine = create_engine(db_url)
    accounts = AccountsComponent(None, Clock())  # type: ignore[arg-type]  # thd_* methods need no pool
    pw_hash = hash_password("bench-password", iterations=1000)
    try:
        with engine.begin() as conn:
            u, r, d = model.users, model.roles, model.domains
            have = conn.execute(sa.select(sa.func.count()).select_from(u).where(u.c.removed.is_(None))).scalar_one()
            missing = wanted - int(have)
            if missing <= 0:
                return 0
            role_id = conn.execute(sa.select(r.c.id).where(r.c.role_type == "User", r.c.is_default == 1)).scalar_one()
            root_id = conn.execute(sa.select(d.c.id).where(d.c.parent_id.is_(None))).scalar_one()
            account_id = accounts.thd_create_account(conn, name="bench", account_type=0, role_id=role_id,
                                                     domain_id=root_id)
            rows: list[dict[str, object]] = [
                {"username": f"bench{i:05d}", "password_hash": pw_hash, "firstname": "Bench",
                 "lastname": f"User {i}", "email": f"bench{i:05d}@example.org", "timezone": None}
                for i in range(missing)]
            accounts.thd_insert_users_bulk(conn, account_id, rows)
            return missing
    finally:
        engine.dispose()


# --- requests ------------------------------------------------------------------------------------


def signed_url(endpoint: str, apikey: str, secret: str, command: str, **extra: str) -> str:
    """A v3-signed GET URL that stays valid for 15 minutes."""
    expires = (datetime.now(UTC) + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    params = {"command": command, "response": "json", **extra, "apikey": apikey, "signatureversion": "3",
              "expires": expires}
    params["signature"] = sign(params, secret)
    return endpoint + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def fetch(url: str) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", parts.path + "?" + parts.query)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check_answer(url: str, name: str, what: str) -> dict[str, Any]:
    status, body = fetch(url)
    if status != 200:
        raise SetupError(f"{what} answered HTTP {status}: {body[:500]!r}")
    try:
        inner: dict[str, Any] = json.loads(body)[name]
    except (ValueError, KeyError):
        raise SetupError(f"{what} answered an unexpected body: {body[:500]!r}") from None
    return inner


@dataclass
class Latency:
    median_ms: float
    p90_ms: float
    count: int


def sequential_latency(url: str, count: int, warmup: int = 5) -> Latency:
    """Latency of `count` sequential GETs over one keep-alive connection (after a short warm-up)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    times: list[float] = []
    try:
        for i in range(warmup + count):
            started = time.perf_counter()
            conn.request("GET", target)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - started
            if resp.status != 200:
                raise SetupError(f"HTTP {resp.status} during the latency measurement")
            if i >= warmup:
                times.append(elapsed * 1000)
    finally:
        conn.close()
    times.sort()
    return Latency(statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.9))], len(times))


# --- load generators -----------------------------------------------------------------------------


def measured(load: Wrk | PythonLoad, url: str, pid: int) -> Sample:
    """One load run against `url`, with the CPU time the server (process `pid`) and the load tool spent."""
    with ServerCpu(pid) as server:
        result = load.run(url)
    if result.errors:
        raise SetupError(f"{result.errors} requests to {url.split('?')[0]} failed under load (non-2xx or socket errors)")
    return Sample(result.requests, result.seconds, server.seconds, result.load_cpu)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int  # non-2xx answers plus socket errors
    load_cpu: float | None  # the load generator's CPU seconds


def ensure_wrk() -> str | None:
    """The path of wrk; installed with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk is missing: apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return shutil.which("wrk")


class Wrk:
    def __init__(self, path: str, cpu: int | None, connections: int, duration: float) -> None:
        self.path = path
        self.cpu = cpu
        self.connections = connections
        self.duration = duration

    def run(self, url: str) -> LoadResult:
        argv = [self.path, "-t1", f"-c{self.connections}", f"-d{max(1, round(self.duration))}s", "--timeout", "10s",
                url]
        if self.cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(self.cpu), *argv]
        out: LoadRun = run_load(argv, timeout=self.duration + 60)
        m = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
        total = re.search(r"(\d+) requests in", out.stdout)
        if out.returncode != 0 or m is None or total is None:
            raise SetupError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        errors = 0
        bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
        if bad:
            errors += int(bad.group(1))
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout)
        if sock:
            errors += sum(int(g) for g in sock.groups())
        requests, rps = int(total.group(1)), float(m.group(1))
        # the duration wrk measured itself, so that the rate is wrk's own figure
        return LoadResult(requests, requests / rps if rps else float("nan"), errors, out.cpu)


class PythonLoad:
    """Keep-alive HTTP/1.1 GETs from `connections` asyncio connections (fallback for a missing wrk)."""

    def __init__(self, cpu: int | None, connections: int, duration: float) -> None:
        self.cpu = cpu
        self.connections = connections
        self.duration = duration

    def run(self, url: str) -> LoadResult:
        with pinned(self.cpu), ServerCpu(os.getpid()) as own:
            result = asyncio.run(self._run(url))
        result.load_cpu = own.seconds
        return result

    async def _run(self, url: str) -> LoadResult:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        request = (f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").encode()
        deadline = time.monotonic() + self.duration
        done = [0, 0]

        async def one() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                while time.monotonic() < deadline:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    await reader.readexactly(int(m.group(1)) if m else 0)
                    done[0 if head[9:10] == b"2" else 1] += 1
            finally:
                writer.close()

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(self.connections)))
        return LoadResult(done[0] + done[1], time.monotonic() - started, done[1], None)


# --- the bench -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each load run (default 5)")
    p.add_argument("--runs", type=int, default=MIN_ROUNDS,
                   help=f"rounds; medians and spreads are reported (default and minimum for figures: {MIN_ROUNDS})")
    p.add_argument("--connections", type=int, default=10, help="concurrent keep-alive connections (default 10)")
    p.add_argument("--users", type=int, default=10_000, help="users listUsers sees in total (default 10000)")
    p.add_argument("--latency-requests", type=int, default=100,
                   help="sequential listUsers requests for the latency figures (default 100)")
    p.add_argument("--server-cpu", type=int, default=0, help="core of both servers (default 0; -1: no pinning)")
    p.add_argument("--client-cpu", type=int, default=1,
                   help="core of the load generator (default 1; -1: no pinning)")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--db-url", default=os.environ.get(DB_URL_ENV, ""),
                   help=f"also measure on this MariaDB/MySQL database, whose tables are dropped first "
                        f"(default ${DB_URL_ENV} when it names a server)")
    p.add_argument("--keep", action="store_true", help="keep the temporary base directory (its twistd.log)")
    args = p.parse_args(argv)
    if args.users < 500:
        p.error("--users must be at least 500 (the page size)")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.db_url.startswith("sqlite"):
        args.db_url = ""
    return args


@dataclass
class Outcome:
    database: str
    cpu_ratio: float
    latency_ms: float


def bench_database(database: str, db_url: str, args: argparse.Namespace, load: Wrk | PythonLoad,
                   server_cpu: int | None, client_cpu: int | None, workdir: str) -> Outcome:
    """Every measurement on one cloudd daemon (SQLite when `db_url` is empty) beside its own reference."""
    basedir = os.path.join(workdir, f"cloudd-{database.lower()}")
    if db_url:
        wipe(db_url)
    daemon = CloudDaemon(basedir, db_url=db_url or None, extra_args=["--upgrade-db"] if db_url else [])
    reference: ReferenceServer | None = None
    try:
        with pinned(server_cpu):
            daemon.start()
        creds = daemon.credentials()
        reactor_name = daemon_reactor(daemon)
        added = seed_users(db_url or f"sqlite:///{basedir}/cloudd.sqlite", args.users)
        print(f"[{database}] cloudd on port {daemon.port} (reactor {reactor_name or 'default'}); "
              f"seeded {added} users", flush=True)

        def urls() -> tuple[str, str]:
            caps = signed_url(daemon.endpoint, creds["apikey"], creds["secretkey"], "listCapabilities")
            users = signed_url(daemon.endpoint, creds["apikey"], creds["secretkey"], "listUsers", page="1",
                               pagesize="500", listall="true")
            return caps, users

        caps_url, users_url = urls()
        capability = check_answer(caps_url, "listcapabilitiesresponse", "signed listCapabilities")
        if "capability" not in capability:
            raise SetupError(f"listCapabilities answered without a capability: {capability}")
        forged = caps_url.replace("&signature=", "&signature=A", 1)
        if fetch(forged)[0] != 401:
            raise SetupError("a request with a wrong signature was not refused with 401")
        listing = check_answer(users_url, "listusersresponse", "signed listUsers")
        if listing.get("count") != args.users or len(listing.get("user", [])) != 500:
            raise SetupError(f"listUsers answered {len(listing.get('user', []))} users of count "
                             f"{listing.get('count')}, not 500 of {args.users}")
        _, caps_body = fetch(caps_url)
        _, users_body = fetch(users_url)

        with pinned(server_cpu):
            reference = ReferenceServer(workdir, caps_body, reactor_name)
            reference.start()
        status, ref_body = fetch(reference.endpoint)
        if status != 200 or ref_body != caps_body:
            raise SetupError(f"the reference server answered HTTP {status}")
        print(f"[{database}] bodies: listCapabilities {len(caps_body)} bytes (reference the same), "
              f"listUsers {len(users_body)} bytes; both servers log each request, gathered", flush=True)

        # warm-up: imports, caches, database pages
        for url in (reference.endpoint, caps_url, users_url):
            for _ in range(20):
                fetch(url)

        assert daemon.proc is not None and reference.proc is not None
        ref_pid, cloudd_pid = reference.proc.pid, daemon.proc.pid
        bare = Series("bare twisted.web resource")
        caps = Series("signed listCapabilities")
        users = Series(f"signed listUsers 500 of {args.users}")
        for run in range(args.runs):
            caps_url, users_url = urls()  # fresh expiry windows on long runs
            # alternating order: the reference first in odd rounds, cloudd first in even ones
            for who in ("bare", "cloudd") if run % 2 == 0 else ("cloudd", "bare"):
                if who == "bare":
                    bare.add(measured(load, reference.endpoint, ref_pid))
                else:
                    caps.add(measured(load, caps_url, cloudd_pid))
                    users.add(measured(load, users_url, cloudd_pid))
            b, c, u = bare.samples[-1], caps.samples[-1], users.samples[-1]
            print(f"  round {run + 1} ({'bare first' if run % 2 == 0 else 'cloudd first'}): "
                  f"bare {b.rate:7.0f} req/s ({b.cpu_us:4.0f} us cpu/req)   "
                  f"listCapabilities {c.rate:7.0f} req/s ({c.cpu_us:4.0f} us)   "
                  f"listUsers {u.rate:6.1f} req/s ({u.cpu_us / 1000:5.1f} ms)", flush=True)
        with pinned(client_cpu):
            latency = sequential_latency(urls()[1], args.latency_requests)

        cpu_ratio = caps.cpu_ratio(bare)
        print()
        print(f"[{database}] {args.runs} rounds ({args.duration:g} s each, {args.connections} connections); "
              f"median (min-max); ratios are cloudd / reference, per round, by rate and by CPU per request:")
        width = 34
        print("  " + bare.report(width=width))
        print("  " + caps.report(reference=bare, width=width))
        print("  " + users.report(reference=bare, width=width, rate_spec=".1f"))
        print(f"  listUsers latency, {latency.count} sequential requests on one connection: "
              f"median {latency.median_ms:.1f} ms, p90 {latency.p90_ms:.1f} ms")
        return Outcome(database, cpu_ratio.median, latency.median_ms)
    finally:
        if reference is not None:
            reference.stop()
        daemon.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = os.sched_getaffinity(0)
    server_cpu = args.server_cpu if args.server_cpu >= 0 and args.server_cpu in cpus else None
    client_cpu = args.client_cpu if args.client_cpu >= 0 and args.client_cpu in cpus else None
    workdir = tempfile.mkdtemp(prefix="cloudd-bench-api-")
    try:
        wrk = None if args.python_load else ensure_wrk()
        load: Wrk | PythonLoad = (Wrk(wrk, client_cpu, args.connections, args.duration) if wrk
                                  else PythonLoad(client_cpu, args.connections, args.duration))
        print(f"load generator: {'wrk' if wrk else 'python (asyncio)'}, {args.connections} connections, "
              f"{args.duration:g} s x {args.runs} rounds; servers on cpu {server_cpu}, client on cpu {client_cpu}",
              flush=True)
        note = rounds_note(args.runs)
        if note:
            print(note, flush=True)
        databases = [("SQLite", "")] + ([("MariaDB", args.db_url)] if args.db_url else [])
        outcomes = [bench_database(name, url, args, load, server_cpu, client_cpu, workdir) for name, url in databases]
        print()
        for outcome in outcomes:
            caps_ok = outcome.cpu_ratio >= CAPABILITIES_TARGET
            users_ok = outcome.latency_ms < LIST_USERS_MEDIAN_TARGET_MS
            print(f"[{outcome.database}] target: signed listCapabilities >= {CAPABILITIES_TARGET:.2f}x the bare "
                  f"resource by CPU per request: {'met' if caps_ok else 'MISSED'} ({outcome.cpu_ratio:.2f}x)")
            print(f"[{outcome.database}] target: listUsers page of 500 of {args.users}, median < "
                  f"{LIST_USERS_MEDIAN_TARGET_MS:g} ms: {'met' if users_ok else 'MISSED'} ({outcome.latency_ms:.1f} ms)")
        return 0
    except (SetupError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
