"""The router's desired state as cloudd pushes it (DESIGN.md §4), its derived views, and the keeper
that applies, persists and publishes it.

`RouterState`, `NetworkSettings`, `StateError` and `rules_from_json` are the control messages'
(`appliance.messages.router`, which documents the JSON shape), re-exported here: cloudd checks a
state with the same code before it sends it.  `decode_state` reads a state body one VM at a time.

Generations: a state older than the one held is refused (`StaleGeneration`, a 409); the same
generation with the same content is accepted without change (idempotent); the same generation with
different content is refused too.  Single-VM updates and rule updates carry the generation of the
state they produce and follow the same rules.

Every view a guest-facing service uses (`Snapshot`) is derived from the complete state on every
apply, never patched: a single-VM update and a full sync that end in the same state give the same
views.

On disk (`StateKeeper`): `<path>` holds the state JSON (user data included, base64) written
atomically with mode 0600 through the keeper's `FileWriter` (in the daemon, a `SerialWriter`
thread, so neither the encoding of a large state nor the fsync blocks the reactor);
`passwords.sealed` next to it holds the pending passwords as
`PasswordStore.sealed(key)` (AES-GCM), so no password is ever on disk in clear.  The key lives in
`state.key` (0600), created at first start by `load_or_create_key`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.files import atomic_write
from appliance.messages.router import (
    NetworkSettings,
    RouterState,
    StateError,
    StateRecords,
    generation_of,
    rules_from_json,
)
from appliance.writer import FileWriter, InlineWriter, WriteTracker
from routervm.dhcp.packet import INFINITE_LEASE, Route
from routervm.dhcp.reservations import NetworkConfig, Reservation, ReservationTable, parse_mac
from routervm.nat.rules import RouterRules
from routervm.password.store import PasswordStore, SealError
from routervm.records import RecordIndex, VmRecord

__all__ = [
    "DEFAULT_PASSWORD_TTL",
    "KEY_FILE",
    "PASSWORDS_FILE",
    "NetworkSettings",
    "RouterState",
    "Snapshot",
    "StaleGeneration",
    "StateError",
    "StateKeeper",
    "UnknownVm",
    "decode_state",
    "decode_state_file",
    "derive",
    "encode_state_file",
    "load_or_create_key",
    "rules_from_json",
]

#: How long a pending password is served when the settings say nothing (seconds).
DEFAULT_PASSWORD_TTL = 86400
PASSWORDS_FILE = "passwords.sealed"
KEY_FILE = "state.key"
_KEY_BYTES = 32
_FORMAT = 1


class StaleGeneration(Exception):
    """An update's generation is older than the one held, or equal to it with different content."""

    def __init__(self, message: str, held: int) -> None:
        super().__init__(message)
        self.held = held


class UnknownVm(KeyError):
    """No VM with this uuid is in the state held."""

    def __init__(self, uuid: str) -> None:
        super().__init__(uuid)
        self.uuid = uuid

    def __str__(self) -> str:
        return f"there is no VM {self.uuid}"


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_raw_decode = json.JSONDecoder().raw_decode


class _Reader:
    """A JSON text read value by value (`json` decodes each value)."""

    __slots__ = ("text", "at")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        """The next character that is not white space ("" at the end)."""
        match = _WHITESPACE.match(self.text, self.at)
        assert match is not None  # it matches the empty string
        self.at = match.end()
        return self.text[self.at : self.at + 1]

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise json.JSONDecodeError(f"Expecting {char!r}", self.text, self.at)
        self.at += 1

    def value(self) -> Any:
        self.peek()
        value, self.at = _raw_decode(self.text, self.at)
        return value

    def members(self) -> Iterator[str]:
        """The names of an object's members, in order; the caller reads each value."""
        self.take("{")
        if self.peek() == "}":
            self.at += 1
            return
        while True:
            if self.peek() != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", self.text, self.at)
            name = self.value()
            self.take(":")
            yield name
            if self.peek() != ",":
                self.take("}")
                return
            self.at += 1

    def elements(self) -> Iterator[None]:
        """Once per element of an array; the caller reads each one."""
        self.take("[")
        if self.peek() == "]":
            self.at += 1
            return
        while True:
            yield None
            if self.peek() != ",":
                self.take("]")
                return
            self.at += 1

    def end(self) -> None:
        if self.peek():
            raise json.JSONDecodeError("Extra data", self.text, self.at)


def _read_state(reader: _Reader) -> RouterState:
    """`RouterState.from_json` of the object at `reader`, each VM built as soon as it is read."""
    members: dict[str, Any] = {}
    records: StateRecords | None = None
    for name in reader.members():
        if name == "vms" and reader.peek() == "[":
            records = StateRecords()
            for _ in reader.elements():
                records.add(reader.value())
            members[name] = []
        else:
            members[name] = reader.value()
            if name == "vms":
                records = None
    return RouterState.from_json(members, records)


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def decode_state(raw: bytes | str) -> RouterState:
    """`RouterState.from_json(json.loads(raw))`, but each VM record is built as soon as its JSON
    is read and that JSON dropped, instead of decoding the whole document first.

    A router keeps every record as long as it runs.  Decoded all at once, a state of 10,000 VMs
    is some hundred thousand short-lived objects interleaved with the records' long-lived
    strings; once they are freed the allocator's pools stay resident for the few live objects
    each still holds (measured: about 1.5 KB per VM).  VM by VM, each VM's temporary objects are
    reused by the next VM's.  Raises `json.JSONDecodeError` (a `ValueError`) for text that is
    not JSON, `StateError` for a state that is not valid; a top level that is not an object is
    a `StateError` too."""
    reader = _Reader(_text(raw))
    if reader.peek() != "{":
        RouterState.from_json(reader.value())  # raises: not an object
    state = _read_state(reader)
    reader.end()
    return state


def decode_state_file(raw: bytes | str) -> RouterState:
    """The state in a state file's bytes (`encode_state_file`), decoded as `decode_state` does."""
    reader = _Reader(_text(raw))
    state: RouterState | None = None
    fmt: object = None
    if reader.peek() != "{":
        raise StateError("unknown state file format")
    for name in reader.members():
        if name == "state" and reader.peek() == "{":
            state = _read_state(reader)
        else:
            value = reader.value()
            if name == "format":
                fmt = value
            elif name == "state":
                state = RouterState.from_json(value)
    reader.end()
    if fmt != _FORMAT:
        raise StateError("unknown state file format")
    if state is None:
        RouterState.from_json(None)  # raises: no state
    assert state is not None
    return state


@dataclass(frozen=True)
class Snapshot:
    """The state held and every view derived from it, for the data-plane services.

    - `generation`, `state`: the `RouterState` itself;
    - `network`: its `NetworkSettings`;
    - `records`: `RecordIndex` (guest identity → record) over every VM;
    - `reservations`: the DHCP host list, one `Reservation` per VM NIC on the guest interface
      (keyed by MAC; `default_nic` is the record's default NIC);
    - `dhcp`: the guest interface's `NetworkConfig`;
    - `rules`: the `RouterRules`, or None when cloudd sent none.
    """

    state: RouterState
    records: RecordIndex = field(repr=False)
    reservations: ReservationTable = field(repr=False)
    dhcp: NetworkConfig
    rules: RouterRules | None

    @property
    def generation(self) -> int:
        return self.state.generation

    @property
    def network(self) -> NetworkSettings:
        return self.state.network


def derive(state: RouterState, default_lease_seconds: int = INFINITE_LEASE) -> Snapshot:
    """Every view computed from the complete state."""
    net = state.network
    reservations = []
    for record in state.vms:
        default = record.default_nic
        for nic in record.nics:
            if nic.interface == net.interface:
                reservations.append(Reservation(mac=parse_mac(nic.mac), ip=socket.inet_aton(nic.ip),
                                                hostname=record.hostname, default_nic=nic is default))
    routes: tuple[Route, ...] = tuple(
        (ipaddress.IPv4Network(d), ipaddress.IPv4Address(g)) for d, g in net.classless_routes)
    dhcp = NetworkConfig(
        router_ip=ipaddress.IPv4Address(net.router_ip), subnet=net.network,
        gateway=None if net.gateway is None else ipaddress.IPv4Address(net.gateway),
        domain=net.domain, dns_servers=tuple(ipaddress.IPv4Address(s) for s in net.dns_servers),
        router_dns=net.router_dns,
        lease_seconds=default_lease_seconds if net.lease_seconds is None else net.lease_seconds,
        classless_routes=routes, mtu=net.mtu)
    return Snapshot(state=state, records=state.index, reservations=ReservationTable(reservations),
                    dhcp=dhcp, rules=state.rules)


def encode_state_file(state: RouterState) -> bytes:
    """The state file's bytes: ``{"format": 1, "state": <state JSON>}`` with sorted keys and no
    spaces, exactly what one `json.dumps` of that document gives.

    Built one VM at a time (`vms` sorts last), so the JSON form of the whole state never exists at
    once: encoding runs on the writer thread while the reactor thread builds the new views, and a
    whole-state document of small objects interleaved with those long-lived views would leave the
    process holding the document's memory long after it is freed."""
    dump = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
    body = state.to_json_without_vms()
    out = bytearray(dump({"format": _FORMAT, "state": body})[: -len("}}")].encode())
    out += b',"vms":['
    for i, record in enumerate(state.vms):
        if i:
            out += b","
        out += dump(record.to_json()).encode()
    out += b"]}}"
    return bytes(out)


def load_or_create_key(path: str) -> bytes:
    """The password-sealing key in `path` (32 raw bytes, mode 0600), created when missing."""
    try:
        with open(path, "rb") as f:
            key = f.read()
    except FileNotFoundError:
        key = PasswordStore.generate_key()
        atomic_write(path, key, 0o600)
        return key
    if len(key) != _KEY_BYTES:
        raise StateError(f"{path} is not a {_KEY_BYTES}-byte key")
    return key


Subscriber = Callable[[Snapshot], None]


class StateKeeper:
    """Holds the current state, applies updates to it, persists it and tells subscribers.

    Every method that changes the state asks the writer to store the new state, then calls each
    subscriber with the new `Snapshot` at once: guests are served the new state while it is being
    written.  `flushed()` fires when everything changed so far is on disk (the control API answers
    only then) and fails when the newest write failed; it retries a failed write first, so a
    client that repeats its request after a failure gets its state stored.  Passwords live in
    `passwords` (a `PasswordStore`, sealed to `passwords.sealed` on every change); look the store
    up through the keeper each time, as `load` replaces it.
    """

    log = Logger()

    def __init__(self, path: str, clock: IReactorTime, key: bytes, *,
                 password_ttl: float = DEFAULT_PASSWORD_TTL,
                 default_lease_seconds: int = INFINITE_LEASE, writer: FileWriter | None = None) -> None:
        self.path = os.path.abspath(path)
        self.passwords_path = os.path.join(os.path.dirname(self.path), PASSWORDS_FILE)
        self._clock = clock
        self._key = key
        self._ttl = password_ttl
        self._default_lease = default_lease_seconds
        self._snapshot: Snapshot | None = None
        self._subscribers: list[Subscriber] = []
        self._writer: FileWriter = writer if writer is not None else InlineWriter()
        self._state_writes = WriteTracker()
        self._password_writes = WriteTracker()
        self._passwords = PasswordStore(clock, password_ttl, on_change=self._save_passwords)

    # -- reading

    @property
    def snapshot(self) -> Snapshot | None:
        """The current snapshot, or None before the first full state."""
        return self._snapshot

    @property
    def generation(self) -> int:
        """The generation held; 0 before the first full state."""
        return 0 if self._snapshot is None else self._snapshot.generation

    @property
    def passwords(self) -> PasswordStore:
        return self._passwords

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(snapshot)` after every apply (and at once when a state is held already);
        returns a function that unsubscribes."""
        self._subscribers.append(callback)
        if self._snapshot is not None:
            self._call(callback, self._snapshot)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    # -- start

    def load(self) -> Snapshot | None:
        """Read the state and the sealed passwords from disk (missing files: nothing held yet) and
        publish the state.  A damaged file is logged and ignored: cloudd sends a full state when it
        connects."""
        state: RouterState | None = None
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
            state = decode_state_file(raw)
            del raw
        except FileNotFoundError:
            pass
        except (ValueError, OSError) as exc:
            self.log.error("ignoring the unreadable state file {path}: {why}", path=self.path, why=str(exc))
        try:
            with open(self.passwords_path, "rb") as f:
                sealed = f.read()
            self._passwords = PasswordStore.unseal(sealed, self._key, clock=self._clock, ttl_seconds=self._ttl,
                                                   on_change=self._save_passwords)
        except FileNotFoundError:
            pass
        except (SealError, OSError) as exc:
            self.log.error("ignoring the pending passwords in {path}: {why}", path=self.passwords_path,
                           why=str(exc))
        if state is not None:
            self._publish(derive(state, self._default_lease), persist=False)
            self.log.info("serving state generation {generation} with {count} VMs",
                          generation=state.generation, count=len(state.vms))
        self._forget_passwords()
        return self._snapshot

    # -- updates

    def replace(self, state: RouterState) -> bool:
        """Apply a full state.  Returns False when it is the state held already (idempotent);
        raises `StaleGeneration`."""
        if not self._check_generation(state.generation, state):
            return False
        self._publish(derive(state, self._default_lease))
        self._forget_passwords()
        return True

    def put_vm(self, record: VmRecord, generation: int) -> bool:
        """Add or replace one VM's record, giving generation `generation`.  Returns False when it was
        applied already; raises `StaleGeneration` or `StateError`."""
        current = self._require_state(generation)
        others = tuple(r for r in current.vms if r.uuid != record.uuid)
        return self.replace(current.evolve(generation=generation, vms=(*others, record)))

    def delete_vm(self, uuid: str, generation: int) -> bool:
        """Remove one VM (and its pending password), giving generation `generation`.  Returns False
        when it was removed already at this generation; raises `UnknownVm` or `StaleGeneration`."""
        current = self._require_state(generation)
        if current.vm(uuid) is None:
            if generation == current.generation:
                return False
            raise UnknownVm(uuid)
        return self.replace(current.evolve(generation=generation,
                                           vms=tuple(r for r in current.vms if r.uuid != uuid)))

    def put_rules(self, rules: RouterRules | None, generation: int) -> bool:
        """Replace the rules (None: no rules), giving generation `generation`."""
        current = self._require_state(generation)
        return self.replace(current.evolve(generation=generation, rules=rules))

    def set_password(self, uuid: str, password: str, generation: int | None = None) -> None:
        """Make `password` the pending password of VM `uuid` (write-only: nothing returns it but the
        guest-facing password server).  `generation`, when given, may not be older than the one held."""
        snapshot = self._snapshot
        if generation is not None:
            generation_of(generation)
            if generation < self.generation:
                raise StaleGeneration(f"generation {generation} is older than {self.generation}, held",
                                      self.generation)
        if snapshot is None or snapshot.state.vm(uuid) is None:
            raise UnknownVm(uuid)
        if not isinstance(password, str) or not password or not password.isprintable():
            raise StateError("password must be a non-empty printable string")
        self._passwords.set(uuid, password)

    def flushed(self) -> Deferred[None]:
        """Fires when every change so far is on disk; fails with the `OSError` of the newest write
        when that failed (after trying that write once more)."""
        if self._state_writes.failed and self._snapshot is not None:
            self._write_state(self._snapshot.state)
        if self._password_writes.failed:
            self._save_passwords()

        async def both() -> None:
            await self._state_writes.wait()
            await self._password_writes.wait()
        return Deferred.fromCoroutine(both())

    # -- internals

    def _require_state(self, generation: int) -> RouterState:
        generation_of(generation)
        if self._snapshot is None:
            raise StaleGeneration("no full state is held yet: send the whole state first", 0)
        return self._snapshot.state

    def _check_generation(self, generation: int, state: RouterState) -> bool:
        held = self._snapshot
        if held is None or generation > held.generation:
            return True
        if generation < held.generation:
            raise StaleGeneration(f"generation {generation} is older than {held.generation}, held",
                                  held.generation)
        if held.state.same_content(state):
            return False
        raise StaleGeneration(f"generation {generation} is held already with different content",
                              held.generation)

    def _publish(self, snapshot: Snapshot, persist: bool = True) -> None:
        if persist:
            self._write_state(snapshot.state)
        self._snapshot = snapshot
        for callback in list(self._subscribers):
            self._call(callback, snapshot)

    def _call(self, callback: Subscriber, snapshot: Snapshot) -> None:
        try:
            callback(snapshot)
        except Exception:
            self.log.failure("a state subscriber failed on generation {generation}",
                             generation=snapshot.generation)

    def _forget_passwords(self) -> None:
        """Drop the pending passwords of VMs the state no longer holds."""
        known = {r.uuid for r in self._snapshot.state.vms} if self._snapshot is not None else set()
        self._passwords.discard_except(known)  # its change hook rewrites the sealed file

    def _write_state(self, state: RouterState) -> None:
        def encode() -> bytes:  # on the writer's thread: the state is immutable
            return encode_state_file(state)

        written = self._writer.write(self.path, encode, 0o600)
        written.addErrback(self._write_failed, f"the state (generation {state.generation})", self.path)
        self._state_writes.track(written)

    def _save_passwords(self) -> None:
        # Sealed here: the store changes on this thread.
        written = self._writer.write(self.passwords_path, self._passwords.sealed(self._key), 0o600)
        written.addErrback(self._write_failed, "the pending passwords", self.passwords_path)
        self._password_writes.track(written)

    def _write_failed(self, failure: Failure, what: str, path: str) -> Failure:
        self.log.error("could not store {what} in {path}: {why}", what=what, path=path,
                       why=str(failure.value))
        return failure
