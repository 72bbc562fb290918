"""The router's DNS server on twisted.names (STYLE.md §5.5 rule 17), with the lean fast path in
front of it on UDP (DESIGN.md §6).

* `TableAuthority` is the one custom `IResolver`: it answers names that are ours from the current
  `DnsTable` (records, NODATA, or ``AuthoritativeDomainError`` → NXDOMAIN) and raises
  ``DomainError`` for the rest, so the chain falls through to the cache and the upstreams.
* `RouterDnsFactory` is a ``DNSServerFactory(authorities=[authority], caches=[CacheResolver],
  clients=[client.Resolver(servers=upstreams)])``.  Names that are not ours are resolved upstream
  only for clients inside the guest networks (`allowed_clients`); other clients get REFUSED for
  them.  Responses copy RD (RFC 1035 §4.1.1; twisted.names leaves it clear) and set AA for every
  answer about a name that is ours, NXDOMAIN and NODATA included.
* `LeanDatagramProtocol` answers known names with `lean.answer` and hands every other datagram
  to the factory; malformed datagrams are dropped, logged at most once a minute, never raised.
* `DnsServer` ties it together: `listen` serves UDP and TCP, `update` swaps the table with one
  reference assignment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort, IReactorTime, IResolver
from twisted.logger import Logger
from twisted.names import cache, client, common, dns, server
from twisted.names.error import AuthoritativeDomainError, DomainError
from twisted.names.resolve import ResolverChain
from twisted.python.failure import Failure
from zope.interface import implementer

from routervm.dns import lean
from routervm.dns.table import TTL, DnsTable

__all__ = [
    "DnsServer",
    "LeanDatagramProtocol",
    "RouterDnsFactory",
    "TableAuthority",
    "client_filter",
]

_log = Logger()

#: Seconds between two log lines about dropped datagrams.
DROP_LOG_INTERVAL = 60.0
#: The longest label a DNS name may carry on the wire (RFC 1035 §2.3.4).
_MAX_LABEL = 63


def client_filter(cidrs: Iterable[str]) -> Callable[[str], bool]:
    """A predicate "is this client address inside one of `cidrs`?" (never raises)."""
    networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def allowed(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in networks)

    return allowed


@implementer(IResolver)
class TableAuthority(common.ResolverBase):
    """An authority over the current table.  `lean` is the single reference `DnsServer.update`
    swaps; readers take it once per query."""

    def __init__(self, lean_table: lean.LeanTable) -> None:
        common.ResolverBase.__init__(self)
        self.lean = lean_table

    @property
    def table(self) -> DnsTable:
        return self.lean.table

    def is_ours(self, name: bytes) -> bool:
        return self.lean.table.lookup(name.decode("latin-1")) is not None

    def query(self, query: dns.Query, timeout: Sequence[int] | None = None) -> defer.Deferred[Any]:
        # Every type goes to `_lookup` (ResolverBase fails unknown types with NotImplementedError).
        return self._lookup(query.name.name, query.cls, query.type, timeout)

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Sequence[int] | None) -> defer.Deferred[Any]:
        entry = self.lean.table.lookup(name.decode("latin-1"))
        if entry is None or cls != dns.IN:
            return defer.fail(DomainError(name))
        if not entry.exists:
            return defer.fail(AuthoritativeDomainError(name))
        answers: list[dns.RRHeader] = []
        if type in (dns.A, dns.ALL_RECORDS):
            answers.extend(
                dns.RRHeader(name, dns.A, dns.IN, TTL, dns.Record_A(ip, TTL), auth=True)
                for ip in entry.addresses
            )
        if type in (dns.PTR, dns.ALL_RECORDS) and entry.pointer is not None:
            answers.append(
                dns.RRHeader(name, dns.PTR, dns.IN, TTL, dns.Record_PTR(entry.pointer, TTL), auth=True)
            )
        return defer.succeed((answers, [], []))


class RouterDnsFactory(server.DNSServerFactory):
    """`DNSServerFactory` over one `TableAuthority`, forwarding for allowed clients only."""

    def __init__(
        self,
        authority: TableAuthority,
        upstreams: Sequence[tuple[str, int]],
        is_allowed: Callable[[str], bool],
        reactor: IReactorTime,
    ) -> None:
        clients = [client.Resolver(servers=list(upstreams), reactor=reactor)] if upstreams else None
        caches = [cache.CacheResolver(reactor=reactor)] if upstreams else None
        server.DNSServerFactory.__init__(self, authorities=[authority], caches=caches, clients=clients)
        self.authority = authority
        self.is_allowed = is_allowed
        self._local = ResolverChain([authority])
        self.unencodable = 0  # queries dropped because their name cannot be encoded

    def messageReceived(self, message: dns.Message, proto: Any, address: tuple[str, int] | None = None) -> None:  # noqa: N802
        # A name with a label over 63 bytes parses (via compression pointers and the reserved
        # label types) but cannot be encoded again, so no answer can repeat the question: drop it.
        for query in message.queries:
            if any(len(label) > _MAX_LABEL for label in query.name.name.split(b".")):
                self.unencodable += 1
                return
        server.DNSServerFactory.messageReceived(self, message, proto, address)

    def _peer(self, protocol: Any, address: tuple[str, int] | None) -> str:
        if address is not None:
            return str(address[0])
        return str(getattr(protocol.transport.getPeer(), "host", ""))

    def handleQuery(self, message: dns.Message, protocol: Any, address: tuple[str, int] | None) -> None:
        if len(message.queries) != 1:
            self.sendReply(protocol, self._responseFromMessage(message, rCode=dns.EFORMAT), address)
            return
        # Without upstreams there is nowhere to forward to: every name not ours is REFUSED.
        allowed = self.canRecurse and self.is_allowed(self._peer(protocol, address))
        resolver = self.resolver if allowed else self._local
        d = resolver.query(message.queries[0])
        d.addCallback(self.gotResolverResponse, protocol, message, address)
        d.addErrback(self._gotError, protocol, message, address, allowed)
        d.addErrback(lambda f: _log.failure("DNS reply failed", f))

    def _gotError(
        self,
        failure: Failure,
        protocol: Any,
        message: dns.Message,
        address: tuple[str, int] | None,
        allowed: bool,
    ) -> None:
        if not allowed and failure.check(DomainError) and not failure.check(AuthoritativeDomainError):
            self.sendReply(protocol, self._responseFromMessage(message, rCode=dns.EREFUSED), address)
            return
        self.gotResolverError(failure, protocol, message, address)

    def _responseFromMessage(self, message: dns.Message, *args: Any, **kwargs: Any) -> dns.Message:
        # twisted.names never copies RD and sets AA when any answer record claims it.
        response = server.DNSServerFactory._responseFromMessage(self, message, *args, **kwargs)
        response.recDes = message.recDes
        # AA exactly for our own names: a forwarded answer is never authoritative here, whatever
        # the upstream said; our NXDOMAIN and NODATA answers are.
        response.auth = False
        if len(message.queries) == 1 and response.rCode in (dns.OK, dns.ENAME):
            query = message.queries[0]
            response.auth = query.cls == dns.IN and self.authority.is_ours(query.name.name)
        return response


class _DropLog:
    """Logs dropped datagrams at most once per `interval` seconds, with the count since."""

    def __init__(self, clock: IReactorTime, interval: float) -> None:
        self._clock = clock
        self._interval = interval
        self._next = float("-inf")
        self.dropped = 0

    def drop(self, address: object, reason: str) -> None:
        self.dropped += 1
        now = self._clock.seconds()
        if now >= self._next:
            self._next = now + self._interval
            _log.info(
                "DNS: dropped malformed datagram from {address} ({reason}); {count} dropped so far",
                address=address,
                reason=reason,
                count=self.dropped,
            )


class LeanDatagramProtocol(dns.DNSDatagramProtocol):
    """UDP: known names answered by `lean.answer`, the rest by the factory (twisted.names)."""

    def __init__(self, factory: RouterDnsFactory, reactor: IReactorTime) -> None:
        dns.DNSDatagramProtocol.__init__(self, factory, reactor=reactor)
        self.factory = factory
        self.authority = factory.authority
        self.drops = _DropLog(reactor, DROP_LOG_INTERVAL)
        self._sendto: Callable[[bytes, tuple[str, int]], object] | None = None

    def startProtocol(self) -> None:
        # Lean answers go straight to the port's socket: `Port.write` re-validates the address
        # text (three parses, ~2 us a datagram here) although it comes from `recvfrom`.
        sock = getattr(self.transport, "socket", None)
        self._sendto = None if sock is None else sock.sendto

    def stopProtocol(self) -> None:
        self._sendto = None
        dns.DNSDatagramProtocol.stopProtocol(self)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            response = lean.answer(data, self.authority.lean)
            if response is not None:
                if self._sendto is None:
                    self.transport.write(response, addr)
                else:
                    self._sendto(response, addr)
                return
            message = dns.Message()
            message.fromStr(data)
        except OSError:
            return  # send buffer full or the like: the client retries, as after any UDP loss
        except Exception as e:
            self.drops.drop(addr, type(e).__name__)
            return
        if message.answer:
            self.drops.drop(addr, "not a query")
            return
        try:
            self.controller.messageReceived(message, self, addr)
        except Exception:
            _log.failure("DNS: query handling failed")


class DnsServer:
    """The router's DNS service over one swappable table.

    `upstreams` are the zone's resolvers as ``(host, port)``; `allowed_clients` the guest networks'
    CIDRs, the only clients whose other names are forwarded (`is_allowed` replaces that check,
    for tests).  With no upstreams nothing is forwarded and RA is clear.
    """

    def __init__(
        self,
        table: DnsTable,
        *,
        upstreams: Sequence[tuple[str, int]] = (),
        allowed_clients: Iterable[str] = (),
        is_allowed: Callable[[str], bool] | None = None,
        reactor: Any,
    ) -> None:
        self._reactor = reactor
        self._recursion = bool(upstreams)
        self.authority = TableAuthority(lean.compile_table(table, recursion_available=self._recursion))
        self.factory = RouterDnsFactory(
            self.authority, upstreams, is_allowed or client_filter(allowed_clients), reactor
        )
        self.protocol = LeanDatagramProtocol(self.factory, reactor)

    @property
    def table(self) -> DnsTable:
        return self.authority.table

    def update(self, table: DnsTable) -> None:
        """Serve `table` from now on; queries see the old or the new table, never a mixture."""
        self.authority.lean = lean.compile_table(table, recursion_available=self._recursion)

    def listen(self, port: int, interface: str = "") -> tuple[IListeningPort, IListeningPort]:
        """Serve UDP and TCP on `interface`:`port` (port 0: any free port, the same for both is
        not guaranteed).  Returns the (UDP, TCP) listening ports."""
        udp = self._reactor.listenUDP(port, self.protocol, interface=interface)
        tcp = self._reactor.listenTCP(
            udp.getHost().port if port == 0 else port, self.factory, interface=interface
        )
        return udp, tcp
