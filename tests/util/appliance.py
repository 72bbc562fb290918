"""Run an appliance (`twistd -n routervm`, `twistd -n ssvm`) as a real process on a loopback port.

`Appliance` starts the daemon with its control listener on a free loopback port, waits until the
port accepts connections, and stops the process it started (by PID).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tests.util.daemon import ROOT, free_port


def twistd_argv(*args: str) -> list[str]:
    """A `twistd` command line run by this interpreter (the plugins are found through PYTHONPATH)."""
    return [sys.executable, "-c",
            "import sys; from twisted.scripts.twistd import run; sys.argv = ['twistd'] + sys.argv[1:]; run()",
            *args]


def twistd_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Appliance:
    def __init__(self, name: str, basedir: str) -> None:
        self.name = name
        self.basedir = os.path.abspath(basedir)
        self.port = free_port()
        self.log_path = os.path.join(self.basedir, "twistd.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 30) -> None:
        os.makedirs(self.basedir, exist_ok=True)
        argv = twistd_argv("-n", "--pidfile=", "--logfile", self.log_path, self.name,
                           "--control-listen", f"tcp:{self.port}:interface=127.0.0.1")
        self.proc = subprocess.Popen(argv, cwd=self.basedir, env=twistd_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)  # noqa: TID251 (polling a real process from a test)
        self.stop()
        raise RuntimeError(f"{self.name} did not start listening:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code
