"""External tools run as child processes on the reactor (STYLE.md §5.5 rule 19).

`RunProcess.run` starts a fixed argv with `reactor.spawnProcess` (no shell, a minimal
environment), writes `stdin` and closes it, collects stdout and stderr, and returns
``(exit_code, stdout, stderr)``.  A process killed by a signal gives ``-signal``.  When it outlives
`timeout` it is killed and `ProcessTimeout` is raised.
"""

from __future__ import annotations

import shutil
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["DEFAULT_ENV", "ProcessTimeout", "RunProcess"]

#: The whole environment a child gets.
DEFAULT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


class ProcessTimeout(Exception):
    """The child did not finish in time and was killed."""


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: Deferred[int] = Deferred()

    def connectionMade(self) -> None:  # noqa: N802 (Twisted API)
        assert self.transport is not None
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 (Twisted API)
        value = reason.value
        code: int
        if isinstance(value, ProcessDone):
            code = 0
        elif isinstance(value, ProcessTerminated):
            code = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        else:
            code = -1
        self.done.callback(code)


class RunProcess:
    """Runs external tools on `reactor` (an `IReactorProcess` and `IReactorTime`)."""

    def __init__(self, reactor: Any, env: dict[str, str] | None = None) -> None:
        self.reactor = reactor
        self.env = dict(DEFAULT_ENV if env is None else env)

    def executable(self, name: str) -> str:
        """`name` itself when it is a path, else its location on the child's PATH."""
        if "/" in name:
            return name
        found = shutil.which(name, path=self.env.get("PATH", ""))
        if found is None:
            raise FileNotFoundError(f"{name}: not found on {self.env.get('PATH', '')}")
        return found

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        if not argv:
            raise ValueError("an empty argv")
        protocol = _Collect(stdin)
        transport = self.reactor.spawnProcess(protocol, self.executable(argv[0]), list(argv), env=self.env)
        expired = []

        def kill() -> None:
            expired.append(True)
            try:
                transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass

        timer: IDelayedCall = self.reactor.callLater(timeout, kill)
        try:
            code = await protocol.done
        finally:
            if timer.active():
                timer.cancel()
        if expired:
            raise ProcessTimeout(f"{argv[0]} did not finish within {timeout:g} seconds")
        return code, b"".join(protocol.out), b"".join(protocol.err)
