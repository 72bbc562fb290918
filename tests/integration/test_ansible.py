"""The Ansible CloudStack collection (ngine_io.cloudstack 2.5.0, shipped by ansible 12.3.0) against a
real daemon: its modules create zones, pods, clusters, hosts and templates and list zones through
cloudd's API exactly as they do against CloudStack, and a second run of the same play changes nothing.

Every module runs through the real `ansible-playbook` (tests/util/ansible.py), with the `cs` library
the collection uses. Skipped, with the reason, when ansible or the collection is not installed.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from cloudd.hypervisor import write_simulated_host
from tests.integration.support import DaemonCase, poll, unique
from tests.integration.test_ssvm import FileServerProcess
from tests.ssvm import images
from tests.util.ansible import Ansible, TaskResult, missing

COLLECTION = "ngine_io.cloudstack"
SKIP = missing()


def task(module: str, **args: Any) -> dict[str, Any]:
    """One task of the play: the collection's `module` with `args`."""
    return {"name": f"{module} {args.get('name', '')}".strip(), f"{COLLECTION}.{module}": args}


class AnsibleCase(DaemonCase):
    skip = SKIP or None

    def setUp(self) -> None:
        super().setUp()
        self.ansible = Ansible(self.mktemp(), self.endpoint, self.creds["apikey"], self.creds["secretkey"])

    def ok(self, results: list[TaskResult], count: int) -> list[TaskResult]:
        """All `count` tasks ran and none failed (the failure's message otherwise)."""
        for result in results:
            self.assertFalse(result.failed, f"{result.name} failed: {result.msg}")
        self.assertEqual(len(results), count, [r.name for r in results])
        return results

    def node_file(self, name: str, cpus: int, mhz: int, memory_mib: int) -> str:
        """A simulated host's test:/// URL (its node file in this test's own directory)."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return write_simulated_host(os.path.join(directory, f"{name}.xml"), name, cpus, mhz, memory_mib)


class InfrastructureTests(AnsibleCase):
    """cs_zone, cs_zone_info, cs_pod, cs_cluster and cs_host."""

    def infrastructure_play(self, names: dict[str, str], url: str, tags: list[str]) -> list[dict[str, Any]]:
        zone, pod, cluster, host = names["zone"], names["pod"], names["cluster"], names["host"]
        return [
            task("cs_zone", name=zone, dns1="192.0.2.53", dns2="192.0.2.54", network_type="Advanced",
                 guest_cidr_address="10.1.0.0/16", network_domain="cloud.example"),
            task("cs_pod", name=pod, zone=zone, gateway="192.0.2.1", netmask="255.255.255.0",
                 start_ip="192.0.2.100", end_ip="192.0.2.150"),
            task("cs_cluster", name=cluster, zone=zone, pod=pod, hypervisor="Simulator",
                 cluster_type="CloudManaged"),
            task("cs_host", name=host, zone=zone, pod=pod, cluster=cluster, hypervisor="Simulator", url=url,
                 username="root", password="not-used", host_tags=tags),
        ]

    def test_play_creates_then_a_second_run_changes_nothing(self) -> None:
        """One play creates a zone, a pod, a cluster and a simulated host with the values given (the host's
        CPU and memory read from its node file); the same play run again reports no change for each."""
        names = {k: unique(f"ans-{k}") for k in ("zone", "pod", "cluster", "host")}
        url = self.node_file(names["host"], cpus=6, mhz=2400, memory_mib=12288)
        play = self.infrastructure_play(names, url, ["ssd", "gpu"])

        zone, pod, cluster, host = self.ok(self.ansible.play(play), 4)
        self.assertEqual([r.changed for r in (zone, pod, cluster, host)], [True] * 4)
        self.assertEqual((zone["name"], zone["network_type"], zone["dns1"], zone["dns2"], zone["internal_dns1"]),
                         (names["zone"], "Advanced", "192.0.2.53", "192.0.2.54", "192.0.2.53"))
        self.assertEqual((zone["guest_cidr_address"], zone["network_domain"]), ("10.1.0.0/16", "cloud.example"))
        self.assertEqual((pod["name"], pod["zone"], pod["gateway"], pod["netmask"], pod["start_ip"], pod["end_ip"]),
                         (names["pod"], names["zone"], "192.0.2.1", "255.255.255.0", "192.0.2.100", "192.0.2.150"))
        self.assertEqual((cluster["name"], cluster["hypervisor"], cluster["cluster_type"], cluster["pod"]),
                         (names["cluster"], "Simulator", "CloudManaged", names["pod"]))
        self.assertEqual((host["name"], host["hypervisor"], host["cluster"], host["pod"], host["zone"]),
                         (names["host"], "Simulator", names["cluster"], names["pod"], names["zone"]))
        self.assertEqual((host["cpu_number"], host["cpu_speed"], host["memory_total"]), (6, 2400, 12288 * 2**20))
        self.assertEqual((host["host_type"], sorted(host["host_tags"])), ("Routing", ["gpu", "ssd"]))
        self.assertEqual(host["allocation_state"], "enabled")

        again = self.ok(self.ansible.play(play), 4)
        self.assertEqual([(r.name, r.changed) for r in again], [(r.name, False) for r in again])
        self.assertEqual([r["id"] for r in again], [zone["id"], pod["id"], cluster["id"], host["id"]])

        # what the modules made is what the API lists
        listed = self.admin.listHosts(zoneid=zone["id"])
        self.assertEqual([(h["id"], h["name"], h["clusterid"], h["podid"]) for h in listed["host"]],
                         [(host["id"], names["host"], cluster["id"], pod["id"])])
        self.assertEqual(sorted(listed["host"][0]["hosttags"].split(",")), ["gpu", "ssd"])
        self.assertEqual(self.admin.listZones(id=zone["id"])["count"], 1)

    def test_changed_values_are_updated_then_stable(self) -> None:
        """A play that differs from what exists (zone state, pod end address, host tags) updates it and
        reports a change; the same play again reports none."""
        names = {k: unique(f"upd-{k}") for k in ("zone", "pod", "cluster", "host")}
        url = self.node_file(names["host"], cpus=2, mhz=2000, memory_mib=4096)
        self.ok(self.ansible.play(self.infrastructure_play(names, url, ["a"])), 4)

        changed = self.infrastructure_play(names, url, ["a", "b"])
        changed[0][f"{COLLECTION}.cs_zone"]["state"] = "enabled"
        changed[1][f"{COLLECTION}.cs_pod"]["end_ip"] = "192.0.2.160"
        first = self.ok(self.ansible.play(changed), 4)
        self.assertEqual([r.changed for r in first], [True, True, False, True])
        self.assertEqual(first[0]["allocation_state"], "Enabled")
        self.assertEqual(first[1]["end_ip"], "192.0.2.160")
        self.assertEqual(sorted(first[3]["host_tags"]), ["a", "b"])
        second = self.ok(self.ansible.play(changed), 4)
        self.assertEqual([r.changed for r in second], [False] * 4)
        self.assertEqual(self.admin.listZones(id=first[0]["id"])["zone"][0]["allocationstate"], "Enabled")

    def test_host_maintenance_and_back(self) -> None:
        """cs_host allocation_state=maintenance puts the host through prepareHostForMaintenance into
        Maintenance (a second run changes nothing); allocation_state=enabled cancels it again."""
        names = {k: unique(f"mnt-{k}") for k in ("zone", "pod", "cluster", "host")}
        url = self.node_file(names["host"], cpus=2, mhz=2000, memory_mib=2048)
        made = self.ok(self.ansible.play(self.infrastructure_play(names, url, [])), 4)[3]

        def host_task(state: str) -> dict[str, Any]:
            return task("cs_host", name=names["host"], zone=names["zone"], allocation_state=state)

        entered = self.ok(self.ansible.play([host_task("maintenance")]), 1)[0]
        self.assertTrue(entered.changed)
        self.assertEqual((entered["id"], entered["allocation_state"]), (made["id"], "maintenance"))
        self.assertEqual(self.admin.listHosts(id=made["id"])["host"][0]["resourcestate"], "Maintenance")
        self.assertFalse(self.ok(self.ansible.play([host_task("maintenance")]), 1)[0].changed)

        left = self.ok(self.ansible.play([host_task("enabled")]), 1)[0]
        self.assertTrue(left.changed)
        self.assertEqual(left["allocation_state"], "enabled")
        self.assertEqual(self.admin.listHosts(id=made["id"])["host"][0]["resourcestate"], "Enabled")
        self.assertFalse(self.ok(self.ansible.play([host_task("enabled")]), 1)[0].changed)

    def test_zone_info_lists_zones(self) -> None:
        """cs_zone_info lists every zone, or the one named, with the fields cs_zone set."""
        name = unique("info-zone")
        created = self.ok(self.ansible.play([task("cs_zone", name=name, dns1="198.51.100.53",
                                                  network_type="Advanced")]), 1)[0]
        self.assertTrue(created.changed)

        every = self.ok(self.ansible.play([task("cs_zone_info")]), 1)[0]
        self.assertFalse(every.changed)
        by_name = {z["name"]: z for z in every["zones"]}
        self.assertIn(name, by_name)
        self.assertEqual(len(every["zones"]), self.admin.listZones()["count"])
        self.assertEqual((by_name[name]["id"], by_name[name]["dns1"], by_name[name]["network_type"]),
                         (created["id"], "198.51.100.53", "Advanced"))

        one = self.ok(self.ansible.play([task("cs_zone_info", zone=name)]), 1)[0]
        self.assertEqual([(z["id"], z["name"], z["allocation_state"]) for z in one["zones"]],
                         [(created["id"], name, "Disabled")])

    def test_absent_removes_in_reverse_order(self) -> None:
        """state=absent for the host, cluster, pod and zone deletes each (reporting a change), after which
        the API lists none of them, and a second absent run changes nothing."""
        names = {k: unique(f"gone-{k}") for k in ("zone", "pod", "cluster", "host")}
        url = self.node_file(names["host"], cpus=2, mhz=2000, memory_mib=2048)
        made = self.ok(self.ansible.play(self.infrastructure_play(names, url, [])), 4)
        absent = [
            task("cs_host", name=names["host"], zone=names["zone"], state="absent"),
            task("cs_cluster", name=names["cluster"], zone=names["zone"], state="absent"),
            task("cs_pod", name=names["pod"], zone=names["zone"], state="absent"),
            task("cs_zone", name=names["zone"], state="absent"),
        ]
        removed = self.ok(self.ansible.play(absent), 4)
        self.assertEqual([r.changed for r in removed], [True] * 4)
        self.assertEqual([r["id"] for r in removed], [made[3]["id"], made[2]["id"], made[1]["id"], made[0]["id"]])
        # (an id that names nothing any more is refused with 431, as CloudStack refuses it: ask by name)
        self.assertEqual(self.admin.listZones(name=names["zone"]), {})
        self.assertEqual(self.admin.listHosts(name=names["host"]), {})
        self.assertEqual(self.admin.listClusters(name=names["cluster"]), {})
        self.assertEqual(self.admin.listPods(name=names["pod"]), {})
        again = self.ansible.play(absent)
        # the zone has gone, so the modules that look it up first fail to find it: nothing is changed
        self.assertFalse(any(r.changed for r in again))

    def test_server_errors_reach_the_module(self) -> None:
        """A command cloudd refuses (a cluster with an unknown hypervisor) fails the task with cloudd's
        error text, as the collection reports CloudStack's, and creates nothing."""
        zone, pod, cluster = unique("err-zone"), unique("err-pod"), unique("err-cluster")
        self.ok(self.ansible.play([
            task("cs_zone", name=zone, dns1="192.0.2.53", network_type="Advanced"),
            task("cs_pod", name=pod, zone=zone, gateway="192.0.2.1", netmask="255.255.255.0",
                 start_ip="192.0.2.10", end_ip="192.0.2.20")]), 2)
        failed = self.ansible.play([task("cs_cluster", name=cluster, zone=zone, pod=pod, hypervisor="NoSuchHv",
                                         cluster_type="CloudManaged")])
        self.assertEqual(len(failed), 1)
        self.assertTrue(failed[0].failed)
        self.assertIn("431", failed[0].msg)
        self.assertIn("NoSuchHv", failed[0].msg)
        self.assertEqual(self.admin.listClusters(name=cluster), {})


class TemplateTests(AnsibleCase):
    """cs_template registers a template from a local HTTP server into a zone's image store, and removes it."""

    def zone_with_store(self) -> dict[str, Any]:
        """An enabled zone with a directory image store (and so an ssvm) that may download from 127.0.0.1."""
        self.admin.updateConfiguration(name="secstorage.allowed.internal.sites", value="127.0.0.1/32")
        zone = self.admin.createZone(name=unique("tpl-zone"), dns1="192.0.2.53", internaldns1="192.0.2.53",
                                     networktype="Advanced")["zone"]
        store_dir = os.path.abspath(self.mktemp())
        os.makedirs(store_dir)
        self.admin.addImageStore(name=unique("store"), provider="NFS", url=f"file://{store_dir}",
                                 zoneid=zone["id"])
        self.admin.updateZone(id=zone["id"], allocationstate="Enabled")
        return zone

    def test_register_then_absent(self) -> None:
        """cs_template registers a qcow2 from a local server: the module returns the template with the values
        and checksum given, the download makes it Ready in the zone, a second run changes nothing, and
        state=absent deletes it (once)."""
        zone = self.zone_with_store()
        files = os.path.abspath(self.mktemp())
        os.makedirs(files)
        image = images.qcow2(64 * 2**20, padding=256 * 1024)
        with open(os.path.join(files, "disk.qcow2"), "wb") as f:
            f.write(image)
        server = FileServerProcess(files)
        self.addCleanup(server.stop)
        ostype = self.admin.listOsTypes(description="Other Linux (64-bit)")["ostype"][0]
        name = unique("ans-tpl")
        checksum = "{SHA-256}" + hashlib.sha256(image).hexdigest()
        register = task("cs_template", name=name, display_text="from ansible", url=server.url("disk.qcow2"),
                        format="QCOW2", hypervisor="Simulator", os_type=ostype["description"],
                        zone=zone["name"], checksum=checksum,
                        is_extractable=True, password_enabled=False)

        made = self.ok(self.ansible.play([register]), 1)[0]
        self.assertTrue(made.changed)
        self.assertEqual((made["name"], made["format"], made["hypervisor"], made["zone"]),
                         (name, "QCOW2", "Simulator", zone["name"]))
        self.assertEqual((made["is_extractable"], made["password_enabled"], made["os_type"]),
                         (True, False, ostype["description"]))
        self.assertEqual(made["checksum"], checksum)

        def ready() -> dict[str, Any] | None:
            found = self.admin.listTemplates(templatefilter="self", id=made["id"], zoneid=zone["id"])
            tpl: dict[str, Any] = found["template"][0]
            self.assertNotIn("rror", tpl.get("status", ""), tpl)
            return tpl if tpl["isready"] else None

        tpl = poll(ready, timeout=120, interval=0.2)
        self.assertEqual((tpl["status"], tpl["size"]), ("Download Complete", 64 * 2**20))

        again = self.ok(self.ansible.play([register]), 1)[0]
        self.assertFalse(again.changed)
        self.assertEqual((again["id"], again["is_ready"]), (made["id"], True))

        absent = task("cs_template", name=name, zone=zone["name"], state="absent")
        removed = self.ok(self.ansible.play([absent]), 1)[0]
        self.assertTrue(removed.changed)
        self.assertEqual(self.admin.listTemplates(templatefilter="self", name=name), {})
        self.assertFalse(self.ok(self.ansible.play([absent]), 1)[0].changed)
