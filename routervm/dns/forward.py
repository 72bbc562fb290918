"""Forwarding the guests' other names to the zone's resolvers, with bounded cost (security.md 21).

A guest can send any number of random names; each would otherwise hold a socket and a timer until
the upstream answers or a minute passes.  `Forwarder` bounds everything a flood can make it hold:

* **sockets**: a fixed pool of `SOCKETS_PER_UPSTREAM` UDP sockets per upstream, each connected to
  its upstream (so an ICMP port unreachable comes back as ECONNREFUSED, or as the port closing
  under Twisted's epoll reactor; then a fresh socket replaces it) and bound to a random port by
  the kernel, opened on first use and closed by `close`.  After `ROTATE_AFTER` queries a socket
  is replaced by a fresh one (a new random port) and closes once its queries are done, so the
  ports an attacker would have to guess keep changing (RFC 5452 §9.2).  A query gets a random 16-bit ID
  on a random socket of its upstream; an answer must come from that socket, carry a pending ID and
  repeat the question (RFC 5452 §9.1), else it is ignored;
* **queries in flight**: at most `per_source` from one client address and `total` in all; a query
  beyond either is answered SERVFAIL at once, without being sent.  Equal questions in flight share
  one upstream query;
* **time**: `timeout` seconds in all (2 s): the first upstream gets half of it, then the next one
  (or the same, when there is one) the rest; then SERVFAIL.  An upstream that refuses (ICMP port
  unreachable) is not asked again for that question, and when every upstream has refused the
  answer is SERVFAIL at once;
* **cache**: at most `cache_entries` answers, least recently used evicted first, without a timer
  per entry (expiry is checked when read).  Positive answers live for their smallest TTL (at most
  `MAX_TTL`), negative ones (NXDOMAIN, and NODATA) for the SOA's ``min(TTL, minimum)`` (RFC 2308
  §5; without an SOA they are not cached), SERVFAIL and timeouts for `SERVFAIL_TTL` (RFC 2308 §7).
  Cached TTLs count down.

Failures that are expected on a network (timeouts, refusals, limits, malformed answers) are
logged through `BadInputLog`, a line per upstream or client and interval, never a traceback.
"""

from __future__ import annotations

import collections
import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.names import dns

from routervm.limits import BadInputLog

__all__ = [
    "MAX_TTL",
    "ROTATE_AFTER",
    "SERVFAIL_TTL",
    "SOCKETS_PER_UPSTREAM",
    "Forwarder",
    "UpstreamAnswer",
]

#: UDP sockets per upstream resolver.
SOCKETS_PER_UPSTREAM = 4
#: Queries a pooled socket sends before a fresh one (a new random port) replaces it.
ROTATE_AFTER = 1000
#: Longest a positive answer is cached, in seconds.
MAX_TTL = 3600
#: How long a SERVFAIL (from the upstream, or no answer in time) is cached, in seconds.
SERVFAIL_TTL = 5.0
#: The UDP payload size advertised to the upstreams.
_UPSTREAM_UDP_SIZE = 1232

Key = tuple[bytes, int, int]


class UpstreamAnswer(NamedTuple):
    """What a forwarded question gets: the RCODE and the records to send back; `truncated` when
    the upstream's UDP answer was (the client may retry over TCP)."""

    rcode: int
    answers: list[dns.RRHeader]
    authority: list[dns.RRHeader]
    additional: list[dns.RRHeader]
    truncated: bool = False


def _servfail() -> UpstreamAnswer:
    return UpstreamAnswer(dns.ESERVER, [], [], [])


class _Pending:
    """One question in flight upstream and the clients waiting for it."""

    __slots__ = ("key", "query", "waiters", "socket", "id", "timer", "attempts", "refused", "upstream")

    def __init__(self, key: Key, query: dns.Query) -> None:
        self.key = key
        self.query = query
        self.waiters: list[tuple[defer.Deferred[UpstreamAnswer], str]] = []
        self.socket: _UpstreamSocket | None = None
        self.id = 0
        self.timer: IDelayedCall | None = None
        self.attempts = 0
        self.refused: set[int] = set()
        self.upstream = 0


class _UpstreamSocket(DatagramProtocol):
    """One pooled UDP socket, connected to upstream number `index`."""

    def __init__(self, forwarder: Forwarder, index: int) -> None:
        self.forwarder = forwarder
        self.index = index
        self.pending: dict[int, _Pending] = {}
        self.port: Any = None
        #: Queries sent from this socket; at `Forwarder.rotate_after` a fresh one replaces it.
        self.sent = 0
        #: Out of the pool: closed once its last pending query is done.
        self.retiring = False

    def stopProtocol(self) -> None:  # noqa: N802 (Twisted API)
        self.forwarder._lost(self)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802 (Twisted API)
        self.forwarder._received(self, data)

    def connectionRefused(self) -> None:  # noqa: N802 (Twisted API)
        self.forwarder._refused(self)


class _Cached(NamedTuple):
    expires: float
    stored: float
    answer: UpstreamAnswer


class Forwarder:
    """Forwards questions to `upstreams` (``(host, port)``) with the bounds above.

    `listen_udp(protocol)` opens one pooled socket for `protocol` and returns its port (tests
    pass a fake); by default ``reactor.listenUDP(0, …)``.  The socket is then connected to its
    upstream with ``transport.connect``."""

    log = Logger()

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]],
        reactor: IReactorTime,
        *,
        listen_udp: Callable[[DatagramProtocol], object] | None = None,
        sockets_per_upstream: int = SOCKETS_PER_UPSTREAM,
        rotate_after: int = ROTATE_AFTER,
        per_source: int = 64,
        total: int = 1024,
        timeout: float = 2.0,
        cache_entries: int = 4096,
    ) -> None:
        if not upstreams:
            raise ValueError("no upstream resolvers")
        self.upstreams = list(upstreams)
        self.clock = reactor
        self._listen_udp = listen_udp or (lambda protocol: reactor.listenUDP(0, protocol))  # type: ignore[attr-defined]
        self.sockets_per_upstream = sockets_per_upstream
        self.rotate_after = rotate_after
        self.per_source = per_source
        self.total = total
        self.timeout = timeout
        self.cache_entries = cache_entries
        self._sockets: list[list[_UpstreamSocket]] | None = None
        self._pending: dict[Key, _Pending] = {}
        self._by_source: dict[str, int] = {}
        #: Clients waiting for an upstream answer now.
        self.waiting = 0
        self._cache: collections.OrderedDict[Key, _Cached] = collections.OrderedDict()
        self._random = random.Random(secrets.randbits(64))
        self.limited = BadInputLog(reactor, "DNS forwarding over its limit")
        self.failures = BadInputLog(reactor, "DNS upstream failure")
        #: Counters since the start: answered from the cache, sent upstream, refused by a limit,
        #: timed out, refused by the upstream.
        self.stats = collections.Counter[str]()

    # -- the API

    def lookup(self, query: dns.Query, source: str) -> UpstreamAnswer | defer.Deferred[UpstreamAnswer]:
        """The upstream's answer for `query` asked by `source`: now (cache, limits) or later."""
        key = (query.name.name.lower(), query.type, query.cls)
        cached = self._from_cache(key)
        if cached is not None:
            self.stats["cached"] += 1
            return cached
        held = self._by_source.get(source, 0)
        if held >= self.per_source or self.waiting >= self.total:
            self.stats["limited"] += 1
            self.limited.note(source, f"{held} queries of this client and {self.waiting} in all waiting "
                                      f"upstream (at most {self.per_source} and {self.total})")
            return _servfail()
        d: defer.Deferred[UpstreamAnswer] = defer.Deferred()
        self._by_source[source] = held + 1
        self.waiting += 1
        pending = self._pending.get(key)
        if pending is not None:
            pending.waiters.append((d, source))
            return d
        pending = _Pending(key, query)
        pending.waiters.append((d, source))
        self._pending[key] = pending
        self._send(pending, 0)
        return d

    def close(self) -> defer.Deferred[None]:
        """Answer everything pending with SERVFAIL and close the pool (the server stops); fires
        when every socket is closed."""
        for pending in list(self._pending.values()):
            self._finish(pending, _servfail(), cache=False)
        sockets, self._sockets = self._sockets or [], None
        self._cache.clear()
        ports = [sock.port for row in sockets for sock in row if sock.port is not None]
        for row in sockets:
            for sock in row:
                sock.port = None
        stops = [defer.maybeDeferred(port.stopListening) for port in ports]
        return defer.DeferredList(stops, consumeErrors=True).addCallback(lambda _: None)

    def pending_count(self) -> int:
        """Distinct questions in flight upstream."""
        return len(self._pending)

    def cache_size(self) -> int:
        return len(self._cache)

    # -- sending

    def _pool(self) -> list[list[_UpstreamSocket]]:
        if self._sockets is None:
            self._sockets = [
                [self._open(index) for _ in range(self.sockets_per_upstream)]
                for index in range(len(self.upstreams))
            ]
        return self._sockets

    def _open(self, index: int) -> _UpstreamSocket:
        """A new pooled socket connected to upstream number `index`."""
        protocol = _UpstreamSocket(self, index)
        protocol.port = self._listen_udp(protocol)
        transport: Any = protocol.transport
        transport.connect(*self.upstreams[index])
        return protocol

    def _lost(self, sock: _UpstreamSocket) -> None:
        """`sock` closed without `close`: Twisted's epoll reactor closes a connected UDP port
        when an ICMP error (port or host unreachable) arrives with no datagram to read.  It
        leaves the pool (`_socket_for` opens a fresh one) and its questions are treated as
        refused."""
        if self._sockets is None or sock.port is None:
            return  # closing, or closed by us
        sock.port = None
        row = self._sockets[sock.index]
        if sock in row:
            row.remove(sock)
        self._refused(sock)

    def _socket_for(self, upstream: int) -> _UpstreamSocket:
        """A random socket of the pool for `upstream`, refilling the pool first when a socket
        left it; raises `OSError` when none can be opened."""
        row = self._pool()[upstream]
        if len(row) < self.sockets_per_upstream:
            try:
                row.append(self._open(upstream))
            except OSError:
                if not row:
                    raise
        return self._random.choice(row)

    def _retire(self, sock: _UpstreamSocket) -> None:
        """Take `sock` out of the pool for a fresh one (a new random port, RFC 5452 §9.2); it
        closes once its pending queries are done."""
        row = self._pool()[sock.index]
        try:
            fresh = self._open(sock.index)
        except OSError:
            return  # keep using it
        row[row.index(sock)] = fresh
        sock.retiring = True
        if not sock.pending:
            self._stop(sock)

    def _stop(self, sock: _UpstreamSocket) -> None:
        port, sock.port = sock.port, None
        if port is not None:
            port.stopListening()

    def _send(self, pending: _Pending, upstream: int) -> None:
        """(Re)send `pending` to upstream number `upstream` with a fresh ID and socket."""
        self._unregister(pending)
        try:
            sock = self._socket_for(upstream)
        except OSError as e:  # out of descriptors: nowhere to send from
            self.failures.note(self._name(upstream), f"cannot open a socket: {e}")
            self._finish(pending, _servfail(), cache=False)
            return
        while True:
            ident = secrets.randbits(16)
            if ident not in sock.pending:
                break
        pending.socket, pending.id, pending.upstream = sock, ident, upstream
        pending.attempts += 1
        sock.pending[ident] = pending
        sock.sent += 1
        message = dns.Message(id=ident, recDes=True)
        message.queries = [pending.query]
        message.additional = [dns._OPTHeader(udpPayloadSize=_UPSTREAM_UDP_SIZE)]  # type: ignore[list-item]
        # Half the time for the first attempt, the rest for the second (RFC 1536 §1).
        pending.timer = self.clock.callLater(self.timeout / 2, self._expired, pending)
        self.stats["sent"] += 1
        try:
            transport: Any = sock.transport
            transport.write(message.toStr())
        except OSError as e:
            # A full send buffer or no route: the same as a lost datagram, the timer decides.
            self.failures.note(self._name(upstream), f"send failed: {e}")
        if sock.sent >= self.rotate_after and not sock.retiring:
            self._retire(sock)

    def _unregister(self, pending: _Pending) -> None:
        sock = pending.socket
        if sock is not None:
            sock.pending.pop(pending.id, None)
            pending.socket = None
            if sock.retiring and not sock.pending:
                self._stop(sock)
        if pending.timer is not None:
            if pending.timer.active():
                pending.timer.cancel()
            pending.timer = None

    def _next_upstream(self, pending: _Pending) -> int | None:
        count = len(self.upstreams)
        for step in range(1, count + 1):
            candidate = (pending.upstream + step) % count
            if candidate not in pending.refused:
                return candidate
        return None

    def _expired(self, pending: _Pending) -> None:
        pending.timer = None
        upstream = self._next_upstream(pending) if pending.attempts < 2 else None
        if upstream is not None:
            self._send(pending, upstream)
            return
        self.stats["timeout"] += 1
        self.failures.note(self._name(pending.upstream), f"no answer in {self.timeout:g}s")
        self._finish(pending, _servfail(), ttl=SERVFAIL_TTL)

    def _refused(self, sock: _UpstreamSocket) -> None:
        """The kernel says `sock`'s upstream refused a datagram (ICMP port unreachable)."""
        self.stats["refused"] += 1
        self.failures.note(self._name(sock.index), "connection refused or unreachable (ICMP error)")
        for pending in list(sock.pending.values()):
            pending.refused.add(sock.index)
            upstream = self._next_upstream(pending)
            if upstream is None:
                self._finish(pending, _servfail(), ttl=SERVFAIL_TTL)
            else:
                self._send(pending, upstream)

    # -- receiving

    def _received(self, sock: _UpstreamSocket, data: bytes) -> None:
        message = dns.Message()
        try:
            message.fromStr(data)
        except Exception as e:  # any parse failure of untrusted bytes
            self.failures.note(self._name(sock.index), f"malformed answer ({type(e).__name__})")
            return
        pending = sock.pending.get(message.id)
        if pending is None or not message.answer or len(message.queries) != 1:
            return  # late, spoofed or stray
        question = message.queries[0]
        if (question.name.name.lower(), question.type, question.cls) != pending.key:
            return
        answer = UpstreamAnswer(
            message.rCode,
            message.answers,
            message.authority,
            [r for r in message.additional if r.type != dns.OPT],
            bool(message.trunc),
        )
        self._finish(pending, answer, ttl=None if answer.truncated else _ttl(answer))

    def _finish(self, pending: _Pending, answer: UpstreamAnswer, *, ttl: float | None = None,
                cache: bool = True) -> None:
        self._unregister(pending)
        self._pending.pop(pending.key, None)
        if cache and ttl is not None and ttl > 0:
            self._store(pending.key, answer, ttl)
        for d, source in pending.waiters:
            self.waiting -= 1
            held = self._by_source.get(source, 0)
            if held <= 1:
                self._by_source.pop(source, None)
            else:
                self._by_source[source] = held - 1
            d.callback(answer)
        pending.waiters = []

    # -- the cache

    def _store(self, key: Key, answer: UpstreamAnswer, ttl: float) -> None:
        now = self.clock.seconds()
        cache = self._cache
        cache[key] = _Cached(now + ttl, now, answer)
        cache.move_to_end(key)
        while len(cache) > self.cache_entries:
            cache.popitem(last=False)
        # Drop expired entries from the least recently used end, a few per store, so a flood's
        # entries go once they expire, without a timer each.
        for _ in range(2):
            oldest = next(iter(cache.values()), None)
            if oldest is None or oldest.expires > now:
                break
            cache.popitem(last=False)

    def _from_cache(self, key: Key) -> UpstreamAnswer | None:
        found = self._cache.get(key)
        if found is None:
            return None
        now = self.clock.seconds()
        if now >= found.expires:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        elapsed = int(now - found.stored)
        answer = found.answer
        if not elapsed:
            return answer
        return UpstreamAnswer(answer.rcode, _aged(answer.answers, elapsed), _aged(answer.authority, elapsed),
                              _aged(answer.additional, elapsed))

    def _name(self, index: int) -> str:
        host, port = self.upstreams[index]
        return f"{host}:{port}"


def _aged(records: list[dns.RRHeader], elapsed: int) -> list[dns.RRHeader]:
    return [
        dns.RRHeader(r.name.name, r.type, r.cls, max(r.ttl - elapsed, 0), r.payload, r.auth)
        for r in records
    ]


def _ttl(answer: UpstreamAnswer) -> float | None:
    """How long `answer` may be cached (RFC 2308), or ``None`` for not at all."""
    if answer.rcode == dns.ESERVER:
        return SERVFAIL_TTL
    if answer.rcode == dns.OK and answer.answers:
        return float(min(min(r.ttl for r in answer.answers), MAX_TTL))
    if answer.rcode in (dns.OK, dns.ENAME):
        for record in answer.authority:
            if record.type == dns.SOA:
                soa: Any = record.payload
                return float(min(record.ttl, soa.minimum, MAX_TTL))
    return None
