"""Benchmark of the query API: signed listCapabilities and a 500-user page of listUsers.

Run from a clone after ``pip install .[test]``::

    python bench/api.py [--duration 5] [--runs 3] [--connections 10]

It starts the real daemon (``twistd -n cloudd``) as a child process on a temporary base directory
(SQLite) on a free loopback port, seeds users directly into its database so that the admin's
``listUsers listall=true`` sees exactly ``--users`` (10,000) of them, and runs beside it a bare
twisted.web resource that answers a constant JSON body of the same size as the listCapabilities
answer (its own process, same reactor type, same core). Both servers are pinned to one core and
the load generator to another; each throughput figure is the median of ``--runs`` runs, the
measurements of each run interleaved so that the ratio compares like with like on a noisy machine.

It prints, for each of signed listCapabilities and signed listUsers (page 1, pagesize 500,
listall=true): requests per second, the bare resource's rate in the same run and the ratio (the
median of the per-run ratios), and for listUsers the median and p90 latency of sequential requests
over one keep-alive connection. It also prints the server's CPU time per request (all its threads,
from /proc), which other load on a shared machine disturbs much less than the rates.
Targets (the issue): listCapabilities at least 40 % of the bare resource's rate; listUsers median
latency under 50 ms.

The load generator is ``wrk``. When it is missing and the script runs as root it installs it with
``apt-get install -y wrk`` (the only thing it ever installs); otherwise, or with ``--python-load``,
it uses a small asyncio keep-alive load generator, which is slower than wrk and so understates
both rates (the ratio stays meaningful).

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

from cloudd.web.signing import sign  # noqa: E402
from tests.util.daemon import CloudDaemon, free_port  # noqa: E402

CAPABILITIES_TARGET = 0.40  # of the bare resource's rate
LIST_USERS_MEDIAN_TARGET_MS = 50.0

# The reference: a leaf resource answering a constant body, nothing else. The reactor is the one the
# daemon logged ("reactor class: ..."), installed the way twistd does.
REFERENCE_SERVER = r"""
import sys
from twisted.application.reactors import installReactor
port, body_path, reactor_name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if reactor_name:
    installReactor(reactor_name)
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

with open(body_path, "rb") as f:
    BODY = f.read()


class Bare(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
        return BODY


reactor.listenTCP(port, Site(Bare()), interface="127.0.0.1")
reactor.run()
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


class ReferenceServer:
    """The bare twisted.web resource in its own process."""

    def __init__(self, workdir: str, body: bytes, reactor_name: str) -> None:
        self.port = free_port()
        self.body_path = os.path.join(workdir, "reference-body.json")
        with open(self.body_path, "wb") as f:
            f.write(body)
        self.reactor_name = reactor_name
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/api?command=listCapabilities&response=json"

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", REFERENCE_SERVER, str(self.port), self.body_path,
                                      self.reactor_name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise SetupError(f"the reference server exited with {self.proc.returncode}:\n{err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pause(0.05)
        raise SetupError("the reference server did not start listening")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def daemon_reactor(daemon: CloudDaemon, timeout: float = 10) -> str:
    """The short name of the reactor the daemon runs on, from its log ("" = Twisted's default)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"reactor class: ([\w.]+)", daemon.log())
        if m:
            return REACTOR_NAMES.get(m.group(1).rstrip(".").rsplit(".", 1)[-1], "")
        pause(0.1)
    return ""


def seed_users(daemon: CloudDaemon, wanted: int) -> int:
    """Add users to a new account `bench` until the daemon's database holds `wanted` live users.

    Written directly into the SQLite file (WAL lets the running daemon go on), in one transaction,
    with one precomputed password hash. Returns the number of users added.
    """
    import sqlalchemy as sa

    from cloudd.db import model
    from cloudd.db.accounts import AccountsComponent
    from cloudd.db.enginestrategy import create_engine
    from cloudd.util.passwords import hash_password

    class Clock:
        def seconds(self) -> float:
            return time.time()  # noqa: TID251 (a bench's own wall clock for `created`)

    engine = create_engine(f"sqlite:///{daemon.basedir}/cloudd.sqlite")
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


@dataclass
class LoadResult:
    rps: float
    requests: int
    errors: int  # non-2xx answers plus socket errors
    cpu_us: float = float("nan")  # server CPU time (all threads) per request, microseconds


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(load: Wrk | PythonLoad, url: str, pid: int) -> LoadResult:
    """One load run against `url`, with the CPU time the server (process `pid`) spent per request."""
    before = process_cpu_seconds(pid)
    result = load.run(url)
    spent = process_cpu_seconds(pid) - before
    if result.requests:
        result.cpu_us = spent / result.requests * 1e6
    return result


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
        out = subprocess.run(argv, capture_output=True, text=True, timeout=self.duration + 60, check=False)
        m = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
        if out.returncode != 0 or m is None:
            raise SetupError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        total = re.search(r"(\d+) requests in", out.stdout)
        errors = 0
        bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
        if bad:
            errors += int(bad.group(1))
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout)
        if sock:
            errors += sum(int(g) for g in sock.groups())
        return LoadResult(float(m.group(1)), int(total.group(1)) if total else 0, errors)


class PythonLoad:
    """Keep-alive HTTP/1.1 GETs from `connections` asyncio connections (fallback for a missing wrk)."""

    def __init__(self, cpu: int | None, connections: int, duration: float) -> None:
        self.cpu = cpu
        self.connections = connections
        self.duration = duration

    def run(self, url: str) -> LoadResult:
        with pinned(self.cpu):
            return asyncio.run(self._run(url))

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
        return LoadResult(done[0] / (time.monotonic() - started), done[0] + done[1], done[1])


# --- the bench -----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each load run (default 5)")
    p.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported (default 3)")
    p.add_argument("--connections", type=int, default=10, help="concurrent keep-alive connections (default 10)")
    p.add_argument("--users", type=int, default=10_000, help="users listUsers sees in total (default 10000)")
    p.add_argument("--latency-requests", type=int, default=100,
                   help="sequential listUsers requests for the latency figures (default 100)")
    p.add_argument("--server-cpu", type=int, default=0, help="core of both servers (default 0; -1: no pinning)")
    p.add_argument("--client-cpu", type=int, default=1,
                   help="core of the load generator (default 1; -1: no pinning)")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--keep", action="store_true", help="keep the temporary base directory (its twistd.log)")
    args = p.parse_args(argv)
    if args.users < 500:
        p.error("--users must be at least 500 (the page size)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = os.sched_getaffinity(0)
    server_cpu = args.server_cpu if args.server_cpu >= 0 and args.server_cpu in cpus else None
    client_cpu = args.client_cpu if args.client_cpu >= 0 and args.client_cpu in cpus else None
    workdir = tempfile.mkdtemp(prefix="cloudd-bench-api-")
    daemon = CloudDaemon(os.path.join(workdir, "cloudd"))
    reference: ReferenceServer | None = None
    try:
        wrk = None if args.python_load else ensure_wrk()
        load: Wrk | PythonLoad = (Wrk(wrk, client_cpu, args.connections, args.duration) if wrk
                                  else PythonLoad(client_cpu, args.connections, args.duration))
        print(f"load generator: {'wrk' if wrk else 'python (asyncio)'}, {args.connections} connections, "
              f"{args.duration:g} s x {args.runs} runs; servers on cpu {server_cpu}, client on cpu {client_cpu}",
              flush=True)

        with pinned(server_cpu):
            daemon.start()
        creds = daemon.credentials()
        reactor_name = daemon_reactor(daemon)
        added = seed_users(daemon, args.users)
        print(f"cloudd on port {daemon.port} (reactor {reactor_name or 'default'}); seeded {added} users",
              flush=True)

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
        status, ref_body = fetch(reference.url)
        if status != 200 or ref_body != caps_body:
            raise SetupError(f"the reference server answered HTTP {status}")
        print(f"bodies: listCapabilities {len(caps_body)} bytes (reference the same), "
              f"listUsers {len(users_body)} bytes", flush=True)

        # warm-up: imports, caches, SQLite pages
        for url in (reference.url, caps_url, users_url):
            for _ in range(20):
                fetch(url)

        assert daemon.proc is not None and reference.proc is not None
        ref_pid, cloudd_pid = reference.proc.pid, daemon.proc.pid
        runs: list[tuple[LoadResult, LoadResult, LoadResult]] = []
        for run in range(args.runs):
            caps_url, users_url = urls()  # fresh expiry windows on long runs
            bare_r = measured(load, reference.url, ref_pid)
            caps_r = measured(load, caps_url, cloudd_pid)
            users_r = measured(load, users_url, cloudd_pid)
            runs.append((bare_r, caps_r, users_r))
            print(f"  run {run + 1}: bare {bare_r.rps:7.0f} req/s ({bare_r.cpu_us:4.0f} us cpu/req)   "
                  f"listCapabilities {caps_r.rps:7.0f} req/s ({caps_r.cpu_us:4.0f} us)   "
                  f"listUsers {users_r.rps:6.1f} req/s ({users_r.cpu_us / 1000:5.1f} ms)", flush=True)
        errors = sum(r.errors for triple in runs for r in triple)
        if errors:
            raise SetupError(f"{errors} requests failed under load (non-2xx or socket errors)")
        with pinned(client_cpu):
            latency = sequential_latency(urls()[1], args.latency_requests)

        def col(i: int, attr: str) -> float:
            return median([float(getattr(triple[i], attr)) for triple in runs])

        bare_rps, caps_rps, users_rps = col(0, "rps"), col(1, "rps"), col(2, "rps")
        # The ratio is the median of the per-run ratios: each run measures both servers back to back.
        caps_ratio = median([c.rps / b.rps for b, c, _ in runs])
        users_ratio = median([u.rps / b.rps for b, _, u in runs])
        # Server CPU time per request is much less sensitive to other load on the machine.
        cpu_ratio = median([b.cpu_us / c.cpu_us for b, c, _ in runs])
        caps_ok = caps_ratio >= CAPABILITIES_TARGET
        users_ok = latency.median_ms < LIST_USERS_MEDIAN_TARGET_MS
        print()
        print(f"medians of {args.runs} runs ({args.duration:g} s each, {args.connections} connections):")
        print(f"  bare twisted.web JSON resource     {bare_rps:8.0f} req/s   cpu {col(0, 'cpu_us'):6.0f} us/req")
        print(f"  signed listCapabilities            {caps_rps:8.0f} req/s   cpu {col(1, 'cpu_us'):6.0f} us/req   "
              f"ratio {caps_ratio:.2f} (cpu-cost ratio {cpu_ratio:.2f})")
        print(f"  signed listUsers 500 of {args.users:<6}     {users_rps:8.1f} req/s   "
              f"cpu {col(2, 'cpu_us') / 1000:6.1f} ms/req   ratio {users_ratio:.4f}")
        print(f"  listUsers latency, {latency.count} sequential requests on one connection: "
              f"median {latency.median_ms:.1f} ms, p90 {latency.p90_ms:.1f} ms")
        print()
        print(f"target: signed listCapabilities >= {CAPABILITIES_TARGET:.0%} of the bare resource: "
              f"{'met' if caps_ok else 'MISSED'} ({caps_ratio:.0%})")
        print(f"target: listUsers page of 500 of {args.users}, median < {LIST_USERS_MEDIAN_TARGET_MS:g} ms: "
              f"{'met' if users_ok else 'MISSED'} ({latency.median_ms:.1f} ms)")
        return 0
    except (SetupError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench setup failed: {exc}", file=sys.stderr)
        if daemon.proc is not None:
            print(daemon.log()[-4000:], file=sys.stderr)
        return 1
    finally:
        if reference is not None:
            reference.stop()
        daemon.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
