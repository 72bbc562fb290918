"""Tests for composing config drives from known directories (`ssvm.configdrive.iso._PartsCache`):
the bytes are exactly pycdlib's for drives of new shapes, sizes and contents."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from ssvm.configdrive import iso as iso_module
from ssvm.configdrive.content import DriveFile, DriveTree, drive_files, parse_drive
from ssvm.configdrive.iso import DRIVE_EPOCH, SECTOR, build_iso
from tests.ssvm.configdrive_helpers import b64, typical
from tests.ssvm.test_configdrive_iso import random_description

SIZES = (0, 1, 100, SECTOR - 1, SECTOR, SECTOR + 1, 2 * SECTOR, 3 * SECTOR - 7, 5 * SECTOR + 3)
ALPHABET = "ABCXYZabcxyz0189_.-"


def name_pool(rng: random.Random, count: int) -> list[str]:
    """File names as metadata keys may be (`<key>.txt` up to 64 characters), for sorting and packing."""
    names = {"user_data", "meta_data.json", "a", "A", "a.txt", "a-b.txt", "a_b.txt", "a.b.txt"}
    while len(names) < count:
        stem = rng.choice("ABCabc019") + "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 56)))
        names.add(stem + rng.choice(("", ".txt", ".json")))
    return sorted(names)


def random_tree(rng: random.Random, names: list[str]) -> DriveTree:
    """A tree of random directories holding up to 30 files each (a directory of several sectors),
    sizes 0 to several sectors (across sector boundaries), some files identical to an earlier
    one (one extent, as drive_files marks them)."""
    directories = ["d"]
    for index in range(rng.randrange(0, 4)):
        parent = rng.choice(directories)
        directories.append(f"{parent}/s{index}")
    files: list[DriveFile] = []
    originals: list[DriveFile] = []
    for parent in directories:
        for name in rng.sample(names, rng.choice((0, 1, 3, 8, 30))):
            path = f"{parent}/{name}"
            if originals and rng.random() < 0.3:
                first = rng.choice(originals)
                files.append(DriveFile(path, first.data, first.path))
                continue
            data = bytes(rng.getrandbits(8) for _ in range(rng.choice(SIZES)))
            drive_file = DriveFile(path, data, None)
            files.append(drive_file)
            originals.append(drive_file)
    return DriveTree("config-2", tuple(directories), tuple(files))


def resized(tree: DriveTree, rng: random.Random) -> DriveTree:
    """The same shape with other contents and sizes (an empty file may become non-empty)."""
    data = {f.path: bytes(rng.getrandbits(8) for _ in range(rng.choice(SIZES)))
            for f in tree.files if f.same_as is None}
    return DriveTree(tree.label, tree.directories,
                     tuple(DriveFile(f.path, data[f.same_as or f.path], f.same_as) for f in tree.files))


class ComposeTests(SynchronousTestCase):

    def setUp(self) -> None:
        for cache in (iso_module._FRAMES, iso_module._TEMPLATES, iso_module._PARTS):
            cache.clear()
            self.addCleanup(cache.clear)

    def assertComposedAsFresh(self, tree: DriveTree) -> bool:
        """Compose `tree` from the parts known so far if possible (and check it against pycdlib's
        fresh build); else learn its parts from the fresh build. True if it was composed."""
        fresh = build_iso(tree, reuse=False)
        composed = iso_module._PARTS.compose(tree, DRIVE_EPOCH)
        if composed is None:
            iso_module._PARTS.learn(tree, DRIVE_EPOCH, fresh)
            self.assertEqual(iso_module._PARTS.compose(tree, DRIVE_EPOCH), fresh)
            return False
        self.assertEqual(composed, fresh)
        return True

    def test_random_shapes_and_sizes(self) -> None:
        """Random trees, each then built again with other sizes and contents: every composed image
        is byte for byte pycdlib's fresh one, including trees whose directories were never seen
        whole (assembled from records seen in other directories)."""
        rng = random.Random(9)
        names = name_pool(rng, 60)
        composed = assembled = 0
        for _ in range(60):
            tree = random_tree(rng, names)
            known = set(iso_module._PARTS._pieces)
            if self.assertComposedAsFresh(tree):
                assembled += not set(iso_module._piece_keys(tree, DRIVE_EPOCH).values()) <= known
            for _ in range(3):
                composed += self.assertComposedAsFresh(resized(tree, rng))
        self.assertGreater(composed, 150)
        self.assertGreater(assembled, 10)

    def test_drives_of_new_shapes(self) -> None:
        """Real drives (random keys, user data, passwords, networks): a drive whose directories
        were all seen in earlier drives is composed, even of a shape never built, and its bytes are
        pycdlib's."""
        rng = random.Random(18)
        trees = [drive_files(parse_drive(random_description(rng, index))) for index in range(150)]
        shapes: set[object] = set()
        new_shapes = 0
        for tree in trees:
            shape = iso_module._shape(tree, DRIVE_EPOCH)
            if self.assertComposedAsFresh(tree) and shape not in shapes:
                new_shapes += 1
            shapes.add(shape)
        self.assertGreater(new_shapes, 10)

    def test_build_iso_uses_parts(self) -> None:
        """build_iso serves a drive of a new shape from known parts, with pycdlib's bytes, and
        without mastering it."""
        first = drive_files(parse_drive({**typical(), "user_data": b64(b"#!/bin/sh\n" * 300)}))
        second = drive_files(parse_drive({**typical(), "user_data": b64(b"#!/bin/sh\n"), "password": "pw-2",
                                          "hostname": "db7"}))
        build_iso(first)
        masters = []
        original = iso_module._master_with_pycdlib
        self.patch(iso_module, "_master_with_pycdlib", lambda *args: masters.append(args) or original(*args))
        self.assertEqual(build_iso(second), build_iso(second, reuse=False))
        self.assertEqual(len(masters), 1)  # only the reuse=False build

    def test_parts_keep_no_contents(self) -> None:
        """The kept pieces and skeletons hold neither the password nor the user data."""
        password = "Zq7-very-secret-password"
        user_data = bytes(random.Random(3).getrandbits(8) for _ in range(3000))
        build_iso(drive_files(parse_drive({**typical(), "password": password, "user_data": b64(user_data)})))
        kept = b"".join(piece.data for piece in iso_module._PARTS._pieces.values())
        kept += b"".join(skeleton.head for skeleton in iso_module._PARTS._skeletons.values())
        self.assertTrue(kept)
        self.assertNotIn(password.encode(), kept)
        self.assertNotIn(user_data[:64], kept)

    def test_unknown_image_not_learned(self) -> None:
        """An image that is not the tree's (or not an ISO) teaches nothing."""
        tree = drive_files(parse_drive(typical()))
        other = drive_files(parse_drive({**typical(), "password": "pw"}))
        self.assertIsNone(iso_module._learn(tree, DRIVE_EPOCH, build_iso(other, reuse=False)))
        self.assertIsNone(iso_module._learn(tree, DRIVE_EPOCH, b"\0" * (40 * SECTOR)))
        self.assertIsNotNone(iso_module._learn(tree, DRIVE_EPOCH, build_iso(tree, reuse=False)))
