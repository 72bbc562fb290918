"""Tests for `ssvm.configdrive.iso`: the ISO image, read back by isoinfo, blkid and bsdtar, compared
with genisoimage's image of the same tree, and its determinism."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import pycdlib
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ssvm.configdrive import iso as iso_module
from ssvm.configdrive.content import DriveSpec, DriveTree, drive_files, parse_drive
from ssvm.configdrive.iso import DRIVE_EPOCH, build_iso
from ssvm.configdrive.validation import MAX_DRIVE_SIZE, DriveTooLarge
from tests.ssvm.configdrive_helpers import (
    b64,
    extract,
    isoinfo_files,
    isoinfo_read,
    minimal,
    require_isoinfo,
    run,
    typical,
    write_iso,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def expected_listing(tree: DriveTree) -> list[str]:
    return sorted([f"/{d}" for d in tree.directories] + [f"/{f.path}" for f in tree.files])


def write_tree(tree: DriveTree, root: str) -> None:
    """`tree` as a directory, identical files as hard links (as CloudStack hands it to genisoimage)."""
    for directory in tree.directories:
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    for drive_file in tree.files:
        path = os.path.join(root, drive_file.path)
        if drive_file.same_as is not None:
            os.link(os.path.join(root, drive_file.same_as), path)
        else:
            with open(path, "wb") as f:
                f.write(drive_file.data)


def read_all(directory: str) -> dict[str, bytes]:
    found = {}
    for parent, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = f.read()
    return found


class IsoTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="configdrive-iso-")
        self.addCleanup(shutil.rmtree, self.workdir, True)

    def iso_file(self, image: bytes, name: str = "drive.iso") -> str:
        return write_iso(self.workdir, image, name)


class ImageTests(IsoTestCase):
    def test_descriptors(self) -> None:
        """isoinfo sees label config-2, Joliet level 3 and Rock Ridge; blkid sees an iso9660
        filesystem labelled config-2, as cloud-init's device search needs."""
        require_isoinfo()
        path = self.iso_file(build_iso(parse_drive(typical())))
        info = run(["isoinfo", "-d", "-i", path]).decode()
        self.assertIn("Volume id: config-2\n", info)
        self.assertIn("Joliet with UCS level 3 found", info)
        self.assertIn("Rock Ridge signatures version 1 found", info)
        self.assertIn("Logical block size is: 2048", info)
        if shutil.which("blkid") is None:
            return
        blkid = run(["blkid", "-p", path]).decode()
        self.assertIn('LABEL="config-2"', blkid)
        self.assertIn('TYPE="iso9660"', blkid)

    def test_names(self) -> None:
        """Rock Ridge and Joliet both list every file and directory under its real, lower-case,
        long name; the ISO 9660 names are the same with the ;1 version."""
        require_isoinfo()
        tree = drive_files(parse_drive(typical()))
        path = self.iso_file(build_iso(tree))
        expected = expected_listing(tree)
        self.assertEqual(isoinfo_files(path, "-R"), expected)
        self.assertEqual(isoinfo_files(path, "-J"), expected)
        plain = [name.removesuffix(";1") for name in isoinfo_files(path)]
        self.assertEqual(sorted(plain), expected)

    def test_contents(self) -> None:
        """Every file reads back with exactly its bytes, through Rock Ridge (isoinfo) and through
        libarchive (bsdtar), hard-linked copies included."""
        require_isoinfo()
        description = typical()
        description["windows"] = True
        description["user_data"] = b64(os.urandom(5000))
        tree = drive_files(parse_drive(description))
        path = self.iso_file(build_iso(tree))
        for drive_file in tree.files:
            self.assertEqual(isoinfo_read(path, f"/{drive_file.path}"), drive_file.data, drive_file.path)
        extracted = read_all(extract(path, os.path.join(self.workdir, "x")))
        self.assertEqual(extracted, {f.path: f.data for f in tree.files})

    def test_password_files(self) -> None:
        """The guest scripts' files read back exactly: the plaintext password and, for Windows,
        its md5 without leading zeros (pw443 hashes to 00000fe1…)."""
        require_isoinfo()
        path = self.iso_file(build_iso(parse_drive({**minimal(), "password": "pw443", "windows": True})))
        self.assertEqual(isoinfo_read(path, "/cloudstack/password/vm_password.txt"), b"pw443")
        self.assertEqual(isoinfo_read(path, "/cloudstack/password/vm-password-md5checksum.txt"),
                         b"fe1006c8ce47a15e096f1e3de66")
        self.assertEqual(isoinfo_read(path, "/cloudstack/metadata/instance-id.txt"),
                         parse_drive(minimal()).uuid.encode())

    def test_rock_ridge_modes(self) -> None:
        """As with genisoimage -r: files r--r--r--, directories r-xr-xr-x, owned by 0:0."""
        require_isoinfo()
        path = self.iso_file(build_iso(parse_drive(typical())))
        listing = run(["isoinfo", "-R", "-l", "-i", path]).decode().splitlines()
        entries = [line.split() for line in listing if line[:1] in "-d" and line.strip()]
        self.assertTrue(entries)
        for fields in entries:
            mode, uid, gid = fields[0], fields[2], fields[3]
            self.assertIn(mode, ("-r--r--r--", "dr-xr-xr-x"))
            self.assertEqual((uid, gid), ("0", "0"))

    def test_identical_files_stored_once(self) -> None:
        """The eleven copies of the user data share one extent: adding version folders costs
        directory records, not data."""
        user_data = os.urandom(256 * 1024)
        description = changed_user_data(typical(), user_data)
        image = build_iso(parse_drive(description))
        self.assertEqual(image.count(user_data[:4096]), 1)
        self.assertLess(len(image), len(user_data) + 160 * 1024)
        iso = pycdlib.PyCdlib()
        iso.open_fp(io.BytesIO(image))
        try:
            extents = {iso.get_record(rr_path=f"/openstack/{version}/user_data").extent_location()
                       for version in ("2012-08-10", "2018-08-27", "latest")}
            extents.add(iso.get_record(rr_path="/cloudstack/userdata/user_data.txt").extent_location())
        finally:
            iso.close()
        self.assertEqual(len(extents), 1)

    def test_long_label(self) -> None:
        """A 32-character label is kept whole in the primary descriptor (Joliet holds its first 16
        characters, as with genisoimage)."""
        require_isoinfo()
        label = "CONFIGDRIVE_LABEL_0123456789-ABC"
        self.assertEqual(len(label), 32)
        spec = parse_drive({**minimal(), "label": label})
        path = self.iso_file(build_iso(spec))
        self.assertIn(f"Volume id: {label}\n", run(["isoinfo", "-d", "-i", path]).decode())
        if shutil.which("blkid"):
            self.assertIn(f'LABEL="{label}"', run(["blkid", "-p", path]).decode())

    def test_like_genisoimage(self) -> None:
        """genisoimage, run as CloudStack runs it on the same tree, yields the same Rock Ridge and
        Joliet file lists and the same file contents."""
        require_isoinfo()
        if shutil.which("genisoimage") is None:
            raise SkipTest("genisoimage is not installed; CI installs it")
        description = typical()
        description["windows"] = True
        tree = drive_files(parse_drive(description))
        source = os.path.join(self.workdir, "tree")
        write_tree(tree, source)
        reference = os.path.join(self.workdir, "reference.iso")
        run(["genisoimage", "-o", reference, "-ldots", "-allow-lowercase", "-allow-multidot",
             "-cache-inodes", "-l", "-quiet", "-J", "-r", "-V", "config-2", source])
        ours = self.iso_file(build_iso(tree))
        for flag in ("-R", "-J"):
            self.assertEqual(isoinfo_files(ours, flag), isoinfo_files(reference, flag))
        self.assertEqual(read_all(extract(ours, os.path.join(self.workdir, "a"))),
                         read_all(extract(reference, os.path.join(self.workdir, "b"))))

    def test_too_large(self) -> None:
        """Content that cannot fit is refused before mastering; content that fits only without
        the file system's own blocks is refused after, by the size of the image."""
        huge = drive_spec_with_user_data(MAX_DRIVE_SIZE)
        exc = self.assertRaises(DriveTooLarge, build_iso, huge)
        self.assertIn("64 MiB", str(exc))
        # The early check allows ~40 KiB of file-system overhead; this drive needs more.
        base = drive_files(drive_spec_with_user_data(1))
        other = sum(-(-len(f.data) // 2048) * 2048 for f in base.files if f.same_as is None) - 2048
        borderline = drive_spec_with_user_data(MAX_DRIVE_SIZE - 40 * 1024 - other)
        exc = self.assertRaises(DriveTooLarge, build_iso, borderline, reuse=False)
        self.assertIn("image is", str(exc))


def changed_user_data(description: dict[str, Any], data: bytes) -> dict[str, Any]:
    return {**description, "user_data": b64(data)}


def drive_spec_with_user_data(size: int) -> DriveSpec:
    """A typical drive with `size` bytes of user data (built directly: no base64 round trip)."""
    spec = parse_drive(typical())
    return DriveSpec(**{**spec.__dict__, "user_data": b"u" * size})


class DeterminismTests(IsoTestCase):
    def test_fixed_timestamps(self) -> None:
        """Every date on the image is 2000-01-01 00:00:00 UTC, offset 0: the volume descriptor's
        creation and modification dates and every directory record's date."""
        image = build_iso(parse_drive(typical()))
        pvd = image[16 * 2048: 17 * 2048]
        self.assertEqual(pvd[1:6], b"CD001")
        self.assertEqual(pvd[813:830], b"2000010100000000\x00")   # creation
        self.assertEqual(pvd[830:847], b"2000010100000000\x00")   # modification
        root_record_date = pvd[156 + 18: 156 + 25]
        self.assertEqual(root_record_date, bytes([100, 1, 1, 0, 0, 0, 0]))
        iso = pycdlib.PyCdlib()
        iso.open_fp(io.BytesIO(image))
        try:
            for path in ("/openstack/latest/meta_data.json", "/cloudstack/userdata/user_data.txt"):
                record = iso.get_record(rr_path=path)
                assert isinstance(record, pycdlib.dr.DirectoryRecord)
                date = record.date
                self.assertEqual((date.years_since_1900, date.month, date.day_of_month, date.hour,
                                  date.minute, date.gmtoffset), (100, 1, 1, 0, 0, 0))
        finally:
            iso.close()

    def test_wall_clock_ignored(self) -> None:
        """A build under a different wall clock gives the same bytes."""
        spec = parse_drive(typical())
        first = build_iso(spec, reuse=False)
        self.patch(time, "time", lambda: 1234567890.5)
        self.patch(time, "localtime", lambda seconds=None: time.gmtime(86400 * 365))
        self.assertEqual(build_iso(spec, reuse=False), first)

    def test_timezone_ignored(self) -> None:
        """Builds in processes with different TZ settings give the same bytes."""
        script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
                  "from ssvm.configdrive.content import parse_drive\n"
                  "from ssvm.configdrive.iso import build_iso\n"
                  "from tests.ssvm.configdrive_helpers import typical\n"
                  "sys.stdout.buffer.write(build_iso(parse_drive(typical())))\n")
        images = set()
        for zone in ("UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Kiritimati"):
            env = {**os.environ, "TZ": zone}
            result = subprocess.run([sys.executable, "-c", script, ROOT], env=env, capture_output=True,
                                    check=True)
            images.add(result.stdout)
        self.assertEqual(len(images), 1)
        self.assertEqual(images.pop(), build_iso(parse_drive(typical())))

    def test_reuse_gives_identical_bytes(self) -> None:
        """Mastering into a kept image of the same shape gives exactly the bytes of a fresh build,
        drive after drive, and a kept image holds no drive's contents afterwards."""
        for cache in (iso_module._FRAMES, iso_module._TEMPLATES, iso_module._PARTS):
            cache.clear()
            self.addCleanup(cache.clear)
        descriptions = []
        for index in range(5):
            description = typical()
            description["uuid"] = f"9f1c2b7e-1111-4222-8333-{index:012d}"
            description["user_data"] = b64(os.urandom(100 + 3000 * index))
            description["password"] = f"secret-{index}"
            descriptions.append(description)
        for description in descriptions + descriptions[::-1]:
            spec = parse_drive(description)
            self.assertEqual(build_iso(spec), build_iso(spec, reuse=False))
        for frames in iso_module._FRAMES._frames.values():
            for frame in frames:
                self.assertEqual(frame.buffers, [])

    def test_shape_and_epoch_separate_frames(self) -> None:
        """Drives of different shapes, or built for another epoch, never share a kept image."""
        for cache in (iso_module._FRAMES, iso_module._TEMPLATES, iso_module._PARTS):
            cache.clear()
            self.addCleanup(cache.clear)
        with_password = parse_drive(typical())
        without = parse_drive({**typical(), "password": None})
        for spec in (with_password, without, with_password):
            self.assertEqual(build_iso(spec), build_iso(spec, reuse=False))
        self.assertEqual(build_iso(without, epoch=DRIVE_EPOCH + 86400),
                         build_iso(without, epoch=DRIVE_EPOCH + 86400, reuse=False))
        self.assertNotEqual(build_iso(without, epoch=DRIVE_EPOCH + 86400), build_iso(without))

    def test_threads(self) -> None:
        """Builds on several threads at once, beside a thread using pycdlib without a pinned clock,
        each give the bytes of a sequential build; the other thread keeps the real clock."""
        specs = []
        for index in range(6):
            description = typical()
            description["uuid"] = f"9f1c2b7e-1111-4222-8333-{index:012d}"
            description["password"] = f"secret-{index}"
            specs.append(parse_drive(description))
        expected = [build_iso(spec, reuse=False) for spec in specs]
        results: dict[tuple[int, int], bytes] = {}
        unpinned: list[bytes] = []
        errors: list[BaseException] = []

        def builder(worker: int) -> None:
            try:
                for round_ in range(8):
                    index = (worker + round_) % len(specs)
                    results[(worker, round_)] = build_iso(specs[index])
            except BaseException as exc:  # reported below
                errors.append(exc)

        def other_user() -> None:
            try:
                for _ in range(20):
                    iso = pycdlib.PyCdlib()
                    iso.new(interchange_level=3)
                    out = io.BytesIO()
                    iso.write_fp(out)
                    unpinned.append(out.getvalue())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=builder, args=(w,)) for w in range(4)]
        threads.append(threading.Thread(target=other_user))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        for (worker, round_), image in results.items():
            self.assertEqual(image, expected[(worker + round_) % len(specs)])
        this_year = time.strftime("%Y").encode()
        for image in unpinned:
            self.assertEqual(image[16 * 2048 + 813: 16 * 2048 + 817], this_year)


def random_description(rng: random.Random, index: int) -> dict[str, Any]:
    """A valid drive description with random content, drawn from few enough shapes and sizes that
    many drives share a layout (user data sizes near the sector boundaries included)."""
    description = minimal()
    description["uuid"] = f"9f1c2b7e-1111-4222-8333-{rng.randrange(16 ** 12):012x}"
    description["hostname"] = "web" + "x" * rng.randrange(0, 40) + str(index)
    if rng.random() < 0.8:
        description["metadata"] = {"service-offering": rng.choice(["Small", "Medium instance"]),
                                   "availability-zone": f"zone{rng.randrange(100)}",
                                   "local-ipv4": f"10.1.{rng.randrange(256)}.{rng.randrange(256)}"}
    keys = rng.randrange(0, 4)
    if keys:
        description["public_keys"] = [
            f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5{'A' * rng.randrange(10, 60)} user{k}@host{index}"
            for k in range(keys)]
    size = rng.choice([None, 1, 2047, 2048, 2049, 4096, rng.randrange(1, 3 * 2048),
                       rng.randrange(1, 3 * 2048)])
    if size is not None:
        description["user_data"] = b64(bytes(rng.randrange(256) for _ in range(size)))
    if rng.random() < 0.6:
        description["password"] = "".join(rng.choice("abcdefXYZ0123456789")
                                          for _ in range(rng.randrange(6, 30)))
        description["windows"] = rng.random() < 0.3
    if rng.random() < 0.6:
        description["network"] = {"nics": [{"mac": f"02:00:2e:8b:00:{rng.randrange(256):02x}",
                                            "device_id": rng.randrange(4),
                                            "ipv4": {"address": f"10.1.1.{rng.randrange(2, 250)}",
                                                     "netmask": "255.255.255.0",
                                                     "gateway": "10.1.1.1"}}],
                                  "dns": ["10.1.1.1", "192.0.2.53"][:rng.randrange(1, 3)]}
    return description


def layout(tree: DriveTree) -> tuple[object, ...]:
    return (iso_module._shape(tree, DRIVE_EPOCH), iso_module._sizes(tree))


class TemplateTests(IsoTestCase):
    """The fast path: a mastered image of the same layout refilled with another drive's files."""

    def setUp(self) -> None:
        super().setUp()
        for cache in (iso_module._FRAMES, iso_module._TEMPLATES, iso_module._PARTS):
            cache.clear()
            self.addCleanup(cache.clear)

    def random_trees(self, count: int, seed: int) -> list[DriveTree]:
        rng = random.Random(seed)
        return [drive_files(parse_drive(random_description(rng, index))) for index in range(count)]

    def test_fill_equals_fresh_build(self) -> None:
        """For many random drives, refilling the template of another drive of the same layout
        gives exactly the bytes pycdlib writes for the drive from scratch."""
        trees = self.random_trees(160, seed=20240601)
        groups: dict[tuple[object, ...], list[DriveTree]] = {}
        for tree in trees:
            groups.setdefault(layout(tree), []).append(tree)
        filled = 0
        for members in groups.values():
            template = iso_module._Template.from_image(members[0], build_iso(members[0], reuse=False))
            assert template is not None
            for tree in members[1:] + members[:1]:
                self.assertEqual(template.fill(tree), build_iso(tree, reuse=False))
                filled += 1
        self.assertGreater(filled - len(groups), 60)  # many drives really went through a template

    def test_build_sequence_equals_fresh_builds(self) -> None:
        """build_iso with reuse, over a random sequence of drives (layouts repeating, changing,
        coming back), gives each drive's fresh bytes; most are served by templates or composed
        from known parts, without pycdlib."""
        trees = self.random_trees(120, seed=7)
        masters = []
        original_master = iso_module._master_with_pycdlib

        def counting_master(tree: DriveTree, epoch: float, shape: Any, reuse: bool) -> bytes:
            if reuse:
                masters.append(tree)
            return original_master(tree, epoch, shape, reuse)

        self.patch(iso_module, "_master_with_pycdlib", counting_master)
        for tree in trees + trees[::-1]:
            self.assertEqual(build_iso(tree), build_iso(tree, reuse=False))
        self.assertLess(len(masters), 40)

    def test_template_keeps_no_contents(self) -> None:
        """A template holds neither the password nor the user data nor any file's length; its
        file sectors are not kept at all."""
        password = "Zq7-very-secret-password"
        user_data = os.urandom(3000)
        tree = drive_files(parse_drive({**typical(), "password": password, "user_data": b64(user_data)}))
        image = build_iso(tree)
        [template] = iso_module._TEMPLATES._templates.values()
        kept = b"".join(chunk for _, chunk in template.chunks)
        self.assertNotIn(password.encode(), kept)
        self.assertNotIn(user_data[:64], kept)
        self.assertLess(len(kept), len(image) - len(user_data))
        for fields in template.length_fields:
            for offset in fields:
                for start, chunk in template.chunks:
                    if start <= offset < start + len(chunk):
                        self.assertEqual(chunk[offset - start: offset - start + 8], bytes(8))

    def test_every_file_sector_rewritten(self) -> None:
        """A drive built from a template made from a drive with longer files carries nothing of
        that drive: the tails of its sectors are zero, as in a fresh build."""
        long = drive_files(parse_drive({**typical(), "password": "p" * 40, "user_data": b64(b"U" * 2000)}))
        short = drive_files(parse_drive({**typical(), "password": "q" * 8, "user_data": b64(b"u" * 10)}))
        self.assertEqual(layout(long), layout(short))
        build_iso(long)
        image = build_iso(short)
        self.assertNotIn(b"p" * 9, image)
        self.assertNotIn(b"U" * 11, image)
        self.assertEqual(image, build_iso(short, reuse=False))

    def test_guest_reads_filled_image(self) -> None:
        """isoinfo and bsdtar read a drive made from a template exactly."""
        require_isoinfo()
        first = drive_files(parse_drive({**typical(), "windows": True}))
        second = drive_files(parse_drive({**typical(), "windows": True, "hostname": "db7",
                                          "password": "an0ther-pw", "user_data": b64(b"#!/bin/sh\n")}))
        self.assertEqual(layout(first), layout(second))
        build_iso(first)
        self.assertIsNotNone(iso_module._TEMPLATES.get(layout(second)))  # type: ignore[arg-type]
        path = self.iso_file(build_iso(second))
        for drive_file in second.files:
            self.assertEqual(isoinfo_read(path, f"/{drive_file.path}"), drive_file.data, drive_file.path)
        self.assertEqual(isoinfo_files(path, "-J"), expected_listing(second))
        extracted = read_all(extract(path, os.path.join(self.workdir, "x")))
        self.assertEqual(extracted, {f.path: f.data for f in second.files})

    def test_mismatched_image_refused(self) -> None:
        """An image that does not hold exactly the tree's files makes no template."""
        tree = drive_files(parse_drive(typical()))
        other = drive_files(parse_drive({**typical(), "password": None}))
        self.assertIsNone(iso_module._Template.from_image(other, build_iso(tree, reuse=False)))
        self.assertIsNone(iso_module._Template.from_image(tree, build_iso(other, reuse=False)))
        self.assertIsNone(iso_module._Template.from_image(tree, b"\0" * (40 * 2048)))

    def test_cache_bounded(self) -> None:
        """The template cache keeps at most its number of templates and bytes, newest first."""
        cache = iso_module._TemplateCache(max_templates=3, max_bytes=200 * 2048)
        tree = drive_files(parse_drive(typical()))
        template = iso_module._Template.from_image(tree, build_iso(tree, reuse=False))
        assert template is not None
        for index in range(5):
            cache.put(((index,), ()), template)
        self.assertEqual(list(cache._templates), [((2,), ()), ((3,), ()), ((4,), ())])
        self.assertIsNone(cache.get(((0,), ())))
        small = iso_module._TemplateCache(max_templates=3, max_bytes=template.kept_bytes * 2 - 1)
        for index in range(3):
            small.put(((index,), ()), template)
        self.assertEqual(list(small._templates), [((2,), ())])
        self.assertLessEqual(small._bytes, small.max_bytes)
