"""The router's DNS server on twisted.names (STYLE.md §5.5 rule 17), with the lean fast path in
front of it on UDP (DESIGN.md §6).

* `TableAuthority` is the one custom `IResolver`: it answers names that are ours from the current
  `DnsTable` (records, NODATA, or ``AuthoritativeDomainError`` → NXDOMAIN) and raises
  ``DomainError`` for the rest, so the chain falls through to the cache and the upstreams.
* `RouterDnsFactory` is a ``DNSServerFactory`` over that authority that forwards the other names
  through a `forward.Forwarder` (bounded sockets, queries in flight, time and cache), only for
  clients inside the guest networks (`allowed_clients`); other clients get REFUSED for them.
  Responses copy RD (RFC 1035 §4.1.1; twisted.names leaves it clear) and set AA for every answer
  about a name that is ours, NXDOMAIN and NODATA included; negative answers in the domain carry
  its SOA (`table`).
* EDNS (RFC 6891): a query with one OPT record of version 0 gets one back (payload size
  `lean.EDNS_UDP_SIZE`, DO clear: no DNSSEC here, options ignored); another version gets BADVERS,
  two OPT records FORMERR.  A UDP response larger than the client accepts (512 bytes, or its EDNS
  size up to ours) is sent truncated: the question alone with TC set.
* `LeanDatagramProtocol` answers the router's names with `lean.answer` and hands every other
  datagram to the factory; malformed datagrams are dropped, logged at most once a minute, never
  raised.
* `DnsStreamProtocol` is DNS over TCP (RFC 7766): closed by the server after `IDLE_TIMEOUT`
  seconds without a complete query (bytes of an unfinished one do not count) or an answer
  written, and aborted `CLOSE_GRACE` seconds later if still there; after the client's half-close
  it still writes the answers to every query it sent, forwarded ones included, then closes; it
  stops reading a client that does not read its answers.
* `DnsServer` ties it together: `listen` serves UDP and TCP, `update` swaps the table with one
  reference assignment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
    IPushProducer,
    IReactorTime,
    IResolver,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.names import common, dns, server
from twisted.names.error import AuthoritativeDomainError, DomainError
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from routervm.dns import lean
from routervm.dns.forward import Forwarder, UpstreamAnswer
from routervm.dns.table import SOA_TIMERS, TTL, DnsTable, soa_owner

__all__ = [
    "CLOSE_GRACE",
    "IDLE_TIMEOUT",
    "DnsServer",
    "DnsStreamProtocol",
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
#: Seconds a DNS-over-TCP connection may stay without a complete query (RFC 7766 §6.2.3).
IDLE_TIMEOUT = 10.0
#: Seconds an idle connection closed by the server may take to flush before it is aborted.
CLOSE_GRACE = 2.0
#: The response code for an EDNS version we do not speak (RFC 6891 §9: extended RCODE 1).
_BADVERS = 16
_PLAIN_UDP_SIZE = 512


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
        found = self.resolve(name, cls, type)
        if found is None:
            return defer.fail(DomainError(name))
        rcode, answers, authority = found
        if rcode == dns.ENAME:
            return defer.fail(AuthoritativeDomainError(name))
        return defer.succeed((answers, authority, []))

    def resolve(self, name: bytes, cls: int, type: int) -> tuple[int, list[dns.RRHeader], list[dns.RRHeader]] | None:
        """The answer from the table, ``(rcode, answers, authority)``; `None` when the name is not
        ours.  A negative answer in the domain has the domain's SOA as its authority."""
        table = self.lean.table
        entry = table.lookup(name.decode("latin-1"))
        if entry is None or cls != dns.IN:
            return None
        answers: list[dns.RRHeader] = []
        if entry.exists and type in (dns.A, dns.ALL_RECORDS):
            answers.extend(
                dns.RRHeader(name, dns.A, dns.IN, TTL, dns.Record_A(ip, TTL), auth=True)
                for ip in entry.addresses
            )
        if entry.exists and type in (dns.PTR, dns.ALL_RECORDS) and entry.pointer is not None:
            answers.append(
                dns.RRHeader(name, dns.PTR, dns.IN, TTL, dns.Record_PTR(entry.pointer, TTL), auth=True)
            )
        owner = soa_owner(name, table.domain)
        if entry.exists and type in (dns.SOA, dns.ALL_RECORDS) and owner is not None and owner == name:
            answers.append(_soa_record(owner))
        rcode = dns.OK if entry.exists else dns.ENAME
        authority = [_soa_record(owner)] if not answers and owner is not None else []
        return rcode, answers, authority


def _soa_record(owner: bytes) -> dns.RRHeader:
    """The domain's SOA, its names spelt from `owner` (the question's spelling of the domain)."""
    serial, refresh, retry, expire, minimum = SOA_TIMERS
    soa = dns.Record_SOA(b"data-server." + owner, b"hostmaster." + owner, serial, refresh, retry, expire,
                         minimum, ttl=TTL)
    return dns.RRHeader(owner, dns.SOA, dns.IN, TTL, soa, auth=True)


def _edns(message: dns.Message) -> tuple[int, int] | None | bool:
    """The query's EDNS: ``(version, udp payload size)`` for one OPT record, `None` for none,
    `False` for several (FORMERR)."""
    found: tuple[int, int] | None = None
    for record in message.additional:
        if record.type == dns.OPT:
            if found is not None:
                return False
            found = ((record.ttl >> 16) & 0xFF, record.cls)
    return found


class RouterDnsFactory(server.DNSServerFactory):
    """`DNSServerFactory` over one `TableAuthority`, forwarding for allowed clients only.

    `forwarder` is `None` when there are no upstreams (then every name not ours is REFUSED)."""

    def __init__(
        self,
        authority: TableAuthority,
        forwarder: Forwarder | None,
        is_allowed: Callable[[str], bool],
        reactor: IReactorTime,
    ) -> None:
        server.DNSServerFactory.__init__(self, authorities=[authority])
        self.canRecurse = forwarder is not None
        self.forwarder = forwarder
        self.authority = authority
        self.is_allowed = is_allowed
        self.reactor = reactor
        self.connections: set[Any] = set()  # type: ignore[assignment]
        self.unencodable = 0  # queries dropped because their name cannot be encoded
        self.drops = _DropLog(reactor, DROP_LOG_INTERVAL)

    def buildProtocol(self, addr: Any) -> DnsStreamProtocol:  # noqa: N802
        protocol = DnsStreamProtocol(self, self.reactor)
        protocol.factory = self
        return protocol

    def connectionMade(self, protocol: Any) -> None:  # noqa: N802
        self.connections.add(protocol)

    def connectionLost(self, protocol: Any) -> None:  # noqa: N802
        self.connections.discard(protocol)

    def messageReceived(self, message: dns.Message, proto: Any, address: tuple[str, int] | None = None) -> None:  # noqa: N802
        # A name with a label over 63 bytes parses (via compression pointers and the reserved
        # label types) but cannot be encoded again, so no answer can repeat the question: drop it.
        for query in message.queries:
            if any(len(label) > _MAX_LABEL for label in query.name.name.split(b".")):
                self.unencodable += 1
                return
        if isinstance(proto, DnsStreamProtocol):
            proto.pending += 1  # every path below ends in exactly one `sendReply`
        server.DNSServerFactory.messageReceived(self, message, proto, address)

    def _peer(self, protocol: Any, address: tuple[str, int] | None) -> str:
        if address is not None:
            return str(address[0])
        return str(getattr(protocol.transport.getPeer(), "host", ""))

    def handleQuery(self, message: dns.Message, protocol: Any, address: tuple[str, int] | None) -> None:  # noqa: N802
        edns = _edns(message)
        if len(message.queries) != 1 or edns is False:
            self.sendReply(protocol, self._responseFromMessage(message, rCode=dns.EFORMAT), address)
            return
        if edns is not None and edns[0] != 0:  # type: ignore[index]
            self.sendReply(protocol, self._responseFromMessage(message, rCode=_BADVERS), address)
            return
        query = message.queries[0]
        local = self.authority.resolve(query.name.name, query.cls, query.type)
        if local is not None:
            rcode, answers, authority = local
            self.sendReply(
                protocol, self._responseFromMessage(message, rCode=rcode, answers=answers, authority=authority),
                address,
            )
            return
        peer = self._peer(protocol, address)
        # Without upstreams there is nowhere to forward to: every name not ours is REFUSED.
        if self.forwarder is None or not self.is_allowed(peer):
            self.sendReply(protocol, self._responseFromMessage(message, rCode=dns.EREFUSED), address)
            return
        try:
            result = self.forwarder.lookup(query, peer)
        except Exception:
            _log.failure("DNS: forwarding failed")
            result = UpstreamAnswer(dns.ESERVER, [], [], [])
        if isinstance(result, defer.Deferred):
            result.addCallback(self._forwarded, protocol, message, address)
            result.addErrback(self._forward_failed, protocol, message, address)
        else:
            self._forwarded(result, protocol, message, address)

    def _forwarded(
        self, result: UpstreamAnswer, protocol: Any, message: dns.Message, address: tuple[str, int] | None
    ) -> None:
        response = self._responseFromMessage(
            message, rCode=result.rcode, answers=list(result.answers), authority=list(result.authority),
            additional=list(result.additional),
        )
        response.trunc = result.truncated
        self.sendReply(protocol, response, address)

    def _forward_failed(
        self, failure: Failure, protocol: Any, message: dns.Message, address: tuple[str, int] | None
    ) -> None:
        _log.failure("DNS: forwarding failed", failure)
        self.sendReply(protocol, self._responseFromMessage(message, rCode=dns.ESERVER), address)

    def sendReply(self, protocol: Any, message: dns.Message, address: tuple[str, int] | None) -> None:  # noqa: N802
        try:
            if address is None:
                protocol.writeMessage(message)
            else:
                protocol.writeMessage(message, address)
        except OSError:
            pass  # send buffer full or the like: the client retries, as after any UDP loss
        except Exception:
            _log.failure("DNS: cannot send a reply")
        finally:
            if isinstance(protocol, DnsStreamProtocol):
                protocol.answered()

    def _responseFromMessage(self, message: dns.Message, rCode: int = dns.OK, answers: Any = None,  # noqa: N802
                             authority: Any = None, additional: Any = None) -> dns.Message:
        # twisted.names never copies RD and sets AA when any answer record claims it.
        response = server.DNSServerFactory._responseFromMessage(
            self, message, rCode=rCode & 0xF, answers=answers, authority=authority, additional=additional
        )
        response.recDes = message.recDes
        # AA exactly for our own names: a forwarded answer is never authoritative here, whatever
        # the upstream said; our NXDOMAIN and NODATA answers are.
        response.auth = False
        if len(message.queries) == 1 and rCode in (dns.OK, dns.ENAME):
            query = message.queries[0]
            response.auth = query.cls == dns.IN and self.authority.is_ours(query.name.name)
        # twisted.names truncates by cutting bytes; `LeanDatagramProtocol.writeMessage` does it.
        response.maxSize = 0
        edns = _edns(message)
        if edns:
            response.additional.append(lean_opt(rCode >> 4))
            response.udp_limit = min(max(edns[1], _PLAIN_UDP_SIZE), lean.EDNS_UDP_SIZE)  # type: ignore[index]
        else:
            response.udp_limit = _PLAIN_UDP_SIZE
        return response


def lean_opt(extended_rcode: int) -> dns._OPTHeader:
    """Our OPT record as twisted.names encodes it (the bytes of `lean.opt_record`)."""
    return dns._OPTHeader(udpPayloadSize=lean.EDNS_UDP_SIZE, extendedRCODE=extended_rcode, version=0,
                          dnssecOK=False)


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
                "DNS: dropped malformed message from {address} ({reason}); {count} dropped so far",
                address=address,
                reason=reason,
                count=self.dropped,
            )


class LeanDatagramProtocol(dns.DNSDatagramProtocol):
    """UDP: the router's names answered by `lean.answer`, the rest by the factory (twisted.names)."""

    def __init__(self, factory: RouterDnsFactory, reactor: IReactorTime) -> None:
        dns.DNSDatagramProtocol.__init__(self, factory, reactor=reactor)
        self.factory = factory
        self.authority = factory.authority
        self.drops = factory.drops
        self._sendto: Callable[[bytes, tuple[str, int]], object] | None = None

    def startProtocol(self) -> None:  # noqa: N802
        # Lean answers go straight to the port's socket: `Port.write` re-validates the address
        # text (three parses, ~2 us a datagram here) although it comes from `recvfrom`.
        sock = getattr(self.transport, "socket", None)
        self._sendto = None if sock is None else sock.sendto

    def stopProtocol(self) -> None:  # noqa: N802
        self._sendto = None
        if self.factory.forwarder is not None:
            self.factory.forwarder.close()
        dns.DNSDatagramProtocol.stopProtocol(self)

    def writeMessage(self, message: dns.Message, address: tuple[str, int]) -> None:  # noqa: N802
        data = message.toStr()
        limit = getattr(message, "udp_limit", _PLAIN_UDP_SIZE)
        if len(data) > limit:
            # Truncated (RFC 2181 §9): the question alone with TC set, the client retries on TCP.
            short = dns.Message(id=message.id, answer=message.answer, opCode=message.opCode, auth=message.auth,
                                trunc=True, recDes=message.recDes, recAv=message.recAv, rCode=message.rCode)
            short.queries = message.queries
            short.additional = [r for r in message.additional if r.type == dns.OPT]
            data = short.toStr()
        self.transport.write(data, address)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
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


@implementer(IHalfCloseableProtocol, IPushProducer)
class DnsStreamProtocol(dns.DNSProtocol, TimeoutMixin):
    """DNS over TCP: idle timeout, answers after the client's half-close (RFC 7766 §6.2.3).

    It is its transport's producer: when a client sends queries but does not read the answers,
    the transport's full write buffer pauses it and it stops reading that client's queries until
    the buffer drains (or the idle timeout aborts the connection), so answers cannot pile up."""

    idle_timeout = IDLE_TIMEOUT

    def __init__(self, factory: RouterDnsFactory, reactor: IReactorTime) -> None:
        dns.DNSProtocol.__init__(self, factory, reactor=reactor)
        self.drops = factory.drops
        #: Queries received and not answered yet.
        self.pending = 0
        self.read_closed = False
        #: The connection is gone: answers still arriving (forwarded ones, or the SERVFAILs of a
        #: forwarder closing at shutdown) are dropped, and its transport is never touched again.
        self.lost = False
        self._abort_call: Any = None

    def connectionMade(self) -> None:  # noqa: N802
        dns.DNSProtocol.connectionMade(self)
        transport: Any = self.transport
        transport.registerProducer(self, True)
        self.setTimeout(self.idle_timeout)

    def pauseProducing(self) -> None:  # noqa: N802
        transport: Any = self.transport
        transport.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802
        if not self.read_closed:
            transport: Any = self.transport
            transport.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802
        pass  # the connection is going: nothing of ours to stop

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        # The idle timer restarts on a complete query only, never on a byte of an unfinished one.
        self.resetTimeout()
        message = dns.Message()
        try:
            message.fromStr(data)
        except Exception as e:
            self.drops.drop(self._peer(), type(e).__name__)
            return
        if message.answer:
            self.drops.drop(self._peer(), "not a query")
            return
        try:
            self.controller.messageReceived(message, self)
        except Exception:
            _log.failure("DNS: query handling failed")

    def _peer(self) -> str:
        transport: Any = self.transport
        return str(getattr(transport.getPeer(), "host", ""))

    def writeMessage(self, message: dns.Message) -> None:  # noqa: N802
        if not self.lost:
            dns.DNSProtocol.writeMessage(self, message)

    def answered(self) -> None:
        """One answer written: close after the last one when the client has half-closed."""
        if self.lost:
            return
        self.pending -= 1
        if self.pending <= 0:
            self.pending = 0
            if self.read_closed:
                self._close()
            else:
                self.resetTimeout()

    def readConnectionLost(self) -> None:  # noqa: N802
        self.read_closed = True
        if self.pending == 0:
            self._close()

    def writeConnectionLost(self) -> None:  # noqa: N802
        self._close()

    def _close(self) -> None:
        transport: Any = self.transport
        if transport.producer is not None:
            transport.unregisterProducer()  # else the transport waits for it before closing
        transport.loseConnection()

    def timeoutConnection(self) -> None:  # noqa: N802
        # A graceful close; a client that does not read what is still buffered must not hold the
        # connection with it: aborted after a short grace.
        self._close()
        self._abort_call = self.callLater(CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        self._abort_call = None
        transport: Any = self.transport
        transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.lost = True
        self.setTimeout(None)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        dns.DNSProtocol.connectionLost(self, reason)


class DnsServer:
    """The router's DNS service over one swappable table.

    `upstreams` are the zone's resolvers as ``(host, port)``; `allowed_clients` the guest networks'
    CIDRs, the only clients whose other names are forwarded (`is_allowed` replaces that check,
    for tests).  With no upstreams nothing is forwarded and RA is clear.  `forwarder` replaces the
    default `Forwarder` (tests).
    """

    def __init__(
        self,
        table: DnsTable,
        *,
        upstreams: Sequence[tuple[str, int]] = (),
        allowed_clients: Iterable[str] = (),
        is_allowed: Callable[[str], bool] | None = None,
        forwarder: Forwarder | None = None,
        reactor: Any,
    ) -> None:
        self._reactor = reactor
        if forwarder is None and upstreams:
            forwarder = Forwarder(upstreams, reactor)
        self.forwarder = forwarder
        self._recursion = forwarder is not None
        self.authority = TableAuthority(lean.compile_table(table, recursion_available=self._recursion))
        self.factory = RouterDnsFactory(
            self.authority, forwarder, is_allowed or client_filter(allowed_clients), reactor
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
        not guaranteed).  Returns the (UDP, TCP) listening ports; stopping the UDP one closes the
        upstream sockets too."""
        udp = self._reactor.listenUDP(port, self.protocol, interface=interface)
        tcp = self._reactor.listenTCP(
            udp.getHost().port if port == 0 else port, self.factory, interface=interface
        )
        return udp, tcp
