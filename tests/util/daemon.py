"""Run a daemon as a real process for integration tests, and talk to it over real HTTP.

`CloudDaemon` starts `twistd -n cloudd` on a free loopback port with its own base directory,
waits until the API answers, reads the admin credentials file, and stops the process it started
(by PID) at the end. The test database follows CLOUDD_TEST_DB_URL when it names a server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from cloudd.agents.supervisor import LoopbackPorts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    """A loopback TCP port that nothing listens on, chosen below the kernel's ephemeral range (the
    supervisor's own choice for system VMs): a port the kernel hands out (bind to 0) can become the
    local port of another test's outgoing connection before the daemon that is to listen on it starts."""
    return LoopbackPorts().pick(set())


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    def inner(self) -> Any:
        data = self.json()
        assert len(data) == 1, data
        return next(iter(data.values()))


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None, timeout: float = 30) -> HttpResult:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResult(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read(),
                              resp.headers.get_all("Set-Cookie") or [])
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read(),
                          err.headers.get_all("Set-Cookie") or [])


def twistd_argv(*args: str) -> list[str]:
    """A `twistd` command line run by this interpreter (the plugins are found through PYTHONPATH)."""
    return [sys.executable, "-c",
            "import sys; from twisted.scripts.twistd import run; sys.argv = ['twistd'] + sys.argv[1:]; run()",
            *args]


def twistd_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


class TwistdProcess:
    """`twistd -n <name> ...` in a child process with its own base directory and log file, on a free
    loopback port; `start` returns once the port accepts connections."""

    def __init__(self, name: str, basedir: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.basedir = os.path.abspath(basedir)
        self.port = free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.basedir, "twistd.log")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plugin_args(self) -> list[str]:
        """The arguments after the plugin name."""
        return []

    def start(self, timeout: float = 60) -> None:
        os.makedirs(self.basedir, exist_ok=True)
        argv = twistd_argv("-n", "--pidfile=", "--logfile", self.log_path, self.name, *self.plugin_args())
        self.proc = subprocess.Popen(argv, cwd=self.basedir, env=twistd_env(self.env), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)  # polling a real process from a test
        self.stop()
        raise RuntimeError(f"{self.name} did not start listening:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """kill -9, as a crash would."""
        self.stop(signal.SIGKILL)


class CloudDaemon(TwistdProcess):
    """`twistd -n cloudd` in a child process."""

    def __init__(self, basedir: str, db_url: str | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, simulator: bool = False) -> None:
        """Without `simulator`, the daemon starts with `--no-simulator`: an empty cloud, as most tests
        want (and no ssvm child)."""
        super().__init__("cloudd", basedir, env)
        self.db_url = db_url
        self.extra_args = (extra_args or []) + ([] if simulator else ["--no-simulator"])

    @property
    def endpoint(self) -> str:
        return self.url("/client/api")

    def plugin_args(self) -> list[str]:
        args = ["--basedir", self.basedir, "--listen", f"tcp:{self.port}:interface=127.0.0.1", *self.extra_args]
        if self.db_url:
            args += ["--db-url", self.db_url]
        return args

    def credentials(self) -> dict[str, str]:
        with open(os.path.join(self.basedir, "admin-credentials.json")) as f:
            data: dict[str, str] = json.load(f)
        return data
