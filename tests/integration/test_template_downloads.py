"""Templates downloaded by a real supervised ssvm child of a real `twistd cloudd`, from a local HTTP
server this test starts (tests/ssvm/httpserver.py, throttled so that progress is seen):

* a qcow2 made with `qemu-img` becomes Ready, with "N% Downloaded" seen in listTemplates at least
  twice on the way;
* a bad checksum, an image over `max.template.iso.size` and a refused address (loopback other than
  the allowed 127.0.0.1/32) each end in an error state with the reason in `status`;
* a `kill -9` of the ssvm child mid-download: cloudd restarts it and the download resumes or fails
  cleanly, never stuck at N%.

The image store is a directory of the daemon's base directory; the ssvm may fetch from 127.0.0.1
only because the test allows it (`secstorage.allowed.internal.sites`) before the store is added.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, ClassVar

from tests.integration.support import DaemonCase, poll, unique
from tests.util.daemon import ROOT

HTTP_SERVER = os.path.join(ROOT, "tests", "ssvm", "httpserver.py")
RATE = 256 * 1024  # bytes per second: a 2 MiB image takes about 8 s, several polls
FINAL_TIMEOUT = 120.0


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _qemu_img() -> str | None:
    return shutil.which("qemu-img")


class TemplateDownloadTests(DaemonCase):
    timeout = 600
    zone: ClassVar[str]
    store_dir: ClassVar[str]
    files: ClassVar[str]
    server: ClassVar[subprocess.Popen[bytes] | None] = None
    port: ClassVar[int]

    def setUp(self) -> None:
        if _qemu_img() is None:
            self.skipTest("qemu-img is not installed (Debian: qemu-utils)")
        # runs after DaemonCase's release (cleanups run last-in first-out)
        self.addCleanup(self._stop_server_with_daemon)
        super().setUp()
        cls = type(self)
        if "zone" not in cls.__dict__:
            self._prepare_cloud()

    # -- one-time setup: settings, zone, store, ssvm, HTTP server --------------------------------

    def _prepare_cloud(self) -> None:
        cls = type(self)
        self.admin.updateConfiguration(name="secstorage.allowed.internal.sites", value="127.0.0.1/32")
        self.admin.updateConfiguration(name="max.template.iso.size", value="1")
        commands = {c["name"] for c in self.admin.listApis()["api"]}
        if "addImageStore" not in commands:
            self.skipTest("this daemon has no image store commands")
        zone = self.admin.createZone(name=unique("tz"), dns1="192.0.2.53", internaldns1="192.0.2.53",
                                     networktype="Advanced")["zone"]
        cls.store_dir = os.path.join(self.daemon.basedir, "images")
        self.admin.addImageStore(provider="NFS", url=f"file://{cls.store_dir}", zoneid=zone["id"])
        cls.zone = zone["id"]
        try:
            poll(lambda: self._ssvm_state() == "Running", timeout=60)
        except AssertionError:
            self.fail(f"the zone's ssvm did not become Running: {self.admin.listSystemVms()}\n"
                      f"{self.daemon.log()[-4000:]}")
        cls.files = os.path.join(self.daemon.basedir, "http-files")
        os.makedirs(cls.files, exist_ok=True)
        raw = os.path.join(cls.files, "seed.raw")
        with open(raw, "wb") as f:
            f.write(os.urandom(2 * 2**20))
        subprocess.run([_qemu_img() or "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw,
                        os.path.join(cls.files, "tiny.qcow2")], check=True, capture_output=True)
        os.unlink(raw)
        with open(os.path.join(cls.files, "big.raw"), "wb") as f:
            f.truncate(3 * 2**30 // 2)  # sparse, over the 1 GiB limit
        cls.server = subprocess.Popen([sys.executable, HTTP_SERVER, "--dir", cls.files, "--port", "0",
                                       "--rate", str(RATE)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env={**os.environ, "PYTHONPATH": ROOT})
        assert cls.server.stdout is not None
        cls.port = int(cls.server.stdout.readline().strip())
        atexit.register(_kill, cls.server)

    @classmethod
    def _stop_server_with_daemon(cls) -> None:
        """The HTTP server ends with the class's daemon (once its last test has run)."""
        if cls.__dict__.get("_daemon") is None and cls.server is not None:
            _kill(cls.server)
            cls.server = None

    # -- helpers -----------------------------------------------------------------------------------

    def _ssvm(self) -> dict[str, Any] | None:
        vms = self.admin.listSystemVms(zoneid=type(self).zone if "zone" in type(self).__dict__ else None)
        found = vms.get("systemvm", [])
        return found[0] if found else None

    def _ssvm_state(self) -> str | None:
        vm = self._ssvm()
        return None if vm is None else str(vm["state"])

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{type(self).port}/{name}"

    def register(self, url: str, fmt: str = "QCOW2", **more: str) -> str:
        t = self.admin.registerTemplate(name=unique("t"), displaytext="test", url=url, format=fmt,
                                        hypervisor="KVM", zoneid=type(self).zone, **more)
        return str(t["template"][0]["id"])

    def status(self, template_id: str) -> dict[str, Any]:
        rows = self.admin.listTemplates(templatefilter="self", id=template_id).get("template", [])
        assert len(rows) == 1, rows
        return dict(rows[0])

    def follow(self, template_id: str, timeout: float = FINAL_TIMEOUT) -> tuple[dict[str, Any], list[str]]:
        """Poll listTemplates until the download ends; the last row and every status seen."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            row = self.status(template_id)
            if not seen or seen[-1] != row["status"]:
                seen.append(row["status"])
            if row["isready"] or not (row["status"].endswith("% Downloaded") or row["status"] == "NOT_DOWNLOADED"
                                      or row["status"] == "Installing Template"):
                return row, seen
            if time.monotonic() > deadline:
                raise AssertionError(f"download of {template_id} still at {row['status']} after {timeout} s "
                                     f"(seen {seen})")
            time.sleep(0.25)  # noqa: TID251 (polling another process)

    # -- the tests ---------------------------------------------------------------------------------

    def test_ready_with_progress(self) -> None:
        """The qcow2 becomes Ready; at least two "N% Downloaded" states were seen on the way."""
        tid = self.register(self.url("tiny.qcow2"))
        row, seen = self.follow(tid)
        self.assertTrue(row["isready"], (row, seen))
        self.assertEqual(row["status"], "Download Complete")
        progress = [s for s in seen if s.endswith("% Downloaded")]
        self.assertGreaterEqual(len(progress), 2, seen)
        self.assertGreater(row["size"], 0)
        self.assertGreater(row["physicalsize"], 2 * 2**20 // 2)

    def test_bad_checksum(self) -> None:
        """A checksum that does not match ends in an error naming the checksum."""
        tid = self.register(self.url("tiny.qcow2"), checksum="{SHA-256}" + "0" * 64)
        row, seen = self.follow(tid)
        self.assertFalse(row["isready"])
        self.assertIn("checksum", row["status"].lower(), seen)

    def test_oversized_image(self) -> None:
        """An image over max.template.iso.size (1 GiB here) ends in an error naming the size."""
        tid = self.register(self.url("big.raw"), fmt="RAW")
        row, seen = self.follow(tid)
        self.assertFalse(row["isready"])
        self.assertIn(str(2**30), row["status"], seen)

    def test_refused_address(self) -> None:
        """Loopback outside the allowed 127.0.0.1/32 is refused by ssvm's address policy, with the reason."""
        tid = self.register(self.url("tiny.qcow2", host="127.0.0.2"))
        row, seen = self.follow(tid)
        self.assertFalse(row["isready"])
        self.assertIn("loopback", row["status"].lower(), seen)

    def test_kill_ssvm_mid_download(self) -> None:
        """kill -9 of the ssvm child while it downloads: cloudd restarts it (listSystemVms shows it Running
        again) and the download ends, Ready or failed with a reason, never stuck."""
        tid = self.register(self.url("tiny.qcow2"))
        poll(lambda: self.status(tid)["status"] not in ("NOT_DOWNLOADED", "0% Downloaded"), timeout=60)
        vm = self._ssvm()
        assert vm is not None
        pidfile = os.path.join(self.daemon.basedir, "systemvms", vm["name"], "twistd.pid")
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGKILL)
        poll(lambda: self._ssvm_state() in ("Error", "Starting"), timeout=30)
        poll(lambda: self._ssvm_state() == "Running", timeout=60)
        with open(pidfile) as f:
            self.assertNotEqual(int(f.read().strip()), pid)
        row, seen = self.follow(tid)
        if not row["isready"]:
            self.assertNotRegex(row["status"], r"^\d+% Downloaded$")
