"""Templates and ISOs through the zone's ssvm (a fake one here): registration as a download per zone,
progress as CloudStack shows it, failures with their reason, downloads an ssvm forgot restarted or
failed (never stuck), every templatefilter and the permission rules, update, delete (files removed in
ssvm), permissions, extract and copy."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.db import images as I  # noqa: N812
from cloudd.orchestration.templates import DOWNLOAD, LOST_TEXT, MAX_RESTARTS, DownloadState
from tests.util.images import ImageCloud
from tests.util.tenants import Tenants

QCOW = "http://192.0.2.10/images/tiny.qcow2"
ISO = "http://192.0.2.10/images/boot.iso"
SHA = "{SHA-256}" + "b" * 64


class TemplateCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.ic = ImageCloud.make(self)
        self.zone = self.ic.zone("z1")
        self.ic.store(self.zone, os.path.abspath(self.mktemp()))
        self.ssvm = self.ic.client(self.zone)

    def register(self, name: str = "tiny", caller: Any = None, **params: Any) -> dict[str, Any]:
        p = {"name": name, "displaytext": f"{name} text", "url": QCOW, "format": "QCOW2", "hypervisor": "KVM",
             "zoneid": self.zone, **params}
        r = (caller or self.ic.call)("registerTemplate", **p)
        assert r.status == 200, r.body
        rows = r.inner()["template"]
        return dict(rows[0])

    def listed(self, caller: Any = None, **params: Any) -> list[dict[str, Any]]:
        p = {"templatefilter": "self", **params}
        r = (caller or self.ic.call)("listTemplates", **p)
        assert r.status == 200, r.body
        return list(r.inner().get("template", []))

    def one(self, template_id: str) -> dict[str, Any]:
        rows = [t for t in self.listed(templatefilter="all") if t["id"] == template_id]
        assert len(rows) == 1, rows
        return rows[0]

    def download_id(self, template_id: str) -> str:
        t = self.successResultOf(self.ic.cloud.db.images.get_template_by_uuid(template_id))
        copies = self.successResultOf(self.ic.cloud.db.images.copies_of(t.id))
        return copies[0].download_id


class RegisterTests(TemplateCase):
    def test_progress_then_ready(self) -> None:
        """A registration is a download in the zone's ssvm; each poll stores its progress as
        "N% Downloaded", and the end as "Download Complete" with isready and the sizes."""
        t = self.register(checksum=SHA, isextractable="true", ispublic="true", passwordenabled="true",
                          sshkeyenabled="true", isdynamicallyscalable="true", templatetag="tag1")
        self.assertEqual((t["status"], t["isready"], t["zoneid"], t["format"], t["hypervisor"], t["templatetype"],
                          t["checksum"], t["ispublic"], t["isextractable"], t["passwordenabled"],
                          t["sshkeyenabled"], t["isdynamicallyscalable"], t["templatetag"], t["crossZones"],
                          t["account"], t["domain"], t["url"]),
                         ("0% Downloaded", False, self.zone, "QCOW2", "KVM", "USER", SHA, True, True, True, True,
                          True, "tag1", False, "admin", "ROOT", QCOW))
        did = self.download_id(t["id"])
        request = self.ssvm.requests[did]
        self.assertEqual((request.url, request.format, request.checksum, request.max_size, request.hvm),
                         (QCOW, "qcow2", SHA, 50 * 2**30, True))
        seen = []
        for percent in (30, 75):
            self.ssvm.progress(did, percent)
            self.ic.tick()
            seen.append(self.one(t["id"])["status"])
        self.assertEqual(seen, ["30% Downloaded", "75% Downloaded"])
        self.ssvm.finish(did)
        self.ic.tick()
        done = self.one(t["id"])
        self.assertEqual((done["status"], done["isready"], done["size"], done["physicalsize"]),
                         ("Download Complete", True, 10 * 2**30, 100_000))
        self.assertEqual(done["downloaddetails"], [{"datastore": "z1", "downloadPercent": "100",
                                                    "downloadState": "DOWNLOADED"}])

    def test_failure_reason_visible(self) -> None:
        """ssvm's failure text (a bad checksum, a refused address, a size over the limit) is the
        template's status, and it is not ready; later polls leave it so."""
        t = self.register()
        did = self.download_id(t["id"])
        self.ssvm.fail(did, "checksum mismatch: expected {SHA-256}bbbb, got {SHA-256}cccc")
        self.ic.tick()
        row = self.one(t["id"])
        self.assertEqual((row["status"], row["isready"]),
                         ("checksum mismatch: expected {SHA-256}bbbb, got {SHA-256}cccc", False))
        self.ssvm.progress(did, 50)
        self.ic.tick()
        self.assertEqual(self.one(t["id"])["status"], "checksum mismatch: expected {SHA-256}bbbb, got {SHA-256}cccc")

    def test_ssvm_down_at_registration_is_started_later(self) -> None:
        """When the zone's ssvm does not answer, the template is stored and its download started by the
        poller once the ssvm is back."""
        vm_id = self.ic.vm_id(self.zone)
        self.ic.supervisor.die(vm_id, forget=False)
        t = self.register()
        self.assertEqual(self.one(t["id"])["status"], "NOT_DOWNLOADED")
        self.assertEqual(self.ssvm.started, [])
        self.ic.supervisor.restart(vm_id)
        self.ic.tick()
        self.assertEqual(self.ssvm.started, [self.download_id(t["id"])])
        self.assertEqual(self.one(t["id"])["status"], "0% Downloaded")

    def test_slow_ssvm_does_not_hold_the_registration(self) -> None:
        """A start the ssvm does not answer is tried once in the request (the answer comes at once,
        NOT_DOWNLOADED), and started by the next poll."""
        self.ssvm.lose_starts = 1
        t = self.register()
        self.assertEqual((t["status"], self.ssvm.started), ("NOT_DOWNLOADED", []))
        self.ic.tick()
        self.assertEqual(self.ssvm.started, [self.download_id(t["id"])])
        self.assertEqual(self.one(t["id"])["status"], "0% Downloaded")

    def test_forgotten_download_restarted_then_failed(self) -> None:
        """An ssvm that restarted without the download: the resync at reconnection starts it again; one
        that keeps losing it ends in an error with the reason, never stuck at N%."""
        t = self.register()
        did = self.download_id(t["id"])
        self.ssvm.progress(did, 40)
        self.ic.tick()
        vm_id = self.ic.vm_id(self.zone)
        self.ic.supervisor.die(vm_id)
        self.assertEqual(self.one(t["id"])["status"], "40% Downloaded")
        self.ic.supervisor.restart(vm_id)
        self.assertEqual(self.ssvm.started, [did, did])
        self.assertEqual(self.one(t["id"])["status"], "0% Downloaded")
        for _ in range(MAX_RESTARTS):
            self.ssvm.forget()
            self.ic.tick()
        row = self.one(t["id"])
        self.assertEqual((row["status"], row["isready"]), (LOST_TEXT, False))

    def test_polling_resumes_after_a_restart_of_cloudd(self) -> None:
        """New managers over the same database (a restarted cloudd) poll the unfinished download on."""
        t = self.register()
        did = self.download_id(t["id"])
        self.ic.restart_managers()
        self.ssvm.finish(did)
        self.ic.tick()
        self.assertEqual(self.one(t["id"])["status"], "Download Complete")

    def test_all_zones(self) -> None:
        """zoneid=-1 registers a cross-zone template with a download in every zone that has a store."""
        z2 = self.ic.zone("z2")
        self.ic.store(z2, os.path.abspath(self.mktemp()))
        self.ic.zone("z3-no-store")
        r = self.ic.ok("registerTemplate", name="x", displaytext="x", url=QCOW, format="QCOW2", hypervisor="KVM",
                       zoneid="-1")
        self.assertEqual(r["count"], 2)
        self.assertEqual(sorted(t["zonename"] for t in r["template"]), ["z1", "z2"])
        self.assertTrue(all(t["crossZones"] for t in r["template"]))
        self.assertEqual(len(self.ic.client(z2).started), 1)
        self.assertEqual(len(self.listed(zoneid=z2)), 1)

    def test_refusals_store_nothing(self) -> None:
        """Bad formats, hypervisors, URLs, checksums, zone choices and a zone without a store are refused
        with 431 and their reason; no template is stored."""
        base = {"name": "bad", "displaytext": "bad", "url": QCOW, "format": "QCOW2", "hypervisor": "KVM",
                "zoneid": self.zone}
        z2 = self.ic.zone("nostore")
        cases = [
            ({"format": "EXE"}, "Image format: EXE is incorrect"),
            ({"format": "VMDK"}, "Image format VMDK is not supported"),
            ({"hypervisor": "Bochs"}, "Hypervisor Type: Bochs is invalid"),
            ({"url": "file:///etc/passwd"}, "Unsupported scheme for url"),
            ({"url": "ftp://192.0.2.1/x"}, "Unsupported scheme for url"),
            ({"checksum": "{CRC}1234"}, "Invalid checksum"),
            ({"zoneid": z2}, "Failed to find a secondary storage (image store) in zone nostore"),
            ({"zoneids": self.zone}, "Both zoneid and zoneids cannot be specified at the same time"),
            ({"bits": "16"}, "Invalid bits value"),
        ]
        for change, text in cases:
            params = {**base, **change}
            err = self.ic.error("registerTemplate", 431, **params)
            self.assertTrue(err.startswith(text), (change, err))
        del base["zoneid"]
        self.assertEqual(self.ic.error("registerTemplate", 431, **base), "Either zoneid or zoneids is required. Both cannot be null.")
        self.assertEqual(self.listed(templatefilter="all"), [])
        self.assertEqual(self.ssvm.started, [])

    def test_duplicate_name_refused(self) -> None:
        """An account has one live template of a name."""
        self.register("dup")
        self.assertIn("already exists", self.ic.error("registerTemplate", 431, name="dup", displaytext="d",
                                                      url=QCOW, format="QCOW2", hypervisor="KVM",
                                                      zoneid=self.zone))

    def test_state_machine(self) -> None:
        """A finished or failed download never moves again; progress moves only a pending one."""
        self.assertFalse(DOWNLOAD.allows(DownloadState.DOWNLOADED, "fail"))
        self.assertFalse(DOWNLOAD.allows(DownloadState.DOWNLOAD_ERROR, "downloaded"))
        self.assertTrue(DOWNLOAD.allows(DownloadState.NOT_DOWNLOADED, "accepted"))
        self.assertEqual(I.PENDING, (I.NOT_DOWNLOADED, I.DOWNLOAD_IN_PROGRESS))


class IsoTests(TemplateCase):
    def test_register_list_delete_iso(self) -> None:
        """An ISO is registered (format ISO, bootable), listed by listIsos only, and deleted with its files
        removed in ssvm."""
        r = self.ic.ok("registerIso", name="boot", displaytext="boot", url=ISO, zoneid=self.zone, bootable="true",
                       ispublic="true")
        iso = r["iso"][0]
        self.assertEqual((iso["format"], iso["bootable"], iso["status"]), ("ISO", True, "0% Downloaded"))
        self.assertEqual(self.ssvm.requests[self.download_id(iso["id"])].format, "iso")
        self.assertEqual([i["id"] for i in self.ic.ok("listIsos")["iso"]], [iso["id"]])
        self.assertEqual(self.listed(templatefilter="all"), [])
        self.assertEqual(self.ic.ok("listIsos", bootable="false"), {})
        did = self.download_id(iso["id"])
        self.assertEqual(self.ic.error("deleteTemplate", 431, id=iso["id"]), "Please specify a valid template.")
        self.assertEqual(self.ic.job("deleteIso", id=iso["id"])["jobstatus"], 1)
        self.assertEqual(self.ssvm.deleted, [did])
        self.assertEqual(self.ic.ok("listIsos"), {})


class LifecycleTests(TemplateCase):
    def test_update(self) -> None:
        """updateTemplate changes the given attributes only and answers the template."""
        t = self.register()
        r = self.ic.ok("updateTemplate", id=t["id"], name="renamed", displaytext="new text", passwordenabled="true",
                       requireshvm="false")["template"]
        self.assertEqual((r["name"], r["displaytext"], r["passwordenabled"], r["requireshvm"], r["format"]),
                         ("renamed", "new text", True, False, "QCOW2"))
        self.assertEqual(self.ic.error("updateIso", 431, id=t["id"], name="x"), "Please specify a valid ISO.")

    def test_delete_removes_files_in_ssvm(self) -> None:
        """deleteTemplate (async) removes the template and asks ssvm to delete its download's files."""
        t = self.register()
        did = self.download_id(t["id"])
        result = self.ic.job("deleteTemplate", id=t["id"])
        self.assertEqual(result["jobresult"], {"success": True})
        self.assertEqual(self.ssvm.deleted, [did])
        self.assertEqual(self.listed(templatefilter="all"), [])

    def test_files_deleted_when_the_ssvm_is_back(self) -> None:
        """A template deleted while its zone's ssvm is down is removed at once; its files are deleted in
        ssvm when it answers again."""
        t = self.register()
        did = self.download_id(t["id"])
        vm_id = self.ic.vm_id(self.zone)
        self.ic.supervisor.die(vm_id, forget=False)
        self.assertEqual(self.ic.job("deleteTemplate", id=t["id"])["jobstatus"], 1)
        self.assertEqual((self.ssvm.deleted, self.listed(templatefilter="all")), ([], []))
        self.ic.supervisor.restart(vm_id)
        self.assertEqual(self.ssvm.deleted, [did])
        self.assertNotIn(did, self.ssvm.statuses)

    def test_extract(self) -> None:
        """extractTemplate answers a signed URL of the stored file from the zone's ssvm."""
        t = self.register(isextractable="true")
        did = self.download_id(t["id"])
        self.assertIn("not ready", self.ic.job("extractTemplate", id=t["id"], mode="HTTP_DOWNLOAD")
                      ["jobresult"]["errortext"])
        self.ssvm.finish(did)
        self.ic.tick()
        result = self.ic.job("extractTemplate", id=t["id"], mode="HTTP_DOWNLOAD", zoneid=self.zone)
        body = result["jobresult"]["template"]
        self.assertEqual((body["id"], body["state"], body["extractMode"], body["zoneid"]),
                         (t["id"], "DOWNLOAD_URL_CREATED", "HTTP_DOWNLOAD", self.zone))
        self.assertTrue(body["url"].startswith("http://127.0.0.1:9999/template/tmpl/2/"), body)
        self.assertEqual(self.ssvm.signed[-1].ttl, 14400)
        self.assertIn("FTP_UPLOAD is not supported", self.ic.error("extractTemplate", 431, id=t["id"],
                                                                    mode="FTP_UPLOAD"))

    def test_copy_to_another_zone(self) -> None:
        """copyTemplate starts a download of the template in the destination zone's ssvm."""
        z2 = self.ic.zone("z2")
        self.ic.store(z2, os.path.abspath(self.mktemp()))
        t = self.register()
        result = self.ic.job("copyTemplate", id=t["id"], destzoneid=z2)
        self.assertEqual(result["jobresult"]["template"]["zoneid"], z2, result)
        self.assertEqual(len(self.ic.client(z2).started), 1)
        self.assertEqual(sorted(r["zonename"] for r in self.listed()), ["z1", "z2"])
        self.assertIn("already in zone", self.ic.error("copyTemplate", 431, id=t["id"], destzoneid=z2))


class PermissionTests(TemplateCase):
    def setUp(self) -> None:
        super().setUp()
        self.tenants = Tenants(self.ic.cloud)

    def as_(self, label: str) -> Any:
        return lambda command, **params: self.tenants.call(label, command, **params)

    def ids(self, label: str, flt: str, **params: Any) -> set[str]:
        return {t["id"] for t in self.listed(self.as_(label), templatefilter=flt, **params)}

    def ready(self, t: dict[str, Any]) -> None:
        self.ssvm.finish(self.download_id(t["id"]))
        self.ic.tick()

    def test_filters_and_sharing(self) -> None:
        """Each templatefilter shows what CloudStack shows: self the caller's own, featured the featured
        ones, community public non-featured, executable own + public + shared, sharedexecutable
        what was shared with the caller; `all` is for admins."""
        mine = self.register("a-private", caller=self.as_("a_user"))
        public = self.register("a-public", caller=self.as_("a_user"), ispublic="true")
        featured = self.register("featured", ispublic="true", isfeatured="true")
        for t in (mine, public, featured):
            self.ready(t)
        # a user asking for featured gets it ignored
        not_featured = self.register("b-feat", caller=self.as_("b_user"), isfeatured="true")
        self.assertFalse(not_featured["isfeatured"])
        self.assertEqual(self.ids("a_user", "self"), {mine["id"], public["id"]})
        self.assertEqual(self.ids("b_user", "self"), {not_featured["id"]})
        self.assertEqual(self.ids("b_user", "featured"), {featured["id"]})
        self.assertEqual(self.ids("b_user", "community"), {public["id"]})
        # executable: own (ready or not, as CloudStack lists for a caller's own view), public, shared
        self.assertEqual(self.ids("b_user", "executable"), {public["id"], featured["id"], not_featured["id"]})
        self.assertEqual(self.ids("b_user", "executable", ids=f"{public['id']},{mine['id']}"), {public["id"]})
        self.assertEqual(self.tenants.call("b_user", "listTemplates", templatefilter="system").status, 431)
        self.assertEqual(self.ids("b_user", "sharedexecutable"), set())
        self.assertEqual(self.ids("b_user", "selfexecutable"), set())  # not ready yet
        r = self.tenants.call("b_user", "listTemplates", templatefilter="all")
        self.assertEqual((r.status, r.inner()["errortext"]), (431, "Filter all can be specified by admin only"))
        # b_user cannot see, change or share a_user's private template
        self.assertEqual(self.ids("b_user", "executable", id=mine["id"]), set())
        self.assertEqual(self.tenants.call("b_user", "updateTemplate", id=mine["id"], name="x").status, 431)
        # sharing it with b_user's account
        b_account = self.tenants["b_user"].account
        r = self.tenants.call("a_user", "updateTemplatePermissions", id=mine["id"], op="add", accounts=b_account)
        self.assertEqual(r.status, 431, r.body)  # accounts are named in the template's domain
        self.ic.ok("updateTemplatePermissions", id=mine["id"], op="add", accounts=self.tenants["a_user2"].account)
        perms = self.ic.ok("listTemplatePermissions", id=mine["id"])["templatepermission"]
        self.assertEqual((perms["id"], perms["ispublic"], perms["account"]),
                         (mine["id"], False, []))  # a_user2 is a_user's own account: nothing to share

    def test_share_within_domain(self) -> None:
        """A template shared with another account of its domain is listed by sharedexecutable and
        executable for that account, and no longer once the share is removed."""
        other = self.ic.ok("createAccount", username="a_other", password="pw", firstname="f", lastname="l",
                           email="e@x", accounttype=0, domainid=self.tenants.a, account="acct-a-other")["account"]
        keys = self.ic.ok("registerUserKeys", id=other["user"][0]["id"])["userkeys"]
        from tests.util.tenants import v1_params

        def as_other(command: str, **params: Any) -> Any:
            return self.ic.cloud.request(v1_params(command, keys["apikey"], keys["secretkey"], **params))

        mine = self.register("to-share", caller=self.as_("a_user"))
        self.ready(mine)
        self.assertEqual(self.listed(as_other, templatefilter="sharedexecutable"), [])
        r = self.tenants.call("a_user", "updateTemplatePermissions", id=mine["id"], op="add", accounts="acct-a-other")
        self.assertEqual(r.status, 200, r.body)
        perms = self.tenants.call("a_user", "listTemplatePermissions", id=mine["id"]).inner()["templatepermission"]
        self.assertEqual(perms["account"], ["acct-a-other"])
        self.assertEqual([t["id"] for t in self.listed(as_other, templatefilter="sharedexecutable")], [mine["id"]])
        self.assertEqual([t["id"] for t in self.listed(as_other, templatefilter="executable")], [mine["id"]])
        self.tenants.call("a_user", "updateTemplatePermissions", id=mine["id"], op="reset")
        self.assertEqual(self.listed(as_other, templatefilter="sharedexecutable"), [])

    def test_domain_admin_sees_subtree(self) -> None:
        """A domain admin's listall shows the templates of its domain and below, not another domain's;
        `all` adds public ones."""
        a = self.register("in-a", caller=self.as_("a_user"))
        sub = self.register("in-sub", caller=self.as_("sub_user"))
        b = self.register("in-b", caller=self.as_("b_user"))
        self.assertEqual(self.ids("a_admin", "self", listall="true"), {a["id"], sub["id"]})
        self.assertEqual(self.ids("a_admin", "self"), set())
        self.assertEqual(self.ids("a_admin", "all"), {a["id"], sub["id"]})
        self.assertNotIn(b["id"], self.ids("a_admin", "all"))
        self.assertEqual(self.ids("b_admin", "self", listall="true"), {b["id"]})
        # the domain admin may change a template below it
        r = self.tenants.call("a_admin", "updateTemplate", id=sub["id"], displaytext="by admin")
        self.assertEqual(r.status, 200, r.body)

    def test_paging(self) -> None:
        """listTemplates pages with a total count."""
        for i in range(5):
            self.register(f"t{i}")
        page = self.ic.ok("listTemplates", templatefilter="self", page=2, pagesize=2)
        self.assertEqual((page["count"], [t["name"] for t in page["template"]]), (5, ["t2", "t3"]))
