"""Image stores and the secondary-storage VMs they bring: addImageStore/addSecondaryStorage start the
zone's ssvm, listSystemVms shows it with its state, a dying ssvm is an SSVM alert, a restarted cloudd
re-adopts it, stores holding templates are not deleted, and the system VM commands act on it."""

from __future__ import annotations

import inspect
import os

import sqlalchemy as sa
from twisted.trial.unittest import SynchronousTestCase

from cloudd.agents.ssvm import StorageClient
from cloudd.api.imagestores import NFS_NOT_MOUNTED, parse_store_url
from cloudd.db import model
from cloudd.errors import CloudError
from cloudd.orchestration.alerts import AlertType
from cloudd.orchestration.systemvms import SYSTEM_VM, SystemVmState
from tests.util.images import FakeStorageClient, ImageCloud
from tests.util.tenants import Tenants

QCOW = "http://192.0.2.10/images/tiny.qcow2"


class FakeClientTests(SynchronousTestCase):
    def test_fake_storage_client_matches_the_real_one(self) -> None:
        """Every method the fake ssvm client offers exists on StorageClient with the same parameters, so
        code tested against the fake calls the real client correctly."""
        for name, fake in inspect.getmembers(FakeStorageClient, inspect.isfunction):
            if name.startswith("_") or name in ("progress", "finish", "fail", "forget"):
                continue
            real = getattr(StorageClient, name, None)
            self.assertIsNotNone(real, f"StorageClient has no {name}")
            self.assertEqual(list(inspect.signature(fake).parameters), list(inspect.signature(real).parameters),
                             name)


class StoreUrlTests(SynchronousTestCase):
    def test_urls(self) -> None:
        """file:/// urls name an absolute directory; nfs:// is refused saying that only local mounts are
        served; other schemes, relative and system directories are refused."""
        self.assertEqual(parse_store_url("file:///srv/images/"), ("file", "/srv/images"))
        with self.assertRaises(CloudError) as nfs:
            parse_store_url("nfs://filer/export/secondary")
        self.assertEqual((nfs.exception.code, nfs.exception.text), (431, NFS_NOT_MOUNTED))
        for bad in ("http://x/y", "file://otherhost/srv", "file:///", "file:///etc/x", "s3://bucket"):
            with self.assertRaises(CloudError, msg=bad):
                parse_store_url(bad)


class ImageStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ic = ImageCloud.make(self)
        self.zone = self.ic.zone("z1")
        self.dir = os.path.abspath(self.mktemp())

    def test_add_starts_the_zone_ssvm(self) -> None:
        """The first store of a zone is answered with CloudStack's fields and starts the zone's ssvm on
        that directory; listSystemVms shows it Running, of type secondarystoragevm, on loopback."""
        store = self.ic.store(self.zone, self.dir)
        self.assertEqual({k: store[k] for k in ("name", "url", "protocol", "providername", "scope", "zoneid",
                                                 "zonename", "readonly")},
                         {"name": f"file://{self.dir}", "url": f"file://{self.dir}", "protocol": "file",
                          "providername": "NFS", "scope": "ZONE", "zoneid": self.zone, "zonename": "z1",
                          "readonly": False})
        vm_id = self.ic.vm_id(self.zone)
        self.assertEqual(self.ic.supervisor.vms[vm_id].store_root, self.dir)
        vms = self.ic.ok("listSystemVms")["systemvm"]
        self.assertEqual(len(vms), 1)
        vm = vms[0]
        self.assertEqual((vm["name"], vm["systemvmtype"], vm["state"], vm["zoneid"], vm["publicip"],
                          vm["privateip"], vm["linklocalip"], vm["agentstate"]),
                         (f"s-{vm_id}-VM", "secondarystoragevm", "Running", self.zone, "127.0.0.1", "127.0.0.1",
                          "127.0.0.1", "Up"))
        # the store's capacity was read from ssvm when it came up
        listed = self.ic.ok("listImageStores", zoneid=self.zone)["imagestore"]
        self.assertEqual([(s["id"], s["disksizetotal"], s["disksizeused"]) for s in listed],
                         [(store["id"], 100 * 2**30, 3 * 2**30)])
        events = self.ic.ok("listEvents", type="IMAGE.STORE.ADD")["event"]
        self.assertEqual([(e["state"], e["description"]) for e in events],
                         [("Completed", f"Image store file://{self.dir} added to zone z1")])
        self.assertEqual(self.ic.ok("listSystemVms", systemvmtype="consoleproxy"), {})
        self.assertEqual(self.ic.ok("listSystemVms", state="Stopped"), {})

    def test_settings_reach_the_ssvm(self) -> None:
        """The allowed private networks (an entry that is no network left out) and the size limit of the
        global settings are the ssvm's."""
        self.ic.ok("updateConfiguration", name="secstorage.allowed.internal.sites",
                   value='10.0.0.0/8, 127.0.0.1/32, "bad]\n[x')
        self.ic.ok("updateConfiguration", name="max.template.iso.size", value="2")
        self.ic.store(self.zone, self.dir)
        settings = self.ic.supervisor.vms[self.ic.vm_id(self.zone)].settings
        self.assertEqual(settings, '[download]\nallowed_cidrs = ["10.0.0.0/8", "127.0.0.1/32"]\n'
                                   f"max_size = {2 * 2**30}\n")

    def test_add_secondary_storage_older_form(self) -> None:
        """addSecondaryStorage answers a `secondarystorage` object and also starts the ssvm."""
        r = self.ic.ok("addSecondaryStorage", url=f"file://{self.dir}", zoneid=self.zone)
        self.assertEqual(r["secondarystorage"]["providername"], "NFS")
        self.assertEqual(len(self.ic.supervisor.vms), 1)

    def test_refusals_store_nothing(self) -> None:
        """nfs://, an unknown provider, a missing zone and a second store in a zone are refused with
        their reasons, and nothing is stored."""
        self.assertEqual(self.ic.error("addImageStore", 431, provider="NFS", url="nfs://filer/export",
                                       zoneid=self.zone), NFS_NOT_MOUNTED)
        self.assertEqual(self.ic.error("addImageStore", 431, provider="S3", url=f"file://{self.dir}",
                                       zoneid=self.zone), "can't find image store provider: S3")
        self.ic.error("addImageStore", 431, provider="NFS", url=f"file://{self.dir}")
        self.assertEqual(self.ic.ok("listImageStores"), {})
        self.ic.store(self.zone, self.dir)
        self.assertIn("one image store per zone",
                      self.ic.error("addImageStore", 432, provider="NFS", url=f"file://{self.dir}2",
                                    zoneid=self.zone))
        self.assertEqual(self.ic.ok("listImageStores")["count"], 1)

    def test_delete_refused_while_templates_are_on_it(self) -> None:
        """A store holding a template is not deleted; once the template is gone it is, and its zone's
        ssvm is stopped and destroyed."""
        store = self.ic.store(self.zone, self.dir)
        t = self.ic.ok("registerTemplate", name="t", displaytext="t", url=QCOW, format="QCOW2", hypervisor="KVM",
                       zoneid=self.zone)["template"][0]
        self.assertEqual(self.ic.error("deleteImageStore", 431, id=store["id"]),
                         "Cannot delete image store with active templates backup!")
        self.assertEqual(self.ic.ok("listImageStores")["count"], 1)
        self.assertEqual(self.ic.job("deleteTemplate", id=t["id"])["jobstatus"], 1)
        self.assertEqual(self.ic.ok("deleteImageStore", id=store["id"])["success"], True)
        self.assertEqual(self.ic.ok("listImageStores"), {})
        self.assertEqual(self.ic.ok("listSystemVms"), {})
        self.assertEqual(self.ic.supervisor.vms, {})

    def test_a_dying_ssvm_is_an_alert_and_comes_back(self) -> None:
        """The supervisor's Error (the child died) is stored and raises an SSVM alert naming the VM; the
        restarted child makes it Running again."""
        self.ic.store(self.zone, self.dir)
        vm_id = self.ic.vm_id(self.zone)
        self.ic.supervisor.die(vm_id)
        self.assertEqual(self.ic.ok("listSystemVms")["systemvm"][0]["state"], "Error")
        alerts = self.ic.cloud.db.pool.do_sync(lambda conn: conn.execute(
            sa.select(model.alerts.c.type, model.alerts.c.subject)).all())
        self.assertEqual([(t, s) for t, s in alerts if t == AlertType.SSVM],
                         [(AlertType.SSVM, f"Secondary Storage Vm s-{vm_id}-VM in zone z1 stopped unexpectedly "
                                           "(signal 9); it is being restarted")])
        self.ic.supervisor.restart(vm_id)
        self.assertEqual(self.ic.ok("listSystemVms")["systemvm"][0]["state"], "Running")

    def test_restart_of_cloudd_readopts_the_ssvm(self) -> None:
        """A new manager over the same database starts the zone's existing VM again (same id), and
        creates no second one."""
        self.ic.store(self.zone, self.dir)
        vm_id = self.ic.vm_id(self.zone)
        self.ic.supervisor.stop_vm(vm_id)
        self.assertEqual(self.ic.supervisor.vms, {})
        self.ic.restart_managers()
        self.assertEqual(list(self.ic.supervisor.vms), [vm_id])
        self.assertEqual(self.ic.supervisor.vms[vm_id].store_root, self.dir)
        self.assertEqual(self.ic.ok("listSystemVms")["count"], 1)
        self.assertEqual(self.ic.ok("listSystemVms")["systemvm"][0]["state"], "Running")

    def test_restart_after_a_stop_cut_short(self) -> None:
        """cloudd stopped while its ssvm was Stopping (the Stopped report never stored): the next start
        brings the VM to Running, not left showing Stopping."""
        self.ic.store(self.zone, self.dir)
        vm_id = self.ic.vm_id(self.zone)
        self.ic.supervisor.stop_vm(vm_id)
        self.ic.cloud.db.pool.do_sync(lambda c: c.execute(
            model.system_vms.update().where(model.system_vms.c.id == vm_id).values(state="Stopping")).rowcount)
        self.ic.restart_managers()
        self.assertEqual(self.ic.ok("listSystemVms")["systemvm"][0]["state"], "Running")

    def test_stop_start_reboot_destroy(self) -> None:
        """The system VM commands: stop leaves it Stopped, start Running again, reboot restarts it, and
        destroy removes it while the zone, which still has a store, gets a new one."""
        self.ic.store(self.zone, self.dir)
        vm = self.ic.ok("listSystemVms")["systemvm"][0]
        stopped = self.ic.job("stopSystemVm", id=vm["id"])
        self.assertEqual(stopped["jobresult"]["systemvm"]["state"], "Stopped", stopped)
        self.assertEqual(self.ic.supervisor.vms, {})
        self.assertEqual(self.ic.job("stopSystemVm", id=vm["id"])["jobresultcode"], 431)
        started = self.ic.job("startSystemVm", id=vm["id"])
        self.assertEqual(started["jobresult"]["systemvm"]["state"], "Running", started)
        rebooted = self.ic.job("rebootSystemVm", id=vm["id"])
        self.assertEqual(rebooted["jobresult"]["systemvm"]["state"], "Running", rebooted)
        self.assertEqual(self.ic.supervisor.vms[self.ic.vm_id(self.zone)].starts, 1)
        destroyed = self.ic.job("destroySystemVm", id=vm["id"])
        self.assertEqual(destroyed["jobresult"]["systemvm"]["state"], "Destroyed", destroyed)
        vms = self.ic.ok("listSystemVms")["systemvm"]
        self.assertEqual(len(vms), 1)
        self.assertNotEqual(vms[0]["id"], vm["id"])
        self.assertEqual(vms[0]["state"], "Running")

    def test_state_machine(self) -> None:
        """Destroy is allowed only from Stopped or Error; a stopped VM cannot be reported Running."""
        self.assertFalse(SYSTEM_VM.allows(SystemVmState.RUNNING, "destroy"))
        self.assertTrue(SYSTEM_VM.allows(SystemVmState.ERROR, "destroy"))
        self.assertFalse(SYSTEM_VM.allows(SystemVmState.STOPPED, "running"))

    def test_users_may_not_see_system_vms_or_stores(self) -> None:
        """listSystemVms and the image store commands are admin commands."""
        tenants = Tenants(self.ic.cloud)
        self.ic.store(self.zone, self.dir)
        for command in ("listSystemVms", "listImageStores"):
            self.assertEqual(tenants.call("a_user", command).status, 432, command)
