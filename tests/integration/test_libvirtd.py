"""Integration tests of the libvirt driver against a real libvirtd with QEMU (qemu:///system).

One libvirtd serves every test of the process (`LibvirtDaemon.shared()`: started if it does not run,
stopped at exit only if started here). The driver runs as it does in cloudd: the real reactor and the
service's own "cloudd-libvirt" thread pool. Skipped, saying why, unless root with libvirtd, virtlogd and
qemu-system-x86_64 installed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
import uuid

import libvirt
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from cloudd.hypervisor import HostConnection, HostUnreachable, Hypervisors
from tests.util.libvirtd import LibvirtDaemon

URI = "qemu:///system"


def _meminfo_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def _cpu_count() -> int:
    count = os.cpu_count()
    if count:
        return count
    with open("/proc/cpuinfo") as f:
        return sum(1 for line in f if line.startswith("processor"))


class RealLibvirtdTests(TestCase):
    """The driver on this machine's libvirtd."""

    timeout = 300

    def setUp(self) -> None:
        self.daemon = LibvirtDaemon.shared()
        self.service = Hypervisors(reactor, max_threads=4)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    async def connect(self) -> HostConnection:
        return await self.service.connect(URI)

    async def test_facts_are_the_machines(self) -> None:
        """qemu:///system reports this machine's CPU count, memory (within 5% of MemTotal), arch and
        QEMU's version."""
        facts = await (await self.connect()).facts()
        self.assertEqual(facts.hypervisor, "KVM")
        self.assertEqual(facts.cpus, _cpu_count())
        total = _meminfo_total_bytes()
        self.assertLessEqual(abs(facts.memory_bytes - total), total * 0.05, (facts.memory_bytes, total))
        self.assertEqual(facts.arch, platform.machine())
        self.assertGreater(facts.cpu_mhz, 0)
        self.assertGreaterEqual(facts.cpu_sockets, 1)
        self.assertTrue(facts.cpu_model)
        self.assertEqual(facts.hostname.split(".")[0], os.uname().nodename.split(".")[0])
        self.assertRegex(facts.libvirt_version, r"^\d+\.\d+\.\d+$")
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
        self.assertIn(f"version {facts.hypervisor_version}", qemu)

    async def test_dir_pool_is_created_reported_and_removed(self) -> None:
        """A dir pool under a temporary directory is built, started, persisted with autostart and
        reported with the file system's size; deleting it leaves the directory and its files."""
        conn = await self.connect()
        name = f"cloudd-test-{uuid.uuid4().hex[:8]}"
        base = os.path.realpath(self.mktemp())
        os.makedirs(base)
        path = os.path.join(base, "pool")  # missing: libvirt builds it
        self.addCleanup(lambda: deferToThread(_forget_pool, name))
        facts = await conn.ensure_pool(name, "dir", path)
        self.assertTrue(os.path.isdir(path))
        fs = os.statvfs(path)
        capacity = fs.f_blocks * fs.f_frsize
        self.assertEqual(facts.capacity_bytes, capacity)
        # libvirt counts the blocks reserved for root as available (f_bfree, not f_bavail)
        self.assertLessEqual(abs(facts.available_bytes - fs.f_bfree * fs.f_frsize), capacity * 0.01)
        self.assertLessEqual(abs(facts.used_bytes - (fs.f_blocks - fs.f_bfree) * fs.f_frsize), capacity * 0.01)
        self.assertTrue(os.path.exists(f"/etc/libvirt/storage/{name}.xml"))
        self.assertTrue(os.path.exists(f"/etc/libvirt/storage/autostart/{name}.xml"))
        self.assertEqual((await conn.ensure_pool(name, "dir", path)).capacity_bytes, capacity)
        self.assertEqual((await conn.pool_facts(name)).capacity_bytes, capacity)
        with open(os.path.join(path, "disk.qcow2"), "w") as f:
            f.write("kept")
        await conn.delete_pool(name)
        self.assertFalse(os.path.exists(f"/etc/libvirt/storage/{name}.xml"))
        self.assertFalse(os.path.exists(f"/etc/libvirt/storage/autostart/{name}.xml"))
        self.assertTrue(os.path.exists(os.path.join(path, "disk.qcow2")))

    async def test_stopped_libvirtd_is_unreachable_then_reconnected(self) -> None:
        """With libvirtd stopped, ping() raises HostUnreachable within seconds (no hang) and so do other
        calls; once it runs again, ping() reopens the connection and calls work."""
        if not self.daemon.can_stop:
            raise SkipTest("libvirtd was already running, started by someone else: not ours to stop")
        conn = await self.connect()
        await conn.ping()
        self.addCleanup(lambda: deferToThread(self.daemon.start))
        await deferToThread(self.daemon.stop)
        for call in (conn.ping, conn.facts, conn.ping):
            began = time.monotonic()
            with self.assertRaises(HostUnreachable):
                await call()
            self.assertLess(time.monotonic() - began, 5.0, call)
        await deferToThread(self.daemon.start)
        await conn.ping()
        self.assertIs(self.service.connection(URI), conn)
        self.assertEqual((await conn.facts()).cpus, _cpu_count())

    async def test_silent_libvirtd_does_not_hang_callers(self) -> None:
        """A libvirtd that stops answering (frozen, as a hung host or a lost network) makes ping() raise
        HostUnreachable after ping_timeout, later pings fail at once instead of taking more threads,
        libvirt's keepalive closes the dead connection, and once it answers again ping() reconnects."""
        if not self.daemon.can_stop:
            raise SkipTest("libvirtd was already running, started by someone else: not ours to freeze")
        service = Hypervisors(reactor, max_threads=2, ping_timeout=2)
        service.startService()
        self.addCleanup(service.stopService)
        conn = await service.connect(URI)
        await conn.ping()
        self.daemon.freeze()
        self.addCleanup(self.daemon.thaw)
        began = time.monotonic()
        with self.assertRaises(HostUnreachable) as caught:
            await conn.ping()
        self.assertIn("did not answer within 2 s", str(caught.exception))
        self.assertLess(time.monotonic() - began, 4.0)
        with self.assertRaises(HostUnreachable) as caught:
            await conn.ping()
        self.assertIn("previous check", str(caught.exception))
        # the keepalive (5 s x 3 probes) closes the connection the frozen daemon holds
        deadline = time.monotonic() + 40
        while conn._conn is not None and conn._conn.isAlive():
            self.assertLess(time.monotonic(), deadline, "libvirt's keepalive did not close the connection")
            await deferLater(reactor, 0.5, lambda: None)
        self.daemon.thaw()
        deadline = time.monotonic() + 30
        while True:
            try:
                await conn.ping()
                break
            except HostUnreachable:
                self.assertLess(time.monotonic(), deadline, "ping did not recover after the daemon answered again")
                await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual((await conn.facts()).cpus, _cpu_count())

    async def test_host_where_nothing_listens_is_unreachable(self) -> None:
        """A qemu+tcp host with no libvirtd fails at once with HostUnreachable carrying libvirt's reason."""
        began = time.monotonic()
        with self.assertRaises(HostUnreachable) as caught:
            await self.service.connect("qemu+tcp://127.0.0.1:1/system")
        self.assertLess(time.monotonic() - began, 10.0)
        self.assertIn("qemu+tcp://127.0.0.1:1/system", str(caught.exception))
        self.assertIsNone(self.service.connection("qemu+tcp://127.0.0.1:1/system"))


def _forget_pool(name: str) -> None:
    """Remove a test pool from libvirt if a failed test left it (files stay)."""
    conn = libvirt.open(URI)
    try:
        pool = conn.storagePoolLookupByName(name)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    except libvirt.libvirtError:
        pass  # already gone
    finally:
        conn.close()
