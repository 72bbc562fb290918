"""The pure pieces of ssvm.download: URLs, checksums, sniffing, template.properties, the state
machine, request validation and the store layout's names."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import UTC, datetime

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ssvm.download import layout, properties, sniff
from ssvm.download.checksum import Checksum, canonical_algorithm, format_checksum, matches, parse_checksum
from ssvm.download.errors import AddressRefused, FormatRefused, URLRefused
from ssvm.download.fetch import parse_content_range
from ssvm.download.request import parse_request
from ssvm.download.state import (
    TRANSITIONS,
    DownloadRecord,
    DownloadState,
    IllegalTransition,
    check_transition,
)
from ssvm.download.urls import parse_url
from tests.ssvm import images


class URLTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """Credentials are kept apart; the status form drops them, the log form the query too."""
        url = parse_url("HTTPS://User:p%40ss@Images.Example.COM:8443/a/b%20c.qcow2?X-Amz-Signature=abc#frag")
        self.assertEqual((url.scheme, url.host, url.port), ("https", "images.example.com", 8443))
        self.assertEqual(url.userinfo, ("User", "p@ss"))
        self.assertEqual(url.for_status, "https://images.example.com:8443/a/b%20c.qcow2?X-Amz-Signature=abc")
        self.assertEqual(url.for_log, "https://images.example.com:8443/a/b%20c.qcow2")
        self.assertEqual(url.for_request, b"https://images.example.com:8443/a/b%20c.qcow2?X-Amz-Signature=abc")
        self.assertEqual(url.basic_auth(), b"Basic VXNlcjpwQHNz")
        self.assertEqual(url.path_name, "b c.qcow2")

    def test_defaults_ipv6_and_idna(self) -> None:
        self.assertEqual(parse_url("http://[::1]/x").for_status, "http://[::1]/x")
        self.assertEqual(parse_url("http://[::1]:80/").port, 80)
        self.assertEqual(parse_url("https://h.example").target, "/")
        self.assertEqual(parse_url("http://bücher.example/é").for_status, "http://xn--bcher-kva.example/%C3%A9")

    def test_refused(self) -> None:
        cases = {
            "": "URL is empty",
            "ftp://h/x": "URL scheme 'ftp' is not allowed",
            "file:///etc/passwd": "URL scheme 'file' is not allowed",
            "//h/x": "URL scheme 'none' is not allowed",
            "http:///x": "URL has no host",
            "http://h/a b": "white space",
            "http://h/a\r\nX: y": "white space",
            "http://h\\@evil/": "backslash",
            "http://h:99999/": "malformed",
            "http://h:0/": "port 0",
            "http://[fe80::1%25eth0]/": "zone",
            "http://bad_host!/": "not a valid host name",
            "http://a..b/": "not a valid host name",
            "http://h/" + "a" * 5000: "longer than",
        }
        for text, reason in cases.items():
            with self.assertRaises(URLRefused) as caught:
                parse_url(text)
            self.assertIn(reason, str(caught.exception), text)

    def test_join(self) -> None:
        base = parse_url("http://u:p@h.example/dir/a?q=1")
        self.assertEqual(base.join("b").for_status, "http://h.example/dir/b")
        self.assertEqual(base.join("/c?x").for_status, "http://h.example/c?x")
        self.assertEqual(base.join("//other.example/d").for_status, "http://other.example/d")
        self.assertEqual(base.join("https://x.example:444/e").for_status, "https://x.example:444/e")
        with self.assertRaises(URLRefused):
            base.join("gopher://x/")

    def test_address_refused_text(self) -> None:
        self.assertEqual(str(AddressRefused("images.example", "127.0.0.2", "loopback")),
                         "refused: images.example resolves to 127.0.0.2 (loopback)")
        self.assertEqual(str(AddressRefused("10.0.0.1", "10.0.0.1", "private")), "refused: 10.0.0.1 (private)")


class ChecksumTests(SynchronousTestCase):
    def test_parse(self) -> None:
        md5 = hashlib.md5(b"x").hexdigest()
        sha = hashlib.sha256(b"x").hexdigest()
        self.assertEqual(parse_checksum(md5), Checksum("MD5", md5))
        self.assertEqual(parse_checksum("{SHA-256}" + sha.upper()), Checksum("SHA-256", sha))
        self.assertEqual(parse_checksum(" {sha256}" + sha + " "), Checksum("SHA-256", sha))
        self.assertEqual(str(parse_checksum("{Sha-1}" + "A" * 40)), "{SHA-1}" + "a" * 40)
        for name, length in [("SHA-224", 56), ("SHA-384", 96), ("SHA-512", 128), ("SHA1", 40)]:
            self.assertEqual(len(parse_checksum(f"{{{name}}}" + "0" * length).hexdigest), length)

    def test_refused(self) -> None:
        cases = {"{SHA-256}abc": "must have 64 hex digits, not 3", "{CRC32}00": "not one of",
                 "{SHA-3}" + "0" * 64: "not one of", "xyz": "must be {ALGORITHM}hex", "": "must be",
                 "{}" + "0" * 32: "must be", "0" * 31: "must have 32 hex digits"}
        for text, reason in cases.items():
            with self.assertRaises(ValueError) as caught:
                parse_checksum(text)
            self.assertIn(reason, str(caught.exception), text)

    def test_matches_and_format(self) -> None:
        expected = parse_checksum("{SHA-1}" + "AB" * 20)
        self.assertTrue(matches(expected, "ab" * 20))
        self.assertTrue(matches(expected, "AB" * 20))
        self.assertFalse(matches(expected, "ab" * 19 + "ac"))
        self.assertFalse(matches(expected, "ab"))
        self.assertEqual(format_checksum("sha512", "ABC"), "{SHA-512}abc")
        self.assertEqual(canonical_algorithm("md5"), "MD5")


class SniffTests(SynchronousTestCase):
    def info(self, declared: str, data: bytes) -> sniff.ImageInfo:
        head = data[:sniff.HEAD_SIZE]
        sniff.check_head(declared, head, complete=len(data) <= sniff.HEAD_SIZE)
        return sniff.inspect(declared, head, data[-sniff.TAIL_SIZE:], len(data))

    def refused(self, declared: str, data: bytes, text: str) -> None:
        with self.assertRaises(FormatRefused) as caught:
            self.info(declared, data)
        self.assertIn(text, str(caught.exception))

    def test_qcow2(self) -> None:
        """The virtual size is the big-endian u64 at byte 24, for version 2 and 3."""
        self.assertEqual(self.info("qcow2", images.qcow2(10 * 2**30)), sniff.ImageInfo("qcow2", 10 * 2**30))
        self.assertEqual(self.info("qcow2", images.qcow2(123456789, version=2)).virtual_size, 123456789)
        small = images.qcow2(2**20, padding=0)
        self.assertEqual(self.info("qcow2", small).virtual_size, 2**20)
        self.assertEqual(sniff.qcow2_virtual_size(small), 2**20)

    def test_qcow2_refusals(self) -> None:
        self.refused("qcow2", images.qcow2(2**30, backing=b"/etc/passwd"), "has a backing file")
        self.refused("qcow2", images.qcow2(2**30, version=2, backing=b"x"), "has a backing file")
        self.refused("qcow2", images.qcow2(2**30, incompatible=4), "external data file")
        self.refused("qcow2", images.qcow2(2**30, incompatible=2), "marked corrupt")
        self.refused("qcow2", images.qcow2(2**30, extensions=[(images.QCOW2_EXT_DATA_FILE, b"/dev/sda")]),
                     "names an external data file")
        self.refused("qcow2", images.qcow2(2**30, extensions=[(images.QCOW2_EXT_BACKING_FORMAT, b"raw")]),
                     "backing file format")
        self.refused("qcow2", images.qcow2(0), "virtual size of 0")
        self.refused("qcow2", b"QFI\xfb\0\0\0\x04" + bytes(200), "version 4 is not supported")
        self.refused("qcow2", images.qcow2(2**30)[:50], "truncated")
        self.refused("qcow2", images.raw(100000), "declared qcow2 but the content is unrecognised data")
        self.refused("qcow2", images.iso(), "declared qcow2 but the content is an ISO 9660 image")
        self.refused("qcow2", b"", "empty")

    def test_qcow2_header_extensions_are_fine(self) -> None:
        image = images.qcow2(2**30, extensions=[(0x6803F857, b"feature table".ljust(48, b"\0"))])
        self.assertEqual(self.info("qcow2", image).virtual_size, 2**30)

    def test_compressed(self) -> None:
        import bz2
        import gzip
        import lzma

        payload = images.qcow2(2**30, padding=1000)
        for declared in sniff.FORMATS:
            for data, name in [(gzip.compress(payload), "gzip"), (bz2.compress(payload), "bzip2"),
                               (lzma.compress(payload), "xz"), (b"\x28\xb5\x2f\xfd" + bytes(100), "zstd"),
                               (b"PK\x03\x04" + bytes(100), "zip")]:
                self.refused(declared, data, f"content is {name}-compressed; compressed downloads are not supported")

    def test_vhd(self) -> None:
        self.assertEqual(self.info("vhd", images.vhd_fixed(1024 * 1024)).virtual_size, 1024 * 1024)
        self.assertEqual(self.info("vhd", images.vhd_dynamic(2**35)).virtual_size, 2**35)
        self.refused("vhd", images.vhd_dynamic(2**30, disk_type=4), "differencing VHD refused")
        self.refused("vhd", images.vhd_dynamic(2**30, disk_type=7), "disk type 7 is not supported")
        self.refused("vhd", images.raw(100000), "declared vhd but the content is unrecognised data")
        self.refused("vhd", images.qcow2(2**30), "declared vhd but the content is a qcow2 image")
        self.refused("vhd", os.urandom(2000) + images.vhd_footer(3, 100), "dynamic disk but the header copy")

    def test_ova_iso_raw(self) -> None:
        ova = images.tar({"x.ovf": b"<Envelope/>"})
        self.assertEqual(self.info("ova", ova).virtual_size, len(ova))
        self.refused("ova", images.qcow2(2**30), "declared ova but the content is a qcow2 image")
        iso = images.iso(100000)
        self.assertEqual(self.info("iso", iso).virtual_size, 100000)
        self.refused("iso", images.iso()[:32000], "declared iso but the content is unrecognised data")
        self.refused("iso", images.tar({"a": b"b"}), "declared iso but the content is a tar archive")
        self.assertEqual(self.info("raw", images.raw(5000)).virtual_size, 5000)
        self.assertEqual(self.info("raw", iso).virtual_size, len(iso))  # a CD image is usable as raw
        for data, what in [(images.qcow2(2**30), "a qcow2 image"), (images.vhd_dynamic(2**30), "a VHD image"),
                           (images.vhd_fixed(5000), "a VHD image"), (images.tar({"a": b"b"}), "a tar archive"),
                           (b"vhdxfile" + bytes(70000), "a VHDX image"), (b"KDMV" + bytes(70000), "a VMDK image"),
                           (b"# Disk DescriptorFile\n" + bytes(70000), "a VMDK image")]:
            self.refused("raw", data, f"declared raw but the content is {what}")

    def test_early_check_waits_for_enough_bytes(self) -> None:
        """A partial head that cannot decide yet does not refuse."""
        sniff.check_head("iso", bytes(1000))
        sniff.check_head("raw", bytes(1000))
        sniff.check_head("vhd", bytes(1000))
        sniff.check_head("qcow2", b"QF")
        with self.assertRaises(FormatRefused):
            sniff.check_head("qcow2", b"QFX\xfb")

    def test_qemu_img_images(self) -> None:
        """Cross-check with images made by qemu-img, when it is installed."""
        if shutil.which("qemu-img") is None:
            raise SkipTest("qemu-img is not installed")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        base = os.path.join(directory, "base.qcow2")
        child = os.path.join(directory, "child.qcow2")
        vhd = os.path.join(directory, "disk.vhd")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "3G"], check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, child], check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", vhd, "64M"], check=True)
        for path, declared, expected in [(base, "qcow2", 3 * 2**30), (vhd, "vhd", None)]:
            with open(path, "rb") as handle:
                data = handle.read()
            info = self.info(declared, data)
            if expected is not None:
                self.assertEqual(info.virtual_size, expected)
            else:
                self.assertGreaterEqual(info.virtual_size, 64 * 2**20)
        with open(child, "rb") as handle:
            self.refused("qcow2", handle.read(), "backing file")


class PropertiesTests(SynchronousTestCase):
    moment = datetime(2025, 11, 2, 1, 5, 9, tzinfo=UTC)

    def test_render(self) -> None:
        """Java Properties.store output: comment and date lines, escapes, \\uXXXX for non-ASCII."""
        text = properties.render({"filename": "a.qcow2", "description": " Ubuntu: 24.04=LTS #1 !x\\y\tz\nn",
                                  "name": "Café 😀", "key with space": "v"}, self.moment)
        self.assertEqual(text, "#\n#Sun Nov 02 01:05:09 UTC 2025\nfilename=a.qcow2\n"
                               "description=\\ Ubuntu\\: 24.04\\=LTS \\#1 \\!x\\\\y\\tz\\nn\n"
                               "name=Caf\\u00E9 \\uD83D\\uDE00\n"
                               "key\\ with\\ space=v\n")
        self.assertTrue(text.isascii())

    def test_round_trip(self) -> None:
        values = {"description": " Ubuntu: 24.04=LTS #1 !x\\y\tz\nn", "name": "Café 😀", "a b": "c",
                  "empty": "", "uniquename": "201-2-x"}
        self.assertEqual(properties.parse(properties.render(values, self.moment, "comment")), values)

    def test_parse_java_forms(self) -> None:
        """Other writers' forms: `:` and space separators, continuation lines, `!` comments."""
        text = ("# comment\n! also a comment\n  key1 = value one\nkey2:value2\nkey3 value3\n"
                "key4=multi\\\n    line\nkey5=ends with backslash\\\\\nkey6\n")
        self.assertEqual(properties.parse(text), {"key1": "value one", "key2": "value2", "key3": "value3",
                                                  "key4": "multiline", "key5": "ends with backslash\\",
                                                  "key6": ""})

    def test_template_properties_and_validity(self) -> None:
        values = properties.template_properties(
            file_name="u.img", format="raw", physical_size=10, virtual_size=10, template_id=5,
            unique_name="5-2-x", description="d", hvm=False)
        self.assertEqual(values["img"], "true")
        self.assertEqual(values["img.filename"], "u.img")
        self.assertEqual(values["hvm"], "false")
        self.assertEqual(properties.problems(values), [])
        self.assertEqual(properties.format_entries(values), ["img"])

    def test_loader_validity_rule(self) -> None:
        good = {"uniquename": "u", "virtualsize": "5", "qcow2": "true", "qcow2.filename": "a.qcow2",
                "qcow2.size": "3", "qcow2.virtualsize": "5", "size": "3"}
        self.assertEqual(properties.problems(good), [])
        cases: list[tuple[dict[str, str | None], str]] = [
            ({"uniquename": None}, "uniquename is missing"),
            ({"virtualsize": None}, "virtualsize is missing or not positive"),
            ({"virtualsize": "0"}, "virtualsize is missing or not positive"),
            ({"virtualsize": "x"}, "virtualsize is missing or not positive"),
            ({"qcow2": "false"}, "no <ext>=true / <ext>.filename pair"),
            ({"qcow2.filename": None}, "no <ext>=true / <ext>.filename pair"),
            ({"size": "0"}, "size is not positive"),
            ({"qcow2.size": "-1"}, "qcow2.size is not positive"),
            ({"qcow2.virtualsize": "0"}, "qcow2.virtualsize is not positive"),
            ({"qcow2.filename": "../x"}, "not a plain file name"),
            ({"qcow2.filename": ".hidden"}, "not a plain file name"),
        ]
        for change, problem in cases:
            values = {key: value for key, value in {**good, **change}.items() if value is not None}
            self.assertIn(problem, "; ".join(properties.problems(values)), change)


class StateMachineTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Only the documented transitions are legal; the three end states are final."""
        legal = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
        self.assertEqual(legal, {
            (DownloadState.NOT_STARTED, DownloadState.DOWNLOADING), (DownloadState.NOT_STARTED, DownloadState.ERROR),
            (DownloadState.NOT_STARTED, DownloadState.ABANDONED), (DownloadState.DOWNLOADING, DownloadState.DOWNLOADED),
            (DownloadState.DOWNLOADING, DownloadState.ERROR), (DownloadState.DOWNLOADING, DownloadState.ABANDONED)})
        for old in DownloadState:
            for new in DownloadState:
                if (old, new) in legal:
                    check_transition(old, new)
                else:
                    with self.assertRaises(IllegalTransition):
                        check_transition(old, new)
        self.assertEqual({state for state in DownloadState if state.final},
                         {DownloadState.DOWNLOADED, DownloadState.ERROR, DownloadState.ABANDONED})

    def test_record(self) -> None:
        request = parse_request({"url": "http://h/a", "format": "qcow2", "account_id": 1, "template_id": 2,
                                 "unique_name": "u"}, max_size=100)
        record = DownloadRecord("d", request, "template/tmpl/1/2", "f.qcow2", "dnld00tmp_")
        record.move_to(DownloadState.DOWNLOADING, 5.0)
        with self.assertRaises(IllegalTransition) as caught:
            record.move_to(DownloadState.NOT_STARTED, 6.0)
        self.assertEqual(str(caught.exception), "download state cannot go from DOWNLOADING to NOT_STARTED")
        record.move_to(DownloadState.ERROR, 7.0, "boom")
        with self.assertRaises(IllegalTransition):
            record.move_to(DownloadState.DOWNLOADED, 8.0)
        self.assertEqual((record.state, record.error, record.updated), (DownloadState.ERROR, "boom", 7.0))
        self.assertEqual(DownloadRecord.from_json(record.to_json()), record)
        self.assertEqual(record.to_json()["state"], "ERROR")


class LayoutTests(SynchronousTestCase):
    def test_names(self) -> None:
        self.assertEqual(layout.install_directory(2, 201), "template/tmpl/2/201")
        self.assertEqual(layout.iso_file_name("Debian 12.iso"), "Debian_12.iso")
        self.assertEqual(layout.iso_file_name("../../etc/passwd"), "_.._etc_passwd.iso")
        self.assertEqual(layout.iso_file_name(".hidden"), "hidden.iso")
        self.assertEqual(layout.iso_file_name("-rf"), "rf.iso")
        self.assertEqual(len(layout.iso_file_name("x" * 500)), 104)
        self.assertRegex(layout.iso_file_name("..."), r"^[0-9a-f-]{36}\.iso$")
        self.assertRegex(layout.iso_file_name("日本語"), r"^___\.iso$")
        self.assertRegex(layout.template_file_name("qcow2"), r"^[0-9a-f-]{36}\.qcow2$")
        self.assertRegex(layout.template_file_name("raw"), r"^[0-9a-f-]{36}\.img$")
        self.assertRegex(layout.temp_file_name(), layout.TEMP_NAME.pattern)
        self.assertNotEqual(layout.temp_file_name(), layout.temp_file_name())

    def test_remove_directory_refuses_other_paths(self) -> None:
        for relative in ["template/tmpl/1", "template/tmpl/1/../..", "/etc", "template/tmpl/1/2/x"]:
            with self.assertRaises(ValueError):
                layout.remove_directory("/nonexistent", relative)


class ContentRangeTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_content_range("bytes 100-199/200"), (100, 199, 200))
        self.assertEqual(parse_content_range("bytes 0-0/*"), (0, 0, None))
        for bad in [None, "", "bytes 5-4/10", "bytes 0-10/10", "items 0-1/2", "bytes */10", "bytes 1-2/3x"]:
            self.assertIsNone(parse_content_range(bad), bad)
