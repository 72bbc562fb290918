"""The connect-time address check, as an endpoint factory for `Agent.usingEndpointFactory`.

`CheckedEndpointFactory.endpointForURI` returns a `CheckedEndpoint` which, on `connect`, resolves
the host once with an `IHostnameResolver` (the reactor's `nameResolver` unless one is injected),
checks **every** resolved address with the `AddressPolicy`, and then connects a plain
`TCP4ClientEndpoint`/`TCP6ClientEndpoint` to one of those checked IP addresses. Nothing resolves
the name again afterwards, so DNS rebinding cannot move the connection elsewhere. For https the
TCP endpoint is wrapped with `wrapClientTLS`, using the connection creator of the TLS policy for
the *host name* (certificate and SNI are checked against the name, not the IP). The connected
transport reads `READ_SIZE` bytes at a time.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from ssvm.download.errors import AddressRefused, ResolutionFailed, URLRefused
from ssvm.download.policy import AddressPolicy

DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_RESOLVE_TIMEOUT = 30.0
# Bytes per read from the socket (Twisted's default is 64 KiB); measured by bench/download.py.
READ_SIZE = 256 * 1024


@implementer(IResolutionReceiver)
class _Collector:
    """Gathers the addresses of one resolution and fires `done` with them."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done: Deferred[list[str]] = Deferred()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:  # noqa: N802
        pass

    def addressResolved(self, address: IAddress) -> None:  # noqa: N802
        if isinstance(address, IPv4Address | IPv6Address) and address.host not in self.addresses:
            self.addresses.append(address.host)

    def resolutionComplete(self) -> None:  # noqa: N802
        if not self.done.called:
            self.done.callback(self.addresses)


@implementer(IStreamClientEndpoint)
class CheckedEndpoint:
    """Resolves once, checks every address, connects to a checked IP (with TLS for https)."""

    log = Logger()

    def __init__(self, reactor: Any, resolver: IHostnameResolver, policy: AddressPolicy, host: str,
                 port: int, tls: IPolicyForHTTPS | None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT) -> None:
        self._reactor = reactor
        self._resolver = resolver
        self._policy = policy
        self._host = host
        self._port = port
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._resolve_timeout = resolve_timeout

    async def resolve(self) -> list[str]:
        """The checked addresses of the host; `AddressRefused` if any of them is refused."""
        try:
            literal = ipaddress.ip_address(self._host)
        except ValueError:
            collector = _Collector()
            self._resolver.resolveHostName(collector, self._host, self._port,
                                           addressTypes=[IPv4Address, IPv6Address],
                                           transportSemantics="TCP")
            collector.done.addTimeout(self._resolve_timeout, self._reactor)
            try:
                addresses = await collector.done
            except Exception as exc:
                raise ResolutionFailed(f"{self._host} did not resolve: {exc.__class__.__name__}") from None
        else:
            addresses = [str(literal)]
        if not addresses:
            raise ResolutionFailed(f"{self._host} did not resolve to any address")
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:
                raise AddressRefused(self._host, address, reason)
        return addresses

    def _endpoint_for(self, address: str) -> IStreamClientEndpoint:
        endpoint: IStreamClientEndpoint
        if ":" in address:
            endpoint = TCP6ClientEndpoint(self._reactor, address, self._port, timeout=self._connect_timeout)
        else:
            endpoint = TCP4ClientEndpoint(self._reactor, address, self._port, timeout=self._connect_timeout)
        if self._tls is not None:
            creator = self._tls.creatorForNetloc(self._host.encode("ascii"), self._port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint

    async def _connect(self, factory: IProtocolFactory) -> IProtocol:
        addresses = await self.resolve()
        failure: Exception | None = None
        for address in addresses:
            try:
                protocol: IProtocol = await self._endpoint_for(address).connect(factory)
            except ConnectError as exc:
                self.log.info("connection to {host} at {address} port {port} failed: {error}",
                              host=self._host, address=address, port=self._port, error=str(exc))
                failure = exc
                continue
            transport = getattr(protocol, "transport", None)
            if transport is not None and hasattr(transport, "bufferSize"):
                transport.bufferSize = READ_SIZE  # fewer, larger reads: a body is large and streamed
            return protocol
        assert failure is not None
        raise failure

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:  # noqa: N803
        return Deferred.fromCoroutine(self._connect(protocolFactory))


@implementer(IAgentEndpointFactory)
class CheckedEndpointFactory:
    """Endpoints for `Agent.usingEndpointFactory`: http and https only, every address checked."""

    def __init__(self, reactor: Any, policy: AddressPolicy, *, resolver: IHostnameResolver | None = None,
                 tls: IPolicyForHTTPS | None = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT) -> None:
        self._reactor = reactor
        self._policy = policy
        self._resolver: IHostnameResolver = resolver if resolver is not None else reactor.nameResolver
        self._tls: IPolicyForHTTPS = tls if tls is not None else BrowserLikePolicyForHTTPS()
        self._connect_timeout = connect_timeout
        self._resolve_timeout = resolve_timeout

    def endpoint(self, scheme: str, host: str, port: int) -> CheckedEndpoint:
        if scheme not in ("http", "https"):
            raise URLRefused(f"URL scheme {scheme!r} is not allowed (only http and https)")
        return CheckedEndpoint(self._reactor, self._resolver, self._policy, host, port,
                               self._tls if scheme == "https" else None,
                               connect_timeout=self._connect_timeout, resolve_timeout=self._resolve_timeout)

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:  # noqa: N802
        try:
            host = uri.host.decode("ascii")
            scheme = uri.scheme.decode("ascii")
        except UnicodeDecodeError:
            raise URLRefused("URL host is not ASCII") from None
        return self.endpoint(scheme, host, uri.port)

