"""A real libvirtd (with virtlogd) for tests that need a real hypervisor: `LibvirtDaemon`.

The machine has one system libvirtd (there is no systemd here: the daemons are started directly with
`-d`). `LibvirtDaemon.start()` uses the daemons that already run and starts only the missing ones,
remembering the PIDs it started; `stop()`/`restart()`/`freeze()`/`thaw()` act only on a libvirtd it started (a daemon
someone else runs is never stopped: `can_stop` says whether this helper may), and `close()` stops
whatever it started, virtlogd last. `wait_ready()` waits until qemu:///system answers a call that
needs QEMU's capabilities: the first one after each daemon start probes QEMU for about 12 s.

    daemon = LibvirtDaemon.shared()        # one per test process; raises SkipTest saying why
    daemon.stop(); daemon.start()          # only when daemon.can_stop
    daemon.freeze(); daemon.thaw()         # a daemon that stops answering (SIGSTOP/SIGCONT)
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time

import libvirt
from twisted.trial.unittest import SkipTest

URI = "qemu:///system"
BINARIES = {"libvirtd": "/usr/sbin/libvirtd", "virtlogd": "/usr/sbin/virtlogd"}


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    fallback = BINARIES.get(name)
    return fallback if fallback and os.access(fallback, os.X_OK) else None


def _running(name: str) -> list[int]:
    """PIDs of live processes whose command is `name` (zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ..."; comm may hold spaces or parentheses
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state = stat[stat.rindex(")") + 2:].split(" ", 1)[0]
        if comm == name and state not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split(" ", 1)[0] not in ("Z", "X")


def unavailable() -> str | None:
    """Why a real libvirtd cannot be used here, or None when it can."""
    if os.geteuid() != 0:
        return "a real libvirtd needs root (libvirtd -d, qemu:///system)"
    missing = [name for name in ("libvirtd", "virtlogd", "qemu-system-x86_64") if _binary(name) is None]
    if missing:
        return (f"missing {', '.join(missing)}: apt-get install --no-install-recommends libvirt-daemon-system "
                "libvirt-clients qemu-system-x86 qemu-utils (scripts/deps --test)")
    return None


class LibvirtDaemon:
    """The machine's libvirtd and virtlogd, started if needed and stopped only if started here."""

    _shared: LibvirtDaemon | None = None

    def __init__(self, uri: str = URI) -> None:
        self.uri = uri
        self.started: dict[str, int] = {}  # daemon name -> PID this helper started

    @classmethod
    def shared(cls, ready_timeout: float = 120.0) -> LibvirtDaemon:
        """The test process's one helper, started and ready; SkipTest with the reason if impossible."""
        reason = unavailable()
        if reason:
            raise SkipTest(reason)
        if cls._shared is None:
            daemon = cls()
            atexit.register(daemon.close)
            cls._shared = daemon
        cls._shared.start(ready_timeout)
        return cls._shared

    # -- state ---------------------------------------------------------------------------------------

    def pid(self, name: str = "libvirtd") -> int | None:
        pids = _running(name)
        return pids[0] if pids else None

    def is_running(self, name: str = "libvirtd") -> bool:
        return self.pid(name) is not None

    @property
    def can_stop(self) -> bool:
        """Whether the running libvirtd (or none) is this helper's to stop and start."""
        pid = self.pid("libvirtd")
        return pid is None or self.started.get("libvirtd") == pid

    # -- control -------------------------------------------------------------------------------------

    def start(self, ready_timeout: float = 120.0) -> None:
        """Start virtlogd and libvirtd unless they run, then wait until qemu:///system is ready."""
        for name in ("virtlogd", "libvirtd"):
            if not self.is_running(name):
                self._start(name)
        self.wait_ready(ready_timeout)

    def _start(self, name: str) -> None:
        binary = _binary(name)
        if binary is None:
            raise RuntimeError(f"{name} is not installed")
        before = set(_running(name))
        result = subprocess.run([binary, "-d"], capture_output=True, text=True, timeout=60)
        deadline = time.monotonic() + 15
        while True:
            new = set(_running(name)) - before
            if new:
                self.started[name] = min(new)
                return
            if result.returncode != 0 and _running(name):
                return  # someone else's daemon won the race; use it
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} -d did not start (exit {result.returncode}): {result.stderr.strip()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the URI answers a call that needs QEMU's capabilities (slow once per daemon start)."""
        deadline = time.monotonic() + timeout
        last = ""
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        while time.monotonic() < deadline:
            try:
                conn = libvirt.open(self.uri)
                try:
                    conn.getCapabilities()
                    return
                finally:
                    conn.close()
            except libvirt.libvirtError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{self.uri} not ready within {timeout:g} s: {last}")

    def stop(self, timeout: float = 30.0) -> float:
        """Stop the libvirtd this helper started (SIGTERM, SIGKILL after `timeout`); returns the
        seconds it took. Refuses to stop a daemon someone else started."""
        pid = self.pid("libvirtd")
        if pid is None:
            return 0.0
        if self.started.get("libvirtd") != pid:
            raise RuntimeError(f"libvirtd {pid} was not started by this test; not stopping it")
        began = time.monotonic()
        self._terminate(pid, timeout)
        del self.started["libvirtd"]
        return time.monotonic() - began

    def freeze(self) -> None:
        """SIGSTOP the libvirtd this helper started: its sockets stay open but nothing answers, as with
        a host that hangs or a network that drops packets. `thaw()` resumes it."""
        pid = self._own_libvirtd()
        os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        pid = self._own_libvirtd()
        os.kill(pid, signal.SIGCONT)

    def _own_libvirtd(self) -> int:
        pid = self.pid("libvirtd")
        if pid is None or self.started.get("libvirtd") != pid:
            raise RuntimeError("no libvirtd started by this test is running")
        return pid

    def restart(self, ready_timeout: float = 120.0) -> None:
        self.stop()
        self.start(ready_timeout)

    def close(self) -> None:
        """Stop every daemon this helper started, libvirtd before virtlogd."""
        for name in ("libvirtd", "virtlogd"):
            pid = self.started.pop(name, None)
            if pid is not None and _alive(pid):
                self._terminate(pid, 30.0)

    @staticmethod
    def _terminate(pid: int, timeout: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        killed = False
        while _alive(pid):
            if time.monotonic() > deadline:
                if killed:
                    raise RuntimeError(f"process {pid} survived SIGKILL")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    return
                killed, deadline = True, time.monotonic() + 10
            time.sleep(0.05)
