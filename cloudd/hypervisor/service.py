"""The `Hypervisors` service: the process's libvirt thread pool and its open host connections.

There is one "cloudd-libvirt" thread pool; the service starts it, and at stop closes every host
connection and then stops the pool. `connect(uri)` checks the URI, opens the connection on the pool
and keeps it, one per URI: a second `connect` of the same URI returns the connection already open,
because two connections to one test:///<file> host would be two different simulated hosts.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredLock, gatherResults
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from cloudd.hypervisor.connection import HostConnection, open_connection, quiet_close
from cloudd.hypervisor.errors import HostUnreachable, HypervisorError
from cloudd.hypervisor.runner import LibvirtRunner
from cloudd.hypervisor.uri import hypervisor_of as _hypervisor_of
from cloudd.hypervisor.uri import parse_host_uri


class Hypervisors(service.Service):
    """The pool of host connections; setName("hypervisors") by the wiring."""

    log = Logger()
    # how long a caller waits for a libvirt call (the first call needing QEMU's capabilities after a
    # libvirtd start takes ~12 s), for a ping, and for opening a connection
    call_timeout = 120.0
    ping_timeout = 15.0
    connect_timeout = 60.0

    def __init__(self, reactor: IReactorThreads, max_threads: int = 8, *, clock: IReactorTime | None = None,
                 threadpool: ThreadPool | None = None, call_timeout: float | None = None,
                 ping_timeout: float | None = None, connect_timeout: float | None = None) -> None:
        """`reactor` provides threads (and time unless `clock` is given). `threadpool` replaces the
        service's own pool (tests pass one that runs calls at once; the service neither starts nor
        stops a pool it did not make)."""
        self.reactor = reactor
        if clock is None:
            if not IReactorTime.providedBy(reactor):
                raise TypeError("Hypervisors needs a clock: the reactor given provides no IReactorTime")
            clock = reactor
        self.clock: IReactorTime = clock
        self._own_pool = threadpool is None
        self.threadpool = threadpool or ThreadPool(1, max_threads, name="cloudd-libvirt")
        self.runner = LibvirtRunner(reactor, self.clock, self.threadpool)
        if call_timeout is not None:
            self.call_timeout = call_timeout
        if ping_timeout is not None:
            self.ping_timeout = ping_timeout
        if connect_timeout is not None:
            self.connect_timeout = connect_timeout
        self._connections: dict[str, HostConnection] = {}
        self._opening: dict[str, DeferredLock] = {}
        self._stuck_opens: set[str] = set()  # URIs whose libvirt.open() runs on a pool thread

    @staticmethod
    def hypervisor_of(uri: str) -> str:
        """"Simulator" for test://, else "KVM"."""
        return _hypervisor_of(uri)

    def startService(self) -> None:  # noqa: N802
        if self._own_pool:
            self.threadpool.start()
        super().startService()

    def stopService(self) -> Deferred[None]:  # noqa: N802
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        super().stopService()
        await gatherResults([Deferred.fromCoroutine(conn.close()) for conn in list(self._connections.values())])
        if self._own_pool:
            # joins the threads: a libvirt call still running (bounded by libvirt's keepalive) delays it
            self.threadpool.stop()

    def connection(self, uri: str) -> HostConnection | None:
        """The open connection to `uri`, if any."""
        return self._connections.get(uri)

    @property
    def connections(self) -> list[HostConnection]:
        return list(self._connections.values())

    async def connect(self, uri: str) -> HostConnection:
        """The host's connection, opened now unless already open. HypervisorError("unsupported host URI
        ...") for a URI of another kind; HostUnreachable with libvirt's message when it cannot open."""
        host = parse_host_uri(uri)
        if not self.running:
            raise HypervisorError("the hypervisor service is not running")
        lock = self._opening.setdefault(uri, DeferredLock())
        await lock.acquire()
        try:
            existing = self._connections.get(uri)
            if existing is not None and not existing.closed:
                return existing
            if uri in self._stuck_opens:
                # an open that timed out still holds a thread: do not take another one for this host
                raise HostUnreachable(f"still waiting for {uri} to answer an earlier connection attempt")
            self._stuck_opens.add(uri)
            conn: Any = await self.runner.run(lambda: open_connection(host), self.connect_timeout,
                                              f"connecting to {uri}", late=self._close_late,
                                              finished=lambda: self._stuck_opens.discard(uri))
            if not self.running:  # stopped while opening
                self.threadpool.callInThread(quiet_close, conn)
                raise HypervisorError("the hypervisor service is not running")
            connection = HostConnection(host, conn, self.runner, call_timeout=self.call_timeout,
                                        ping_timeout=self.ping_timeout, on_closed=self._forget)
            self._connections[uri] = connection
            self.log.info("connected to {uri} ({hypervisor})", uri=uri, hypervisor=host.hypervisor)
            return connection
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._opening.pop(uri, None)

    def _close_late(self, conn: Any) -> None:
        """A connection opened after its caller gave up: close it on the pool."""
        self.threadpool.callInThread(quiet_close, conn)

    def _forget(self, connection: HostConnection) -> None:
        if self._connections.get(connection.uri) is connection:
            del self._connections[connection.uri]
