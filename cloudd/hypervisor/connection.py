"""One host's libvirt connection: facts, liveness, and storage pools, all on the libvirt thread pool.

A `HostConnection` keeps its libvirt connection open for the host's lifetime. That matters for
simulated hosts: a test:///<file> host's state lives in the connection and is lost when it closes. When
the connection is lost (libvirtd stopped, network gone), calls fail with `HostUnreachable` and `ping()`
closes the dead connection and opens a new one, once per ping; other calls never reconnect on their own,
so the host monitor alone decides when a host is back.

Functions named `_thd_*` run on a pool thread and are the only places libvirt is called. Each caller
waits at most its time limit (`call_timeout`, `ping_timeout`); a connection to a libvirtd carries a
keepalive (see `events`), so a host that stops answering also frees the threads waiting on it.
"""

from __future__ import annotations

import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt
from twisted.logger import Logger

from cloudd.hypervisor.errors import HostUnreachable, HypervisorError
from cloudd.hypervisor.events import ensure_event_loop, quiet_libvirt
from cloudd.hypervisor.facts import HostFacts, PoolFacts
from cloudd.hypervisor.pools import PoolSpec, differences, pool_spec
from cloudd.hypervisor.runner import LibvirtRunner
from cloudd.hypervisor.uri import KVM, HostUri

T = TypeVar("T")

# libvirt's keepalive on connections to a libvirtd: a probe after `interval` idle seconds, and the
# connection is closed after `count` unanswered probes (so a silent host is noticed within ~20 s)
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


def version_text(number: int) -> str:
    """libvirt's version integer (major * 1,000,000 + minor * 1,000 + release) as "major.minor.release"."""
    if number <= 0:
        return ""
    return f"{number // 1_000_000}.{number // 1_000 % 1_000}.{number % 1_000}"


def message_of(exc: libvirt.libvirtError) -> str:
    text = exc.get_error_message() or str(exc)
    return " ".join(str(text).split())


def quiet_close(conn: Any) -> None:
    """Close a libvirt connection whose fate no longer matters (blocking: call it on the pool)."""
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


def open_connection(host: HostUri) -> Any:
    """Open a libvirt connection to `host` (blocking: call it on the pool).

    Raises HostUnreachable with libvirt's message when it cannot be opened.
    """
    quiet_libvirt()
    if host.node_file is not None and not os.path.isfile(host.node_file):
        # checked here because libxml2 would print its own warning to stderr before libvirt fails
        raise HostUnreachable(f"cannot connect to {host.uri}: no node file at {host.node_file}")
    if host.remote:
        ensure_event_loop()
    try:
        conn = libvirt.open(host.uri)
    except libvirt.libvirtError as exc:
        raise HostUnreachable(f"cannot connect to {host.uri}: {message_of(exc)}") from None
    if conn is None:  # older bindings returned None instead of raising
        raise HostUnreachable(f"cannot connect to {host.uri}")
    if host.remote:
        try:
            conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        except libvirt.libvirtError as exc:
            HostConnection.log.warn("no keepalive on {uri}: {error}", uri=host.uri, error=message_of(exc))
    return conn


def _node_file_hostname(path: str) -> str | None:
    """The <hostname> of a test-driver node file (libvirt's test driver ignores it)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    name = root.findtext("hostname")
    return name.strip() if name and name.strip() else None


class HostConnection:
    """One host's libvirt connection, kept open for the host's lifetime (test:///<file> hosts lose
    their state when their last connection closes); reopened by `ping()` after a loss."""

    log = Logger()

    def __init__(self, host: HostUri, conn: Any, runner: LibvirtRunner, *, call_timeout: float,
                 ping_timeout: float, on_closed: Callable[[HostConnection], None] | None = None) -> None:
        self.host = host
        self.uri = host.uri
        self.hypervisor = host.hypervisor
        self.call_timeout = call_timeout
        self.ping_timeout = ping_timeout
        self._runner = runner
        self._conn: Any = conn  # replaced by ping() on a pool thread; read by every _thd_* function
        self._reconnect_lock = threading.Lock()
        self._closed = False
        self._ping_running = False
        self._on_closed = on_closed

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<HostConnection {self.uri}{' closed' if self._closed else ''}>"

    # -- running work -------------------------------------------------------------------------------

    def _current(self) -> Any:
        if self._closed:
            raise HypervisorError(f"the connection to {self.uri} is closed")
        conn = self._conn
        if conn is None:
            raise HostUnreachable(f"{self.uri} is not connected")
        return conn

    def _translate(self, conn: Any, exc: libvirt.libvirtError) -> HypervisorError:
        """libvirt's error as ours: HostUnreachable when the connection itself is gone."""
        try:
            alive = bool(conn.isAlive())
        except libvirt.libvirtError:
            alive = False
        text = message_of(exc)
        if not alive:
            return HostUnreachable(f"lost the connection to {self.uri}: {text}")
        return HypervisorError(text)

    def _with_conn(self, op: Callable[[Any], T]) -> Callable[[], T]:
        def thd() -> T:
            conn = self._current()
            try:
                return op(conn)
            except libvirt.libvirtError as exc:
                raise self._translate(conn, exc) from None

        return thd

    async def _call(self, op: Callable[[Any], T], what: str) -> T:
        if self._closed:
            raise HypervisorError(f"the connection to {self.uri} is closed")
        return await self._runner.run(self._with_conn(op), self.call_timeout, f"{what} on {self.uri}")

    # -- facts and liveness -------------------------------------------------------------------------

    async def facts(self) -> HostFacts:
        """The host's CPU, memory and versions as its libvirt reports them."""
        return await self._call(self._thd_facts, "reading the host's facts")

    def _thd_facts(self, conn: Any) -> HostFacts:
        # getInfo(): [cpu model (the arch), memory MiB, cpus, mhz, NUMA nodes, sockets per node,
        # cores per socket, threads per core]
        info = conn.getInfo()
        try:
            memory_bytes = int(conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)["total"]) * 1024
        except (libvirt.libvirtError, KeyError):  # the test driver has no memory stats
            memory_bytes = int(info[1]) * 1024 * 1024
        try:
            hypervisor_version = version_text(int(conn.getVersion()))
        except libvirt.libvirtError:
            hypervisor_version = ""
        cpu_model = str(info[0])
        if self.hypervisor == KVM:
            # on a real host, the CPU model libvirt would give guests in host-model mode
            caps = ET.fromstring(conn.getCapabilities())
            cpu_model = (caps.findtext("host/cpu/model") or cpu_model).strip()
        hostname = _node_file_hostname(self.host.node_file) if self.host.node_file else None
        return HostFacts(
            hypervisor=self.hypervisor,
            hypervisor_version=hypervisor_version,
            hostname=hostname or str(conn.getHostname()),
            cpus=int(info[2]),
            cpu_mhz=int(info[3]),
            cpu_sockets=max(1, int(info[4]) * int(info[5])),
            memory_bytes=memory_bytes,
            cpu_model=cpu_model,
            arch=str(info[0]),
            libvirt_version=version_text(int(conn.getLibVersion())),
        )

    async def ping(self) -> None:
        """Return when the host answers; reconnect once if the connection was lost; otherwise raise
        HostUnreachable. A ping still waiting on a silent host makes the next one fail at once
        instead of taking a second thread."""
        if self._closed:
            raise HypervisorError(f"the connection to {self.uri} is closed")
        if self._ping_running:
            raise HostUnreachable(f"{self.uri} has not answered the previous check yet")
        self._ping_running = True

        def finished() -> None:  # when the thread is done, even after this caller gave up
            self._ping_running = False

        await self._runner.run(self._thd_ping, self.ping_timeout, self.uri, finished=finished)

    def _thd_ping(self) -> None:
        conn = self._conn
        if conn is not None:
            try:
                if conn.isAlive():
                    conn.getLibVersion()  # a round trip to the daemon
                    return
            except libvirt.libvirtError:
                pass
        with self._reconnect_lock:
            if self._closed:
                raise HypervisorError(f"the connection to {self.uri} is closed")
            if self._conn is not conn:
                return  # another thread reconnected meanwhile
            self._conn = None
            if conn is not None:
                self.log.info("lost the connection to {uri}; reconnecting", uri=self.uri)
                quiet_close(conn)
            fresh = open_connection(self.host)
            try:
                fresh.getLibVersion()
            except libvirt.libvirtError as exc:
                quiet_close(fresh)
                raise HostUnreachable(f"cannot connect to {self.uri}: {message_of(exc)}") from None
            self._conn = fresh
        self.log.info("reconnected to {uri}", uri=self.uri)

    # -- storage pools -----------------------------------------------------------------------------

    async def ensure_pool(self, name: str, kind: str, path: str, nfs_server: str | None = None,
                          nfs_export: str | None = None) -> PoolFacts:
        """Make sure the host has a started, autostarting pool `name` as described, and report it.

        kind "dir": a directory pool at `path` (made if missing). kind "netfs": the NFS export
        `nfs_server`:`nfs_export` mounted at `path`. Idempotent; a pool of that name defined
        differently is an error, and a pool this call defined is undefined again if it cannot start.
        """
        spec = pool_spec(name, kind, path, nfs_server, nfs_export)
        return await self._call(lambda conn: self._thd_ensure_pool(conn, spec), f"creating pool {name}")

    def _thd_ensure_pool(self, conn: Any, spec: PoolSpec) -> PoolFacts:
        pool = self._lookup_pool(conn, spec.name)
        defined_here = pool is None
        if pool is None:
            if spec.kind == "dir" and self.host.node_file is not None:
                # a simulated host's storage is this machine's directory; libvirt's test driver
                # makes nothing on disk
                try:
                    os.makedirs(spec.path, exist_ok=True)
                except OSError as exc:
                    raise HypervisorError(f"cannot make the directory {spec.path}: {exc.strerror}") from None
            pool = conn.storagePoolDefineXML(spec.to_xml(), 0)
            self.log.info("defined storage pool {pool} ({kind} {path}) on {uri}", pool=spec.name,
                          kind=spec.kind, path=spec.path, uri=self.uri)
        else:
            found = differences(spec, pool.XMLDesc(0))
            if found:
                raise HypervisorError(f"storage pool {spec.name} already exists on {self.uri} with a different "
                                      f"definition: {'; '.join(found)}")
        try:
            if not pool.isActive():
                pool.build(0)  # makes the directory or the mount point when missing
                pool.create(0)
            if not pool.autostart():
                pool.setAutostart(1)
            pool.refresh(0)
            info = pool.info()
        except libvirt.libvirtError:
            if defined_here:
                self._thd_forget_pool(pool)
            raise
        return PoolFacts(capacity_bytes=int(info[1]), used_bytes=int(info[2]), available_bytes=int(info[3]))

    def _thd_forget_pool(self, pool: Any) -> None:
        try:
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError as exc:
            self.log.warn("could not undefine the pool {pool} after a failure: {error}", pool=pool.name(),
                          error=message_of(exc))

    @staticmethod
    def _lookup_pool(conn: Any, name: str) -> Any:
        try:
            return conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                return None
            raise

    async def pool_facts(self, name: str) -> PoolFacts:
        """Capacity and use of pool `name` after a refresh (HypervisorError if it is missing or stopped)."""
        return await self._call(lambda conn: self._thd_pool_facts(conn, name), f"reading pool {name}")

    def _thd_pool_facts(self, conn: Any, name: str) -> PoolFacts:
        pool = conn.storagePoolLookupByName(name)
        pool.refresh(0)
        info = pool.info()
        return PoolFacts(capacity_bytes=int(info[1]), used_bytes=int(info[2]), available_bytes=int(info[3]))

    async def delete_pool(self, name: str) -> None:
        """Stop and undefine pool `name`, leaving its files (or the NFS export) untouched; a pool that is
        not there is already deleted."""
        await self._call(lambda conn: self._thd_delete_pool(conn, name), f"deleting pool {name}")

    def _thd_delete_pool(self, conn: Any, name: str) -> None:
        pool = self._lookup_pool(conn, name)
        if pool is None:
            return
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        self.log.info("removed storage pool {pool} from {uri}", pool=name, uri=self.uri)

    # -- closing -----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection (a simulated host's state goes with it). Later calls fail."""
        if self._closed:
            return
        self._closed = True
        if self._on_closed is not None:
            self._on_closed(self)

        def thd_close() -> None:
            with self._reconnect_lock:
                conn, self._conn = self._conn, None
            if conn is not None:
                quiet_close(conn)

        try:
            await self._runner.run(thd_close, self.call_timeout, f"closing {self.uri}")
        except HypervisorError as exc:
            self.log.warn("closing {uri}: {error}", uri=self.uri, error=str(exc))
