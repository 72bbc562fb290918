"""Benchmark of template downloads: `DownloadManager` against `curl` + `sha256sum` on the same file.

Run from a clone after ``pip install .[test]``::

    .venv/bin/python bench/download.py [--size-mib 1024] [--rounds 5] [--server nginx|python]

It writes a file of random bytes (1 GiB by default) into a temporary directory and serves it from
a separate process on a free loopback port: nginx (Debian's ``nginx-light``; when it is missing
and the script runs as root it installs it with ``apt-get install -y nginx-light``, the only thing
it ever installs) or, with ``--server python`` or when nginx cannot be had, ``python -m
http.server``. Both clients fetch from that same server in the same round:

* ours: a `DownloadManager` in this process on the real reactor, with a 4-thread pool, verifying a
  ``{SHA-256}`` checksum while streaming, writing into a temporary image store, up to DOWNLOADED
  (file renamed into place, ``template.properties`` written, state persisted, fsync included);
* reference: ``curl -s -o FILE URL`` followed by ``sha256sum FILE`` (no fsync).

The two alternate which goes first in each round. It prints the throughput of both for each round,
then (bench/measure.py), over the rounds (at least five), for each: the rate in MiB/s and the
client's CPU time per MiB (ours: this process, all its threads; the reference: the curl and
sha256sum children), each as the median with the min-max spread, and the ratios ours / reference
(median of the per-round ratios). The file server's own CPU is measured as well: when it used
nearly a full core the rate is the server's, not the client's, and the report says so.
Target (the issue): ours at least 0.8x the reference. Exit status 0 whether or not the
target is met; non-zero only when the setup fails (a server does not start, a checksum is wrong).
Every process it starts is stopped by its PID, and the big files are removed, also on errors.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.task import react  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

from bench.measure import MIN_ROUNDS, ChildrenCpu, Sample, Series, ServerCpu, rounds_note  # noqa: E402
from ssvm.download.manager import DownloadManager  # noqa: E402
from ssvm.download.policy import AddressPolicy  # noqa: E402

MiB = 2**20
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_file(path: str, size: int) -> str:
    """Random bytes, written in 16 MiB blocks; returns the SHA-256 hex digest."""
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(16 * MiB, left))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def find_nginx() -> str | None:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.path.exists(candidate):
            return candidate
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("installing nginx-light with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start listening")


@contextmanager
def serve(kind: str, directory: str, base: str) -> Iterator[tuple[str, int, int]]:
    """Start the file server process; yield (description, port, pid); stop it by its PID."""
    port = free_port()
    nginx = find_nginx() if kind == "nginx" else None
    if nginx is not None:
        conf = os.path.join(base, "nginx.conf")
        with open(conf, "w") as handle:
            handle.write(NGINX_CONF.format(base=base, port=port, root=directory))
        command = [nginx, "-c", conf, "-e", os.path.join(base, "nginx-error.log")]
        description = "nginx"
    else:
        command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, str(port)]
        description = "python -m http.server"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield description, port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reference_round(url: str, target: str, expected: str) -> tuple[float, float]:
    """Seconds for `curl -s -o FILE URL` then `sha256sum FILE`, and for the curl part alone."""
    started = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", target, url], check=True)
    fetched = time.perf_counter()
    output = subprocess.run(["sha256sum", target], check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - started
    if output.split()[0] != expected:
        raise RuntimeError("curl's file has the wrong checksum")
    os.unlink(target)
    return elapsed, fetched - started


async def our_round(reactor: Any, pool: ThreadPool, url: str, base: str, expected: str, size: int,
                    number: int) -> float:
    store, state = os.path.join(base, f"store{number}"), os.path.join(base, f"state{number}")
    os.makedirs(store)
    manager = DownloadManager(store, state, reactor, pool, AddressPolicy(["127.0.0.1/32"]), max_size=2 * size)
    manager.startService()
    try:
        started = time.perf_counter()
        manager.start("bench", {"url": url, "format": "raw", "checksum": "{SHA-256}" + expected,
                                "account_id": 1, "template_id": number + 1, "unique_name": "bench"})
        status = await manager.wait("bench")
        elapsed = time.perf_counter() - started
    finally:
        await manager.stopService()
    if status is None or status["state"] != "DOWNLOADED":
        raise RuntimeError(f"our download failed: {status}")
    shutil.rmtree(store)
    shutil.rmtree(state)
    return elapsed


def rate(size: int, seconds: float) -> float:
    return size / MiB / seconds


async def run(reactor: Any, options: argparse.Namespace) -> None:
    size = options.size_mib * MiB
    base = tempfile.mkdtemp(prefix="bench-download-", dir=options.tmp)
    pool = ThreadPool(minthreads=0, maxthreads=4, name="bench-download")
    pool.start()
    try:
        served = os.path.join(base, "www")
        os.makedirs(served)
        os.chmod(base, 0o755)  # nginx's worker runs as an unprivileged user
        os.chmod(served, 0o755)
        print(f"writing {options.size_mib} MiB of random bytes ...", flush=True)
        expected = make_file(os.path.join(served, "image.img"), size)
        with serve(options.server, served, base) as (description, port, server_pid):
            url = f"http://127.0.0.1:{port}/image.img"
            print(f"server: {description} on port {port}; {options.rounds} rounds, our download and "
                  f"curl + sha256sum alternating", flush=True)
            note = rounds_note(options.rounds)
            if note:
                print(note, flush=True)
            mib = size / MiB
            ours = Series("ours (DownloadManager)", load_name="the file server")
            reference = Series("curl + sha256sum", load_name="the file server")
            curl_only: list[float] = []
            for number in range(options.rounds):
                first = "ours" if number % 2 == 0 else "curl"
                for who in ([first, "curl" if first == "ours" else "ours"]):
                    with ServerCpu(server_pid, tree=True) as served_cpu:
                        if who == "ours":
                            with ServerCpu(os.getpid()) as own:
                                seconds = await our_round(reactor, pool, url, base, expected, size, number)
                            ours.add(Sample(round(mib), seconds, own.seconds, None))
                        else:
                            with ChildrenCpu() as children:
                                seconds, fetch = reference_round(url, os.path.join(base, "curl.img"), expected)
                            reference.add(Sample(round(mib), seconds, children.seconds, None))
                            curl_only.append(rate(size, fetch))
                    (ours if who == "ours" else reference).samples[-1].load_cpu = served_cpu.seconds
                o, r = ours.samples[-1], reference.samples[-1]
                print(f"round {number + 1} ({first} first): ours {o.rate:7.1f} MiB/s ({o.seconds:.2f} s, "
                      f"cpu {o.cpu_us / 1000:.2f} ms/MiB)   curl+sha256sum {r.rate:7.1f} MiB/s ({r.seconds:.2f} s, "
                      f"cpu {r.cpu_us / 1000:.2f} ms/MiB; curl alone {curl_only[-1]:.1f} MiB/s)   "
                      f"ratio {o.rate / r.rate:.2f}", flush=True)
            print(f"median (min-max) over {options.rounds} rounds; ratios are ours / curl+sha256sum per round, "
                  f"by rate and by client CPU per MiB:")
            print("  " + ours.report(reference=reference, unit="MiB/s", per="MiB", width=24, rate_spec=".1f"))
            print("  " + reference.report(unit="MiB/s", per="MiB", width=24, rate_spec=".1f"))
            print(f"  curl alone, without any checksum: {statistics.median(curl_only):.1f} MiB/s")
            ratio = ours.rate_ratio(reference).median
            print(f"target: ours >= 0.80x curl+sha256sum: {'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.2f}x)",
                  flush=True)
    finally:
        pool.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--server", choices=("nginx", "python"), default="nginx")
    parser.add_argument("--tmp", default=None, help="directory for the big files (default: the system's)")
    options = parser.parse_args()
    if shutil.which("curl") is None or shutil.which("sha256sum") is None:
        print("curl and sha256sum are needed", file=sys.stderr)
        return 2

    def start(reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(run(reactor, options))

    react(start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
