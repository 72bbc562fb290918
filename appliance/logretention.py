"""Retention of the rotated log files that ``twistd --logfile`` leaves behind.

twistd's log file (`twisted.python.logfile.LogFile`) is rotated every 1,000,000 bytes: the file
becomes ``<logfile>.1``, the older ones are renumbered up by one, and none is ever deleted, so a
chatty or attacked daemon fills the disk.  `LogRetention` is a service that deletes the rotated
files numbered beyond its count, at start and then every `interval` seconds: at most ``keep``
rotated files remain (plus those rotated within one interval).  Used by all three daemons
(cloudd imports it too: it needs nothing but Twisted).

`twistd_logfile` finds the log file of the running twistd from the subcommand's options (their
parent is twistd's own): ``--logfile``, or ``twistd.log`` when daemonising without one; ``None``
for stdout, syslog, or when not run by twistd.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["DEFAULT_RETENTION", "LogRetention", "keep_rotated_logs", "prune_rotated", "twistd_logfile"]

#: Rotated files kept by default (10 MB of history at twistd's 1 MB rotation).
DEFAULT_RETENTION = 10

log = Logger()


def twistd_logfile(options: Any) -> str | None:
    """The absolute path of the file twistd logs to, from a subcommand's `options`."""
    parent = getattr(options, "parent", None)
    if parent is None:
        return None
    try:
        if parent.get("syslog"):
            return None
        logfile = parent.get("logfile")
        if not logfile:
            logfile = None if parent.get("nodaemon") else "twistd.log"
    except AttributeError:
        return None
    if not logfile or logfile == "-":
        return None
    return os.path.abspath(str(logfile))


def prune_rotated(path: str, keep: int) -> list[str]:
    """Delete ``<path>.N`` for every N > `keep`; the paths deleted."""
    directory, name = os.path.split(path)
    rotated = re.compile(re.escape(name) + r"\.([0-9]+)")
    deleted: list[str] = []
    try:
        names = os.listdir(directory or ".")
    except OSError as exc:
        log.warn("log retention: cannot list {directory}: {error}", directory=directory, error=exc.strerror)
        return deleted
    for entry in names:
        match = rotated.fullmatch(entry)
        if match is None or int(match.group(1)) <= keep:
            continue
        full = os.path.join(directory, entry)
        try:
            os.unlink(full)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warn("log retention: cannot delete {path}: {error}", path=full, error=exc.strerror)
            continue
        deleted.append(full)
    return deleted


def keep_rotated_logs(service: MultiService, options: Any, keep: int, clock: IReactorTime) -> LogRetention | None:
    """Attach a `LogRetention` named "log-retention" to a daemon's root `service` when twistd logs
    to a file (`twistd_logfile` of the subcommand's `options`)."""
    logfile = twistd_logfile(options)
    if logfile is None:
        return None
    retention = LogRetention(logfile, keep, clock)
    retention.setName("log-retention")
    retention.setServiceParent(service)
    return retention


class LogRetention(TimerService):
    """Keeps at most `keep` rotated files of the log file `path` (see the module docstring)."""

    def __init__(self, path: str, keep: int, clock: IReactorTime, interval: float = 60.0) -> None:
        super().__init__(interval, self._prune)
        self.clock = clock
        self.path = path
        self.keep = keep

    def _prune(self) -> None:
        try:
            deleted = prune_rotated(self.path, self.keep)
        except Exception:  # a raising call would end the timer
            log.failure("log retention failed for {path}", path=self.path)
            return
        if deleted:
            log.info("log retention: deleted {count} rotated log file(s) of {path} beyond the newest {keep}",
                     count=len(deleted), path=self.path, keep=self.keep)
