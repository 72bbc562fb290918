"""The twisted.web Site of the query API, whose access log does not cost each request a log event.

Twisted's `Site` writes one access-log line per request to the process log (the twistd log file),
and each line is a log event of its own. Formatting and writing a log event costs about as much
CPU as answering a small signed API call, so on a busy server the access log alone would halve
the request rate. `ApiSite` writes the same lines (the caller's formatter, e.g.
`cloudd.web.accesslog.access_log_line`, decides what they contain) but gathers them into one log
event per tenth of a second: each line keeps its own timestamp, no line waits longer than that,
and the ones still gathered when the site stops are written then.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python import log as legacy_log
from twisted.web.server import Site

__all__ = ["ApiSite", "GatheredAccessLog"]


class GatheredAccessLog:
    """A file-like sink for access-log lines: one log event per `delay` seconds, not one per line."""

    log = Logger()

    def __init__(self, clock: IReactorTime, delay: float = 0.1) -> None:
        self.clock = clock
        self.delay = delay
        self._lines: list[str] = []
        self._call: IDelayedCall | None = None

    def write(self, data: str, /) -> None:
        self._lines.append(data)
        if self._call is None:
            self._call = self.clock.callLater(self.delay, self.flush)

    def flush(self) -> None:
        """Emit the gathered lines now, as one event."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        if self._lines:
            text = "".join(self._lines).rstrip("\n")
            self._lines.clear()
            self.log.info("{access_log}", access_log=text)

    def close(self) -> None:
        self.flush()


class ApiSite(Site):
    """A `Site` whose access log goes to the process log in gathered events (see the module)."""

    def startFactory(self) -> None:  # noqa: N802 (Twisted API)
        super().startFactory()
        if self._logFile is legacy_log.logfile:
            self._logFile = GatheredAccessLog(self.reactor)
