"""A KVM host on this machine's real libvirtd (qemu:///system), managed by a real `twistd cloudd`: its
figures are the machine's, and the host monitor follows libvirtd being stopped (Disconnected, then
Down, each with an alert and an event) and started again (Up).

Needs root, libvirtd, virtlogd and qemu-system-x86_64 (`tests/util/libvirtd.py` says which is missing);
the stop/start part runs only when the running libvirtd is one this test process started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import sqlalchemy as sa
from cs import CloudStack
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from cloudd.db import model
from tests.integration.support import poll, unique
from tests.util.daemon import CloudDaemon
from tests.util.libvirtd import LibvirtDaemon

URI = "qemu:///system"


def meminfo_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


class LibvirtdHostTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.libvirtd = LibvirtDaemon.shared()
        self.basedir = tempfile.mkdtemp(prefix="cloudd-h4kvm-", dir=os.getcwd())
        self.addCleanup(shutil.rmtree, self.basedir, True)
        self.daemon = CloudDaemon(self.basedir)
        self.addCleanup(self.daemon.stop)
        self.daemon.start()
        # a check every second, Down after 3 s: stored, then read by the monitor from its next start
        admin = self.admin()
        admin.updateConfiguration(name="ping.interval", value="1")
        admin.updateConfiguration(name="host.disconnect.down.seconds", value="3")
        self.daemon.stop()
        self.daemon.start()

    def admin(self) -> CloudStack:
        creds = self.daemon.credentials()
        return CloudStack(endpoint=self.daemon.endpoint, key=creds["apikey"], secret=creds["secretkey"],
                          poll_interval=0.05, job_timeout=120, timeout=180)

    def alerts(self) -> list[tuple[int, str]]:
        """(type, subject) of every stored alert, oldest first, read from the daemon's database."""
        engine = sa.create_engine(f"sqlite:///{self.basedir}/cloudd.sqlite")
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(model.alerts.c.type, model.alerts.c.subject)
                                    .order_by(model.alerts.c.id)).all()
        finally:
            engine.dispose()
        return [(int(t), str(s)) for t, s in rows]

    def add_kvm_host(self, admin: CloudStack) -> dict[str, Any]:
        zone = admin.createZone(name=unique("kvm"), dns1="8.8.8.8", internaldns1="10.0.0.2",
                                networktype="Advanced", allocationstate="Enabled")["zone"]
        pod = admin.createPod(name="pod", zoneid=zone["id"])["pod"]
        cluster = admin.addCluster(clustername="kvm", zoneid=zone["id"], podid=pod["id"], hypervisor="KVM",
                                   clustertype="CloudManaged")["cluster"][0]
        host: dict[str, Any] = admin.addHost(zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=URI,
                                             hypervisor="KVM", username="root", password="unused")["host"][0]
        return host

    def test_host_figures_and_liveness(self) -> None:
        """The host shows this machine's CPU count and memory; stopping libvirtd turns it Disconnected then
        Down with alerts and events; starting libvirtd brings it Up with an alert."""
        admin = self.admin()
        host = self.add_kvm_host(admin)
        self.assertEqual((host["state"], host["resourcestate"], host["hypervisor"]), ("Up", "Enabled", "KVM"))
        self.assertEqual(host["cpunumber"], os.cpu_count())
        total = meminfo_total_bytes()
        self.assertLessEqual(abs(host["memorytotal"] - total), total * 0.05, (host["memorytotal"], total))
        self.assertGreater(host["cpuspeed"], 0)
        self.assertTrue(host["hypervisorversion"])

        if not self.libvirtd.can_stop:
            raise SkipTest("the running libvirtd was not started by this test process; not stopping it")

        def state() -> str:
            found: str = admin.listHosts(id=host["id"])["host"][0]["state"]
            return found

        self.libvirtd.stop()
        try:
            poll(lambda: state() == "Disconnected", timeout=30, interval=0.2)
            poll(lambda: state() == "Down", timeout=30, interval=0.2)
        finally:
            self.libvirtd.start()
        poll(lambda: state() == "Up", timeout=60, interval=0.2)
        label = f"{host['name']} (id:{host['id']})"
        self.assertEqual(self.alerts(), [(7, f"Host is disconnected: {label}"), (7, f"Host is down: {label}"),
                                         (7, f"Host is up: {label}")])
        types = [e["type"] for e in admin.listEvents(listall="true")["event"] if e.get("resourceid", host["id"])]
        for expected in ("HOST.DISCONNECTED", "HOST.DOWN", "HOST.UP"):
            self.assertIn(expected, types)
