"""Bounds on what guests can make the router hold, and on what their bad input costs in the log.

* `ConnectionLimiter` counts the open TCP connections of a set of listeners, per source address
  and in all; `LimitedFactory` wraps a listener's factory so that a connection over either cap is
  closed as soon as it is accepted (``buildProtocol`` answers ``None``, and Twisted closes the
  socket).  The data plane shares one limiter among its guest listeners (DNS over TCP, metadata,
  passwords); the control API has its own, so a guest flood never takes its descriptors.
* `raise_nofile_limit` raises the soft ``RLIMIT_NOFILE`` to the hard one (at start, in
  ``tap.py``); `guest_connection_budget` is what the guest listeners may hold of it: everything
  but a reserve for the control API's budget, the UDP sockets (DHCP, DNS, upstream queries), the
  state and log files and the child processes' pipes.
* `BoundedAcceptPort` is a TCP port that accepts at most `MAX_ACCEPTS` connections per turn of
  the event loop (Twisted's grows its batch by 20 after every full one, without bound: under a
  connection flood one batch of thousands of accepts, each refused, stalls every other client);
  `listen_tcp` listens with one.
* `BadInputLog` logs bad input from guests at most once per source and interval, then one summary
  line with the counts: a flood of malformed packets costs a dictionary update each, not a line.

The refused connection is not answered (no bytes, just the close): a client over its cap learns
nothing beyond what a full server would tell it.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = [
    "DEFAULT_PER_SOURCE",
    "MAX_ACCEPTS",
    "RESERVED_DESCRIPTORS",
    "BadInputLog",
    "BoundedAcceptPort",
    "ConnectionLimiter",
    "LimitedFactory",
    "guest_connection_budget",
    "listen_tcp",
    "raise_nofile_limit",
]

#: Concurrent TCP connections one source address may hold across the guest listeners.
DEFAULT_PER_SOURCE = 64
#: Descriptors kept out of every connection budget: UDP sockets (DHCP, DNS and its upstream pool),
#: the state and log files, child processes' pipes, the listening sockets.
RESERVED_DESCRIPTORS = 256
#: Fewest guest connections a budget allows, however low the descriptor limit.
_MIN_BUDGET = 16
#: Connections a guest listener accepts per turn of the event loop.
MAX_ACCEPTS = 64


class BoundedAcceptPort(tcp.Port):
    """A TCP port accepting at most `max_accepts` connections each time it is readable."""

    max_accepts = MAX_ACCEPTS

    def doRead(self) -> None:  # noqa: N802 (Twisted API)
        if self.numberAccepts > self.max_accepts:
            self.numberAccepts = self.max_accepts
        super().doRead()


def listen_tcp(reactor: Any, port: int, factory: Factory[Any], interface: str = "",
               backlog: int = 50) -> IListeningPort:
    """`reactor.listenTCP` with a `BoundedAcceptPort`."""
    listening = BoundedAcceptPort(port, factory, backlog=backlog, interface=interface, reactor=reactor)
    listening.startListening()
    return listening


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard
        if hard == resource.RLIM_INFINITY:
            try:
                with open("/proc/sys/fs/nr_open") as f:
                    target = int(f.read())
            except (OSError, ValueError):
                target = max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass  # keep the soft limit we have: the budget is sized from it
    return soft


def guest_connection_budget(nofile: int, control_connections: int) -> int:
    """The guest listeners' global cap for a process allowed `nofile` descriptors: all of them but
    the control API's `control_connections` and `RESERVED_DESCRIPTORS`."""
    return max(nofile - control_connections - RESERVED_DESCRIPTORS, _MIN_BUDGET)


class BadInputLog:
    """Logs bad input per source at most once an `interval`, and counts the rest.

    The first bad input of a source in an interval is logged with its reason (for at most
    `max_sources` sources an interval); everything else is counted, and the first bad input after
    the interval logs one summary line: how many more there were, from how many sources, and the
    busiest few.  So an interval costs at most ``max_sources + 1`` lines whatever arrives (the
    summary waits for the next bad input: a quiet guest writes nothing more)."""

    log = Logger()

    def __init__(self, clock: IReactorTime, what: str, interval: float = 60.0, max_sources: int = 32) -> None:
        self.clock = clock
        self.what = what
        self.interval = interval
        self.max_sources = max_sources
        #: Bad inputs noted since the start.
        self.total = 0
        self._window_end = float("-inf")
        # source → bad inputs not logged this interval
        self._counts: dict[str, int] = {}
        # bad inputs from sources beyond max_sources this interval
        self._others = 0

    def note(self, source: str, reason: str) -> None:
        self.total += 1
        now = self.clock.seconds()
        if now >= self._window_end:
            self.flush()
            self._window_end = now + self.interval
        count = self._counts.get(source)
        if count is not None:
            self._counts[source] = count + 1
        elif len(self._counts) < self.max_sources:
            self._counts[source] = 0
            self.log.info("{what} from {source}: {reason}", what=self.what, source=source, reason=reason)
        else:
            self._others += 1

    def flush(self) -> None:
        """Log the summary of the interval so far (if anything went unlogged) and start afresh."""
        counts, others = self._counts, self._others
        self._counts, self._others = {}, 0
        more = sum(counts.values()) + others
        if not more:
            return
        busiest = sorted(((n, s) for s, n in counts.items() if n), reverse=True)[:3]
        self.log.info(
            "{what}: {count} more in the last {interval:.0f}s from {sources} source(s), most from {busiest}",
            what=self.what, count=more, interval=self.interval,
            sources=sum(1 for n in counts.values() if n) + (1 if others else 0),
            busiest=", ".join(f"{s} ({n})" for n, s in busiest) or "unlisted sources")


class ConnectionLimiter:
    """Open TCP connections of some listeners: at most `per_source` from one source address and
    `total` in all."""

    def __init__(self, clock: IReactorTime, *, total: int, per_source: int = DEFAULT_PER_SOURCE,
                 name: str = "guest") -> None:
        self.total = total
        self.per_source = per_source
        self.name = name
        #: Connections open now.
        self.open = 0
        #: Connections refused since the start.
        self.refused = 0
        self._by_source: dict[str, int] = {}
        self.refusals = BadInputLog(clock, f"{name} connections refused")

    def __repr__(self) -> str:
        return f"<ConnectionLimiter {self.name} open={self.open}/{self.total} per_source={self.per_source}>"

    def admit(self, source: str) -> bool:
        """Count a new connection from `source`; `False` (nothing counted) when over a cap."""
        held = self._by_source.get(source, 0)
        if held >= self.per_source:
            reason = f"{held} connections open from this source (at most {self.per_source})"
        elif self.open >= self.total:
            reason = f"{self.open} connections open in all (at most {self.total})"
        else:
            self._by_source[source] = held + 1
            self.open += 1
            return True
        self.refused += 1
        self.refusals.note(source, reason)
        return False

    def release(self, source: str) -> None:
        """A connection `admit` counted is closed."""
        held = self._by_source.get(source, 0)
        if held <= 1:
            self._by_source.pop(source, None)
        else:
            self._by_source[source] = held - 1
        self.open = max(self.open - 1, 0)

    def held_by(self, source: str) -> int:
        return self._by_source.get(source, 0)

    def wrap(self, factory: Factory[Any]) -> LimitedFactory:
        return LimitedFactory(factory, self)


class LimitedFactory(ServerFactory):
    """`factory`'s connections, counted by `limiter`: one over a cap is closed when accepted.

    The protocol built is `factory`'s own (no wrapper between it and its transport, so direct
    socket writes, half-close and the like work as without the limit); its ``connectionLost`` is
    followed by the release."""

    def __init__(self, factory: Factory[Any], limiter: ConnectionLimiter) -> None:
        self.wrapped = factory
        self.limiter = limiter

    def __repr__(self) -> str:
        return f"<LimitedFactory {self.wrapped!r} {self.limiter!r}>"

    def logPrefix(self) -> str:  # noqa: N802 (Twisted API)
        prefix: str = getattr(self.wrapped, "logPrefix", lambda: self.wrapped.__class__.__name__)()
        return prefix

    def doStart(self) -> None:  # noqa: N802 (Twisted API)
        self.wrapped.doStart()

    def doStop(self) -> None:  # noqa: N802 (Twisted API)
        self.wrapped.doStop()

    def buildProtocol(self, addr: IAddress | None) -> Any:  # noqa: N802 (Twisted API)
        source = str(getattr(addr, "host", ""))
        limiter = self.limiter
        if not limiter.admit(source):
            return None
        try:
            protocol = self.wrapped.buildProtocol(addr)
        except BaseException:
            limiter.release(source)
            raise
        if protocol is None:
            limiter.release(source)
            return None
        _release_when_lost(protocol, lambda: limiter.release(source))
        return protocol


def _release_when_lost(protocol: Any, release: Callable[[], None]) -> None:
    """Call `release` after `protocol`'s next ``connectionLost`` (once)."""
    lost = protocol.connectionLost
    own = "connectionLost" in vars(protocol)

    def connection_lost(reason: Failure = connectionDone) -> None:
        # the previous one again: a second call releases nothing
        if own:
            protocol.connectionLost = lost
        else:
            del protocol.connectionLost
        try:
            lost(reason)
        finally:
            release()

    protocol.connectionLost = connection_lost
