"""Tests for what keeps the router's memory per VM small: slotted records, values held once, the
state file encoded one VM at a time, one owner index per state, shared DNS name strings, and the
allocator setting of `routervm.memory`; plus a budget for the views of 1,000 VMs."""

from __future__ import annotations

import gc
import json
import socket
import tracemalloc
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from routervm.dhcp.logic import DhcpLogic
from routervm.dhcp.reservations import Reservation
from routervm.dns.lean import answer, compile_table, encode_name
from routervm.dns.table import DnsTable, reverse_name
from routervm.memory import MMAP_THRESHOLD, fix_mmap_threshold
from routervm.metadata.content import MetadataView
from routervm.records import Nic, VmRecord
from routervm.state import (
    RouterState,
    StateError,
    decode_state,
    decode_state_file,
    derive,
    encode_state_file,
)

#: Bytes per metadata view (one per VM that asked) with `vm_json`'s values: about 850 now, 3,600
#: before paths were interned and shared bodies held once.
VIEW_BUDGET = 1200
#: Bytes per VM that the records, state, owner index, DHCP host list and fast table and the DNS
#: tables (the library's and the lean path's) of `document(1000)` may hold (tracemalloc; about
#: 1,250 now; 2,350 before they were made compact, 1,650 before each DNS name was held once and
#: DHCP's fast path answered from the reservations).
BUDGET_PER_VM = 1350
#: Bytes per VM that `decode_state` may hold at its peak beyond what it returns (about 90 now;
#: 1,200 for one `json.loads` of the whole document).
DECODE_PEAK_PER_VM = 200


def vm_json(i: int, **extra: Any) -> dict[str, Any]:
    """VM `i` as cloudd sends it: unique names and addresses, the values VMs share."""
    record: dict[str, Any] = {
        "uuid": f"00000000-0000-4000-8000-{i:012d}", "instance_name": f"i-2-{i}-VM", "hostname": f"vm{i:05d}",
        "nics": [{"mac": f"02:00:00:28:{i // 256:02x}:{i % 256:02x}",
                  "ip": f"10.40.{(i + 10) // 250}.{(i + 10) % 250 + 2}", "default": True, "interface": "eth0"}],
        "service_offering": "Small Instance", "availability_zone": "zone1", "public_ipv4": "203.0.113.10",
        "cloud_identifier": "0c3e9b36-aaaa-bbbb-cccc-ddddeeeeffff",
        "public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop"],
        "user_data": "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViMQo=",
    }
    record.update(extra)
    return record


def document(count: int, **network: Any) -> dict[str, Any]:
    net: dict[str, Any] = {"interface": "eth0", "cidr": "10.40.0.0/16", "router_ip": "10.40.0.1",
                           "gateway": "10.40.0.1", "domain": "cloud.internal", "dns_servers": ["192.0.2.53"]}
    net.update(network)
    return {"generation": 3, "network": net, "vms": [vm_json(i) for i in range(count)]}


class CompactRecordTests(SynchronousTestCase):
    def test_slotted(self) -> None:
        """Records, NICs and DHCP reservations carry no per-instance dict."""
        state = RouterState.from_json(document(1))
        record = state.vms[0]
        reservation = derive(state).reservations.lookup(bytes.fromhex("020000280000"))
        assert reservation is not None
        for obj in (record, record.nics[0], reservation):
            self.assertFalse(hasattr(obj, "__dict__"), type(obj).__name__)
        self.assertIsInstance(reservation, Reservation)

    def test_shared_values(self) -> None:
        """The values VMs have in common are one object for every record of a state: text fields
        and key lists through interning, user data through the state's shared values."""
        state = RouterState.from_json(json.loads(json.dumps(document(3))))
        first, *others = state.vms
        for other in others:
            for name in ("service_offering", "availability_zone", "public_ipv4", "cloud_identifier",
                         "user_data", "public_keys"):
                self.assertIs(getattr(other, name), getattr(first, name), name)
            self.assertIs(other.nics[0].interface, first.nics[0].interface)
        self.assertEqual(first.user_data, b"#cloud-config\nhostname: web1\n")

    def test_interned_when_built_directly(self) -> None:
        """A record built in code shares its common strings too, whoever built them."""
        zone = "".join(["zo", "ne1"])
        key = "".join(["ssh-ed25519 ", "AAAA"])
        a = VmRecord(uuid="a", instance_name="i-a", hostname="a", availability_zone="zone1",
                     nics=(Nic(mac="02:00:00:00:00:01", ip="10.0.0.2", default=True, interface="eth0"),),
                     public_keys=("ssh-ed25519 AAAA",), extra=(("role", "web"),))
        b = VmRecord(uuid="b", instance_name="i-b", hostname="b", availability_zone=zone,
                     nics=(Nic(mac="02:00:00:00:00:02", ip="10.0.0.3", default=True, interface="eth0"),),
                     public_keys=(key,), extra=(("".join(["ro", "le"]), "".join(["w", "eb"])),))
        self.assertIs(a.availability_zone, b.availability_zone)
        self.assertIs(a.public_keys[0], b.public_keys[0])
        self.assertIs(a.extra[0][0], b.extra[0][0])
        self.assertIs(a.extra[0][1], b.extra[0][1])
        self.assertEqual(b, VmRecord.from_json(b.to_json()))

    def test_unhashable_values_still_refused(self) -> None:
        """Sharing never hides a malformed member: the record's own checks still refuse it."""
        shared: dict[Any, Any] = {}
        for bad in ({"public_keys": [["nested"]]}, {"extra": {"k": ["v"]}}):
            with self.subTest(bad=bad):
                self.assertRaises(ValueError, VmRecord.from_json, vm_json(0, **bad), shared)

    def test_one_index_per_state(self) -> None:
        """The owner index built while checking a state is the one the views use."""
        state = RouterState.from_json(document(2))
        self.assertIs(derive(state).records, state.index)
        self.assertIs(state.vm(state.vms[1].uuid), state.vms[1])
        self.assertIsNone(state.vm("nope"))
        self.assertEqual(state, RouterState.from_json(document(2)))


class StateFileTests(SynchronousTestCase):
    def test_encoding_is_one_dump(self) -> None:
        """The state file, built one VM at a time, is byte for byte one `json.dumps` of the
        document with sorted keys, with or without VMs and rules, non-ASCII text included."""
        full = document(3)
        full["vms"][1]["service_offering"] = "Petite instance \u00e9t\u00e9 \U0001f600"
        full["vms"][2]["extra"] = {"b": "2", "a": "1"}
        full["rules"] = {"public_addresses": [{"interface": "eth2", "ip": "203.0.113.10", "source_nat": True}]}
        for doc in (full, document(0), document(1)):
            state = RouterState.from_json(doc)
            expected = json.dumps({"format": 1, "state": state.to_json()}, sort_keys=True, separators=(",", ":"))
            self.assertEqual(encode_state_file(state), expected.encode())


class DecodeStateTests(SynchronousTestCase):
    """`decode_state` builds each VM as it reads it, with `RouterState.from_json`'s results."""

    def test_same_as_one_decode(self) -> None:
        full = document(3)
        full["vms"][1]["service_offering"] = "Petite instance \u00e9t\u00e9 \U0001f600"
        full["vms"][2]["extra"] = {"b": "2", "a": "1"}
        full["rules"] = {"public_addresses": [{"interface": "eth2", "ip": "203.0.113.10", "source_nat": True}]}
        vms_first = {"vms": full["vms"], **{k: v for k, v in full.items() if k != "vms"}}
        texts = [json.dumps(full), json.dumps(full, indent=2), json.dumps(vms_first, ensure_ascii=False),
                 json.dumps({**document(0), "vms": None}), json.dumps(document(0)),
                 # A member given twice: the last one counts, as for json.loads.
                 json.dumps(document(1))[:-1] + ', "vms": []}', " \n" + json.dumps(document(2)) + "\r\n"]
        for text in texts:
            with self.subTest(text=text[:60]):
                expected = RouterState.from_json(json.loads(text))
                for raw in (text, text.encode("utf-8"), text.encode("utf-16")):
                    state = decode_state(raw)
                    self.assertEqual(state, expected)
                    self.assertEqual(encode_state_file(state), encode_state_file(expected))

    def test_errors(self) -> None:
        """Text that is not JSON is a `ValueError` other than `StateError`; a document that is
        not a valid state is a `StateError` naming what is wrong.  (A VM read before a syntax
        error is checked first: such a body is refused either way.)"""
        good = json.dumps(document(2))
        for text in ("", "{", good[:-1], good + "x", good + "{}", '{"vms": [', '{"vms": [,]}', "{'a': 1}",
                     '{"a" 1}', '{"generation": 1,, }', '{"vms": []]', "\xff"):
            with self.subTest(text=text[:60]):
                with self.assertRaises(ValueError) as caught:
                    decode_state(text)
                self.assertNotIsInstance(caught.exception, StateError)
        bad_vm = document(2)
        del bad_vm["vms"][1]["hostname"]
        for value, message in ((json.dumps(bad_vm), "vms[1]: record lacks hostname"),
                               ("[]", "the state must be an object"),
                               (json.dumps({**document(1), "vms": {}}), "vms must be a list"),
                               (json.dumps({**document(1), "other": 1}), "unknown state member(s): other")):
            with self.subTest(text=value[:60]):
                with self.assertRaises(StateError) as caught:
                    decode_state(value)
                self.assertIn(message, str(caught.exception))

    def test_state_file(self) -> None:
        state = RouterState.from_json(document(3))
        self.assertEqual(decode_state_file(encode_state_file(state)), state)
        for raw in (b"[]", b'{"format": 2, "state": {}}', b'{"state": null, "format": 1}', b'{"format": 1}'):
            with self.subTest(raw=raw):
                self.assertRaises(StateError, decode_state_file, raw)

    def test_document_never_whole(self) -> None:
        """Decoding 1,000 VMs never holds the decoded document: the peak is the text, the
        records and one VM's JSON, where `json.loads` first holds about 1,200 bytes per VM more
        (objects which, interleaved with the records and then freed, kept the router's memory)."""
        text = json.dumps(document(1000))
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        state = decode_state(text)
        held, peak = tracemalloc.get_traced_memory()
        self.assertEqual(len(state.vms), 1000)
        self.assertLess((peak - held) / 1000, DECODE_PEAK_PER_VM)


class DnsNameTests(SynchronousTestCase):
    def test_names_held_once(self) -> None:
        """Each name is one wire-form key; a VM's FQDN key is its PTR target too, and its host
        name and FQDN share one address value."""
        state = RouterState.from_json(document(2))
        table = DnsTable.build("cloud.internal", "10.40.0.1", state.vms)
        keys = {name: name for name in table.forward}
        for record in state.vms:
            fqdn = keys[encode_name(f"{record.hostname}.cloud.internal")]
            ip = record.nics[0].ip
            self.assertIs(table.reverse[encode_name(reverse_name(ip))], fqdn)
            self.assertIs(table.forward[encode_name(record.hostname)], table.forward[fqdn])
            self.assertEqual(table.forward[fqdn], socket.inet_aton(ip))

    def test_nothing_per_name_in_the_lean_table(self) -> None:
        """The lean path answers from the table's own dicts: compiling stores nothing per name,
        and the NODATA answers of names of one length are one object."""
        state = RouterState.from_json(document(2))
        table = DnsTable.build("cloud.internal", "10.40.0.1", state.vms)
        lean = compile_table(table, recursion_available=True)
        self.assertIs(lean.forward, table.forward)
        self.assertIs(lean.reverse, table.reverse)

        def template(name: str, qtype: int) -> object:
            return lean.template(encode_name(name) + bytes((0, qtype, 0, 1)))

        self.assertIs(template("vm00000.cloud.internal", 28), template("vm00001.cloud.internal", 28))
        self.assertIs(template("vm00000", 28), template("vm00001", 28))
        self.assertIsNot(template("vm00000", 28), template("vm00000.cloud.internal", 28))


class BudgetTests(SynchronousTestCase):
    def test_views_of_1000_vms(self) -> None:
        """Decoding a state of 1,000 VMs and deriving what the data plane holds for them (owner
        index, DHCP host list and fast table, DNS tables) keeps under `BUDGET_PER_VM` bytes per
        VM, JSON strings kept by the records included."""
        text = json.dumps(document(1000))
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        state = decode_state(text)
        snapshot = derive(state)
        table = DnsTable.build("cloud.internal", "10.40.0.1", state.vms)
        lean = compile_table(table, recursion_available=True)
        logic = DhcpLogic(snapshot.reservations, snapshot.dhcp, Clock())
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        self.assertEqual((len(table.names()), len(logic.table)), (2 * 1000 + 1000 + 3 + 1, 1000))
        self.assertIsNotNone(answer(b"\x00\x01\x01\x00\x00\x01" + bytes(6) + encode_name("vm00999") + b"\x00\x01\x00\x01", lean))
        self.assertLess(held / 1000, BUDGET_PER_VM)


class MetadataViewTests(SynchronousTestCase):
    def test_shared_parts(self) -> None:
        """Views of different VMs hold one object for equal bodies and for the manifest; a view
        has no per-instance dict."""
        state = RouterState.from_json(document(2))
        a, b = (MetadataView(record) for record in state.vms)
        for path in ("/latest/meta-data/", "/latest/meta-data/availability-zone",
                     "/latest/meta-data/public-keys/0/openssh-key", "/latest/meta-data/cloud-identifier"):
            self.assertIs(a.lookup(path), b.lookup(path), path)
        self.assertIs(a.keys, b.keys)
        self.assertNotEqual(a.lookup("/latest/meta-data/instance-id"), b.lookup("/latest/meta-data/instance-id"))
        self.assertFalse(hasattr(a, "__dict__"))

    def test_legacy_paths(self) -> None:
        """``/latest/<key>`` answers what ``/latest/meta-data/<key>`` does, though only the latter
        is held; nothing else under ``/latest/`` maps."""
        view = MetadataView(RouterState.from_json(document(1)).vms[0])
        for key in view.keys:
            for suffix in ("", "/"):
                self.assertEqual(view.lookup(f"/latest/{key}{suffix}"), view.lookup(f"/latest/meta-data/{key}"), key)
        for path in ("/latest/", "/latest/meta-data", "/latest/public-keys/0", "/latest/0/openssh-key"):
            self.assertIsNone(view.lookup(path), path)
        self.assertEqual(view.lookup("/latest/user-data"), b"#cloud-config\nhostname: web1\n")

    def test_views_of_500_vms(self) -> None:
        """A view per VM (what a router holds once every VM has fetched its metadata) keeps under
        `VIEW_BUDGET` bytes each."""
        state = RouterState.from_json(document(500))
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        views = [MetadataView(record) for record in state.vms]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        self.assertEqual(len(views), 500)
        self.assertLess(held / 500, VIEW_BUDGET)


class _FakeLibc:
    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.answer


class MmapThresholdTests(SynchronousTestCase):
    def test_fixed(self) -> None:
        """glibc: M_MMAP_THRESHOLD (-3) is set to 128 KiB."""
        libc = _FakeLibc(1)
        self.assertTrue(fix_mmap_threshold(libc))
        self.assertEqual(libc.calls, [(-3, MMAP_THRESHOLD)])
        self.assertEqual(MMAP_THRESHOLD, 131072)

    def test_refused(self) -> None:
        """mallopt answering 0 is logged as a warning, without failing."""
        with capturedLogs() as events:
            self.assertFalse(fix_mmap_threshold(_FakeLibc(0)))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])

    def test_other_c_library(self) -> None:
        """A C library without mallopt: nothing to do."""
        self.assertFalse(fix_mmap_threshold(object()))

    def test_this_process(self) -> None:
        """On this machine's C library the call succeeds or is a no-op; it never raises."""
        self.assertIn(fix_mmap_threshold(), (True, False))
