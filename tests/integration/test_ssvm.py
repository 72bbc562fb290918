"""The storage appliance as a real `twistd -n ssvm` process: its mutually authenticated control API
driven by curl and by cloudd's own client, config drives read back with isoinfo, downloads from a
local server, signed image URLs, and a `kill -9` in the middle of a download."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase

from appliance.messages import MessageError
from appliance.messages.common import Health
from appliance.messages.configdrive import ConfigDrive
from appliance.tls import TlsMaterial
from cloudd.agents.control import ControlError
from cloudd.agents.ssvm import StorageClient
from cloudd.pki import CertificateAuthority
from tests.integration.support import poll
from tests.ssvm import images
from tests.util.appliance import StorageAppliance
from tests.util.daemon import ROOT

DRIVE = {
    "uuid": "9f1c2b7e-1111-4222-8333-444455556666",
    "hostname": "web1",
    "metadata": {"availability-zone": "zone1", "service-offering": "Small"},
    "public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0 alice@laptop"],
    "user_data": "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6IFtlY2hvIGhpXQo=",
}


def isoinfo(path: str, *args: str) -> str:
    return subprocess.run(["isoinfo", "-i", path, *args], capture_output=True, check=True,
                          timeout=30).stdout.decode("utf-8", "replace")


class ControlChannelTests(TestCase):
    """Who may talk to the control API, and what happens when somebody else tries."""

    timeout = 120

    def setUp(self) -> None:
        self.app = StorageAppliance(self.mktemp())
        self.addCleanup(self.app.stop)
        self.app.start(timeout=60)

    def test_refused_without_authority_certificate(self) -> None:
        """Without a client certificate, with one from another authority, or with an appliance's own
        serving certificate, the TLS handshake fails before any request is read: nothing is stored
        and the request never reaches the log. cloudd's client certificate gets through."""
        now = datetime.datetime.now(datetime.UTC)
        foreign = os.path.join(self.app.basedir, "foreign")
        stranger = CertificateAuthority.create(now)
        stranger.issue_client("cloudd", now).write(foreign)
        for cert_dir in (None, foreign, self.app.tls_dir):
            rc, status, _ = self.app.curl("PUT", "/v1/configdrives/i-2-15-VM", DRIVE, cert_dir=cert_dir)
            self.assertNotEqual(rc, 0, cert_dir)
            self.assertIsNone(status, cert_dir)
        self.assertFalse(os.path.exists(os.path.join(self.app.store, "configdrive", "i-2-15-VM.iso")))
        self.assertNotIn("/v1/configdrives", self.app.log())

        rc, status, body = self.app.curl("PUT", "/v1/configdrives/i-2-15-VM", DRIVE)
        self.assertEqual((rc, status), (0, 200), body)
        self.assertIn("/v1/configdrives/i-2-15-VM", self.app.log())

    def test_plain_http_refused(self) -> None:
        """Plain HTTP on the control port gets no HTTP answer at all."""
        done = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                               f"http://127.0.0.1:{self.app.port}/health"], capture_output=True)
        self.assertIn(done.stdout, (b"000", b""))

    def test_bad_requests(self) -> None:
        """Bad input gets the error envelope with a 4xx, an oversized body 413, and the appliance
        keeps serving afterwards."""
        cases: list[tuple[str, str, Any, int, str]] = [
            ("PUT", "/v1/configdrives/i-2-15-VM", {"hostname": "web1"}, 400, "bad_request"),
            ("PUT", "/v1/configdrives/..", DRIVE, 404, "not_found"),
            ("PUT", "/v1/configdrives/i-2-15-VM", [1, 2], 400, "bad_request"),
            ("GET", "/v1/configdrives/i-9-9-VM", None, 404, "not_found"),
            ("PATCH", "/v1/configdrives/i-2-15-VM", None, 405, "method_not_allowed"),
            ("PUT", "/v1/downloads/t1", {"url": "ftp://x/y", "format": "qcow2"}, 400, "bad_request"),
            ("GET", "/v1/downloads/none-such", None, 404, "not_found"),
            ("POST", "/v1/urls", {"path": "../../etc/passwd"}, 400, "bad_request"),
            ("POST", "/v1/urls", {"path": "template/tmpl/1/2/none.qcow2"}, 404, "not_found"),
            ("GET", "/nothing/here", None, 404, "not_found"),
        ]
        for method, path, body, want, code in cases:
            rc, status, answer = self.app.curl(method, path, body)
            self.assertEqual((rc, status), (0, want), (method, path, answer))
            self.assertEqual(json.loads(answer)["error"]["code"], code, (method, path))
        rc, status, answer = self.app.curl("PUT", "/v1/configdrives/i-2-15-VM",
                                           {"hostname": "x" * (9 * 1024 * 1024)})
        self.assertEqual(status, 413, answer[:200])
        rc, status, answer = self.app.curl("GET", "/health")
        self.assertEqual((rc, status, json.loads(answer)), (0, 200, {"service": "ssvm", "status": "ok"}))


class CloudClientTests(TestCase):
    """cloudd's own client (`cloudd.agents.ssvm.StorageClient`) against the real appliance."""

    timeout = 180

    def setUp(self) -> Deferred[None]:
        self.app = StorageAppliance(self.mktemp())
        self.addCleanup(self.app.stop)
        self.app.start(timeout=60)
        self.client = StorageClient(reactor, self.app.control_url, TlsMaterial.from_directory(self.app.client_dir))
        self.addCleanup(lambda: ensureDeferred(self.client.close()))
        return ensureDeferred(self._ready())

    async def _ready(self) -> None:
        self.assertEqual(await self.client.health(), Health(service="ssvm", status="ok"))

    def test_config_drive_cycle(self) -> Deferred[None]:
        """Create, fetch, replace and delete a VM's config drive; the fetched bytes are the stored
        file, an ISO labelled config-2 with the VM's metadata."""
        return ensureDeferred(self._config_drive_cycle())

    async def _config_drive_cycle(self) -> None:
        stored = await self.client.put_config_drive("i-2-15-VM", ConfigDrive.from_json(DRIVE))
        self.assertEqual((stored.path, stored.location), ("configdrive/i-2-15-VM.iso", "SECONDARY"))
        path = os.path.join(self.app.store, "configdrive", "i-2-15-VM.iso")
        with open(path, "rb") as f:
            on_disk = f.read()
        fetched = await self.client.get_config_drive("i-2-15-VM")
        self.assertEqual(fetched, on_disk)
        self.assertEqual(hashlib.sha256(on_disk).hexdigest(), stored.sha256)
        self.assertIn("Volume id: config-2", isoinfo(path, "-d"))
        meta = json.loads(isoinfo(path, "-R", "-x", "/openstack/latest/meta_data.json"))
        self.assertEqual((meta["uuid"], meta["hostname"]), (DRIVE["uuid"], "web1"))

        again = await self.client.put_config_drive("i-2-15-VM", ConfigDrive.from_json(dict(DRIVE, hostname="web2")))
        self.assertNotEqual(again.sha256, stored.sha256)
        meta = json.loads(isoinfo(path, "-R", "-x", "/openstack/latest/meta_data.json"))
        self.assertEqual(meta["hostname"], "web2")

        self.assertTrue(await self.client.delete_config_drive("i-2-15-VM"))
        self.assertFalse(os.path.exists(path))
        self.assertIsNone(await self.client.get_config_drive("i-2-15-VM"))
        self.assertFalse(await self.client.delete_config_drive("i-2-15-VM"))
        bad = {"uuid": "not-a-uuid", "hostname": "x"}
        with self.assertRaises(MessageError):  # cloudd refuses it before sending it
            ConfigDrive.from_json(bad)
        with self.assertRaises(ControlError) as caught:  # and so does the appliance
            await self.client.call("PUT", "/v1/configdrives/i-2-15-VM", bad)
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "bad_request"))

    def test_storage(self) -> Deferred[None]:
        """The store reports its capacity and use."""
        return ensureDeferred(self._storage())

    async def _storage(self) -> None:
        figures = await self.client.storage()
        self.assertGreater(figures.total, 0)
        self.assertGreaterEqual(figures.total, figures.free)
        self.assertEqual(await self.client.images(), [])




class FileServerProcess:
    """tests/ssvm/httpserver.py as its own process serving `directory` at `rate` bytes/s, logging
    each request (path and Range header) as a JSON line to `log_path`."""

    def __init__(self, directory: str, rate: int = 0) -> None:
        self.directory = directory
        self.log_path = os.path.join(directory, "..", "requests.log")
        script = os.path.join(os.path.dirname(__file__), "..", "ssvm", "httpserver.py")
        self.proc = subprocess.Popen([sys.executable, script, "--dir", directory, "--port", "0",
                                      "--rate", str(rate), "--log", self.log_path],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONPATH=ROOT))
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def requests(self) -> list[dict[str, Any]]:
        try:
            with open(self.log_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class DownloadProcessTests(TestCase):
    """Downloads through the real appliance, a real local server and curl."""

    timeout = 300

    def setUp(self) -> None:
        self.files = os.path.abspath(self.mktemp())
        os.makedirs(self.files)

    def serve(self, name: str, data: bytes, rate: int = 0) -> FileServerProcess:
        with open(os.path.join(self.files, name), "wb") as f:
            f.write(data)
        server = FileServerProcess(self.files, rate)
        self.addCleanup(server.stop)
        return server

    def appliance(self, basedir: str | None = None) -> StorageAppliance:
        app = StorageAppliance(basedir or self.mktemp(), settings='[download]\nallowed_cidrs = ["127.0.0.1/32"]\n')
        self.addCleanup(app.stop)
        app.start(timeout=60)
        return app

    def status(self, app: StorageAppliance, download_id: str) -> dict[str, Any]:
        rc, code, body = app.curl("GET", f"/v1/downloads/{download_id}")
        self.assertEqual((rc, code), (0, 200), body)
        value: dict[str, Any] = json.loads(body)
        return value

    def test_download_and_signed_url(self) -> None:
        """A qcow2 template downloads with its sha256 checked and is listed; a signed URL serves it
        to curl whole and by Range; an altered or expired URL is refused."""
        image = images.qcow2(10 * 2**30, padding=3 * 2**20)
        server = self.serve("disk.qcow2", image)
        app = self.appliance()
        request = {"url": server.url("disk.qcow2"), "format": "qcow2", "account_id": 2, "template_id": 205,
                   "unique_name": "205-2-abc", "checksum": "{SHA-256}" + hashlib.sha256(image).hexdigest()}
        rc, code, body = app.curl("PUT", "/v1/downloads/t205", request)
        self.assertEqual((rc, code), (0, 202), body)
        done = poll(lambda: (s := self.status(app, "t205"))["state"] in ("DOWNLOADED", "ERROR") and s, 60)
        self.assertEqual(done["state"], "DOWNLOADED", done)
        self.assertEqual(done["virtual_size"], 10 * 2**30)
        install_path = done["install_path"]
        self.assertTrue(install_path.startswith("template/tmpl/2/205/"), install_path)
        rc, code, body = app.curl("GET", "/v1/images")
        self.assertIn(install_path, [i["install_path"] for i in json.loads(body)["images"]])

        rc, code, body = app.curl("POST", "/v1/urls", {"path": install_path, "ttl": 2})
        self.assertEqual((rc, code), (0, 200), body)
        url = json.loads(body)["url"]
        self.assertTrue(url.startswith(app.public_url + "/images/"), url)
        whole = subprocess.run(["curl", "-sS", "-f", url], capture_output=True, timeout=30)
        self.assertEqual(whole.stdout, image)
        part = subprocess.run(["curl", "-sS", "-f", "-r", "100-299", "-w", "\n%{http_code}", url],
                              capture_output=True, timeout=30)
        self.assertEqual(part.stdout, image[100:300] + b"\n206")
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        for bad in (tampered, url.split("?")[0], url.replace("205", "206", 1)):
            got = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", bad],
                                 capture_output=True, timeout=30)
            self.assertIn(got.stdout, (b"403", b"404"), bad)
        signature = url.rsplit("signature=", 1)[1]
        self.assertIn("/images/template/tmpl/2/205/", app.log())
        self.assertNotIn(signature, app.log())
        time.sleep(2.5)  # let the two-second URL expire
        got = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url],
                             capture_output=True, timeout=30)
        self.assertEqual(got.stdout, b"403")

    def test_refused_by_name(self) -> None:
        """`localhost` resolves to loopback, which an appliance that allows nothing refuses after
        resolving it: the download ends in ERROR saying why, and no partial file is left."""
        server = self.serve("disk.qcow2", images.qcow2(2**30))
        app = StorageAppliance(self.mktemp())
        self.addCleanup(app.stop)
        app.start(timeout=60)
        request = {"url": f"http://localhost:{server.port}/disk.qcow2", "format": "qcow2", "account_id": 2,
                   "template_id": 7, "unique_name": "7-2-x"}
        self.assertEqual(app.curl("PUT", "/v1/downloads/t7", request)[1], 202)
        done = poll(lambda: (s := self.status(app, "t7"))["state"] in ("DOWNLOADED", "ERROR") and s, 30)
        self.assertEqual(done["state"], "ERROR")
        self.assertIn("loopback", done["error"])
        self.assertEqual(server.requests(), [])
        folder = os.path.join(app.store, "template", "tmpl", "2", "7")
        self.assertEqual(os.listdir(folder) if os.path.isdir(folder) else [], [])

    def test_kill_mid_download(self) -> None:
        """`kill -9` of the appliance in the middle of a throttled 24 MiB download, then a restart:
        the download resumes with a Range request and finishes with the right checksum; it is never
        left in DOWNLOADING."""
        image = images.qcow2(20 * 2**30, padding=24 * 2**20)
        server = self.serve("big.qcow2", image, rate=6 * 2**20)
        basedir = os.path.abspath(self.mktemp())
        app = self.appliance(basedir)
        request = {"url": server.url("big.qcow2"), "format": "qcow2", "account_id": 3, "template_id": 9,
                   "unique_name": "9-3-big", "checksum": "{SHA-256}" + hashlib.sha256(image).hexdigest()}
        self.assertEqual(app.curl("PUT", "/v1/downloads/t9", request)[1], 202)
        poll(lambda: self.status(app, "t9")["bytes"] > 4 * 2**20, 30)
        app.kill()
        app.start(timeout=60)
        done = poll(lambda: (s := self.status(app, "t9"))["state"] != "DOWNLOADING" and s, 90)
        self.assertEqual(done["state"], "DOWNLOADED", done)
        self.assertEqual(done["checksum"].lower(), "{sha-256}" + hashlib.sha256(image).hexdigest())
        ranges = [r.get("range") for r in server.requests()]
        self.assertEqual(ranges[0], None)
        self.assertTrue(any(r and r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges[1:]),
                        ranges)
        with open(os.path.join(app.store, done["install_path"]), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(image).hexdigest())
