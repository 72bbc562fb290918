"""Tests for `routervm.state`: the desired state's validation, the generation rules, the derived
views, persistence across a restart, and the sealed passwords."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import stat
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from routervm.dhcp.packet import INFINITE_LEASE
from routervm.dhcp.reservations import parse_mac
from routervm.password.store import PasswordStore
from routervm.records import VmRecord
from routervm.state import (
    KEY_FILE,
    PASSWORDS_FILE,
    RouterState,
    Snapshot,
    StaleGeneration,
    StateError,
    StateKeeper,
    UnknownVm,
    load_or_create_key,
)

UUID1 = "9f1c2b7e-1111-4222-8333-444455556666"
UUID2 = "0b7d3a52-2222-4333-8444-555566667777"
SECRET = "Vx8gkq2Lr-secret"
USER_DATA = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViMQo="  # "#cloud-config\nhostname: web1\n"


def vm(uuid: str = UUID1, mac: str = "02:00:4c:5e:00:02", ip: str = "10.1.1.50",
       hostname: str = "web1", **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"uuid": uuid, "instance_name": f"i-2-{hostname}-VM", "hostname": hostname,
                              "nics": [{"mac": mac, "ip": ip, "default": True, "interface": "eth0"}]}
    record.update(extra)
    return record


def state(generation: int = 1, vms: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "generation": generation,
        "network": {"interface": "eth0", "cidr": "10.1.1.0/24", "gateway": "10.1.1.1",
                    "router_ip": "10.1.1.1", "domain": "cs1cloud.internal",
                    "dns_servers": ["8.8.8.8", "8.8.4.4"],
                    "classless_routes": [{"destination": "10.9.0.0/16", "gateway": "10.1.1.254"}]},
        "vms": [vm(user_data=USER_DATA), vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")]
        if vms is None else vms,
        "rules": {"public_addresses": [{"interface": "eth2", "ip": "203.0.113.10", "source_nat": True}],
                  "port_forwards": [{"public_ip": "203.0.113.10", "protocol": "tcp", "public_ports": "2222",
                                     "guest_ip": "10.1.1.50", "guest_ports": "22"}]},
    }
    document.update(extra)
    return document


def views(snapshot: Snapshot) -> Any:
    """Everything derived, in comparable form."""
    reservations = []
    for record in snapshot.state.vms:
        for nic in record.nics:
            reservations.append(snapshot.reservations.lookup(parse_mac(nic.mac)))
    owners = [snapshot.records.lookup(n.interface, n.mac, n.ip) for r in snapshot.state.vms for n in r.nics]
    return (snapshot.generation, snapshot.state.vms, len(snapshot.records), owners, len(snapshot.reservations),
            reservations, snapshot.dhcp, snapshot.rules)


class ValidationTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """from_json(to_json()) gives the same state; the rules' guest network comes from the network."""
        parsed = RouterState.from_json(state())
        self.assertEqual(RouterState.from_json(parsed.to_json()), parsed)
        assert parsed.rules is not None
        self.assertEqual(parsed.rules.guest.to_json(),
                         {"interface": "eth0", "cidr": "10.1.1.0/24", "router_ip": "10.1.1.1"})
        self.assertEqual([r.uuid for r in parsed.vms], sorted([UUID1, UUID2]))

    def test_minimal(self) -> None:
        """Only the generation and the network's interface, CIDR and router address are required."""
        parsed = RouterState.from_json({"generation": 1, "network": {"interface": "eth0", "cidr": "10.1.1.0/24",
                                                                     "router_ip": "10.1.1.1"}})
        self.assertEqual((parsed.vms, parsed.rules, parsed.network.dns_servers), ((), None, ()))

    def test_bad_states(self) -> None:
        """Each malformed or inconsistent state is refused with a message naming the problem."""
        def net(**change: Any) -> dict[str, Any]:
            document = state()
            document["network"].update(change)
            return document

        cases: list[tuple[Any, str]] = [
            ([], "must be an object"),
            ({"network": state()["network"]}, "lacks generation"),
            (state(extra_member=1), "unknown state member"),
            (state(generation=0), "generation"),
            (state(generation=True), "generation"),
            (state(generation="3"), "generation"),
            (net(interface="eth 0"), "network.interface"),
            (net(cidr="10.1.1.1/24"), "network.cidr"),
            (net(cidr="10.1.1.0/31"), "too small"),
            (net(router_ip="10.2.0.1"), "network.router_ip"),
            (net(router_ip="10.1.1.0"), "network.router_ip"),
            (net(gateway="192.0.2.1"), "network.gateway"),
            (net(domain="bad domain"), "network.domain"),
            (net(dns_servers="8.8.8.8"), "dns_servers"),
            (net(dns_servers=["nine"]), "dns_servers[0]"),
            (net(router_dns="yes"), "router_dns"),
            (net(lease_seconds=0), "lease_seconds"),
            (net(mtu=20), "mtu"),
            (net(classless_routes=[{"destination": "10.9.0.0/16"}]), "classless_routes[0]"),
            (net(colour="blue"), "unknown network member"),
            (net(interface="eth0\n"), "network.interface"),
            (state(vms={}), "vms must be a list"),
            (state(vms=[{"uuid": UUID1}]), "vms[0]"),
            (state(vms=[vm(), vm()]), "uuid"),
            (state(vms=[vm(), vm(UUID2, ip="10.1.1.60")]), "MAC"),
            (state(vms=[vm(), vm(UUID2, mac="02:00:4c:5e:00:09")]), "IP 10.1.1.50 is also used"),
            (state(vms=[vm(ip="10.2.0.5")]), "is not a host address"),
            (state(vms=[vm(ip="10.1.1.1")]), "router's own address"),
            (state(vms=[vm(hostname="wéb")]), "ASCII"),
            (state(rules={"public_addresses": "x"}), "rules"),
            (state(rules={"public_addresses": [], "guest_network": {"interface": "eth0", "cidr": "10.1.2.0/24",
                                                                    "router_ip": "10.1.2.1"}}), "guest_network"),
            (state(rules=[]), "rules must be an object"),
        ]
        for document, fragment in cases:
            with self.assertRaises(StateError, msg=fragment) as caught:
                RouterState.from_json(document)
            self.assertIn(fragment, str(caught.exception))

    def test_errors_do_not_quote_user_data(self) -> None:
        """A refused record's message never repeats its user data."""
        with self.assertRaises(StateError) as caught:
            RouterState.from_json(state(vms=[vm(user_data="!!" + USER_DATA)]))
        self.assertNotIn(USER_DATA, str(caught.exception))


class KeeperTestMixin:
    clock: Clock
    mktemp: Any

    def keeper(self, directory: str | None = None) -> StateKeeper:
        directory = directory or self.mktemp()
        os.makedirs(directory, exist_ok=True)
        key = load_or_create_key(os.path.join(directory, KEY_FILE))
        return StateKeeper(os.path.join(directory, "state.json"), self.clock, key, password_ttl=3600)


class GenerationTests(KeeperTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.k = self.keeper()
        self.published: list[Snapshot] = []
        self.k.subscribe(self.published.append)
        self.assertTrue(self.k.replace(RouterState.from_json(state(5))))

    def test_older_refused(self) -> None:
        """An older generation is a conflict and changes nothing."""
        with self.assertRaises(StaleGeneration) as caught:
            self.k.replace(RouterState.from_json(state(4, vms=[])))
        self.assertEqual(caught.exception.held, 5)
        self.assertRaises(StaleGeneration, self.k.put_vm, VmRecord.from_json(vm(hostname="x")), 4)
        self.assertRaises(StaleGeneration, self.k.delete_vm, UUID1, 3)
        self.assertRaises(StaleGeneration, self.k.put_rules, None, 2)
        self.assertRaises(StaleGeneration, self.k.set_password, UUID1, SECRET, 4)
        self.assertEqual((self.k.generation, len(self.k.snapshot.state.vms)), (5, 2))  # type: ignore[union-attr]
        self.assertEqual(len(self.published), 1)

    def test_same_generation_same_content(self) -> None:
        """The same generation with the same content is accepted without a change or a notification."""
        self.assertFalse(self.k.replace(RouterState.from_json(state(5))))
        record = VmRecord.from_json(vm(user_data=USER_DATA))
        self.assertFalse(self.k.put_vm(record, 5))
        self.assertEqual(len(self.published), 1)

    def test_same_generation_other_content(self) -> None:
        """The same generation with other content is a conflict."""
        self.assertRaises(StaleGeneration, self.k.replace, RouterState.from_json(state(5, vms=[])))
        self.assertRaises(StaleGeneration, self.k.put_vm, VmRecord.from_json(vm(hostname="other")), 5)
        self.assertRaises(StaleGeneration, self.k.delete_vm, UUID1, 5)

    def test_updates_before_first_state(self) -> None:
        """Single-VM and rule updates need a full state first."""
        empty = self.keeper()
        self.assertEqual(empty.generation, 0)
        self.assertRaises(StaleGeneration, empty.put_vm, VmRecord.from_json(vm()), 1)
        self.assertRaises(StaleGeneration, empty.put_rules, None, 1)
        self.assertRaises(UnknownVm, empty.set_password, UUID1, SECRET)

    def test_delete(self) -> None:
        """Deleting removes the VM and its password; an unknown VM is UnknownVm; repeating the same
        delete at the same generation is idempotent."""
        self.k.set_password(UUID1, SECRET)
        self.assertTrue(self.k.delete_vm(UUID1, 6))
        self.assertNotIn(UUID1, self.k.passwords)
        self.assertFalse(self.k.delete_vm(UUID1, 6))
        self.assertRaises(UnknownVm, self.k.delete_vm, UUID1, 7)
        self.assertRaises(UnknownVm, self.k.set_password, UUID1, SECRET)
        self.assertEqual(self.k.generation, 6)

    def test_full_sync_drops_passwords_of_removed_vms(self) -> None:
        self.k.set_password(UUID1, SECRET)
        self.k.set_password(UUID2, SECRET + "2")
        self.k.replace(RouterState.from_json(state(6, vms=[vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")])))
        self.assertEqual((UUID1 in self.k.passwords, self.k.passwords.fetch(UUID2)), (False, SECRET + "2"))

    def test_bad_password(self) -> None:
        for bad in ("", "a\nb"):
            self.assertRaises(StateError, self.k.set_password, UUID1, bad)


class DerivedViewTests(KeeperTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def test_views(self) -> None:
        """Reservations by MAC for each guest NIC (with the default flag), the DHCP settings, the
        identity index and the rules come from the state."""
        k = self.keeper()
        second = vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")
        second["nics"].append({"mac": "02:00:4c:5e:00:04", "ip": "10.1.1.52", "default": False,
                               "interface": "eth0"})
        second["nics"].append({"mac": "02:00:4c:5e:00:05", "ip": "10.7.0.5", "default": False,
                               "interface": "eth3"})
        k.replace(RouterState.from_json(state(1, vms=[vm(), second])))
        snapshot = k.snapshot
        assert snapshot is not None
        self.assertEqual(len(snapshot.reservations), 3)
        extra = snapshot.reservations.lookup(parse_mac("02:00:4c:5e:00:04"))
        assert extra is not None
        self.assertEqual((str(extra.ip), extra.hostname, extra.default_nic), ("10.1.1.52", "web2", False))
        first = snapshot.reservations.lookup(parse_mac("02:00:4c:5e:00:02"))
        assert first is not None
        self.assertTrue(first.default_nic)
        self.assertIsNone(snapshot.reservations.lookup(parse_mac("02:00:4c:5e:00:05")))
        self.assertEqual(snapshot.dhcp.router_ip, ipaddress.IPv4Address("10.1.1.1"))
        self.assertEqual(snapshot.dhcp.lease_seconds, INFINITE_LEASE)
        self.assertEqual(snapshot.dhcp.domain, "cs1cloud.internal")
        self.assertEqual([str(s) for s in snapshot.dhcp.dns_list()], ["10.1.1.1", "8.8.8.8", "8.8.4.4"])
        self.assertEqual(snapshot.dhcp.classless_routes,
                         ((ipaddress.IPv4Network("10.9.0.0/16"), ipaddress.IPv4Address("10.1.1.254")),))
        owner = snapshot.records.lookup("eth3", "02:00:4c:5e:00:05", "10.7.0.5")
        assert owner is not None
        self.assertEqual(owner.uuid, UUID2)
        assert snapshot.rules is not None
        self.assertEqual(snapshot.rules.source_nat.ip, "203.0.113.10")  # type: ignore[union-attr]

    def test_single_vm_update_equals_full_sync(self) -> None:
        """A sequence of single-VM and rule updates ends with the same views as one full sync to the
        same state."""
        stepwise = self.keeper()
        stepwise.replace(RouterState.from_json(state(1, vms=[vm()], rules=None)))
        stepwise.put_vm(VmRecord.from_json(vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")), 2)
        stepwise.put_vm(VmRecord.from_json(vm(user_data=USER_DATA)), 3)
        third = vm("5e0d4c3b-3333-4444-8555-666677778888", "02:00:4c:5e:00:07", "10.1.1.57", "web3")
        stepwise.put_vm(VmRecord.from_json(third), 4)
        stepwise.delete_vm(third["uuid"], 5)
        rules = RouterState.from_json(state()).rules
        stepwise.put_rules(rules, 6)

        whole = self.keeper()
        whole.replace(RouterState.from_json(state(6)))
        assert stepwise.snapshot is not None and whole.snapshot is not None
        self.assertEqual(views(stepwise.snapshot), views(whole.snapshot))

    def test_lease_default(self) -> None:
        """Without a lease time in the state, the keeper's default applies."""
        directory = self.mktemp()
        os.makedirs(directory)
        k = StateKeeper(os.path.join(directory, "state.json"), self.clock, PasswordStore.generate_key(),
                        default_lease_seconds=7200)
        k.replace(RouterState.from_json(state()))
        self.assertEqual(k.snapshot.dhcp.lease_seconds, 7200)  # type: ignore[union-attr]
        document = state(2)
        document["network"]["lease_seconds"] = 600
        k.replace(RouterState.from_json(document))
        self.assertEqual(k.snapshot.dhcp.lease_seconds, 600)  # type: ignore[union-attr]

    def test_subscribers(self) -> None:
        """A subscriber gets the current snapshot at once and each later one; a failing subscriber is
        logged and does not stop the others; unsubscribing stops the calls."""
        k = self.keeper()
        k.replace(RouterState.from_json(state(1)))
        seen: list[int] = []

        def broken(snapshot: Snapshot) -> None:
            raise RuntimeError("boom")
        k.subscribe(broken)
        unsubscribe = k.subscribe(lambda s: seen.append(s.generation))
        k.replace(RouterState.from_json(state(2)))
        unsubscribe()
        k.replace(RouterState.from_json(state(3)))
        self.assertEqual(seen, [1, 2])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)


class PersistenceTests(KeeperTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.directory = os.path.abspath(self.mktemp())

    def test_restart(self) -> None:
        """A new keeper on the same directory serves the same state, views and pending passwords at
        once; user data survives; the password is on disk only sealed."""
        first = self.keeper(self.directory)
        self.assertIsNone(first.load())
        first.replace(RouterState.from_json(state(7)))
        first.set_password(UUID1, SECRET)

        for name in ("state.json", PASSWORDS_FILE, KEY_FILE):
            mode = stat.S_IMODE(os.stat(os.path.join(self.directory, name)).st_mode)
            self.assertEqual(mode, 0o600, name)
        for name in os.listdir(self.directory):
            with open(os.path.join(self.directory, name), "rb") as f:
                self.assertNotIn(SECRET.encode(), f.read(), name)
        with open(os.path.join(self.directory, "state.json")) as f:
            self.assertIn(USER_DATA, json.dumps(json.load(f)))

        second = self.keeper(self.directory)
        published: list[Snapshot] = []
        second.subscribe(published.append)
        snapshot = second.load()
        assert snapshot is not None and first.snapshot is not None
        self.assertEqual(views(snapshot), views(first.snapshot))
        self.assertEqual([s.generation for s in published], [7])
        self.assertEqual(second.passwords.fetch(UUID1), SECRET)
        record = snapshot.records.by_uuid(UUID1)
        assert record is not None
        self.assertEqual(record.user_data, b"#cloud-config\nhostname: web1\n")
        self.assertRaises(StaleGeneration, second.replace, RouterState.from_json(state(6)))

    def test_sealed_passwords(self) -> None:
        """passwords.sealed opens with the key in state.key and holds the pending passwords; an
        acknowledgement rewrites it."""
        k = self.keeper(self.directory)
        k.replace(RouterState.from_json(state(1)))
        k.set_password(UUID1, SECRET)
        with open(os.path.join(self.directory, KEY_FILE), "rb") as f:
            key = f.read()
        with open(os.path.join(self.directory, PASSWORDS_FILE), "rb") as f:
            sealed = f.read()
        store = PasswordStore.unseal(sealed, key, clock=self.clock, ttl_seconds=3600)
        self.assertEqual(store.fetch(UUID1), SECRET)
        store.clear()
        k.passwords.acknowledge(UUID1)
        with open(os.path.join(self.directory, PASSWORDS_FILE), "rb") as f:
            store = PasswordStore.unseal(f.read(), key, clock=self.clock, ttl_seconds=3600)
        self.assertEqual(len(store), 0)
        k.passwords.clear()

    def test_key_created_once(self) -> None:
        os.makedirs(self.directory)
        path = os.path.join(self.directory, KEY_FILE)
        key = load_or_create_key(path)
        self.assertEqual((len(key), load_or_create_key(path)), (32, key))
        with open(path, "wb") as f:
            f.write(b"short")
        self.assertRaises(StateError, load_or_create_key, path)

    def test_damaged_file(self) -> None:
        """A damaged state file is logged and ignored; the keeper starts with no state."""
        os.makedirs(self.directory)
        with open(os.path.join(self.directory, "state.json"), "w") as f:
            f.write("{not json")
        k = self.keeper(self.directory)
        self.assertIsNone(k.load())
        self.assertEqual(k.generation, 0)

    def test_changed_document_is_not_aliased(self) -> None:
        """The state parsed from a document does not change when the document does."""
        document = state(1)
        parsed = RouterState.from_json(document)
        before = copy.deepcopy(parsed.to_json())
        document["vms"][0]["hostname"] = "changed"
        self.assertEqual(parsed.to_json(), before)
