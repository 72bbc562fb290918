"""Host commands against a real `twistd cloudd` over HTTP, on simulated hosts (test:/// node files the
daemon opens in its own process): racing commands on one host, a `kill -9` in the middle of a
maintenance job followed by a restart, and the zone seen by the `cs` program and libcloud."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cs import CloudStack, CloudStackApiException
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider
from twisted.trial.unittest import SynchronousTestCase

from cloudd.hypervisor import write_simulated_host
from tests.integration.support import DaemonCase, poll, run_cs_cli, unique
from tests.util.daemon import CloudDaemon

MIB = 1024 * 1024


def build_host(admin: CloudStack, nodes: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A zone, pod, cluster and one simulated host in it; (zone, host)."""
    zone = admin.createZone(name=unique("zone"), dns1="8.8.8.8", internaldns1="10.0.0.2", networktype="Advanced",
                            allocationstate="Enabled")["zone"]
    pod = admin.createPod(name="pod", zoneid=zone["id"], gateway="10.9.0.1", netmask="255.255.255.0",
                          startip="10.9.0.10", endip="10.9.0.20")["pod"]
    cluster = admin.addCluster(clustername="c", zoneid=zone["id"], podid=pod["id"], hypervisor="Simulator",
                               clustertype="CloudManaged")["cluster"][0]
    url = write_simulated_host(os.path.join(nodes, f"{name}.xml"), name, 6, 2200, 12288)
    host = admin.addHost(zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=url,
                         hypervisor="Simulator")["host"][0]
    return zone, host


class Outcome:
    """What one of two racing commands got: a win, or the error it was answered with."""

    def __init__(self, won: bool, code: int = 0, text: str = "") -> None:
        self.won, self.code, self.text = won, code, text

    def __repr__(self) -> str:
        return f"Outcome(won={self.won}, code={self.code}, text={self.text!r})"


class HostRaceTests(DaemonCase):
    """Two commands on one host sent at the same time: exactly one wins, the other gets a clear error."""

    def setUp(self) -> None:
        super().setUp()
        self.nodes = tempfile.mkdtemp(prefix="h4-nodes-", dir=os.getcwd())
        self.addCleanup(shutil.rmtree, self.nodes, True)
        self.zone, self.host = build_host(self.admin, self.nodes, unique("race"))

    def run_pair(self, first: Any, second: Any) -> list[Outcome]:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda f: f(), [first, second]))

    def maintenance(self) -> Outcome:
        client = self.client(self.creds["apikey"], self.creds["secretkey"])
        try:
            jobid = client.prepareHostForMaintenance(id=self.host["id"])["jobid"]
        except CloudStackApiException as exc:
            body = exc.response.json()["preparehostformaintenanceresponse"]
            return Outcome(False, body["errorcode"], body["errortext"])
        job = self.wait_job(client, jobid)
        if job["jobstatus"] == 1:
            return Outcome(True)
        return Outcome(False, job["jobresultcode"], job["jobresult"]["errortext"])

    def disable(self) -> Outcome:
        client = self.client(self.creds["apikey"], self.creds["secretkey"])
        try:
            client.updateHost(id=self.host["id"], allocationstate="Disable")
        except CloudStackApiException as exc:
            body = exc.response.json()["updatehostresponse"]
            return Outcome(False, body["errorcode"], body["errortext"])
        return Outcome(True)

    def check_one_winner(self, outcomes: list[Outcome], state: str) -> None:
        self.assertEqual(sorted(o.won for o in outcomes), [False, True], outcomes)
        loser = next(o for o in outcomes if not o.won)
        self.assertIn(loser.code, (431, 530), loser)
        self.assertTrue(loser.text.startswith(("Unable to", "The host changed state")), loser)
        self.assertEqual(self.admin.listHosts(id=self.host["id"])["host"][0]["resourcestate"], state)

    def test_two_maintenance_commands(self) -> None:
        """Two prepareHostForMaintenance at once: one ends in Maintenance, the other is refused."""
        self.check_one_winner(self.run_pair(self.maintenance, self.maintenance), "Maintenance")

    def test_two_disable_commands(self) -> None:
        """Two updateHost allocationstate=Disable at once: one disables, the other is refused."""
        self.check_one_winner(self.run_pair(self.disable, self.disable), "Disabled")

    def test_disable_during_maintenance(self) -> None:
        """updateHost allocationstate=Disable while a maintenance job is between its two steps is refused with
        the state named, and the maintenance completes."""
        self.admin.updateConfiguration(name="host.maintenance.test.delay.ms", value="1500")
        self.addCleanup(self.admin.updateConfiguration, name="host.maintenance.test.delay.ms", value="0")
        jobid = self.admin.prepareHostForMaintenance(id=self.host["id"])["jobid"]
        poll(lambda: self.admin.listHosts(id=self.host["id"])["host"][0]["resourcestate"] == "PrepareForMaintenance")
        refused = self.disable()
        self.assertEqual((refused.won, refused.code), (False, 431), refused)
        self.assertEqual(refused.text, "Unable to disable the host: it is in state PrepareForMaintenance")
        self.assertEqual(self.wait_job(self.admin, jobid)["jobstatus"], 1)
        self.assertEqual(self.admin.listHosts(id=self.host["id"])["host"][0]["resourcestate"], "Maintenance")


class ZoneClientTests(DaemonCase):
    """The zone an admin created, seen by the `cs` program as a plain user and by libcloud."""

    def test_cs_list_zones_as_user(self) -> None:
        """`cs listZones` run by a plain user answers the enabled zone (and not a disabled one)."""
        zone = self.admin.createZone(name=unique("pub"), dns1="8.8.8.8", internaldns1="10.0.0.2",
                                     networktype="Advanced", allocationstate="Enabled")["zone"]
        hidden = self.admin.createZone(name=unique("off"), dns1="8.8.8.8", internaldns1="10.0.0.2",
                                       networktype="Advanced")["zone"]
        account = self.admin.createAccount(accounttype=0, username=unique("u"), password="pw-Secret-1",
                                           firstname="F", lastname="L", email="u@example.com")["account"]
        keys = self.admin.registerUserKeys(id=account["user"][0]["id"])["userkeys"]
        result = run_cs_cli(self.endpoint, keys["apikey"], keys["secretkey"], "listZones")
        self.assertEqual(result.code, 0, result.stderr)
        names = [z["name"] for z in result.output["zone"]]
        self.assertIn(zone["name"], names)
        self.assertNotIn(hidden["name"], names)
        mine = next(z for z in result.output["zone"] if z["id"] == zone["id"])
        self.assertEqual((mine["networktype"], mine["allocationstate"]), ("Advanced", "Enabled"))

    def test_libcloud_list_locations(self) -> None:
        """libcloud's CloudStackNodeDriver.list_locations() returns the zone by id and name."""
        zone = self.admin.createZone(name=unique("loc"), dns1="8.8.8.8", internaldns1="10.0.0.2",
                                     networktype="Advanced", allocationstate="Enabled")["zone"]
        cls = get_driver(Provider.CLOUDSTACK)
        driver: Any = cls(self.creds["apikey"], self.creds["secretkey"], host="127.0.0.1", path="/client/api",
                          port=self.daemon.port, secure=False)
        locations = {loc.id: loc.name for loc in driver.list_locations()}
        self.assertEqual(locations.get(zone["id"]), zone["name"])


class CrashTests(SynchronousTestCase):
    """`kill -9` of cloudd while a maintenance job is between PrepareForMaintenance and Maintenance; after
    the restart the host is in a state recovery understands, never stuck half way."""

    def setUp(self) -> None:
        self.basedir = tempfile.mkdtemp(prefix="cloudd-h4crash-", dir=os.getcwd())
        self.addCleanup(shutil.rmtree, self.basedir, True)
        self.nodes = os.path.join(self.basedir, "nodes")
        os.makedirs(self.nodes)
        self.daemon = CloudDaemon(os.path.join(self.basedir, "cloudd"))
        self.addCleanup(self.daemon.stop)
        self.daemon.start()

    def admin(self) -> CloudStack:
        creds = self.daemon.credentials()
        return CloudStack(endpoint=self.daemon.endpoint, key=creds["apikey"], secret=creds["secretkey"],
                          poll_interval=0.05, job_timeout=30)

    def test_kill_mid_maintenance(self) -> None:
        """The host left PrepareForMaintenance by the killed job is ErrorInMaintenance after the restart, its
        job failed; cancelHostMaintenance returns it to Enabled and a new maintenance completes."""
        admin = self.admin()
        _, host = build_host(admin, self.nodes, "crash")
        admin.updateConfiguration(name="host.maintenance.test.delay.ms", value="60000")
        jobid = admin.prepareHostForMaintenance(id=host["id"])["jobid"]
        poll(lambda: admin.listHosts(id=host["id"])["host"][0]["resourcestate"] == "PrepareForMaintenance")
        self.daemon.kill()
        self.daemon.start()
        admin = self.admin()
        poll(lambda: self.answering(admin), timeout=30)
        after = admin.listHosts(id=host["id"])["host"][0]
        self.assertEqual(after["resourcestate"], "ErrorInMaintenance")
        job = admin.queryAsyncJobResult(jobid=jobid)
        self.assertEqual((job["jobstatus"], job["jobresultcode"]), (2, 530), job)
        admin.updateConfiguration(name="host.maintenance.test.delay.ms", value="0")
        cancelled = admin.cancelHostMaintenance(id=host["id"], fetch_result=True)["host"]
        self.assertEqual(cancelled["resourcestate"], "Enabled")
        again = admin.prepareHostForMaintenance(id=host["id"], fetch_result=True)["host"]
        self.assertEqual(again["resourcestate"], "Maintenance")
        # the restarted daemon opened the simulated host again: it is Up with its figures
        self.assertEqual((again["state"], again["cpunumber"], again["memorytotal"]), ("Up", 6, 12288 * MIB))

    @staticmethod
    def answering(admin: CloudStack) -> bool:
        try:
            admin.listZones()
        except Exception:
            return False
        return True
