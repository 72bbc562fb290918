"""Tests for the libvirt driver (`cloudd.hypervisor`) on libvirt's in-process test driver.

Simulated hosts are node files in a temporary directory. The driver's thread pool is replaced by one
that runs each call at once on the test's thread (or holds it until the test releases it, to see what
a caller does while libvirt is slow), and time is a Clock, so nothing here waits or binds a socket.
"""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import libvirt
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from cloudd.hypervisor import (
    HostConnection,
    HostFacts,
    HostUnreachable,
    HypervisorError,
    Hypervisors,
    PoolFacts,
    hypervisor_of,
    parse_host_uri,
    simulated_host_xml,
    write_simulated_host,
)
from cloudd.hypervisor.connection import version_text
from cloudd.hypervisor.pools import differences, pool_spec
from tests.util.reactor import FakeReactor, NonThreadPool

T = TypeVar("T")
GIB = 1024**3


class InlineThreadPool(NonThreadPool):
    """Runs every call at once, including fire-and-forget `callInThread` work."""

    def callInThread(self, func: Callable[..., Any], *args: Any, **kw: Any) -> None:  # noqa: N802
        func(*args, **kw)


class HeldThreadPool(InlineThreadPool):
    """Holds every call until the test releases it: libvirt that has not answered yet."""

    def __init__(self) -> None:
        self.held: list[tuple[Callable[[bool, Any], None] | None, Callable[..., Any], tuple[Any, ...]]] = []

    def callInThreadWithCallback(self, onResult: Callable[[bool, Any], None],  # noqa: N802, N803
                                 func: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self.held.append((onResult, func, args))

    def release_all(self) -> None:
        held, self.held = self.held, []
        for on_result, func, args in held:
            if on_result is None:
                func(*args)
            else:
                super().callInThreadWithCallback(on_result, func, *args)


def d(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    return Deferred.fromCoroutine(coro)


class DriverCase(SynchronousTestCase):
    """A running Hypervisors service on a fake reactor and an inline pool, and a temporary directory."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.pool = InlineThreadPool()
        self.service = Hypervisors(self.reactor, threadpool=self.pool)  # type: ignore[arg-type]
        self.service.startService()
        self.addCleanup(self._stop)
        self.dir = os.path.realpath(self.mktemp())
        os.makedirs(self.dir)

    def _stop(self) -> None:
        if self.service.running:
            self.successResultOf(self.service.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [], "a time limit was left behind")

    def host(self, name: str, cpus: int, mhz: int, memory_mib: int) -> str:
        return write_simulated_host(os.path.join(self.dir, f"{name}.xml"), name, cpus, mhz, memory_mib)

    def connect(self, uri: str) -> HostConnection:
        return self.successResultOf(d(self.service.connect(uri)))

    def fails(self, coro: Coroutine[Any, Any, Any], exc: type[Exception]) -> Failure:
        failure = self.failureResultOf(d(coro), exc)
        return failure


class HostFactsTests(DriverCase):
    def test_two_node_files_are_two_hosts_with_their_own_facts(self) -> None:
        """Each simulated host reports the CPUs, speed, memory and name written in its own node file."""
        one = self.connect(self.host("sim-1", cpus=4, mhz=2000, memory_mib=8192))
        two = self.connect(self.host("sim-2", cpus=16, mhz=3100, memory_mib=65536))
        self.assertIsNot(one, two)
        f1 = self.successResultOf(d(one.facts()))
        f2 = self.successResultOf(d(two.facts()))
        self.assertIsInstance(f1, HostFacts)
        self.assertEqual((f1.cpus, f1.cpu_mhz, f1.memory_bytes, f1.hostname), (4, 2000, 8192 * 1024**2, "sim-1"))
        self.assertEqual((f2.cpus, f2.cpu_mhz, f2.memory_bytes, f2.hostname), (16, 3100, 65536 * 1024**2, "sim-2"))
        for facts in (f1, f2):
            self.assertEqual(facts.hypervisor, "Simulator")
            self.assertEqual(facts.arch, "x86_64")
            self.assertEqual(facts.cpu_sockets, 1)
            self.assertRegex(facts.libvirt_version, r"^\d+\.\d+\.\d+$")
            self.assertRegex(facts.hypervisor_version, r"^\d+\.\d+\.\d+$")

    def test_sockets_come_from_the_node_file(self) -> None:
        """A node file with two sockets gives a host with two sockets."""
        path = os.path.join(self.dir, "two-sockets.xml")
        with open(path, "w") as f:
            f.write(simulated_host_xml("two-sockets", cpus=8, mhz=2400, memory_mib=4096, sockets=2))
        facts = self.successResultOf(d(self.connect(f"test://{path}").facts()))
        self.assertEqual((facts.cpus, facts.cpu_sockets), (8, 2))

    def test_default_test_host_has_the_machines_hostname(self) -> None:
        """test:///default is a simulated host too; it answers with libvirt's own hostname."""
        facts = self.successResultOf(d(self.connect("test:///default").facts()))
        self.assertEqual(facts.hypervisor, "Simulator")
        self.assertEqual(facts.hostname, libvirt.open("test:///default").getHostname())
        self.assertGreater(facts.cpus, 0)

    def test_version_text(self) -> None:
        """libvirt's version integers read as major.minor.release; 0 means unknown."""
        self.assertEqual(version_text(7_002_000), "7.2.0")
        self.assertEqual(version_text(9_000_000), "9.0.0")
        self.assertEqual(version_text(2), "0.0.2")
        self.assertEqual(version_text(0), "")


class ConnectionTests(DriverCase):
    def test_ping_on_a_live_host(self) -> None:
        """A ping of a host that answers returns None."""
        conn = self.connect(self.host("live", 2, 2000, 2048))
        self.assertIsNone(self.successResultOf(d(conn.ping())))

    def test_one_connection_per_uri(self) -> None:
        """Connecting twice to a node file gives the same connection, hence the same simulated host."""
        uri = self.host("once", 2, 2000, 2048)
        first = self.connect(uri)
        self.successResultOf(d(first.ensure_pool("p", "dir", os.path.join(self.dir, "p"))))
        second = self.connect(uri)
        self.assertIs(first, second)
        self.assertIs(self.service.connection(uri), first)
        self.assertIsInstance(self.successResultOf(d(second.pool_facts("p"))), PoolFacts)

    def test_missing_node_file_is_unreachable(self) -> None:
        """test:/// of a file that does not exist fails with HostUnreachable and keeps nothing."""
        uri = f"test://{self.dir}/nothing-here.xml"
        failure = self.fails(self.service.connect(uri), HostUnreachable)
        self.assertIn("nothing-here.xml", failure.getErrorMessage())
        self.assertIsNone(self.service.connection(uri))
        self.assertEqual(self.service.connections, [])

    def test_lost_connection_fails_calls_until_ping_reconnects(self) -> None:
        """When the libvirt connection dies, calls fail with HostUnreachable; ping reopens it once,
        and a simulated host comes back with a fresh state (its node file's)."""
        uri = self.host("flaky", 2, 2000, 2048)
        conn = self.connect(uri)
        self.successResultOf(d(conn.ensure_pool("extra", "dir", os.path.join(self.dir, "extra"))))
        conn._conn.close()  # the connection dies under the driver
        self.fails(conn.facts(), HostUnreachable)
        self.fails(conn.pool_facts("extra"), HostUnreachable)
        self.assertIsNone(self.successResultOf(d(conn.ping())))
        self.assertEqual(self.successResultOf(d(conn.facts())).hostname, "flaky")
        failure = self.fails(conn.pool_facts("extra"), HypervisorError)
        self.assertNotIsInstance(failure.value, HostUnreachable)
        self.assertIn("extra", failure.getErrorMessage())

    def test_ping_that_cannot_reconnect_is_unreachable_and_tries_again_next_time(self) -> None:
        """A ping whose reconnection fails raises HostUnreachable; the next ping tries again."""
        path = os.path.join(self.dir, "gone.xml")
        uri = write_simulated_host(path, "gone", 2, 2000, 2048)
        conn = self.connect(uri)
        conn._conn.close()
        os.rename(path, path + ".away")
        self.fails(conn.ping(), HostUnreachable)
        self.fails(conn.facts(), HostUnreachable)
        os.rename(path + ".away", path)
        self.assertIsNone(self.successResultOf(d(conn.ping())))
        self.assertEqual(self.successResultOf(d(conn.facts())).cpus, 2)

    def test_closed_connection_refuses_calls_and_is_forgotten(self) -> None:
        """After close(), calls fail with HypervisorError and the service opens a new connection."""
        uri = self.host("closing", 2, 2000, 2048)
        conn = self.connect(uri)
        self.successResultOf(d(conn.close()))
        self.assertTrue(conn.closed)
        self.assertIsNone(self.service.connection(uri))
        for call in (conn.facts(), conn.ping(), conn.pool_facts("x")):
            self.assertIn("closed", self.fails(call, HypervisorError).getErrorMessage())
        self.assertIsNot(self.connect(uri), conn)

    def test_libvirt_errors_are_not_printed(self) -> None:
        """libvirt's default handler prints each error to stderr; once connected, errors are only raised."""
        conn = self.connect(self.host("quiet", 1, 1000, 1024))
        with open(os.path.join(self.dir, "stderr"), "w+") as capture:
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
            try:
                failure = self.failureResultOf(d(conn.pool_facts("no-such-pool")), HypervisorError)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            self.assertEqual(capture.read(), "")
        self.assertIn("no-such-pool", failure.getErrorMessage())


class UriTests(DriverCase):
    REFUSED = [
        "",
        "http://example.com/",
        "xen:///system",
        "qemu:///session",
        "qemu://remote/system",
        "qemu+ssh:///system",
        "qemu+ssh://host/session",
        "qemu+ssh://host:99999/system",
        "qemu+unix:///system",
        "qemu+ssh://host/system#frag",
        "test://host/default",
        "test:///relative/../path.xml",
        "test:////etc/node.xml",
        "test:///dir/",
        "test:///x.xml?y=1",
        "qemu:///system\nX",
        "vbox:///session",
    ]
    ACCEPTED = [
        ("qemu:///system", "KVM"),
        ("qemu:///system?socket=/run/other/libvirt-sock", "KVM"),
        ("qemu+ssh://root@kvm1.example.com/system", "KVM"),
        ("qemu+ssh://kvm1:2222/system?keyfile=/etc/cloudd/id_ed25519&no_tty=1", "KVM"),
        ("qemu+tls://kvm2.example.com/system", "KVM"),
        ("qemu+tcp://10.0.0.5:16509/system", "KVM"),
        ("test:///default", "Simulator"),
        ("test:///var/lib/cloudd/hosts/sim-1.xml", "Simulator"),
    ]

    def test_unsupported_uris_are_refused_before_libvirt(self) -> None:
        """Every URI of another kind fails with HypervisorError naming the accepted forms."""
        for uri in self.REFUSED:
            failure = self.fails(self.service.connect(uri), HypervisorError)
            self.assertFalse(isinstance(failure.value, HostUnreachable), uri)
            self.assertIn("unsupported host URI", failure.getErrorMessage(), uri)
        self.assertEqual(self.service.connections, [])

    def test_password_never_echoed(self) -> None:
        """A URI with a password is refused without repeating the password."""
        failure = self.fails(self.service.connect("qemu+ssh://root:s3cr3t-pw@kvm1/system"), HypervisorError)
        self.assertIn("password", failure.getErrorMessage())
        self.assertNotIn("s3cr3t-pw", failure.getErrorMessage())

    def test_accepted_uris_and_their_hypervisor(self) -> None:
        """The accepted forms parse, and say KVM or Simulator; hypervisor_of agrees."""
        for uri, hypervisor in self.ACCEPTED:
            self.assertEqual(parse_host_uri(uri).hypervisor, hypervisor, uri)
            self.assertEqual(hypervisor_of(uri), hypervisor, uri)
            self.assertEqual(Hypervisors.hypervisor_of(uri), hypervisor, uri)
        self.assertEqual(parse_host_uri("test:///a%20b/n.xml").node_file, "/a b/n.xml")
        self.assertTrue(parse_host_uri("qemu+tls://h/system").remote)
        self.assertFalse(parse_host_uri("test:///default").remote)


class PoolTests(DriverCase):
    def setUp(self) -> None:
        super().setUp()
        self.conn = self.connect(self.host("storage", 4, 2000, 4096))

    def test_dir_pool_is_made_started_and_idempotent(self) -> None:
        """ensure_pool makes the directory, defines, starts and autostarts the pool; a second call with
        the same definition changes nothing and reports the same pool."""
        path = os.path.join(self.dir, "primary", "pool-1")
        facts = self.successResultOf(d(self.conn.ensure_pool("primary-1", "dir", path)))
        self.assertTrue(os.path.isdir(path))
        self.assertEqual(facts, PoolFacts(capacity_bytes=100 * GIB, used_bytes=0, available_bytes=100 * GIB))
        pool = self.conn._conn.storagePoolLookupByName("primary-1")
        self.assertTrue(pool.isActive())
        self.assertTrue(pool.autostart())
        self.assertEqual(ET.fromstring(pool.XMLDesc(0)).findtext("target/path"), path)
        again = self.successResultOf(d(self.conn.ensure_pool("primary-1", "dir", path + "/")))
        self.assertEqual(again, facts)
        self.assertEqual([p.name() for p in self.conn._conn.listAllStoragePools()].count("primary-1"), 1)

    def test_inactive_pool_is_started_again(self) -> None:
        """A pool that is defined but stopped is started (and autostarted) by ensure_pool."""
        path = os.path.join(self.dir, "stopped")
        self.successResultOf(d(self.conn.ensure_pool("stopped", "dir", path)))
        pool = self.conn._conn.storagePoolLookupByName("stopped")
        pool.destroy()
        pool.setAutostart(0)
        self.successResultOf(d(self.conn.ensure_pool("stopped", "dir", path)))
        self.assertTrue(pool.isActive())
        self.assertTrue(pool.autostart())

    def test_same_name_other_definition_is_refused(self) -> None:
        """A pool name already used for another path or kind is an error, and the pool is untouched."""
        path = os.path.join(self.dir, "a")
        self.successResultOf(d(self.conn.ensure_pool("taken", "dir", path)))
        failure = self.fails(self.conn.ensure_pool("taken", "dir", os.path.join(self.dir, "b")), HypervisorError)
        self.assertIn("different definition", failure.getErrorMessage())
        failure = self.fails(self.conn.ensure_pool("taken", "netfs", path, "nfs1", "/export"), HypervisorError)
        self.assertIn("type dir", failure.getErrorMessage())
        self.assertIsInstance(self.successResultOf(d(self.conn.pool_facts("taken"))), PoolFacts)

    def test_another_pool_on_the_same_path_is_libvirts_error(self) -> None:
        """libvirt's own refusal (two pools on one directory) reaches the caller as HypervisorError."""
        path = os.path.join(self.dir, "shared")
        self.successResultOf(d(self.conn.ensure_pool("first", "dir", path)))
        failure = self.fails(self.conn.ensure_pool("second", "dir", path), HypervisorError)
        self.assertNotIsInstance(failure.value, HostUnreachable)
        self.assertIsNone(self.conn._lookup_pool(self.conn._conn, "second"))

    def test_netfs_pool(self) -> None:
        """An NFS pool names its server and export as libvirt's netfs source, and is idempotent."""
        mount = os.path.join(self.dir, "mnt", "nfs-1")
        facts = self.successResultOf(d(self.conn.ensure_pool("nfs-1", "netfs", mount, "nfs.example.com",
                                                             "/exports/primary")))
        self.assertEqual(facts.capacity_bytes, 100 * GIB)
        root = ET.fromstring(self.conn._conn.storagePoolLookupByName("nfs-1").XMLDesc(0))
        self.assertEqual(root.get("type"), "netfs")
        self.assertEqual(root.find("source/host").get("name"), "nfs.example.com")  # type: ignore[union-attr]
        self.assertEqual(root.find("source/dir").get("path"), "/exports/primary")  # type: ignore[union-attr]
        self.assertEqual(root.find("source/format").get("type"), "nfs")  # type: ignore[union-attr]
        self.successResultOf(d(self.conn.ensure_pool("nfs-1", "netfs", mount, "nfs.example.com",
                                                     "/exports/primary")))
        failure = self.fails(self.conn.ensure_pool("nfs-1", "netfs", mount, "nfs.example.com", "/exports/other"),
                             HypervisorError)
        self.assertIn("NFS export", failure.getErrorMessage())

    def test_bad_pool_requests(self) -> None:
        """Unknown kinds, relative paths, bad names and incomplete NFS requests are refused up front."""
        cases: list[tuple[tuple[Any, ...], str]] = [
            (("p", "rbd", "/x"), "unsupported storage pool type"),
            (("p", "dir", "relative/x"), "absolute path"),
            (("", "dir", "/x"), "invalid storage pool name"),
            (("a/b", "dir", "/x"), "invalid storage pool name"),
            (("p", "netfs", "/mnt/x"), "NFS server"),
            (("p", "netfs", "/mnt/x", "nfs1", "export"), "absolute path"),
            (("p", "dir", "/x", "nfs1", "/e"), "takes no NFS"),
        ]
        for args, text in cases:
            failure = self.fails(self.conn.ensure_pool(*args), HypervisorError)
            self.assertIn(text, failure.getErrorMessage(), args)
        self.assertEqual([p.name() for p in self.conn._conn.listAllStoragePools()], ["default"])

    def test_pool_facts_and_delete(self) -> None:
        """pool_facts reports a pool; delete_pool removes it from libvirt but leaves its directory, and
        deleting it again is not an error."""
        path = os.path.join(self.dir, "doomed")
        self.successResultOf(d(self.conn.ensure_pool("doomed", "dir", path)))
        with open(os.path.join(path, "volume.qcow2"), "w") as f:
            f.write("data")
        self.assertEqual(self.successResultOf(d(self.conn.pool_facts("doomed"))).capacity_bytes, 100 * GIB)
        self.successResultOf(d(self.conn.delete_pool("doomed")))
        self.assertIsNone(self.conn._lookup_pool(self.conn._conn, "doomed"))
        self.assertTrue(os.path.exists(os.path.join(path, "volume.qcow2")))
        failure = self.fails(self.conn.pool_facts("doomed"), HypervisorError)
        self.assertIn("doomed", failure.getErrorMessage())
        self.successResultOf(d(self.conn.delete_pool("doomed")))

    def test_pool_that_cannot_start_is_not_left_defined(self) -> None:
        """When a pool this call defined cannot start, it is undefined again, so a corrected request
        can define it afresh."""
        real = self.conn._conn

        class Refusing:
            """A libvirt connection whose new pools fail to start."""

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def storagePoolDefineXML(self, xml: str, flags: int) -> Any:  # noqa: N802
                pool = real.storagePoolDefineXML(xml, flags)

                class Pool:
                    def __getattr__(self, name: str) -> Any:
                        return getattr(pool, name)

                    def create(self, flags: int) -> None:
                        raise libvirt.libvirtError("cannot mount nfs.example.com:/exports on /mnt/x")

                return Pool()

        self.conn._conn = Refusing()
        self.fails(self.conn.ensure_pool("wont-start", "dir", os.path.join(self.dir, "ws")), HypervisorError)
        self.assertIsNone(self.conn._lookup_pool(real, "wont-start"))


class SlowLibvirtTests(SynchronousTestCase):
    """A pool that holds calls: what callers see while libvirt has not answered."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.pool = HeldThreadPool()
        self.service = Hypervisors(self.reactor, threadpool=self.pool,  # type: ignore[arg-type]
                                   ping_timeout=5, connect_timeout=30)
        self.service.startService()
        path = os.path.join(os.path.realpath(self.mktemp()))
        os.makedirs(path)
        self.uri = write_simulated_host(os.path.join(path, "slow.xml"), "slow", 2, 2000, 2048)

    def tearDown(self) -> None:
        self.pool.release_all()
        stopping = self.service.stopService()
        self.pool.release_all()
        self.successResultOf(stopping)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def connected(self) -> HostConnection:
        connecting = Deferred.fromCoroutine(self.service.connect(self.uri))
        self.pool.release_all()
        return self.successResultOf(connecting)

    def test_ping_without_answer_times_out(self) -> None:
        """A ping libvirt does not answer fails with HostUnreachable after ping_timeout; while that
        thread is still busy, the next ping fails at once instead of taking another thread."""
        conn = self.connected()
        first = Deferred.fromCoroutine(conn.ping())
        self.assertNoResult(first)
        self.reactor.advance(4.9)
        self.assertNoResult(first)
        self.reactor.advance(0.1)
        self.assertIn("did not answer within 5 s", self.failureResultOf(first, HostUnreachable).getErrorMessage())
        second = Deferred.fromCoroutine(conn.ping())
        self.assertIn("previous check", self.failureResultOf(second, HostUnreachable).getErrorMessage())
        self.assertEqual(len(self.pool.held), 1)
        self.pool.release_all()  # the stuck call ends at last
        third = Deferred.fromCoroutine(conn.ping())
        self.pool.release_all()
        self.assertIsNone(self.successResultOf(third))

    def test_connection_opened_after_its_caller_gave_up_is_closed(self) -> None:
        """A connect that times out fails with HostUnreachable, and so does another connect of that host
        while the first still waits; the connection libvirt opens later is closed, not kept."""
        connecting = Deferred.fromCoroutine(self.service.connect(self.uri))
        self.reactor.advance(30)
        self.failureResultOf(connecting, HostUnreachable)
        opened: list[Any] = []
        original = libvirt.open

        def spy(uri: str) -> Any:
            opened.append(original(uri))
            return opened[-1]

        self.patch(libvirt, "open", spy)
        again = Deferred.fromCoroutine(self.service.connect(self.uri))
        self.assertIn("earlier connection attempt", self.failureResultOf(again, HostUnreachable).getErrorMessage())
        self.assertEqual(len(self.pool.held), 1, "a second thread was taken for the same host")
        self.pool.release_all()  # libvirt answers now
        self.assertEqual(len(opened), 1)
        self.assertIsNone(self.service.connection(self.uri))
        self.pool.release_all()  # the close handed to the pool
        self.assertRaises(libvirt.libvirtError, opened[0].getLibVersion)

    def test_stop_closes_connections_and_refuses_new_ones(self) -> None:
        """stopService closes every host connection; connect after stop is refused."""
        conn = self.connected()
        stopping = self.service.stopService()
        self.pool.release_all()
        self.successResultOf(stopping)
        self.assertTrue(conn.closed)
        self.assertEqual(self.service.connections, [])
        self.assertIn("not running", self.failureResultOf(Deferred.fromCoroutine(self.service.connect(self.uri)),
                                                          HypervisorError).getErrorMessage())
        self.service.startService()  # for tearDown


class ServiceTests(DriverCase):
    def test_service_stops_cleanly_and_simulated_state_goes_with_it(self) -> None:
        """Stopping the service closes each host and leaves no timer behind; a new service opening the
        same node file finds the host as the file describes it, without the pools added at run time."""
        uri = self.host("stopping", 2, 2000, 2048)
        conn = self.connect(uri)
        self.successResultOf(d(conn.ensure_pool("runtime", "dir", os.path.join(self.dir, "rt"))))
        self.successResultOf(self.service.stopService())
        self.assertFalse(self.service.running)
        self.assertTrue(conn.closed)
        again = Hypervisors(self.reactor, threadpool=self.pool)  # type: ignore[arg-type]
        again.startService()
        self.addCleanup(lambda: self.successResultOf(again.stopService()))
        fresh = self.successResultOf(d(again.connect(uri)))
        self.failureResultOf(d(fresh.pool_facts("runtime")), HypervisorError)
        self.assertEqual(self.successResultOf(d(fresh.facts())).cpus, 2)

    def test_own_thread_pool_is_named_and_started_by_the_service(self) -> None:
        """Without an injected pool, the service owns a 'cloudd-libvirt' pool it starts and stops."""
        service = Hypervisors(self.reactor, max_threads=3)
        self.assertEqual(service.threadpool.name, "cloudd-libvirt")
        self.assertEqual(service.threadpool.max, 3)
        self.assertFalse(service.threadpool.started)
        service.startService()
        self.assertTrue(service.threadpool.started)
        self.successResultOf(service.stopService())
        self.assertFalse(service.threadpool.started)


class SimulatedHostTests(SynchronousTestCase):
    def test_node_file_is_private_and_its_uri_opens(self) -> None:
        """write_simulated_host writes a 0600 node file and returns a test:/// URI libvirt opens, also
        for a path with a space in it."""
        base = os.path.realpath(self.mktemp()) + " with space"
        os.makedirs(base)
        uri = write_simulated_host(os.path.join(base, "h.xml"), "h", 3, 1500, 3072)
        self.assertTrue(uri.startswith("test:///"))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(base, "h.xml")).st_mode), 0o600)
        self.assertEqual(parse_host_uri(uri).node_file, os.path.join(base, "h.xml"))
        conn = libvirt.open(uri)
        self.addCleanup(conn.close)
        self.assertEqual(conn.getInfo()[1:4], [3072, 3, 1500])
        self.assertEqual(conn.listAllDomains(), [])
        self.assertEqual([p.name() for p in conn.listAllStoragePools()], ["default"])

    def test_bad_simulated_hosts(self) -> None:
        """Non-positive sizes and CPUs that do not divide into sockets are refused."""
        for kwargs in ({"cpus": 0}, {"mhz": -1}, {"memory_mib": 0}, {"cpus": 3, "sockets": 2}, {"name": ""}):
            args: dict[str, Any] = {"name": "h", "cpus": 2, "mhz": 1000, "memory_mib": 1024}
            args.update(kwargs)
            self.assertRaises(ValueError, simulated_host_xml, **args)

    def test_name_is_escaped(self) -> None:
        """A host name with XML's special characters is written as text, not markup."""
        xml = simulated_host_xml("a<b>&c", 1, 1000, 1024)
        self.assertEqual(ET.fromstring(xml).findtext("hostname"), "a<b>&c")


class PoolSpecTests(SynchronousTestCase):
    def test_differences_read_a_defined_pool(self) -> None:
        """A pool's XML as libvirt returns it matches the request that made it, and differs otherwise."""
        spec = pool_spec("n", "netfs", "/mnt/n/", "srv", "/e")
        self.assertEqual(spec.path, "/mnt/n")
        self.assertEqual(differences(spec, spec.to_xml()), [])
        other = pool_spec("n", "netfs", "/mnt/n", "srv2", "/e")
        self.assertEqual(differences(other, spec.to_xml()), ["NFS server srv (asked srv2)"])
