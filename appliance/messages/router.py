"""The virtual router's control messages (DESIGN.md §4): its whole desired state, the single-VM,
password and rule updates, and the answers; cloudd and the router read them with the same code.

`RouterState` is one complete desired state: the guest network, every VM record, the public
addresses and NAT/firewall rules, and a generation number.  Its JSON shape (`from_json`/`to_json`)::

    {"generation": 7,
     "network": {"interface": "eth0", "cidr": "10.1.1.0/24", "gateway": "10.1.1.1",
                 "router_ip": "10.1.1.1", "domain": "cs1cloud.internal",
                 "dns_servers": ["8.8.8.8", "8.8.4.4"], "router_dns": true,
                 "lease_seconds": null, "mtu": null,
                 "classless_routes": [{"destination": "10.9.0.0/16", "gateway": "10.1.1.254"}]},
     "vms": [<VmRecord JSON, see appliance.messages.records>, ...],
     "rules": <RouterRules JSON, see appliance.messages.rules> | null}

`network.interface`, `cidr` and `router_ip` are required; the rest may be left out (`gateway`,
`domain`, `lease_seconds`, `mtu`: null; `dns_servers`, `classless_routes`: empty; `router_dns`:
true).  `rules.guest_network` may be left out: it is the network's interface, CIDR and router IP,
and when given it must equal them.

The other messages, by route (routervm.web.control):

| Route                        | Body            | Answer         |
|------------------------------|-----------------|----------------|
| GET /health                  |                 | `Health`       |
| GET /v1/state                |                 | `StateView`    |
| PUT /v1/state                | `RouterState`   | `UpdateAnswer` |
| PUT /v1/vms/{uuid}           | `VmUpdate`      | `UpdateAnswer` |
| DELETE /v1/vms/{uuid}        | `VmDeletion`    | `DeleteAnswer` |
| PUT /v1/vms/{uuid}/password  | `PasswordUpdate`| `PasswordAnswer` |
| PUT /v1/rules                | `RulesUpdate`   | `UpdateAnswer` |

Every model's `from_json` raises `MessageError` (`StateError`, `RecordError` and `RuleError` are
kinds of it) naming the offending field; `to_json` gives the JSON `from_json` reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.messages.base import MessageError, expect_bool
from appliance.messages.common import MAX_GENERATION, check_members
from appliance.messages.names import is_interface_name
from appliance.messages.records import RecordError, RecordIndex, VmRecord
from appliance.messages.rules import RouterRules, RuleError

__all__ = [
    "MAX_LEASE_SECONDS",
    "DeleteAnswer",
    "NetworkSettings",
    "PasswordAnswer",
    "PasswordUpdate",
    "RouterState",
    "RulesUpdate",
    "StateError",
    "StateRecords",
    "StateView",
    "UpdateAnswer",
    "VmDeletion",
    "VmUpdate",
    "VmView",
    "generation_of",
    "rules_from_json",
]

#: DHCP's infinite lease (RFC 2131 §3.3), the longest `network.lease_seconds`.
MAX_LEASE_SECONDS = 0xFFFFFFFF

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NETWORK_MEMBERS = frozenset({"interface", "cidr", "gateway", "router_ip", "domain", "dns_servers",
                              "router_dns", "lease_seconds", "mtu", "classless_routes"})
_STATE_MEMBERS = frozenset({"generation", "network", "vms", "rules"})


class StateError(MessageError):
    """The state (or an update) is malformed or inconsistent; the message says what, never quoting
    user data or passwords."""


def _ipv4(value: object, what: str) -> ipaddress.IPv4Address:
    if not isinstance(value, str):
        raise StateError(f"{what} must be an IPv4 address string")
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise StateError(f"{what}: {value!r} is not an IPv4 address") from None


def generation_of(value: object, what: str = "generation") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StateError(f"{what} must be a positive integer")
    return value


def _optional_int(value: object, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise StateError(f"{what} must be an integer from {low} to {high} or null")
    return value


@dataclass(frozen=True)
class NetworkSettings:
    """The guest network this router serves; addresses are canonical strings."""

    interface: str
    cidr: str
    router_ip: str
    gateway: str | None = None
    domain: str | None = None
    dns_servers: tuple[str, ...] = ()
    router_dns: bool = True
    lease_seconds: int | None = None
    mtu: int | None = None
    classless_routes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not is_interface_name(self.interface):
            raise StateError("network.interface must be a device name")
        if not isinstance(self.cidr, str):
            raise StateError("network.cidr must be a CIDR string")
        try:
            network = ipaddress.IPv4Network(self.cidr, strict=True)
        except ValueError:
            raise StateError(f"network.cidr: {self.cidr!r} is not an IPv4 network CIDR") from None
        if network.prefixlen > 30:
            raise StateError(f"network.cidr {network} is too small for guests (/30 at most)")
        object.__setattr__(self, "cidr", str(network))
        router = _ipv4(self.router_ip, "network.router_ip")
        if router not in network or router in (network.network_address, network.broadcast_address):
            raise StateError(f"network.router_ip {router} is not a host address of {network}")
        object.__setattr__(self, "router_ip", str(router))
        if self.gateway is not None:
            gateway = _ipv4(self.gateway, "network.gateway")
            if gateway not in network:
                raise StateError(f"network.gateway {gateway} is outside {network}")
            object.__setattr__(self, "gateway", str(gateway))
        if self.domain is not None:
            if not isinstance(self.domain, str) or len(self.domain) > 253 or not all(
                    _LABEL.match(label) for label in self.domain.rstrip(".").split(".")):
                raise StateError("network.domain must be a DNS domain name or null")
        if not isinstance(self.dns_servers, tuple):
            raise StateError("network.dns_servers must be a list")
        object.__setattr__(self, "dns_servers", tuple(
            str(_ipv4(s, f"network.dns_servers[{i}]")) for i, s in enumerate(self.dns_servers)))
        if not isinstance(self.router_dns, bool):
            raise StateError("network.router_dns must be true or false")
        _optional_int(self.lease_seconds, "network.lease_seconds", 1, MAX_LEASE_SECONDS)
        _optional_int(self.mtu, "network.mtu", 68, 0xFFFF)
        routes = []
        for i, item in enumerate(self.classless_routes):
            what = f"network.classless_routes[{i}]"
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise StateError(f"{what} must have a destination CIDR and a gateway")
            try:
                destination = ipaddress.IPv4Network(item[0], strict=True)
            except ValueError:
                raise StateError(f"{what}: {item[0]!r} is not an IPv4 network CIDR") from None
            routes.append((str(destination), str(_ipv4(item[1], f"{what}.gateway"))))
        object.__setattr__(self, "classless_routes", tuple(routes))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @classmethod
    def from_json(cls, obj: object) -> NetworkSettings:
        if not isinstance(obj, Mapping):
            raise StateError("network must be an object")
        unknown = set(obj) - _NETWORK_MEMBERS
        if unknown:
            raise StateError(f"unknown network member(s): {', '.join(sorted(map(str, unknown)))}")
        for name in ("interface", "cidr", "router_ip"):
            if name not in obj:
                raise StateError(f"network lacks {name}")
        servers = obj.get("dns_servers")
        servers = [] if servers is None else servers
        routes = obj.get("classless_routes")
        routes = [] if routes is None else routes
        if not isinstance(servers, list):
            raise StateError("network.dns_servers must be a list")
        if not isinstance(routes, list):
            raise StateError("network.classless_routes must be a list")
        pairs = []
        for i, route in enumerate(routes):
            if not isinstance(route, Mapping) or set(route) != {"destination", "gateway"}:
                raise StateError(f"network.classless_routes[{i}] must be "
                                 "{\"destination\": <CIDR>, \"gateway\": <IPv4>}")
            pairs.append((route["destination"], route["gateway"]))
        return cls(interface=obj["interface"], cidr=obj["cidr"], router_ip=obj["router_ip"],
                   gateway=obj.get("gateway"), domain=obj.get("domain"), dns_servers=tuple(servers),
                   router_dns=obj.get("router_dns", True), lease_seconds=obj.get("lease_seconds"),
                   mtu=obj.get("mtu"), classless_routes=tuple(pairs))

    def to_json(self) -> dict[str, Any]:
        return {"interface": self.interface, "cidr": self.cidr, "router_ip": self.router_ip,
                "gateway": self.gateway, "domain": self.domain, "dns_servers": list(self.dns_servers),
                "router_dns": self.router_dns, "lease_seconds": self.lease_seconds, "mtu": self.mtu,
                "classless_routes": [{"destination": d, "gateway": g} for d, g in self.classless_routes]}

    def guest_network_json(self) -> dict[str, Any]:
        """The `guest_network` member of the rules' JSON that this network implies."""
        return {"interface": self.interface, "cidr": self.cidr, "router_ip": self.router_ip}


def rules_from_json(obj: object, network: NetworkSettings) -> RouterRules:
    """The rules' JSON with `guest_network` filled in from (or checked against) `network`."""
    if not isinstance(obj, Mapping):
        raise StateError("rules must be an object or null")
    body = dict(obj)
    implied = network.guest_network_json()
    given = body.setdefault("guest_network", implied)
    try:
        rules = RouterRules.from_json(body)
    except RuleError as exc:
        raise StateError(f"rules: {exc}") from None
    if rules.guest.to_json() != implied or not isinstance(given, Mapping):
        raise StateError("rules.guest_network must be the network's interface, cidr and router_ip")
    return rules


class _Keep:
    """`RouterState.evolve`'s "leave the rules as they are"."""


_KEEP = _Keep()


@dataclass(frozen=True)
class RouterState:
    """One complete desired state.  Building it checks everything the derived views need, so a
    `RouterState` always derives."""

    generation: int
    network: NetworkSettings
    vms: tuple[VmRecord, ...] = ()
    rules: RouterRules | None = None
    #: The owner index over `vms`, built once when checking them; `derive` uses it.
    index: RecordIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        generation_of(self.generation)
        if not isinstance(self.network, NetworkSettings):
            raise StateError("network must be NetworkSettings")
        if self.rules is not None and self.rules.guest.to_json() != self.network.guest_network_json():
            raise StateError("rules.guest_network must be the network's interface, cidr and router_ip")
        # A stable order: two states holding the same records compare equal.
        ordered = tuple(sorted(self.vms, key=lambda r: r.uuid))
        object.__setattr__(self, "vms", ordered)
        try:
            object.__setattr__(self, "index", RecordIndex(ordered))
        except RecordError as exc:
            raise StateError(str(exc)) from None
        network = self.network.network
        # Host addresses are strictly between the network and broadcast addresses.  `nic.ip` is
        # canonical (`Nic`), so an IPv4 address packs with inet_aton; an IPv6 one is never inside.
        lowest, highest = int(network.network_address), int(network.broadcast_address)
        macs: dict[str, str] = {}
        addresses: dict[str, str] = {}
        for record in ordered:
            for nic in record.nics:
                if nic.interface != self.network.interface:
                    continue
                where = f"vm {record.uuid}: nic {nic.mac}"
                value = -1 if ":" in nic.ip else int.from_bytes(socket.inet_aton(nic.ip), "big")
                if not lowest < value < highest:
                    raise StateError(f"{where}: {nic.ip} is not a host address of {network}")
                if nic.ip == self.network.router_ip:
                    raise StateError(f"{where}: {nic.ip} is the router's own address")
                if nic.mac in macs:
                    raise StateError(f"{where}: the MAC is also used by vm {macs[nic.mac]}")
                if nic.ip in addresses:
                    raise StateError(f"{where}: the IP {nic.ip} is also used by vm {addresses[nic.ip]}")
                macs[nic.mac] = record.uuid
                addresses[nic.ip] = record.uuid
            if not record.hostname.isascii():
                raise StateError(f"vm {record.uuid}: the host name must be ASCII")

    def vm(self, uuid: str) -> VmRecord | None:
        return self.index.by_uuid(uuid)

    def evolve(self, *, generation: int, vms: tuple[VmRecord, ...] | None = None,
               rules: RouterRules | None | _Keep = _KEEP) -> RouterState:
        """A copy with a new generation and, when given, new records or rules."""
        return RouterState(generation=generation, network=self.network,
                           vms=self.vms if vms is None else vms,
                           rules=self.rules if isinstance(rules, _Keep) else rules)

    @classmethod
    def from_json(cls, obj: object, records: list[VmRecord] | None = None) -> RouterState:
        """The state of a decoded JSON document; `records`, when given, are its VMs already
        built (`decode_state`), and its ``vms`` member is not read."""
        if not isinstance(obj, Mapping):
            raise StateError("the state must be an object")
        unknown = set(obj) - _STATE_MEMBERS
        if unknown:
            raise StateError(f"unknown state member(s): {', '.join(sorted(map(str, unknown)))}")
        for name in ("generation", "network"):
            if name not in obj:
                raise StateError(f"the state lacks {name}")
        generation = generation_of(obj["generation"])
        network = NetworkSettings.from_json(obj["network"])
        if records is None:
            vms = obj.get("vms")
            vms = [] if vms is None else vms
            if not isinstance(vms, list):
                raise StateError("vms must be a list of VM records")
            records = StateRecords()
            for item in vms:
                records.add(item)
        raw_rules = obj.get("rules")
        rules = None if raw_rules is None else rules_from_json(raw_rules, network)
        return cls(generation=generation, network=network, vms=tuple(records), rules=rules)

    def to_json(self) -> dict[str, Any]:
        return {**self.to_json_without_vms(), "vms": [r.to_json() for r in self.vms]}

    def to_json_without_vms(self) -> dict[str, Any]:
        """`to_json` but for the ``vms`` member."""
        return {"generation": self.generation, "network": self.network.to_json(),
                "rules": None if self.rules is None else self.rules.to_json()}

    def same_content(self, other: RouterState) -> bool:
        """Equal apart from the generation."""
        return (self.network, self.vms, self.rules) == (other.network, other.vms, other.rules)


class StateRecords(list[VmRecord]):
    """The records of one state as they are decoded, equal user data and key lists held once."""

    def __init__(self) -> None:
        super().__init__()
        self.shared: dict[Any, Any] = {}

    def add(self, item: object) -> None:
        try:
            self.append(VmRecord.from_json(item, self.shared))
        except RecordError as exc:
            raise StateError(f"vms[{len(self)}]: {exc}") from None



def _generation_member(body: Mapping[str, Any], low: int = 1) -> int:
    value = body["generation"]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_GENERATION:
        raise MessageError("generation", "must be a positive integer" if low else "must be a whole number")
    return value


@dataclass(frozen=True)
class VmUpdate:
    """`PUT /v1/vms/{uuid}`: one VM's record, giving the router generation `generation`."""

    generation: int
    vm: VmRecord

    @classmethod
    def from_json(cls, obj: Any) -> VmUpdate:
        body = check_members(obj, frozenset({"generation", "vm"}), frozenset({"generation", "vm"}))
        generation = _generation_member(body)
        try:
            record = VmRecord.from_json(body["vm"])
        except RecordError as exc:
            raise MessageError("vm", str(exc)) from None
        return cls(generation=generation, vm=record)

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "vm": self.vm.to_json()}


@dataclass(frozen=True)
class VmDeletion:
    """`DELETE /v1/vms/{uuid}`: the generation the removal gives (in the query, or this body)."""

    generation: int

    @classmethod
    def from_json(cls, obj: Any) -> VmDeletion:
        body = check_members(obj, frozenset({"generation"}), frozenset({"generation"}))
        return cls(generation=_generation_member(body))

    @classmethod
    def from_query(cls, values: list[bytes]) -> VmDeletion:
        """The `?generation=N` form (the last value counts)."""
        try:
            return cls.from_json({"generation": int(values[-1])})
        except ValueError as exc:
            if isinstance(exc, MessageError):
                raise
            raise MessageError("generation", "must be a positive integer") from None

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation}


@dataclass(frozen=True)
class PasswordUpdate:
    """`PUT /v1/vms/{uuid}/password`: the VM's new pending password; `generation`, when given, may
    not be older than the one held.  The password is never in a repr or an error message."""

    password: str = field(repr=False)
    generation: int | None = None

    @classmethod
    def from_json(cls, obj: Any) -> PasswordUpdate:
        body = check_members(obj, frozenset({"password", "generation"}), frozenset({"password"}))
        generation = None if body.get("generation") is None else _generation_member(body)
        password = body["password"]
        if not isinstance(password, str) or not password:
            raise MessageError("password", "must be a non-empty string")
        if not password.isprintable():
            raise MessageError("password", "must be printable (no control characters)")
        return cls(password=password, generation=generation)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"password": self.password}
        if self.generation is not None:
            body["generation"] = self.generation
        return body


@dataclass(frozen=True)
class RulesUpdate:
    """`PUT /v1/rules`: the public addresses and NAT/firewall rules (None: no rules), giving
    generation `generation`.  The rules' `guest_network` may be left out when the router's network
    is known (`network`): it is filled in from it, and checked against it when given."""

    generation: int
    rules: RouterRules | None

    @classmethod
    def from_json(cls, obj: Any, network: NetworkSettings | None = None) -> RulesUpdate:
        body = check_members(obj, frozenset({"generation", "rules"}), frozenset({"generation", "rules"}))
        generation = _generation_member(body)
        raw = body["rules"]
        if raw is None:
            return cls(generation=generation, rules=None)
        if network is not None:
            return cls(generation=generation, rules=rules_from_json(raw, network))
        if not isinstance(raw, Mapping):
            raise StateError("rules must be an object or null")
        try:
            return cls(generation=generation, rules=RouterRules.from_json(raw))
        except RuleError as exc:
            raise StateError(f"rules: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "rules": None if self.rules is None else self.rules.to_json()}


def _answer_generation(body: Mapping[str, Any]) -> int:
    return _generation_member(body, low=0)


@dataclass(frozen=True)
class UpdateAnswer:
    """The answer of a state, VM or rules update: the generation now held and whether the update
    changed anything (false: it was applied already)."""

    generation: int
    applied: bool

    @classmethod
    def from_json(cls, obj: Any) -> UpdateAnswer:
        body = check_members(obj, frozenset({"generation", "applied"}), frozenset({"generation", "applied"}))
        return cls(generation=_answer_generation(body), applied=expect_bool(body["applied"], "applied"))

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "applied": self.applied}


@dataclass(frozen=True)
class DeleteAnswer:
    """The answer of `DELETE /v1/vms/{uuid}`: the generation held and whether a VM was removed."""

    generation: int
    deleted: bool

    @classmethod
    def from_json(cls, obj: Any) -> DeleteAnswer:
        body = check_members(obj, frozenset({"generation", "deleted"}), frozenset({"generation", "deleted"}))
        return cls(generation=_answer_generation(body), deleted=expect_bool(body["deleted"], "deleted"))

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "deleted": self.deleted}


@dataclass(frozen=True)
class PasswordAnswer:
    """The answer of a password update: the generation held and that the password is pending."""

    generation: int
    pending: bool

    @classmethod
    def from_json(cls, obj: Any) -> PasswordAnswer:
        body = check_members(obj, frozenset({"generation", "pending"}), frozenset({"generation", "pending"}))
        return cls(generation=_answer_generation(body), pending=expect_bool(body["pending"], "pending"))

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "pending": self.pending}


_VIEW_MEMBERS = frozenset({"has_user_data", "user_data_sha256", "password_pending"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VmView:
    """A VM as `GET /v1/state` shows it: its record without user data, whether it has user data
    (and the data's SHA-256), and whether a password is pending.  `record.user_data` is None."""

    record: VmRecord
    has_user_data: bool
    user_data_sha256: str | None
    password_pending: bool

    def __post_init__(self) -> None:
        if self.record.user_data is not None:
            raise MessageError("user_data", "a VM view never carries user data")
        if self.has_user_data != (self.user_data_sha256 is not None):
            raise MessageError("user_data_sha256", "is given exactly when has_user_data is true")

    @classmethod
    def of(cls, record: VmRecord, password_pending: bool) -> VmView:
        """The view of a record held (its user data reduced to a digest)."""
        data = record.user_data
        return cls(record=_without_user_data(record) if data is not None else record,
                   has_user_data=data is not None,
                   user_data_sha256=None if data is None else hashlib.sha256(data).hexdigest(),
                   password_pending=password_pending)

    @classmethod
    def from_json(cls, obj: Any) -> VmView:
        if not isinstance(obj, Mapping):
            raise MessageError("vm", "must be an object")
        missing = sorted(_VIEW_MEMBERS - set(obj))
        if missing:
            raise MessageError("vm", f"missing field(s): {', '.join(missing)}")
        if "user_data" in obj:
            raise MessageError("user_data", "a VM view never carries user data")
        digest = obj["user_data_sha256"]
        if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
            raise MessageError("user_data_sha256", "must be 64 lower-case hex digits or null")
        record = VmRecord.from_json({k: v for k, v in obj.items() if k not in _VIEW_MEMBERS})
        return cls(record=record, has_user_data=expect_bool(obj["has_user_data"], "has_user_data"),
                   user_data_sha256=digest,
                   password_pending=expect_bool(obj["password_pending"], "password_pending"))

    def to_json(self) -> dict[str, Any]:
        view = self.record.to_json()
        del view["user_data"]
        view["has_user_data"] = self.has_user_data
        view["user_data_sha256"] = self.user_data_sha256
        view["password_pending"] = self.password_pending
        return view


def _without_user_data(record: VmRecord) -> VmRecord:
    return dataclasses.replace(record, user_data=None)


@dataclass(frozen=True)
class StateView:
    """`GET /v1/state`: the generation held (0 before the first full state), the network and rules
    (None before it), and every VM as a `VmView` — no user data, no password."""

    generation: int
    network: NetworkSettings | None = None
    rules: RouterRules | None = None
    vms: tuple[VmView, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> StateView:
        body = check_members(obj, _STATE_MEMBERS, frozenset({"generation", "network", "rules", "vms"}))
        generation = _answer_generation(body)
        network = None if body["network"] is None else NetworkSettings.from_json(body["network"])
        raw_rules = body["rules"]
        if raw_rules is not None and network is None:
            raise StateError("rules need a network")
        rules = None if raw_rules is None or network is None else rules_from_json(raw_rules, network)
        vms = body["vms"]
        if not isinstance(vms, list):
            raise StateError("vms must be a list of VM views")
        views = []
        for index, item in enumerate(vms):
            try:
                views.append(VmView.from_json(item))
            except MessageError as exc:
                raise StateError(f"vms[{index}]: {exc}") from None
        return cls(generation=generation, network=network, rules=rules, vms=tuple(views))

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation,
                "network": None if self.network is None else self.network.to_json(),
                "rules": None if self.rules is None else self.rules.to_json(),
                "vms": [view.to_json() for view in self.vms]}
