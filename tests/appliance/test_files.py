"""Atomic file replacement: readers see the old or the new bytes, and nothing else is left behind."""

from __future__ import annotations

import json
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from appliance.files import atomic_write, atomic_write_json, remove_stale_temporaries


class AtomicWriteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "state.json")

    def test_replace(self) -> None:
        """A second write replaces the content whole, with the requested mode, and leaves no temporary."""
        atomic_write(self.path, b"old", 0o644)
        atomic_write(self.path, b"new content", 0o600)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"new content")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(os.listdir(self.dir), ["state.json"])

    def test_failure_keeps_old(self) -> None:
        """A write that fails (here: a directory stands where the file should go) leaves the old
        state and no temporary file."""
        target = os.path.join(self.dir, "sub")
        os.makedirs(os.path.join(target, "x"))
        self.assertRaises(OSError, atomic_write, target, b"data")
        self.assertEqual(sorted(os.listdir(self.dir)), ["sub"])
        self.assertEqual(os.listdir(target), ["x"])

    def test_json(self) -> None:
        """JSON state is compact, sorted and reads back equal."""
        atomic_write_json(self.path, {"b": 1, "a": [1, 2]})
        with open(self.path, "rb") as f:
            raw = f.read()
        self.assertEqual(raw, b'{"a":[1,2],"b":1}')
        self.assertEqual(json.loads(raw), {"a": [1, 2], "b": 1})

    def test_stale_temporaries(self) -> None:
        """Temporaries left by a crash are removed; other files, dot-files included, stay."""
        for name in (".state.json.abc123.tmp", ".keep", "state.json"):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write("x")
        self.assertEqual(remove_stale_temporaries(self.dir), [".state.json.abc123.tmp"])
        self.assertEqual(sorted(os.listdir(self.dir)), [".keep", "state.json"])
        self.assertEqual(remove_stale_temporaries(os.path.join(self.dir, "missing")), [])
