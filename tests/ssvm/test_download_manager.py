"""DownloadManager end to end: a real twisted.web server on 127.0.0.1, the real Agent, thread pool
and file system; nothing of the HTTP stack is faked. Every test also proves, through
`LoopbackOnlyReactor`, that no connection to a refused address was ever attempted."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from ssvm.download import properties
from ssvm.download.errors import DownloadConflict, DownloadRequestError
from ssvm.download.manager import DownloadManager
from ssvm.download.policy import AddressPolicy
from tests.ssvm import images
from tests.ssvm.httpserver import FileServer, LoopbackOnlyReactor, StaticResolver

MiB = 2**20


def sleep(seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    cast(Any, reactor).callLater(seconds, d.callback, None)
    return d


def checksum(data: bytes, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, data).hexdigest()


class DownloadTestCase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.server = FileServer(reactor)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.pool = ThreadPool(minthreads=0, maxthreads=4, name="test-downloads")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.root = os.path.abspath(self.mktemp())
        self.state_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.guard = LoopbackOnlyReactor(reactor)
        self.events: list[dict[str, Any]] = []
        observer = cast(Any, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def tearDown(self) -> None:
        self.assertEqual(self.guard.forbidden, [])

    def manager(self, allowed: tuple[str, ...] = ("127.0.0.1/32",), *, start: bool = True,
                **options: Any) -> DownloadManager:
        options.setdefault("retry_delay", 0.05)
        manager = DownloadManager(self.root, self.state_dir, self.guard, self.pool, AddressPolicy(allowed),
                                  **options)
        if start:
            manager.startService()
        self.addCleanup(lambda: manager.stopService() if manager.running else None)
        return manager

    def request(self, url: str, image_format: str, **extra: Any) -> dict[str, Any]:
        value = {"url": url, "format": image_format, "account_id": 2, "template_id": 201,
                 "unique_name": "201-2-abc"}
        value.update(extra)
        return value

    async def download(self, manager: DownloadManager, request: dict[str, Any],
                       download_id: str = "d1") -> dict[str, Any]:
        manager.start(download_id, request)
        status = await manager.wait(download_id)
        assert status is not None
        return status

    def state_file(self, download_id: str = "d1") -> dict[str, Any]:
        with open(os.path.join(self.state_dir, f"{download_id}.json")) as handle:
            value: dict[str, Any] = json.load(handle)
        return value

    def template_dir(self, account: int = 2, template: int = 201) -> str:
        return os.path.join(self.root, "template", "tmpl", str(account), str(template))

    def partial_files(self) -> list[str]:
        found: list[str] = []
        for directory, _, names in os.walk(self.root):
            found.extend(os.path.join(directory, name) for name in names if name.startswith("dnld"))
        return found

    def assert_failed(self, status: dict[str, Any], text: str, download_id: str = "d1") -> None:
        """ERROR with `text` in the message, no partial file, and a state file that says ERROR."""
        self.assertEqual(status["state"], "ERROR", status)
        self.assertIn(text, status["error"])
        self.assertIsNone(status["install_path"])
        self.assertEqual(self.partial_files(), [])
        self.assertEqual(self.state_file(download_id)["state"], "ERROR")
        self.assertFalse(os.path.exists(os.path.join(self.template_dir(), properties.FILE_NAME)))


class SuccessTests(DownloadTestCase):
    async def test_qcow2_with_sha256(self) -> None:
        """A qcow2 with the right checksum is installed with exact properties and status."""
        data = images.qcow2(10 * 2**30)
        url = self.server.add("/images/ubuntu.qcow2", data)
        manager = self.manager()
        status = await self.download(manager, self.request(
            url + "?token=SECRET", "qcow2", checksum="{SHA-256}" + checksum(data).upper(), name="Ubuntu 24.04",
            description="Ubuntu: 24.04=LTS", hvm=True))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        file_name = status["install_path"].rsplit("/", 1)[1]
        self.assertRegex(file_name, r"^[0-9a-f-]{36}\.qcow2$")
        self.assertEqual(status, {
            "id": "d1", "state": "DOWNLOADED", "percent": 100, "bytes": len(data), "total": len(data),
            "error": None, "install_path": f"template/tmpl/2/201/{file_name}", "physical_size": len(data),
            "virtual_size": 10 * 2**30, "checksum": "{SHA-256}" + checksum(data), "format": "qcow2",
            "url": url + "?token=SECRET"})
        directory = self.template_dir()
        self.assertEqual(sorted(os.listdir(directory)), sorted([file_name, "template.properties"]))
        with open(os.path.join(directory, file_name), "rb") as handle:
            self.assertEqual(handle.read(), data)
        self.assertEqual(os.stat(os.path.join(directory, file_name)).st_mode & 0o777, 0o644)
        with open(os.path.join(directory, "template.properties")) as handle:
            text = handle.read()
        lines = text.splitlines()
        self.assertEqual(lines[0], "#")
        self.assertRegex(lines[1], r"^#\w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4}$")
        self.assertIn("description=Ubuntu\\: 24.04\\=LTS", lines)
        values = properties.parse(text)
        self.assertEqual(values, {
            "filename": file_name, "description": "Ubuntu: 24.04=LTS", "hvm": "true", "size": str(len(data)),
            "id": "201", "public": "true", "uniquename": "201-2-abc", "qcow2": "true",
            "qcow2.filename": file_name, "qcow2.size": str(len(data)), "qcow2.virtualsize": str(10 * 2**30),
            "virtualsize": str(10 * 2**30)})
        self.assertEqual(properties.problems(values), [])
        self.assertEqual(self.state_file()["state"], "DOWNLOADED")
        self.assertEqual(self.state_file()["history"], ["NOT_STARTED", "DOWNLOADING", "DOWNLOADED"])
        self.assertEqual(manager.images(), [{
            "id": 201, "account_id": 2, "install_path": status["install_path"], "format": "qcow2",
            "physical_size": len(data), "virtual_size": 10 * 2**30, "unique_name": "201-2-abc"}])
        self.assertEqual(await manager.refresh_images(), manager.images())
        logged = json.dumps([repr(event) for event in self.events
                             if str(event.get("log_namespace", "")).startswith("ssvm")])
        self.assertNotIn("SECRET", logged)

    async def test_every_algorithm(self) -> None:
        """MD5 without a prefix, and each SHA with and without the dash, verify and are reported."""
        data = images.raw(300_000)
        url = self.server.add("/disk.raw", data)
        manager = self.manager()
        cases = [("", "md5", "MD5"), ("{MD5}", "md5", "MD5"), ("{SHA-1}", "sha1", "SHA-1"),
                 ("{sha-224}", "sha224", "SHA-224"), ("{SHA256}", "sha256", "SHA-256"),
                 ("{SHA-384}", "sha384", "SHA-384"), ("{SHA512}", "sha512", "SHA-512")]
        for number, (prefix, algorithm, name) in enumerate(cases):
            request = self.request(url, "raw", checksum=prefix + checksum(data, algorithm), template_id=300 + number)
            status = await self.download(manager, request, f"alg{number}")
            self.assertEqual(status["state"], "DOWNLOADED", status)
            self.assertEqual(status["checksum"], f"{{{name}}}{checksum(data, algorithm)}")
            self.assertTrue(status["install_path"].endswith(".img"))

    async def test_no_checksum_reports_sha256(self) -> None:
        """Without a requested checksum the download still reports a computed {SHA-256}."""
        data = images.iso()
        url = self.server.add("/boot.iso", data)
        status = await self.download(self.manager(), self.request(url, "iso", name="Debian 12 netinst"))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(status["checksum"], "{SHA-256}" + checksum(data))
        self.assertEqual(status["install_path"], "template/tmpl/2/201/Debian_12_netinst.iso")
        self.assertEqual(status["virtual_size"], len(data))

    async def test_iso_name_is_sanitised(self) -> None:
        """An ISO's file name keeps only [A-Za-z0-9._-], never a path component or leading dot."""
        url = self.server.add("/x.iso", images.iso())
        status = await self.download(self.manager(), self.request(url, "iso", name="../../etc/pass wd;rm -rf.ISO"))
        self.assertEqual(status["install_path"], "template/tmpl/2/201/_.._etc_pass_wd_rm_-rf.iso")

    async def test_other_formats(self) -> None:
        """Fixed and dynamic VHD (virtual size from the footer), OVA (tar) and raw are accepted."""
        cases = [("vhd", images.vhd_fixed(65536), 65536), ("vhd", images.vhd_dynamic(2**30), 2**30),
                 ("ova", images.tar({"a.ovf": b"<Envelope/>", "disk1.vmdk": os.urandom(5000)}), None),
                 ("raw", images.raw(1000), None)]
        manager = self.manager()
        for number, (image_format, data, virtual) in enumerate(cases):
            url = self.server.add(f"/f{number}", data)
            status = await self.download(manager, self.request(url, image_format, template_id=400 + number),
                                         f"f{number}")
            self.assertEqual(status["state"], "DOWNLOADED", status)
            self.assertEqual(status["virtual_size"], virtual or len(data))
            self.assertEqual(status["physical_size"], len(data))

    async def test_without_content_length(self) -> None:
        """A chunked body (no Content-Length) downloads; the percentage is against the maximum size."""
        data = images.qcow2(2**30)
        url = self.server.add("/chunked.qcow2", data, content_length=False)
        status = await self.download(self.manager(), self.request(url, "qcow2", checksum=checksum(data, "md5")))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertIsNone(status["total"])

    async def test_good_redirects(self) -> None:
        """Relative and absolute redirects to allowed addresses are followed (each hop checked)."""
        data = images.qcow2(2**20)
        self.server.add("/real/image.qcow2", data)
        self.server.redirect("/b", "/real/image.qcow2", 307)
        url = self.server.redirect("/a", self.server.url("/b"), 301)
        status = await self.download(self.manager(), self.request(url, "qcow2", checksum=checksum(data, "md5")))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual([seen.path for seen in self.server.requests], ["/a", "/b", "/real/image.qcow2"])
        self.assertEqual(status["url"], url)

    async def test_basic_auth_only_for_first_origin(self) -> None:
        """URL credentials become preemptive basic auth for the first origin only; never shown."""
        data = images.qcow2(2**20)
        self.server.add("/final.qcow2", data)
        self.server.redirect("/start", self.server.url("/final.qcow2", host="localhost"))
        resolver = StaticResolver({"localhost": ["127.0.0.1"]})
        manager = self.manager(resolver=resolver)
        url = f"http://user:pa%3Ass@127.0.0.1:{self.server.port}/start"
        status = await self.download(manager, self.request(url, "qcow2"))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(status["url"], f"http://127.0.0.1:{self.server.port}/start")
        first, second = self.server.requests
        self.assertEqual(first.headers["authorization"], "Basic dXNlcjpwYTpzcw==")
        self.assertNotIn("authorization", second.headers)
        self.assertNotIn("pa:ss", json.dumps([repr(event) for event in self.events]))
        self.assertNotIn("dXNlcjpwYTpzcw", json.dumps([repr(event) for event in self.events]))


class RefusalTests(DownloadTestCase):
    async def test_wrong_checksum(self) -> None:
        data = images.qcow2(2**30)
        url = self.server.add("/a.qcow2", data)
        status = await self.download(self.manager(), self.request(url, "qcow2", checksum="{SHA-1}" + "0" * 40))
        self.assert_failed(status, f"checksum {{SHA-1}}{checksum(data, 'sha1')} didn't match the requested "
                                   f"{{SHA-1}}{'0' * 40}")

    async def test_oversize_by_content_length(self) -> None:
        """A Content-Length above the maximum fails before the body is read."""
        data = images.qcow2(2**30, padding=4 * MiB)
        url = self.server.add("/big.qcow2", data, rate=MiB)
        status = await self.download(self.manager(), self.request(url, "qcow2", max_size=MiB))
        self.assert_failed(status, f"the download is {len(data)} bytes, larger than the maximum size of {MiB} bytes")
        self.assertEqual(status["bytes"], 0)

    async def test_oversize_while_streaming(self) -> None:
        """Without a Content-Length the body is counted and cut at the maximum size."""
        data = images.qcow2(2**30, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, content_length=False)
        status = await self.download(self.manager(max_size=2 * MiB), self.request(url, "qcow2"))
        self.assert_failed(status, f"larger than the maximum size of {2 * MiB} bytes")
        self.assertLessEqual(status["bytes"], 2 * MiB)

    async def test_declared_qcow2_but_raw(self) -> None:
        url = self.server.add("/a.qcow2", images.raw(200_000))
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "declared qcow2 but the content is unrecognised data")

    async def test_declared_iso_but_qcow2(self) -> None:
        url = self.server.add("/a.iso", images.qcow2(2**30))
        status = await self.download(self.manager(), self.request(url, "iso"))
        self.assert_failed(status, "declared iso but the content is a qcow2 image")

    async def test_declared_raw_but_fixed_vhd(self) -> None:
        """A fixed VHD, recognisable only by its footer, is not accepted as raw."""
        url = self.server.add("/a.img", images.vhd_fixed(100_000))
        status = await self.download(self.manager(), self.request(url, "raw"))
        self.assert_failed(status, "declared raw but the content is a VHD image")

    async def test_compressed_is_refused(self) -> None:
        import gzip

        url = self.server.add("/a.qcow2.gz", gzip.compress(images.qcow2(2**30)))
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "gzip-compressed; compressed downloads are not supported")

    async def test_qcow2_with_backing_file(self) -> None:
        url = self.server.add("/a.qcow2", images.qcow2(2**30, backing=b"/etc/shadow"))
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "qcow2 image has a backing file")

    async def test_qcow2_with_external_data_file(self) -> None:
        url = self.server.add("/a.qcow2", images.qcow2(2**30, incompatible=4))
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "external data file")

    async def test_differencing_vhd(self) -> None:
        url = self.server.add("/a.vhd", images.vhd_dynamic(2**30, disk_type=4))
        status = await self.download(self.manager(), self.request(url, "vhd"))
        self.assert_failed(status, "differencing VHD refused")

    async def test_redirect_to_loopback(self) -> None:
        """A redirect to 127.0.0.2 fails at connect time; nothing connects to it."""
        url = self.server.redirect("/r", f"http://127.0.0.2:{self.server.port}/x")
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, f"after a redirect to http://127.0.0.2:{self.server.port}/x: "
                                   "refused: 127.0.0.2 (loopback)")
        self.assertEqual(self.guard.connections, ["127.0.0.1"])

    async def test_redirect_to_metadata_address(self) -> None:
        url = self.server.redirect("/r", "http://169.254.169.254/latest/meta-data/")
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "refused: 169.254.169.254 (link-local)")
        self.assertEqual(self.guard.connections, ["127.0.0.1"])

    async def test_redirect_to_other_scheme(self) -> None:
        url = self.server.redirect("/r", "file:///etc/passwd")
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "URL scheme 'file' is not allowed")

    async def test_redirect_loop(self) -> None:
        """A loop stops after the hop limit with a clear error."""
        self.server.redirect("/a", "/b")
        url = self.server.redirect("/b", "/a")
        status = await self.download(self.manager(max_redirects=3), self.request(url, "qcow2"))
        self.assert_failed(status, "too many redirects (more than 3)")
        self.assertEqual(len(self.server.requests), 4)

    async def test_refused_name_from_resolver(self) -> None:
        """A name that resolves to a refused address is refused, naming both."""
        resolver = StaticResolver({"images.example.test": ["127.0.0.2"]})
        manager = self.manager(resolver=resolver)
        status = await self.download(manager, self.request("http://images.example.test/a.qcow2", "qcow2"))
        self.assertEqual(status["error"], "refused: images.example.test resolves to 127.0.0.2 (loopback)")
        self.assert_failed(status, "refused: images.example.test resolves to 127.0.0.2 (loopback)")
        self.assertEqual(resolver.asked, ["images.example.test"])
        self.assertEqual(self.guard.connections, [])

    async def test_refused_name_from_real_resolver(self) -> None:
        """`localhost`, resolved by the reactor's resolver, is refused when nothing is allowed."""
        status = await self.download(self.manager(allowed=()), self.request("http://localhost:9/a", "qcow2"))
        self.assert_failed(status, "refused: localhost resolves to ")
        self.assertRegex(status["error"], r"resolves to (127\.0\.0\.1|::1) \(loopback\)$")
        self.assertEqual(self.guard.connections, [])

    async def test_unresolvable_name(self) -> None:
        manager = self.manager(resolver=StaticResolver({}))
        status = await self.download(manager, self.request("http://nowhere.test/a", "qcow2"))
        self.assert_failed(status, "nowhere.test did not resolve to any address")

    async def test_http_error(self) -> None:
        url = self.server.url("/missing")
        status = await self.download(self.manager(), self.request(url, "qcow2"))
        self.assert_failed(status, "the server answered 404 Not Found")

    async def test_connection_refused_is_retried_then_fails(self) -> None:
        port = self.server.port
        await self.server.stop()
        status = await self.download(self.manager(), self.request(f"http://127.0.0.1:{port}/a", "qcow2"))
        self.assert_failed(status, f"request to 127.0.0.1:{port} failed")


class StartApiTests(DownloadTestCase):
    async def test_idempotent_start_and_conflicts(self) -> None:
        data = images.qcow2(2**20)
        url = self.server.add("/a.qcow2", data)
        manager = self.manager()
        request = self.request(url, "qcow2")
        first = manager.start("d1", request)
        self.assertIn(first["state"], ("NOT_STARTED", "DOWNLOADING"))
        again = manager.start("d1", dict(request))
        self.assertEqual(again["id"], "d1")
        with self.assertRaises(DownloadConflict):
            manager.start("d1", self.request(url, "raw"))
        with self.assertRaises(DownloadConflict):
            manager.start("d2", request)  # same install directory
        await manager.wait("d1")
        self.assertEqual(manager.start("d1", request)["state"], "DOWNLOADED")
        self.assertEqual([status["id"] for status in manager.list()], ["d1"])

    def test_bad_requests(self) -> None:
        manager = self.manager(start=False)
        good = self.request("http://127.0.0.1/a", "qcow2")
        bad: list[tuple[str, Any, str]] = [
            ("../x", good, "download id must match"),
            ("d", "nope", "must be a JSON object"),
            ("d", {**good, "url": "ftp://x/a"}, "URL scheme 'ftp' is not allowed"),
            ("d", {**good, "url": "http://x/a b"}, "white space"),
            ("d", {**good, "format": "vmdk"}, "format must be one of"),
            ("d", {**good, "checksum": "{CRC32}abcd"}, "not one of"),
            ("d", {**good, "checksum": "{SHA-256}abcd"}, "must have 64 hex digits"),
            ("d", {**good, "account_id": "2"}, "account_id must be a positive integer"),
            ("d", {**good, "template_id": True}, "template_id must be a positive integer"),
            ("d", {**good, "unique_name": ""}, "unique_name must not be empty"),
            ("d", {**good, "hvm": "yes"}, "hvm must be true or false"),
            ("d", {**good, "max_size": 0}, "max_size must be a positive integer"),
            ("d", {**good, "extra": 1}, "unknown field(s): extra"),
            ("d", {**good, "name": "a\nb"}, "name contains a control character"),
        ]
        for download_id, request, text in bad:
            with self.assertRaises(DownloadRequestError) as caught:
                manager.start(download_id, request)
            self.assertIn(text, str(caught.exception))
        self.assertEqual(manager.list(), [])

    def test_max_size_is_capped(self) -> None:
        manager = self.manager(start=False, max_size=1000)
        status = manager.start("d1", self.request("http://127.0.0.1/a", "qcow2", max_size=10**12))
        self.assertEqual(status["state"], "NOT_STARTED")
        self.assertEqual(manager._records["d1"].request.max_size, 1000)


class ProgressAndResumeTests(DownloadTestCase):
    timeout = 120

    async def wait_for_bytes(self, manager: DownloadManager, at_least: int) -> dict[str, Any]:
        for _ in range(1000):
            status = manager.status("d1")
            assert status is not None
            if status["bytes"] >= at_least or status["state"] not in ("NOT_STARTED", "DOWNLOADING"):
                return status
            await sleep(0.02)
        raise AssertionError("no progress")

    async def test_progress_is_observable(self) -> None:
        """A throttled 50 MiB download reports increasing bytes and several percentages."""
        data = images.qcow2(2**34, padding=50 * MiB)
        url = self.server.add("/big.qcow2", data, rate=25 * MiB)
        manager = self.manager(persist_interval=0.5)
        manager.start("d1", self.request(url, "qcow2", checksum="{SHA-256}" + checksum(data)))
        seen: list[tuple[int, int]] = []
        states = set()
        persisted = set()
        while True:
            current = manager.status("d1")
            assert current is not None
            status = current
            states.add(status["state"])
            if status["state"] != "DOWNLOADING" and status["state"] != "NOT_STARTED":
                break
            seen.append((status["percent"], status["bytes"]))
            if os.path.exists(os.path.join(self.state_dir, "d1.json")):
                persisted.add(self.state_file()["bytes"])
            await sleep(0.1)
        self.assertEqual(status["state"], "DOWNLOADED", status)
        percents = {percent for percent, _ in seen if 0 < percent < 100}
        self.assertGreaterEqual(len(percents), 5, seen)
        byte_counts = [count for _, count in seen]
        self.assertEqual(byte_counts, sorted(byte_counts))
        self.assertGreater(len(persisted - {0}), 1, "progress is persisted periodically")

    async def test_resume_after_restart(self) -> None:
        """Stopping the service keeps the partial file; a new manager resumes with a Range request."""
        data = images.qcow2(2**34, padding=12 * MiB)
        url = self.server.add("/big.qcow2", data, rate=8 * MiB)
        first = self.manager()
        first.start("d1", self.request(url, "qcow2", checksum="{SHA-512}" + checksum(data, "sha512")))
        status = await self.wait_for_bytes(first, 3 * MiB)
        self.assertEqual(status["state"], "DOWNLOADING")
        await first.stopService()
        saved = self.state_file()
        self.assertEqual(saved["state"], "DOWNLOADING")
        partial = self.partial_files()
        self.assertEqual(len(partial), 1)
        offset = os.path.getsize(partial[0])
        self.assertGreaterEqual(offset, 3 * MiB)
        self.assertEqual(saved["bytes"], offset)
        self.assertIsNotNone(saved["etag"])

        second = self.manager()
        final = await second.wait("d1")
        assert final is not None
        status = final
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(status["checksum"], "{SHA-512}" + checksum(data, "sha512"))
        self.assertEqual(self.server.ranges("/big.qcow2"), [None, f"bytes={offset}-"])
        resumed = self.server.requests[-1]
        self.assertEqual(resumed.headers["if-range"], saved["etag"])
        self.assertEqual(resumed.status, 206)
        with open(os.path.join(self.root, status["install_path"]), "rb") as handle:
            self.assertEqual(hashlib.sha256(handle.read()).digest(), hashlib.sha256(data).digest())

    def crash_before_downloaded_was_saved(self) -> None:
        """Rewrite the state file as a crash right after the install would have left it."""
        saved = self.state_file()
        saved["state"] = "DOWNLOADING"
        with open(os.path.join(self.state_dir, "d1.json"), "w") as handle:
            json.dump(saved, handle)

    async def test_installed_before_the_crash(self) -> None:
        """An image installed just before a crash, whose DOWNLOADED state never reached the disk, is
        checked again on the next start and recorded DOWNLOADED without downloading anything."""
        data = images.qcow2(2**34, padding=2 * MiB)
        url = self.server.add("/disk.qcow2", data)
        first = self.manager()
        status = await self.download(first, self.request(url, "qcow2", checksum="{SHA-256}" + checksum(data, "sha256")))
        self.assertEqual(status["state"], "DOWNLOADED")
        await first.stopService()
        self.crash_before_downloaded_was_saved()
        requests = len(self.server.requests)

        final = await self.manager().wait("d1")
        assert final is not None
        self.assertEqual((final["state"], final["install_path"], final["checksum"]),
                         ("DOWNLOADED", status["install_path"], status["checksum"]))
        self.assertEqual(len(self.server.requests), requests)
        self.assertEqual(self.state_file()["state"], "DOWNLOADED")

    async def test_installed_but_damaged_before_the_crash(self) -> None:
        """If that installed image no longer matches its checksum, the download fails and the
        directory is removed."""
        data = images.qcow2(2**34, padding=2 * MiB)
        url = self.server.add("/disk.qcow2", data)
        first = self.manager()
        status = await self.download(first, self.request(url, "qcow2", checksum="{SHA-256}" + checksum(data, "sha256")))
        await first.stopService()
        self.crash_before_downloaded_was_saved()
        with open(os.path.join(self.root, status["install_path"]), "r+b") as handle:
            handle.seek(MiB)
            handle.write(b"damage")

        final = await self.manager().wait("d1")
        assert final is not None
        self.assertEqual(final["state"], "ERROR")
        self.assertIn("didn't match", final["error"])
        self.assertFalse(os.path.exists(self.template_dir()))

    async def test_restart_from_zero_when_range_is_ignored(self) -> None:
        """A server that answers 200 to a Range request makes the download start again from zero."""
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=8 * MiB, honour_range=False)
        first = self.manager()
        first.start("d1", self.request(url, "qcow2", checksum="{SHA-256}" + checksum(data)))
        await self.wait_for_bytes(first, 2 * MiB)
        await first.stopService()
        offset = os.path.getsize(self.partial_files()[0])
        second = self.manager()
        status = await second.wait("d1")
        assert status is not None
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(status["physical_size"], len(data))
        self.assertEqual(self.server.ranges("/big.qcow2"), [None, f"bytes={offset}-"])
        self.assertEqual(self.server.requests[-1].status, 200)

    async def test_dropped_connection_is_resumed(self) -> None:
        """A connection dropped mid-body is retried with Range from the bytes already received."""
        data = images.qcow2(2**30, padding=3 * MiB)
        url = self.server.add("/drop.qcow2", data, drop_after=MiB + 5, drop_times=2)
        status = await self.download(self.manager(), self.request(url, "qcow2", checksum="{SHA-256}" + checksum(data)))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(self.server.ranges("/drop.qcow2"), [None, f"bytes={MiB + 5}-", f"bytes={MiB + 5}-"])
        self.assertEqual([seen.status for seen in self.server.requests], [200, 206, 206])

    async def test_short_range_answers_are_continued(self) -> None:
        """A server that answers each range with at most 1 MiB: the download asks for the rest."""
        data = images.qcow2(2**30, padding=3 * MiB)
        url = self.server.add("/capped.qcow2", data, drop_after=MiB, range_cap=MiB)
        status = await self.download(self.manager(), self.request(url, "qcow2", checksum="{SHA-256}" + checksum(data)))
        self.assertEqual(status["state"], "DOWNLOADED", status)
        self.assertEqual(self.server.ranges("/capped.qcow2"),
                         [None, f"bytes={MiB}-", f"bytes={2 * MiB}-", f"bytes={3 * MiB}-"])

    async def test_drops_beyond_the_retries_fail(self) -> None:
        data = images.qcow2(2**30, padding=3 * MiB)
        url = self.server.add("/drop.qcow2", data, drop_after=MiB, drop_times=10)
        status = await self.download(self.manager(retries=2), self.request(url, "qcow2"))
        self.assert_failed(status, "(closed by the server)")
        self.assertEqual(len(self.server.requests), 3)

    async def test_partial_file_gone_fails_cleanly(self) -> None:
        """A restart that finds its partial file gone ends in ERROR, never DOWNLOADING."""
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=8 * MiB)
        first = self.manager()
        first.start("d1", self.request(url, "qcow2"))
        await self.wait_for_bytes(first, MiB)
        await first.stopService()
        os.unlink(self.partial_files()[0])
        second = self.manager()
        status = await second.wait("d1")
        assert status is not None
        self.assert_failed(status, "the partial file is gone; cannot resume")

    async def test_too_many_restarts(self) -> None:
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=4 * MiB)
        first = self.manager(max_restarts=0)
        first.start("d1", self.request(url, "qcow2"))
        await self.wait_for_bytes(first, MiB // 2)
        await first.stopService()
        second = self.manager(max_restarts=0)
        status = await second.wait("d1")
        assert status is not None
        self.assert_failed(status, "interrupted by 1 restarts; giving up")

    async def test_resume_refused_by_server(self) -> None:
        """The file vanished from the server between runs: the resume fails to ERROR."""
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=8 * MiB)
        first = self.manager()
        first.start("d1", self.request(url, "qcow2"))
        await self.wait_for_bytes(first, MiB)
        await first.stopService()
        del self.server.entries["/big.qcow2"]
        status = await self.manager().wait("d1")
        assert status is not None
        self.assert_failed(status, "the server answered 404")

    async def test_not_started_record_starts_on_service_start(self) -> None:
        data = images.qcow2(2**20)
        url = self.server.add("/a.qcow2", data)
        first = self.manager(start=False)
        first.start("d1", self.request(url, "qcow2"))
        await sleep(0.2)  # the state write happens in the pool
        self.assertEqual(self.state_file()["state"], "NOT_STARTED")
        status = await self.manager().wait("d1")
        assert status is not None
        self.assertEqual(status["state"], "DOWNLOADED", status)


class CancelDeleteAndStoreTests(DownloadTestCase):
    async def test_cancel(self) -> None:
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=4 * MiB)
        manager = self.manager()
        manager.start("d1", self.request(url, "qcow2"))
        while (manager.status("d1") or {}).get("bytes", 0) < MiB // 2:
            await sleep(0.02)
        status = manager.cancel("d1")
        assert status is not None
        self.assertEqual(status["state"], "ABANDONED")
        final = await manager.wait("d1")
        assert final is not None
        self.assertEqual(final["state"], "ABANDONED")
        self.assertEqual(self.partial_files(), [])
        self.assertEqual(self.state_file()["state"], "ABANDONED")
        self.assertEqual(manager.cancel("d1"), final)  # no-op on a final state
        self.assertIsNone(manager.cancel("nope"))

    async def test_delete(self) -> None:
        data = images.qcow2(2**20)
        url = self.server.add("/a.qcow2", data)
        manager = self.manager()
        await self.download(manager, self.request(url, "qcow2"))
        self.assertTrue(os.path.isdir(self.template_dir()))
        self.assertEqual(len(manager.images()), 1)
        self.assertTrue(await manager.delete("d1"))
        self.assertIsNone(manager.status("d1"))
        self.assertFalse(os.path.exists(self.template_dir()))
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "d1.json")))
        self.assertEqual(manager.images(), [])
        self.assertFalse(await manager.delete("d1"))

    async def test_delete_running(self) -> None:
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=4 * MiB)
        manager = self.manager()
        manager.start("d1", self.request(url, "qcow2"))
        await sleep(0.3)
        self.assertTrue(await manager.delete("d1"))
        self.assertFalse(os.path.exists(self.template_dir()))
        self.assertEqual(self.partial_files(), [])

    async def test_images_and_cleanup_invalid(self) -> None:
        """At start, invalid directories that no download uses are removed; valid ones listed."""
        data = images.qcow2(2**20)
        url = self.server.add("/a.qcow2", data)
        first = self.manager()
        await self.download(first, self.request(url, "qcow2"))
        await first.stopService()
        base = os.path.join(self.root, "template", "tmpl")
        os.makedirs(os.path.join(base, "3", "7"))  # no properties
        os.makedirs(os.path.join(base, "3", "8"))
        with open(os.path.join(base, "3", "8", "template.properties"), "w") as handle:
            handle.write("#\nfilename=x.qcow2\nqcow2=true\nqcow2.filename=x.qcow2\n")  # no uniquename/virtualsize
        os.makedirs(os.path.join(base, "4", "9"))
        shutil.copy(os.path.join(self.template_dir(), "template.properties"), os.path.join(base, "4", "9"))
        os.makedirs(os.path.join(base, "not-a-number"))
        second = self.manager(start=False)
        removed = await second.cleanup_invalid()
        self.assertEqual(sorted(removed), ["template/tmpl/3/7", "template/tmpl/3/8", "template/tmpl/4/9"])
        self.assertFalse(os.path.exists(os.path.join(base, "3")))
        self.assertTrue(os.path.isdir(os.path.join(base, "not-a-number")))
        self.assertEqual([image["install_path"].rsplit("/", 1)[0] for image in second.images()],
                         ["template/tmpl/2/201"])
        self.assertEqual(await second.cleanup_invalid(), [])

    async def test_cleanup_spares_running_downloads(self) -> None:
        data = images.qcow2(2**34, padding=8 * MiB)
        url = self.server.add("/big.qcow2", data, rate=4 * MiB)
        manager = self.manager()
        manager.start("d1", self.request(url, "qcow2"))
        await sleep(0.3)
        self.assertEqual(await manager.cleanup_invalid(), [])
        self.assertEqual(len(self.partial_files()), 1)
        manager.cancel("d1")
        await manager.wait("d1")

    async def test_capacity(self) -> None:
        data = images.qcow2(2**20, padding=MiB)
        url = self.server.add("/a.qcow2", data)
        manager = self.manager()
        await self.download(manager, self.request(url, "qcow2"))
        capacity = await manager.capacity()
        self.assertEqual(sorted(capacity), ["free", "total", "used_by_store"])
        self.assertGreaterEqual(capacity["used_by_store"], len(data))
        self.assertGreater(capacity["total"], capacity["free"])
