"""Tests for `routervm.password`: the sans-IO wire format (router.md §2) and the pending-password store."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from routervm.password.codec import Command, Response, parse_request, response_for
from routervm.password.store import PasswordStore, SealError

PLAIN_HEADERS = ((b"Content-Type", b"text/plain"), (b"Server", b"CloudStack Password Server"))


class ParseRequestTests(SynchronousTestCase):
    def test_commands(self) -> None:
        """The two known DomU_Request values map to their commands."""
        self.assertIs(parse_request({"DomU_Request": "send_my_password"}), Command.SEND_MY_PASSWORD)
        self.assertIs(parse_request({"DomU_Request": "saved_password"}), Command.SAVED_PASSWORD)

    def test_header_name_case_insensitive(self) -> None:
        """The header name matches in any case (HTTP header names are case-insensitive)."""
        self.assertIs(parse_request({"domu_request": "send_my_password"}), Command.SEND_MY_PASSWORD)
        self.assertIs(parse_request({"DOMU_REQUEST": "saved_password", "Host": "x"}), Command.SAVED_PASSWORD)

    def test_bad_requests(self) -> None:
        """A missing header, a wrongly cased or padded value, an unknown value or an ambiguous
        duplicate is a bad request."""
        for headers in (
            {},
            {"Host": "10.1.1.1:8080"},
            {"DomU_Request": "Send_My_Password"},
            {"DomU_Request": "send_my_password "},
            {"DomU_Request": ""},
            {"DomU_Request": "save_password"},
            {"DomU_Request": "send_my_password", "domu_request": "saved_password"},
        ):
            self.assertIs(parse_request(headers), Command.BAD_REQUEST, headers)


class ResponseTests(SynchronousTestCase):
    def test_wire_example_password(self) -> None:
        """router.md §2.5: send_my_password with a pending password → 200, text/plain, the bare password."""
        response = response_for(parse_request({"DomU_Request": "send_my_password"}), "Vx8gkq2Lr")
        self.assertEqual(response, (200, PLAIN_HEADERS, b"Vx8gkq2Lr"))
        self.assertIsInstance(response, Response)

    def test_wire_example_no_password(self) -> None:
        """No pending password, or an unknown / non-owning requester → saved_password, never 404."""
        self.assertEqual(
            response_for(Command.SEND_MY_PASSWORD, None), (200, PLAIN_HEADERS, b"saved_password")
        )
        self.assertEqual(response_for(Command.SEND_MY_PASSWORD, ""), (200, PLAIN_HEADERS, b"saved_password"))

    def test_ack(self) -> None:
        """The saved_password acknowledgement is answered with saved_password, password or not."""
        self.assertEqual(
            response_for(Command.SAVED_PASSWORD, "Vx8gkq2Lr"), (200, PLAIN_HEADERS, b"saved_password")
        )
        self.assertEqual(response_for(Command.SAVED_PASSWORD, None), (200, PLAIN_HEADERS, b"saved_password"))

    def test_bad_request(self) -> None:
        """A bad request gets 200 with body bad_request, and never the password."""
        self.assertEqual(response_for(Command.BAD_REQUEST, "Vx8gkq2Lr"), (200, PLAIN_HEADERS, b"bad_request"))

    def test_utf8_password(self) -> None:
        """The body is the password's UTF-8 bytes with no trailing newline."""
        self.assertEqual(response_for(Command.SEND_MY_PASSWORD, "pässwörd").body, "pässwörd".encode())


class StoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.changes = 0
        self.store = PasswordStore(self.clock, 600, on_change=self._changed)

    def _changed(self) -> None:
        self.changes += 1

    def tearDown(self) -> None:
        self.store.clear()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fetch_does_not_consume(self) -> None:
        """A pending password is served repeatedly until acknowledged."""
        self.store.set("vm-1", "Vx8gkq2Lr")
        self.assertEqual(self.store.fetch("vm-1"), "Vx8gkq2Lr")
        self.assertEqual(self.store.fetch("vm-1"), "Vx8gkq2Lr")
        self.assertIsNone(self.store.fetch("vm-2"))
        self.assertIn("vm-1", self.store)
        self.assertEqual(len(self.store), 1)

    def test_replace(self) -> None:
        """A new password replaces an unacknowledged one at once, with a fresh TTL and one timer."""
        self.store.set("vm-1", "old")
        self.clock.advance(500)
        self.store.set("vm-1", "new")
        self.assertEqual(self.store.fetch("vm-1"), "new")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(500)
        self.assertEqual(self.store.fetch("vm-1"), "new")
        self.assertEqual(self.changes, 2)

    def test_acknowledge(self) -> None:
        """Acknowledging removes the password and cancels its timer; a second ack is a no-op."""
        self.store.set("vm-1", "Vx8gkq2Lr")
        self.assertTrue(self.store.acknowledge("vm-1"))
        self.assertIsNone(self.store.fetch("vm-1"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.store.acknowledge("vm-1"))
        self.assertFalse(self.store.acknowledge("never-set"))
        self.assertEqual(self.changes, 2)

    def test_ttl_expiry(self) -> None:
        """The password disappears after the TTL, and the change is reported for persistence."""
        self.store.set("vm-1", "Vx8gkq2Lr")
        self.clock.advance(599)
        self.assertEqual(self.store.fetch("vm-1"), "Vx8gkq2Lr")
        self.clock.advance(1)
        self.assertIsNone(self.store.fetch("vm-1"))
        self.assertNotIn("vm-1", self.store)
        self.assertEqual(self.changes, 2)

    def test_expiry_checked_on_fetch(self) -> None:
        """Even before the timer runs, a password past its deadline is not served."""
        self.store.set("vm-1", "Vx8gkq2Lr")
        # Move time without running delayed calls (as a late reactor would).
        self.clock.rightNow += 600
        self.assertIsNone(self.store.fetch("vm-1"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_repr_hides_passwords(self) -> None:
        """repr shows counts, never passwords."""
        self.store.set("vm-1", "Vx8gkq2Lr")
        self.assertNotIn("Vx8gkq2Lr", repr(self.store))
        self.assertIn("pending=1", repr(self.store))

    def test_rejects_empty_password(self) -> None:
        """An empty password would be indistinguishable from none."""
        self.assertRaises(ValueError, self.store.set, "vm-1", "")
        self.assertRaises(ValueError, PasswordStore, self.clock, 0)

    def test_seal_round_trip(self) -> None:
        """Sealed passwords come back with their remaining TTL under the same key."""
        key = PasswordStore.generate_key()
        self.store.set("vm-1", "Vx8gkq2Lr")
        self.clock.advance(100)
        self.store.set("vm-2", "Qq7-other")
        sealed = self.store.sealed(key)
        restored = PasswordStore.unseal(sealed, key, clock=self.clock, ttl_seconds=600)
        self.addCleanup(restored.clear)
        self.assertEqual(restored.fetch("vm-1"), "Vx8gkq2Lr")
        self.assertEqual(restored.fetch("vm-2"), "Qq7-other")
        self.clock.advance(500)
        self.assertIsNone(restored.fetch("vm-1"))
        self.assertEqual(restored.fetch("vm-2"), "Qq7-other")

    def test_sealed_has_no_cleartext(self) -> None:
        """The sealed bytes contain neither the password nor the VM uuid, and differ each time."""
        key = PasswordStore.generate_key()
        self.store.set("vm-with-uuid", "Vx8gkq2Lr")
        sealed = self.store.sealed(key)
        self.assertNotIn(b"Vx8gkq2Lr", sealed)
        self.assertNotIn(b"vm-with-uuid", sealed)
        self.assertNotEqual(sealed, self.store.sealed(key))

    def test_unseal_drops_expired(self) -> None:
        """Passwords whose TTL ran out while the router was down are not restored."""
        key = PasswordStore.generate_key()
        self.store.set("vm-1", "Vx8gkq2Lr")
        sealed = self.store.sealed(key)
        later = Clock()
        later.advance(1_700_000_000 + 601)
        restored = PasswordStore.unseal(sealed, key, clock=later, ttl_seconds=600)
        self.assertEqual(len(restored), 0)
        self.assertEqual(later.getDelayedCalls(), [])

    def test_unseal_caps_ttl(self) -> None:
        """A clock that went backwards does not stretch a restored password's life past the TTL."""
        key = PasswordStore.generate_key()
        self.store.set("vm-1", "Vx8gkq2Lr")
        sealed = self.store.sealed(key)
        earlier = Clock()
        earlier.advance(1_600_000_000)
        restored = PasswordStore.unseal(sealed, key, clock=earlier, ttl_seconds=60)
        self.assertEqual([c.getTime() for c in earlier.getDelayedCalls()], [1_600_000_060])
        restored.clear()

    def test_unseal_rejects(self) -> None:
        """A wrong key, tampering, truncation or foreign data raise SealError."""
        key = PasswordStore.generate_key()
        self.store.set("vm-1", "Vx8gkq2Lr")
        sealed = self.store.sealed(key)
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        for data, use_key in (
            (sealed, PasswordStore.generate_key()),
            (tampered, key),
            (sealed[:10], key),
            (b"", key),
            (b"vm-1=Vx8gkq2Lr\n", key),
        ):
            self.assertRaises(
                SealError, PasswordStore.unseal, data, use_key, clock=self.clock, ttl_seconds=600
            )

    def test_unseal_rejects_damaged_payload(self) -> None:
        """Well-encrypted but malformed content is refused too."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = PasswordStore.generate_key()
        magic = b"RVPW\x01"
        nonce = b"\x00" * 12
        for doc in (
            b"[]",
            b"{}",
            json.dumps({"passwords": [{"uuid": 1, "password": "x", "expires": 1}]}).encode(),
        ):
            data = magic + nonce + AESGCM(key).encrypt(nonce, doc, magic)
            self.assertRaises(SealError, PasswordStore.unseal, data, key, clock=self.clock, ttl_seconds=600)

    def test_empty_store_seals(self) -> None:
        """An empty store seals and unseals to an empty store."""
        key = PasswordStore.generate_key()
        restored = PasswordStore.unseal(self.store.sealed(key), key, clock=self.clock, ttl_seconds=600)
        self.assertEqual(len(restored), 0)


class DiscardTests(SynchronousTestCase):
    def test_discard_except(self) -> None:
        """Passwords of VMs the router no longer serves are dropped, the others kept, and the
        change is reported once."""
        clock = Clock()
        changes: list[int] = []
        store = PasswordStore(clock, 60, on_change=lambda: changes.append(1))
        store.set("vm-a", "pa")
        store.set("vm-b", "pb")
        changes.clear()
        self.assertEqual(store.discard_except({"vm-a"}), ["vm-b"])
        self.assertEqual((store.fetch("vm-a"), store.fetch("vm-b")), ("pa", None))
        self.assertEqual(changes, [1])
        self.assertEqual(store.discard_except({"vm-a"}), [])
        self.assertEqual(changes, [1])
        clock.advance(61)
        self.assertEqual(clock.getDelayedCalls(), [])
