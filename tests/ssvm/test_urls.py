"""Signed, expiring image URLs: only this appliance's signature, for this path, before the expiry."""

from __future__ import annotations

import os
import stat
from urllib.parse import parse_qs, unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ssvm.urls import UrlError, UrlSigner, check_store_path, load_or_create_key

PATH = "template/tmpl/2/205/2f6b01e1.qcow2"


def _parts(relative: str) -> tuple[str, str, str]:
    split = urlsplit(relative)
    query = parse_qs(split.query)
    return unquote(split.path), query["expires"][0], query["signature"][0]


class SignerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.signer = UrlSigner(b"k" * 32, self.clock, max_ttl=3600)

    def test_round_trip(self) -> None:
        """A fresh URL verifies; after its expiry it does not."""
        relative, expires = self.signer.sign(PATH, 600)
        path, exp, sig = _parts(relative)
        self.assertEqual((path, int(exp), expires), (PATH, 1_800_000_600, 1_800_000_600))
        self.assertTrue(self.signer.verify(path, exp, sig))
        self.clock.advance(599)
        self.assertTrue(self.signer.verify(path, exp, sig))
        self.clock.advance(1)
        self.assertFalse(self.signer.verify(path, exp, sig))

    def test_bound(self) -> None:
        """The signature is bound to the path, the expiry and the key."""
        path, exp, sig = _parts(self.signer.sign(PATH, 600)[0])
        self.assertFalse(self.signer.verify(PATH.replace("205", "206"), exp, sig))
        self.assertFalse(self.signer.verify(path, str(int(exp) + 3600), sig))
        self.assertFalse(UrlSigner(b"o" * 32, self.clock).verify(path, exp, sig))
        for bad in ("", "zz", sig.upper(), sig[:-1], "é" * 64):
            self.assertFalse(self.signer.verify(path, exp, bad))
        for bad_exp in ("", "-1", "1e9", "9" * 40, "12 "):
            self.assertFalse(self.signer.verify(path, bad_exp, sig))

    @given(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
    def test_forgery(self, guess: str) -> None:
        """Random signatures never verify."""
        self.assertFalse(self.signer.verify(PATH, str(1_800_000_600), guess))

    def test_limits(self) -> None:
        """Lifetimes outside 1..max_ttl and paths outside the served folders cannot be signed."""
        for ttl in (0, -5, 3601):
            self.assertRaises(UrlError, self.signer.sign, PATH, ttl)
        for path in ("configdrive/i-2-3-VM.iso", "../etc/passwd", "template/../../x", "template//x",
                     "template/./x", "/template/x", "template", "template/.hidden", "template/a b"):
            self.assertRaises(UrlError, check_store_path, path)
        self.assertEqual(check_store_path("volumes/12/x.qcow2"), "volumes/12/x.qcow2")


class KeyTests(SynchronousTestCase):
    def test_created_once(self) -> None:
        """The signing key is created once, 0600, and read back on the next start."""
        path = os.path.join(self.mktemp(), "url-signing.key")
        key = load_or_create_key(path)
        self.assertEqual(len(key), 32)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(load_or_create_key(path), key)
