"""Hosts on the in-process cloud with libvirt's in-process test driver (simulated hosts, no daemon):
the host commands, the two host state machines, racing writers, the host monitor on the fake clock,
and recovery of a maintenance job that died half way."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import model
from cloudd.db.alerts import AlertFilter
from cloudd.db.base import Page
from cloudd.errors import CloudError
from cloudd.jobs import recovery
from cloudd.orchestration.hosts import (
    CANCEL_MAINTENANCE,
    COMPLETE_MAINTENANCE,
    CONNECT,
    DISABLE,
    DISCONNECT,
    ENABLE,
    FAIL_CONNECT,
    FAIL_MAINTENANCE,
    MARK_DOWN,
    RECONNECT,
    REMOVE,
    RESOURCE,
    START_MAINTENANCE,
    STATUS,
    ResourceState,
    Status,
)
from cloudd.orchestration.states import InvalidTransition
from tests.cloudd.test_zones import UNKNOWN, bad_uuid_text
from tests.util.infra import InfraCloud
from tests.util.tenants import Tenants

MIB = 1024 * 1024


class HostCase(SynchronousTestCase):
    start_monitor = False

    def setUp(self) -> None:
        self.infra = InfraCloud.make(self, start_monitor=self.start_monitor)
        self.zone, self.pod, self.cluster = self.infra.stack()

    def error(self, command: str, status: int, **params: Any) -> str:
        r = self.infra.call(command, **params)
        self.assertEqual(r.status, status, r.body)
        text: str = r.inner()["errortext"]
        return text

    def host(self, host_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.infra.ok("listHosts", id=host_id)["host"][0]
        return found

    def count(self, **params: Any) -> int:
        return int(self.infra.ok("listHosts", **params).get("count", 0))

    def add_params(self, url: str, **more: Any) -> dict[str, Any]:
        return {"zoneid": self.zone["id"], "podid": self.pod["id"], "clusterid": self.cluster["id"], "url": url,
                "hypervisor": "Simulator", **more}


class AddHostTests(HostCase):
    def test_two_simulated_hosts_show_their_figures(self) -> None:
        """Two node files with different CPU and memory give two hosts with exactly those figures, read
        from libvirt, Up and Enabled."""
        h1 = self.infra.add_host(self.cluster, "sim-a", cpus=4, mhz=2000, memory_mib=8192)
        h2 = self.infra.add_host(self.cluster, "sim-b", cpus=16, mhz=3100, memory_mib=65536)
        self.assertEqual((h1["name"], h1["cpunumber"], h1["cpuspeed"], h1["memorytotal"]),
                         ("sim-a", 4, 2000, 8192 * MIB))
        self.assertEqual((h2["name"], h2["cpunumber"], h2["cpuspeed"], h2["memorytotal"]),
                         ("sim-b", 16, 3100, 65536 * MIB))
        for h in (h1, h2):
            self.assertEqual((h["state"], h["resourcestate"], h["type"], h["hypervisor"]),
                             ("Up", "Enabled", "Routing", "Simulator"))
            self.assertEqual((h["clusterid"], h["podid"], h["zoneid"]),
                             (self.cluster["id"], self.pod["id"], self.zone["id"]))
            self.assertTrue(h["version"])
            self.assertEqual(h["memoryused"], 0)
        listed = self.infra.ok("listHosts")
        self.assertEqual(listed["count"], 2)
        self.assertEqual({h["name"]: h["cpunumber"] for h in listed["host"]}, {"sim-a": 4, "sim-b": 16})

    def test_tags_allocation_and_clustername(self) -> None:
        """hosttags are stored and shown comma-separated; allocationstate=Disabled adds a Disabled host; a
        cluster may be named instead of given by id."""
        params = self.add_params(self.infra.node("tagged"), hosttags="ssd,gpu", allocationstate="Disabled")
        del params["clusterid"]
        params["clustername"] = self.cluster["name"]
        host = self.infra.ok("addHost", **params)["host"][0]
        self.assertEqual(host["hosttags"], "ssd,gpu")
        self.assertEqual(host["resourcestate"], "Disabled")
        self.assertEqual(host["clusterid"], self.cluster["id"])

    def test_bad_input_stores_nothing(self) -> None:
        """Missing parameters, unknown ids, an unsupported URI, a hypervisor that does not match the URI or
        the cluster, and a password in the URI are 431; nothing is stored."""
        url = self.infra.node("bad")
        self.assertEqual(self.error("addHost", 431, **{k: v for k, v in self.add_params(url).items() if k != "url"}),
                         "Unable to execute API command addhost due to missing parameter url")
        self.assertEqual(self.error("addHost", 431, **self.add_params(url, clusterid=UNKNOWN)),
                         bad_uuid_text("addHost", "clusterid", UNKNOWN))
        self.assertIn("unsupported host URI", self.error("addHost", 431, **self.add_params("http://example/x")))
        self.assertIn("does not match", self.error("addHost", 431, **self.add_params(url, hypervisor="KVM")))
        text = self.error("addHost", 431, **self.add_params("qemu+ssh://root:hunter2@h1/system", hypervisor="KVM"))
        self.assertNotIn("hunter2", text)
        kvm = self.infra.cluster(self.pod, "kvm", hypervisor="KVM")
        self.assertIn("cluster", self.error("addHost", 431, **self.add_params(url, clusterid=kvm["id"])))
        self.error("addHost", 431, **self.add_params(url, allocationstate="Sometimes"))
        self.assertIn("cluster", self.error("addHost", 431, **{k: v for k, v in self.add_params(url).items()
                                                               if k != "clusterid"}))
        self.assertEqual(self.count(), 0)

    def test_unreachable_uri_is_530_and_stores_nothing(self) -> None:
        """A URI libvirt cannot open (no such node file) is 530 with libvirt's reason; nothing is stored."""
        missing = "test://" + os.path.join(self.infra.nodes, "absent.xml")
        text = self.error("addHost", 530, **self.add_params(missing))
        self.assertIn("Unable to add the host", text)
        self.assertEqual(self.count(), 0)
        self.assertIsNone(self.infra.hypervisors.connection(missing))

    def test_duplicate_url(self) -> None:
        """The same URL twice is 431 the second time."""
        url = self.infra.node("dup")
        self.infra.ok("addHost", **self.add_params(url))
        self.assertIn("already exists", self.error("addHost", 431, **self.add_params(url)))
        self.assertEqual(self.count(), 1)

    def test_password_never_stored(self) -> None:
        """username/password are accepted and appear in no stored row (hosts, jobs, events)."""
        self.infra.ok("addHost", **self.add_params(self.infra.node("pw"), username="root", password="s3cr3t-pw"))
        db = self.infra.cloud.db

        def dump(conn: Any) -> str:
            return repr([conn.execute(sa.select(t)).all() for t in model.metadata.sorted_tables])

        self.assertNotIn("s3cr3t-pw", db.pool.do_sync(dump))

    def test_user_refused(self) -> None:
        """A plain user may neither add nor list hosts (432)."""
        tenants = Tenants(self.infra.cloud)
        for command, params in (("addHost", self.add_params(self.infra.node("u"))), ("listHosts", {})):
            r = tenants.call("a_user", command, **params)
            self.assertEqual(r.status, 432, r.body)
        self.assertEqual(self.count(), 0)


class ListUpdateDeleteTests(HostCase):
    def setUp(self) -> None:
        super().setUp()
        self.a = self.infra.add_host(self.cluster, "ha", hosttags="ssd")
        self.b = self.infra.add_host(self.cluster, "hb")
        cluster2 = self.infra.cluster(self.pod, "cluster2")
        self.c = self.infra.add_host(cluster2, "hc", allocationstate="Disabled")

    def names(self, **params: Any) -> list[str]:
        return [h["name"] for h in self.infra.ok("listHosts", **params).get("host", [])]

    def test_filters_and_paging(self) -> None:
        """listHosts narrows by id, name, cluster, pod, zone, type, state, resource state, hypervisor, tag
        and keyword, and pages."""
        self.assertEqual(self.names(), ["ha", "hb", "hc"])
        self.assertEqual(self.names(id=self.b["id"]), ["hb"])
        self.assertEqual(self.names(name="hc"), ["hc"])
        self.assertEqual(self.names(clusterid=self.cluster["id"]), ["ha", "hb"])
        self.assertEqual(self.names(podid=self.pod["id"], zoneid=self.zone["id"]), ["ha", "hb", "hc"])
        self.assertEqual(self.names(type="Routing"), ["ha", "hb", "hc"])
        self.assertEqual(self.names(type="SecondaryStorageVM"), [])
        self.assertEqual(self.names(state="Up"), ["ha", "hb", "hc"])
        self.assertEqual(self.names(state="Down"), [])
        self.assertEqual(self.names(resourcestate="Disabled"), ["hc"])
        self.assertEqual(self.names(hypervisor="Simulator"), ["ha", "hb", "hc"])
        self.assertEqual(self.names(hypervisor="KVM"), [])
        self.assertEqual(self.names(hosttags="ssd"), ["ha"])
        self.assertEqual(self.names(keyword="b"), ["hb"])
        page = self.infra.ok("listHosts", page=2, pagesize=2)
        self.assertEqual((page["count"], [h["name"] for h in page["host"]]), (3, ["hc"]))
        self.assertEqual(self.error("listHosts", 431, id=UNKNOWN), bad_uuid_text("listHosts", "id", UNKNOWN))

    def test_update_tags_name_and_allocation(self) -> None:
        """updateHost replaces the tags, renames, and disables then enables the host."""
        updated = self.infra.ok("updateHost", id=self.a["id"], hosttags="nvme,fast", name="renamed")["host"]
        self.assertEqual((updated["hosttags"], updated["name"]), ("nvme,fast", "renamed"))
        self.assertEqual(self.names(hosttags="ssd"), [])
        self.assertEqual(self.names(hosttags="fast"), ["renamed"])
        off = self.infra.ok("updateHost", id=self.a["id"], allocationstate="Disable")["host"]
        self.assertEqual(off["resourcestate"], "Disabled")
        on = self.infra.ok("updateHost", id=self.a["id"], allocationstate="Enable")["host"]
        self.assertEqual(on["resourcestate"], "Enabled")

    def test_update_url(self) -> None:
        """updateHost url= moves the host to another URI of its kind: the old connection is closed, and the
        next check opens the new one."""
        old = self.infra.node("ha")
        new = self.infra.node("ha-moved", cpus=2)
        self.assertIsNotNone(self.infra.hypervisors.connection(old))
        self.infra.ok("updateHost", id=self.a["id"], url=new)
        self.assertIsNone(self.infra.hypervisors.connection(old))
        self.successResultOf(Deferred.fromCoroutine(self.infra.hosts.check_all()))
        self.assertIsNotNone(self.infra.hypervisors.connection(new))
        self.assertEqual(self.host(self.a["id"])["state"], "Up")

    def test_update_refusals(self) -> None:
        """A bad allocation state, disabling a Disabled host, and a URL of another kind are 431, and change
        nothing."""
        before = self.host(self.c["id"])
        self.assertIn("Enable/Disable", self.error("updateHost", 431, id=self.c["id"], allocationstate="Enabled"))
        self.assertEqual(self.error("updateHost", 431, id=self.c["id"], allocationstate="Disable"),
                         "Unable to disable the host: it is in state Disabled")
        self.error("updateHost", 431, id=self.c["id"], url="qemu:///system")
        self.error("updateHost", 431, id=self.c["id"], name=" ")
        self.assertEqual(self.host(self.c["id"])["resourcestate"], before["resourcestate"])
        self.assertEqual(self.host(self.c["id"])["name"], "hc")

    def test_delete_rules(self) -> None:
        """An Enabled, Up host is deleted only when forced; a Disabled one without; its connection is closed
        and it leaves the list."""
        text = self.error("deleteHost", 431, id=self.a["id"])
        self.assertIn("not in maintenance mode", text)
        self.assertEqual(self.count(), 3)
        url_c: str = self.infra.cloud.db.pool.do_sync(
            lambda conn: conn.execute(sa.select(model.hosts.c.url).where(model.hosts.c.uuid == self.c["id"]))
            .scalar_one())
        self.assertIsNotNone(self.infra.hypervisors.connection(url_c))
        self.assertIs(self.infra.ok("deleteHost", id=self.c["id"])["success"], True)
        self.assertIsNone(self.infra.hypervisors.connection(url_c))
        self.assertIs(self.infra.ok("deleteHost", id=self.a["id"], forced="true")["success"], True)
        self.assertEqual(self.names(), ["hb"])
        self.assertEqual(self.error("deleteHost", 431, id=self.a["id"]), bad_uuid_text("deleteHost", "id",
                                                                                       self.a["id"]))

    def test_maintenance_cycle(self) -> None:
        """prepareHostForMaintenance ends in Maintenance (no VMs to move); a second one is refused at once
        with the state named; cancelHostMaintenance returns it to Enabled; events are recorded."""
        job = self.infra.job("prepareHostForMaintenance", id=self.a["id"])
        self.assertEqual(job["jobstatus"], 1, job)
        self.assertEqual(job["jobresult"]["host"]["resourcestate"], "Maintenance")
        self.assertEqual(self.error("prepareHostForMaintenance", 431, id=self.a["id"]),
                         "Unable to start maintenance on the host: it is in state Maintenance")
        self.assertIs(self.infra.ok("deleteHost", id=self.b["id"], forced="true")["success"], True)
        job = self.infra.job("cancelHostMaintenance", id=self.a["id"])
        self.assertEqual(job["jobresult"]["host"]["resourcestate"], "Enabled")
        self.assertEqual(self.error("cancelHostMaintenance", 431, id=self.a["id"]),
                         "Unable to cancel maintenance of the host: it is in state Enabled")
        states = [(e["type"], e["state"]) for e in self.infra.ok("listEvents")["event"]
                  if e["type"].startswith("MAINT.")]
        for expected in (("MAINT.PREPARE", "Completed"), ("MAINT.CANCEL", "Completed")):
            self.assertIn(expected, states)

    def test_reconnect_reads_facts_again(self) -> None:
        """reconnectHost closes and reopens the connection and shows the host's figures as libvirt gives them
        now."""
        url = self.infra.node("hb", cpus=32, mhz=2600, memory_mib=4096)  # the same file, new contents
        job = self.infra.job("reconnectHost", id=self.b["id"])
        self.assertEqual(job["jobstatus"], 1, job)
        host = job["jobresult"]["host"]
        self.assertEqual((host["state"], host["cpunumber"], host["cpuspeed"], host["memorytotal"]),
                         ("Up", 32, 2600, 4096 * MIB))
        self.assertIsNotNone(self.infra.hypervisors.connection(url))

    def test_reconnect_failure(self) -> None:
        """A reconnection that cannot open the host fails the job with 530 and leaves the host in Alert."""
        os.unlink(os.path.join(self.infra.nodes, "hb.xml"))
        job = self.infra.job("reconnectHost", id=self.b["id"])
        self.assertEqual((job["jobstatus"], job["jobresultcode"]), (2, 530), job)
        self.assertIn("Failed to reconnect", job["jobresult"]["errortext"])
        self.assertEqual(self.host(self.b["id"])["state"], "Alert")


# --- state machines -------------------------------------------------------------------------------

# written out independently of the module's table: (from, event) -> to
S, R = Status, ResourceState
EXPECTED_STATUS = {
    (S.CONNECTING, CONNECT): S.UP, (S.DISCONNECTED, CONNECT): S.UP, (S.DOWN, CONNECT): S.UP, (S.ALERT, CONNECT): S.UP,
    (S.UP, DISCONNECT): S.DISCONNECTED, (S.CONNECTING, DISCONNECT): S.DISCONNECTED,
    (S.DISCONNECTED, MARK_DOWN): S.DOWN,
    (S.UP, RECONNECT): S.CONNECTING, (S.DISCONNECTED, RECONNECT): S.CONNECTING, (S.DOWN, RECONNECT): S.CONNECTING,
    (S.ALERT, RECONNECT): S.CONNECTING,
    (S.CONNECTING, FAIL_CONNECT): S.ALERT,
    (S.CONNECTING, REMOVE): S.REMOVED, (S.UP, REMOVE): S.REMOVED, (S.DISCONNECTED, REMOVE): S.REMOVED,
    (S.DOWN, REMOVE): S.REMOVED, (S.ALERT, REMOVE): S.REMOVED,
}
EXPECTED_RESOURCE = {
    (R.ENABLED, DISABLE): R.DISABLED, (R.DISABLED, ENABLE): R.ENABLED,
    (R.ENABLED, START_MAINTENANCE): R.PREPARE_FOR_MAINTENANCE,
    (R.DISABLED, START_MAINTENANCE): R.PREPARE_FOR_MAINTENANCE,
    (R.ERROR_IN_MAINTENANCE, START_MAINTENANCE): R.PREPARE_FOR_MAINTENANCE,
    (R.PREPARE_FOR_MAINTENANCE, COMPLETE_MAINTENANCE): R.MAINTENANCE,
    (R.PREPARE_FOR_MAINTENANCE, FAIL_MAINTENANCE): R.ERROR_IN_MAINTENANCE,
    (R.PREPARE_FOR_MAINTENANCE, CANCEL_MAINTENANCE): R.ENABLED, (R.MAINTENANCE, CANCEL_MAINTENANCE): R.ENABLED,
    (R.ERROR_IN_MAINTENANCE, CANCEL_MAINTENANCE): R.ENABLED,
}


class StateMachineTests(HostCase):
    def setUp(self) -> None:
        super().setUp()
        self.h = self.infra.add_host(self.cluster, "sm")
        self.db = self.infra.cloud.db
        self.row = self.db.pool.do_sync(lambda conn: conn.execute(
            sa.select(model.hosts.c.id).where(model.hosts.c.uuid == self.h["id"])).scalar_one())

    def force(self, column: str, value: str) -> None:
        """Put the row in a state directly (test set-up only)."""
        def thd(conn: Any) -> None:
            conn.execute(model.hosts.update().where(model.hosts.c.id == self.row).values(**{column: value}))

        self.db.pool.do_sync(thd)

    def stored(self, column: str) -> str:
        value: str = self.db.pool.do_sync(lambda conn: conn.execute(
            sa.select(model.hosts.c[column]).where(model.hosts.c.id == self.row)).scalar_one())
        return value

    def check_machine(self, machine: Any, expected: dict[Any, Any], column: str, cas: Any) -> None:
        events = {e for _, e in expected}
        self.assertEqual(machine.events(), events)
        for state in machine.states:
            for event in sorted(events):
                self.force(column, state.value)
                d = Deferred.fromCoroutine(machine.apply(cas, self.row, state.value, event))
                target = expected.get((state, event))
                if target is None:
                    f = self.failureResultOf(d, InvalidTransition)
                    self.assertEqual(f.value.code, 431)
                    self.assertEqual(self.stored(column), state.value, (state, event))
                else:
                    self.assertEqual(self.successResultOf(d), target, (state, event))
                    self.assertEqual(self.stored(column), target.value, (state, event))

    def test_status_transitions(self) -> None:
        """Every (state, event) pair of the connection machine: allowed ones move the stored state to the
        expected one, every other is 431 and leaves it."""
        self.check_machine(STATUS, EXPECTED_STATUS, "state", self.db.infra.cas_host_state)

    def test_resource_transitions(self) -> None:
        """Every (state, event) pair of the operator's machine, as above."""
        self.check_machine(RESOURCE, EXPECTED_RESOURCE, "resource_state", self.db.infra.cas_resource_state)

    def test_two_cas_writers_one_wins(self) -> None:
        """Two writers that both read Enabled: the first compare-and-set wins, the second gets 530 and the
        stored state is the winner's."""
        cas = self.db.infra.cas_resource_state
        first = Deferred.fromCoroutine(RESOURCE.apply(cas, self.row, "Enabled", START_MAINTENANCE))
        second = Deferred.fromCoroutine(RESOURCE.apply(cas, self.row, "Enabled", DISABLE))
        self.assertEqual(self.successResultOf(first), R.PREPARE_FOR_MAINTENANCE)
        err = self.failureResultOf(second, CloudError).value
        self.assertEqual(err.code, 530)
        self.assertIn("changed state", err.text)
        self.assertEqual(self.stored("resource_state"), "PrepareForMaintenance")

    def test_racing_commands(self) -> None:
        """A maintenance job paused between its two steps: a second prepareHostForMaintenance and an
        updateHost allocationstate=Disable are refused with the state named; the first ends in Maintenance."""
        self.infra.cloud.api.settings.set("host.maintenance.test.delay.ms", "5000")
        jobid = self.infra.ok("prepareHostForMaintenance", id=self.h["id"])["jobid"]
        self.assertEqual(self.stored("resource_state"), "PrepareForMaintenance")
        self.assertEqual(self.error("prepareHostForMaintenance", 431, id=self.h["id"]),
                         "Unable to start maintenance on the host: it is in state PrepareForMaintenance")
        self.assertEqual(self.error("updateHost", 431, id=self.h["id"], allocationstate="Disable"),
                         "Unable to disable the host: it is in state PrepareForMaintenance")
        self.infra.cloud.reactor.advance(5)
        result = self.infra.ok("queryAsyncJobResult", jobid=jobid)
        self.assertEqual(result["jobstatus"], 1, result)
        self.assertEqual(self.stored("resource_state"), "Maintenance")

    def test_racing_jobs_serialise(self) -> None:
        """Two maintenance commands accepted before either job ran: the jobs run one after the other on the
        host, the second fails with 431 naming the state the first left."""
        self.infra.cloud.api.settings.set("host.maintenance.test.delay.ms", "5000")
        # both handlers see Enabled: the first job is held on its sync object until the second is accepted
        lock = self.infra.cloud.jobs._lock(f"Host:{self.row}")
        self.successResultOf(lock.acquire())
        first = self.infra.ok("prepareHostForMaintenance", id=self.h["id"])["jobid"]
        second = self.infra.ok("prepareHostForMaintenance", id=self.h["id"])["jobid"]
        lock.release()
        self.infra.cloud.reactor.advance(5)
        self.infra.cloud.reactor.advance(5)
        one = self.infra.ok("queryAsyncJobResult", jobid=first)
        two = self.infra.ok("queryAsyncJobResult", jobid=second)
        self.assertEqual(one["jobstatus"], 1, one)
        self.assertEqual((two["jobstatus"], two["jobresultcode"]), (2, 431), two)
        self.assertEqual(two["jobresult"]["errortext"],
                         "Unable to start maintenance on the host: it is in state Maintenance")
        self.assertEqual(self.stored("resource_state"), "Maintenance")

    def test_recovery_of_interrupted_maintenance(self) -> None:
        """A maintenance job that died between its steps leaves PrepareForMaintenance; the Host recovery hook
        turns it into ErrorInMaintenance, from which cancelHostMaintenance returns it to Enabled."""
        self.infra.cloud.api.settings.set("host.maintenance.test.delay.ms", "60000")
        jobid = self.infra.ok("prepareHostForMaintenance", id=self.h["id"])["jobid"]
        self.assertEqual(self.stored("resource_state"), "PrepareForMaintenance")
        job = self.successResultOf(self.db.jobs.get_by_uuid(jobid))
        self.successResultOf(Deferred.fromCoroutine(recovery.recover(self.infra.cloud.api.services, job)))
        self.assertEqual(self.stored("resource_state"), "ErrorInMaintenance")
        # the paused body, resumed, finds the host moved and fails instead of overwriting it
        self.infra.cloud.reactor.advance(60)
        result = self.infra.ok("queryAsyncJobResult", jobid=jobid)
        self.assertEqual((result["jobstatus"], result["jobresultcode"]), (2, 530), result)
        self.assertEqual(self.stored("resource_state"), "ErrorInMaintenance")
        self.assertEqual(self.infra.job("cancelHostMaintenance", id=self.h["id"])["jobresult"]["host"]
                         ["resourcestate"], "Enabled")

    def test_recovery_of_interrupted_reconnect(self) -> None:
        """A host left Connecting by a dead reconnect job becomes Disconnected (the monitor brings it back)."""
        self.force("state", "Connecting")
        job = self.successResultOf(self.db.jobs.create(
            user_id=1, account_id=1, domain_id=1, command="reconnectHost", cmd="x", cmd_info="{}",
            instance_type="Host", instance_uuid=self.h["id"], sync_object=None, msid=1))
        self.successResultOf(Deferred.fromCoroutine(recovery.recover(self.infra.cloud.api.services, job)))
        self.assertEqual(self.stored("state"), "Disconnected")


# --- the monitor ----------------------------------------------------------------------------------

class MonitorTests(HostCase):
    start_monitor = True

    def setUp(self) -> None:
        super().setUp()
        self.settings = self.infra.cloud.api.settings
        self.settings.set("ping.interval", "10")
        self.settings.set("host.disconnect.down.seconds", "30")
        self.h = self.infra.add_host(self.cluster, "mon")
        self.node = os.path.join(self.infra.nodes, "mon.xml")
        self.url = "test://" + quote(self.node)

    def alerts(self) -> list[str]:
        _, found = self.successResultOf(self.infra.cloud.db.alerts.search(AlertFilter(), Page()))
        return [a.subject for a in sorted(found, key=lambda a: a.id)]

    def lose_host(self) -> None:
        """The host stops answering: its connection is gone and it cannot be opened again."""
        os.rename(self.node, self.node + ".away")
        conn = self.infra.hypervisors.connection(self.url)
        assert conn is not None
        self.successResultOf(Deferred.fromCoroutine(conn.close()))

    def test_disconnected_down_up(self) -> None:
        """A host whose checks fail turns Disconnected at the next check, Down after
        host.disconnect.down.seconds, and Up at the first check that succeeds; each with an alert and an
        event."""
        clock = self.infra.cloud.reactor
        clock.advance(10)
        self.assertEqual(self.host(self.h["id"])["state"], "Up")
        self.lose_host()
        clock.advance(10)
        host = self.host(self.h["id"])
        self.assertEqual(host["state"], "Disconnected")
        self.assertIn("disconnected", host)
        self.assertEqual(self.alerts(), [f"Host is disconnected: mon (id:{self.h['id']})"])
        clock.advance(10)
        self.assertEqual(self.host(self.h["id"])["state"], "Disconnected")
        clock.advance(20)
        self.assertEqual(self.host(self.h["id"])["state"], "Down")
        self.assertEqual(self.alerts()[-1], f"Host is down: mon (id:{self.h['id']})")
        clock.advance(10)
        self.assertEqual(len(self.alerts()), 2)
        os.rename(self.node + ".away", self.node)
        clock.advance(10)
        self.assertEqual(self.host(self.h["id"])["state"], "Up")
        self.assertEqual(self.alerts()[-1], f"Host is up: mon (id:{self.h['id']})")
        types = [e["type"] for e in self.infra.ok("listEvents", listall="true")["event"]]
        for t in ("HOST.DISCONNECTED", "HOST.DOWN", "HOST.UP"):
            self.assertIn(t, types)
        alert = self.successResultOf(self.infra.cloud.db.alerts.search(AlertFilter(), Page()))[1][0]
        self.assertEqual((alert.type, alert.name), (7, "ALERT.COMPUTE.HOST"))

    def test_quick_return_never_down(self) -> None:
        """A host that answers again before the limit goes Disconnected -> Up, never Down."""
        clock = self.infra.cloud.reactor
        self.lose_host()
        clock.advance(10)
        self.assertEqual(self.host(self.h["id"])["state"], "Disconnected")
        os.rename(self.node + ".away", self.node)
        clock.advance(10)
        self.assertEqual(self.host(self.h["id"])["state"], "Up")
        self.assertFalse([s for s in self.alerts() if "down" in s])

    def test_checks_follow_the_interval_and_stop(self) -> None:
        """Checks run every ping.interval seconds (read before each round) and not after the monitor stops."""
        clock = self.infra.cloud.reactor
        self.lose_host()
        self.settings.set("ping.interval", "100")
        clock.advance(10)  # the round scheduled with the old interval runs
        self.assertEqual(self.host(self.h["id"])["state"], "Disconnected")
        clock.advance(50)
        self.settings.set("host.disconnect.down.seconds", "1")
        clock.advance(49)
        self.assertEqual(self.host(self.h["id"])["state"], "Disconnected")
        clock.advance(1)
        self.assertEqual(self.host(self.h["id"])["state"], "Down")
        self.successResultOf(self.infra.hosts.stopService())
        os.rename(self.node + ".away", self.node)
        clock.advance(500)
        self.assertEqual(self.host(self.h["id"])["state"], "Down")
        self.assertFalse([c for c in clock.getDelayedCalls() if getattr(c, "func", None) == self.infra.hosts._tick])

    def test_start_opens_every_host(self) -> None:
        """A monitor starting on stored hosts opens a connection to each at its first round."""
        self.successResultOf(self.infra.hosts.stopService())
        self.assertEqual(self.infra.hypervisors.connections, [])
        self.infra.hosts.startService()
        self.infra.cloud.reactor.advance(0)
        self.assertEqual([c.uri for c in self.infra.hypervisors.connections], [self.url])
        self.assertEqual(self.host(self.h["id"])["state"], "Up")


class HostRowOrderTests(SynchronousTestCase):
    """Host rows map to `Host` by position: the select's columns are the dataclass's fields, in order."""

    def test_columns_follow_the_fields(self) -> None:
        import dataclasses

        from cloudd.db.infra import Host, host_select

        self.assertEqual([c.name for c in host_select().selected_columns],
                         [f.name for f in dataclasses.fields(Host)][:-1])
