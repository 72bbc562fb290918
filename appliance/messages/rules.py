"""The isolated router's NAT and firewall rule model (router.md §6), the `rules` of its control
messages (`routervm.nat.rules` re-exports it).

Every class is a frozen dataclass checked when it is built: a value that could not be rendered
raises `RuleError` with the reason, so `render` never sees a bad rule.  Addresses and CIDRs are
IPv4 only and are stored in canonical text form; collections are stored as sorted, de-duplicated
tuples, so two rule sets that differ only in input order compare equal and render identically.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, TypeVar

from appliance.messages.base import MessageError
from appliance.messages.names import is_interface_name

__all__ = [
    "ANY_CIDR",
    "EgressPolicy",
    "EgressRule",
    "GuestNetwork",
    "IngressRule",
    "PortForward",
    "PortRange",
    "Protocol",
    "PublicAddress",
    "RouterRules",
    "RuleError",
    "StaticNat",
]

ANY_CIDR = "0.0.0.0/0"

_T = TypeVar("_T")


class RuleError(MessageError):
    """A rule or rule set that cannot be rendered; the message says why."""


class Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ALL = "all"


class EgressPolicy(enum.StrEnum):
    """The network offering's default egress policy (`default_egress_policy`: true = allow)."""

    ALLOW = "allow"
    DENY = "deny"


def _interface(value: object, what: str) -> str:
    if not is_interface_name(value):
        raise RuleError(f"{what}: {value!r} is not a valid interface name")
    return value


def _address(value: object, what: str) -> ipaddress.IPv4Address:
    if not isinstance(value, str):
        raise RuleError(f"{what}: expected an IPv4 address string, got {value!r}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise RuleError(f"{what}: {value!r} is not an IP address") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise RuleError(f"{what}: {value!r} is IPv6; only IPv4 is supported")
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise RuleError(f"{what}: {value!r} cannot be used as a host address")
    return address


def _network(value: object, what: str) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise RuleError(f"{what}: expected a CIDR string, got {value!r}")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise RuleError(f"{what}: {value!r} is not a valid CIDR ({exc})") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise RuleError(f"{what}: {value!r} is IPv6; only IPv4 is supported")
    return network


def _cidrs(values: object, what: str, *, default_any: bool) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise RuleError(f"{what}: expected a list of CIDRs, got {values!r}")
    networks = {_network(value, what) for value in values}
    if not networks:
        if not default_any:
            raise RuleError(f"{what}: at least one CIDR is required")
        networks = {ipaddress.IPv4Network(ANY_CIDR)}
    ordered = sorted(networks, key=lambda n: (int(n.network_address), n.prefixlen))
    return tuple(str(network) for network in ordered)


def _integer(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RuleError(f"{what}: expected an integer, got {value!r}")
    return value


def _protocol(value: object, what: str) -> Protocol:
    for protocol in Protocol:
        if value == protocol.value:
            return protocol
    choices = ", ".join(p.value for p in Protocol)
    raise RuleError(f"{what}: unknown protocol {value!r} (expected one of {choices})")


def _ip_key(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _cidrs_key(cidrs: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    networks = [ipaddress.IPv4Network(c) for c in cidrs]
    return tuple((int(n.network_address), n.prefixlen) for n in networks)


@dataclass(frozen=True, order=True)
class PortRange:
    """An inclusive port range; a single port has `start == end`."""

    start: int
    end: int

    def __post_init__(self) -> None:
        for port in (self.start, self.end):
            _integer(port, "port")
            if not 1 <= port <= 65535:
                raise RuleError(f"port {port} is outside 1-65535")
        if self.start > self.end:
            raise RuleError(f"port range {self.start}:{self.end} is reversed")

    @classmethod
    def parse(cls, value: object) -> PortRange:
        """Accept `22`, `"22"`, `"2222:2230"` (databag form) or `[2222, 2230]`."""
        if isinstance(value, str):
            start, sep, end = value.partition(":")
            try:
                first = int(start)
                last = int(end) if sep else first
            except ValueError:
                raise RuleError(f"port range {value!r} is not 'start[:end]'") from None
            return cls(first, last)
        if isinstance(value, list | tuple) and len(value) == 2:
            return cls(_integer(value[0], "port"), _integer(value[1], "port"))
        port = _integer(value, "port range")
        return cls(port, port)

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: PortRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    def match(self) -> str:
        """The form of `--dport`: `22` or `2222:2230`."""
        return str(self.start) if self.size == 1 else f"{self.start}:{self.end}"

    def target(self) -> str:
        """The form of a DNAT target's ports: `22` or `2222-2230`."""
        return str(self.start) if self.size == 1 else f"{self.start}-{self.end}"

    def to_json(self) -> list[int]:
        return [self.start, self.end]


def _check_match(
    protocol: Protocol, ports: PortRange | None, icmp_type: int | None, icmp_code: int | None, what: str
) -> None:
    if ports is not None and not isinstance(ports, PortRange):
        raise RuleError(f"{what}: ports must be a PortRange, got {ports!r}")
    if protocol in (Protocol.ICMP, Protocol.ALL) and ports is not None:
        raise RuleError(f"{what}: protocol {protocol} takes no port range")
    if protocol is not Protocol.ICMP and (icmp_type is not None or icmp_code is not None):
        raise RuleError(f"{what}: ICMP type/code given for protocol {protocol}")
    if icmp_type is not None and not 0 <= _integer(icmp_type, f"{what} ICMP type") <= 255:
        raise RuleError(f"{what}: ICMP type {icmp_type} is outside 0-255")
    if icmp_code is not None:
        if icmp_type is None:
            raise RuleError(f"{what}: an ICMP code needs an ICMP type")
        if not 0 <= _integer(icmp_code, f"{what} ICMP code") <= 255:
            raise RuleError(f"{what}: ICMP code {icmp_code} is outside 0-255")


def _match_key(
    protocol: Protocol, ports: PortRange | None, icmp_type: int | None, icmp_code: int | None
) -> tuple[str, int, int, int, int]:
    start, end = (ports.start, ports.end) if ports is not None else (0, 0)
    return (
        protocol.value,
        start,
        end,
        -1 if icmp_type is None else icmp_type,
        -1 if icmp_code is None else icmp_code,
    )


def _match_json(
    protocol: Protocol, ports: PortRange | None, icmp_type: int | None, icmp_code: int | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if icmp_code is not None:
        out["icmp_code"] = icmp_code
    if icmp_type is not None:
        out["icmp_type"] = icmp_type
    if ports is not None:
        out["ports"] = ports.to_json()
    out["protocol"] = protocol.value
    return out


@dataclass(frozen=True)
class GuestNetwork:
    """The isolated guest network: the router's guest interface, the CIDR and its address on it."""

    interface: str
    cidr: str
    router_ip: str

    def __post_init__(self) -> None:
        _interface(self.interface, "guest network interface")
        network = _network(self.cidr, "guest network CIDR")
        if network.prefixlen > 30:
            raise RuleError(f"guest network CIDR {network} is too small for guests (/30 at most)")
        router = _address(self.router_ip, "router guest IP")
        _host_in(router, network, "router guest IP")
        object.__setattr__(self, "cidr", str(network))
        object.__setattr__(self, "router_ip", str(router))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    def to_json(self) -> dict[str, Any]:
        return {"cidr": self.cidr, "interface": self.interface, "router_ip": self.router_ip}


def _host_in(address: ipaddress.IPv4Address, network: ipaddress.IPv4Network, what: str) -> None:
    if address not in network:
        raise RuleError(f"{what} {address} is outside the guest network {network}")
    if address in (network.network_address, network.broadcast_address):
        raise RuleError(f"{what} {address} is the network or broadcast address of {network}")


@dataclass(frozen=True)
class PublicAddress:
    """A public IP held by the router on a public interface; at most one is the source-NAT IP.

    `prefix_length` is the length of the public subnet's prefix: the router adds the address as
    ``ip/prefix_length`` to the interface (router.md §6.2), which also gives the route to that
    subnet."""

    interface: str
    ip: str
    source_nat: bool = False
    prefix_length: int = 32

    def __post_init__(self) -> None:
        _interface(self.interface, f"public address {self.ip!r} interface")
        object.__setattr__(self, "ip", str(_address(self.ip, "public IP")))
        if not isinstance(self.source_nat, bool):
            raise RuleError(f"public address {self.ip}: source_nat must be a boolean")
        if not 1 <= _integer(self.prefix_length, f"public address {self.ip} prefix length") <= 32:
            raise RuleError(f"public address {self.ip}: prefix length {self.prefix_length} is outside 1-32")
        network = ipaddress.IPv4Network(f"{self.ip}/{self.prefix_length}", strict=False)
        if self.prefix_length < 31 and ipaddress.IPv4Address(self.ip) in (
            network.network_address,
            network.broadcast_address,
        ):
            raise RuleError(f"public address {self.ip}/{self.prefix_length} is the network or broadcast address")

    @property
    def cidr(self) -> str:
        """The address as the interface holds it: ``ip/prefix_length``."""
        return f"{self.ip}/{self.prefix_length}"

    def sort_key(self) -> tuple[int, str, bool, int]:
        return (_ip_key(self.ip), self.interface, self.source_nat, self.prefix_length)

    def to_json(self) -> dict[str, Any]:
        return {"interface": self.interface, "ip": self.ip, "prefix_length": self.prefix_length,
                "source_nat": self.source_nat}


@dataclass(frozen=True)
class IngressRule:
    """Traffic allowed to one public IP from the given source CIDRs (none given = anywhere)."""

    public_ip: str
    protocol: Protocol
    ports: PortRange | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    source_cidrs: tuple[str, ...] = (ANY_CIDR,)

    def __post_init__(self) -> None:
        what = f"ingress rule for {self.public_ip!r}"
        object.__setattr__(self, "public_ip", str(_address(self.public_ip, "ingress rule public IP")))
        object.__setattr__(self, "protocol", _protocol(self.protocol, what))
        _check_match(self.protocol, self.ports, self.icmp_type, self.icmp_code, what)
        object.__setattr__(self, "source_cidrs", _cidrs(self.source_cidrs, f"{what} source", default_any=True))

    def sort_key(self) -> tuple[Any, ...]:
        return (
            _ip_key(self.public_ip),
            _match_key(self.protocol, self.ports, self.icmp_type, self.icmp_code),
            _cidrs_key(self.source_cidrs),
        )

    def to_json(self) -> dict[str, Any]:
        out = _match_json(self.protocol, self.ports, self.icmp_type, self.icmp_code)
        out["public_ip"] = self.public_ip
        out["source_cidrs"] = list(self.source_cidrs)
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class EgressRule:
    """Guest traffic to the given destinations (none given = anywhere); its action is the
    inverse of the offering's default egress policy."""

    protocol: Protocol
    ports: PortRange | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    destination_cidrs: tuple[str, ...] = (ANY_CIDR,)

    def __post_init__(self) -> None:
        what = "egress rule"
        object.__setattr__(self, "protocol", _protocol(self.protocol, what))
        _check_match(self.protocol, self.ports, self.icmp_type, self.icmp_code, what)
        cidrs = _cidrs(self.destination_cidrs, f"{what} destination", default_any=True)
        object.__setattr__(self, "destination_cidrs", cidrs)

    def sort_key(self) -> tuple[Any, ...]:
        return (
            _match_key(self.protocol, self.ports, self.icmp_type, self.icmp_code),
            _cidrs_key(self.destination_cidrs),
        )

    def to_json(self) -> dict[str, Any]:
        out = _match_json(self.protocol, self.ports, self.icmp_type, self.icmp_code)
        out["destination_cidrs"] = list(self.destination_cidrs)
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class PortForward:
    """DNAT of `public_ip:public_ports` to `guest_ip:guest_ports` (tcp or udp).

    The ranges have the same length; a multi-port forward keeps its port numbers, because a
    DNAT range cannot shift ports one-to-one.
    """

    public_ip: str
    protocol: Protocol
    public_ports: PortRange
    guest_ip: str
    guest_ports: PortRange

    def __post_init__(self) -> None:
        what = f"port forward {self.public_ip!r}"
        object.__setattr__(self, "public_ip", str(_address(self.public_ip, "port forward public IP")))
        object.__setattr__(self, "guest_ip", str(_address(self.guest_ip, "port forward guest IP")))
        protocol = _protocol(self.protocol, what)
        if protocol not in (Protocol.TCP, Protocol.UDP):
            raise RuleError(f"{what}: protocol must be tcp or udp, not {protocol}")
        object.__setattr__(self, "protocol", protocol)
        for ports in (self.public_ports, self.guest_ports):
            if not isinstance(ports, PortRange):
                raise RuleError(f"{what}: ports must be a PortRange, got {ports!r}")
        if self.public_ports.size != self.guest_ports.size:
            raise RuleError(
                f"{what}: public ports {self.public_ports.match()} and guest ports "
                f"{self.guest_ports.match()} differ in length"
            )
        if self.public_ports.size > 1 and self.public_ports != self.guest_ports:
            raise RuleError(f"{what}: a multi-port forward must keep the same port numbers")

    def sort_key(self) -> tuple[Any, ...]:
        return (
            _ip_key(self.public_ip),
            self.protocol.value,
            self.public_ports,
            _ip_key(self.guest_ip),
            self.guest_ports,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "guest_ip": self.guest_ip,
            "guest_ports": self.guest_ports.to_json(),
            "protocol": self.protocol.value,
            "public_ip": self.public_ip,
            "public_ports": self.public_ports.to_json(),
        }


@dataclass(frozen=True)
class StaticNat:
    """One-to-one NAT: the public IP is DNATed to the guest IP, whose traffic leaves as the public IP."""

    public_ip: str
    guest_ip: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_ip", str(_address(self.public_ip, "static NAT public IP")))
        object.__setattr__(self, "guest_ip", str(_address(self.guest_ip, "static NAT guest IP")))

    def sort_key(self) -> tuple[int, int]:
        return (_ip_key(self.public_ip), _ip_key(self.guest_ip))

    def to_json(self) -> dict[str, Any]:
        return {"guest_ip": self.guest_ip, "public_ip": self.public_ip}


def _sorted_unique(values: object, kind: type[_T], key: Callable[[_T], Any], what: str) -> tuple[_T, ...]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise RuleError(f"{what}: expected a sequence, got {values!r}")
    items = list(values)
    for item in items:
        if not isinstance(item, kind):
            raise RuleError(f"{what}: expected {kind.__name__}, got {item!r}")
    return tuple(sorted(set(items), key=key))


@dataclass(frozen=True)
class RouterRules:
    """Everything the isolated router's netfilter configuration is rendered from."""

    guest: GuestNetwork
    public_addresses: tuple[PublicAddress, ...]
    ingress_rules: tuple[IngressRule, ...] = ()
    egress_policy: EgressPolicy = EgressPolicy.ALLOW
    egress_rules: tuple[EgressRule, ...] = ()
    port_forwards: tuple[PortForward, ...] = ()
    static_nats: tuple[StaticNat, ...] = ()
    control_interface: str = "eth1"
    control_port: int = 3922

    def __post_init__(self) -> None:
        if not isinstance(self.guest, GuestNetwork):
            raise RuleError(f"guest must be a GuestNetwork, got {self.guest!r}")
        if self.egress_policy not in (EgressPolicy.ALLOW.value, EgressPolicy.DENY.value):
            raise RuleError(f"egress policy {self.egress_policy!r} is not 'allow' or 'deny'")
        object.__setattr__(self, "egress_policy", EgressPolicy(self.egress_policy))
        _interface(self.control_interface, "control interface")
        if not 1 <= _integer(self.control_port, "control port") <= 65535:
            raise RuleError(f"control port {self.control_port} is outside 1-65535")
        normalise: list[tuple[str, type[Any], str]] = [
            ("public_addresses", PublicAddress, "public addresses"),
            ("ingress_rules", IngressRule, "ingress rules"),
            ("egress_rules", EgressRule, "egress rules"),
            ("port_forwards", PortForward, "port forwards"),
            ("static_nats", StaticNat, "static NAT rules"),
        ]
        for name, kind, what in normalise:
            items = _sorted_unique(getattr(self, name), kind, lambda item: item.sort_key(), what)
            object.__setattr__(self, name, items)
        self._check_addresses()
        self._check_nat()

    def _check_addresses(self) -> None:
        guest = self.guest
        seen: set[str] = set()
        for address in self.public_addresses:
            if address.ip in seen:
                raise RuleError(f"public IP {address.ip} is listed more than once")
            seen.add(address.ip)
            if address.interface in (guest.interface, self.control_interface):
                raise RuleError(f"public IP {address.ip} is on {address.interface}, not a public interface")
            if ipaddress.IPv4Address(address.ip) in guest.network:
                raise RuleError(f"public IP {address.ip} is inside the guest network {guest.cidr}")
        if guest.interface == self.control_interface:
            raise RuleError(f"the guest and control interfaces are both {guest.interface}")
        source_nat = [a.ip for a in self.public_addresses if a.source_nat]
        if len(source_nat) > 1:
            raise RuleError(f"more than one source-NAT IP: {', '.join(source_nat)}")
        for rule in self.ingress_rules:
            if rule.public_ip not in seen:
                raise RuleError(f"ingress rule for {rule.public_ip}: not a public IP of this router")

    def _check_nat(self) -> None:
        public = {a.ip: a for a in self.public_addresses}
        network = self.guest.network
        static_public: set[str] = set()
        static_guest: set[str] = set()
        for nat in self.static_nats:
            what = f"static NAT {nat.public_ip} -> {nat.guest_ip}"
            self._check_guest_ip(nat.guest_ip, network, what)
            if nat.public_ip not in public:
                raise RuleError(f"{what}: {nat.public_ip} is not a public IP of this router")
            if public[nat.public_ip].source_nat:
                raise RuleError(f"{what}: {nat.public_ip} is the source-NAT IP")
            if nat.public_ip in static_public:
                raise RuleError(f"{what}: {nat.public_ip} already has static NAT")
            if nat.guest_ip in static_guest:
                raise RuleError(f"{what}: {nat.guest_ip} already has static NAT")
            static_public.add(nat.public_ip)
            static_guest.add(nat.guest_ip)
        for index, forward in enumerate(self.port_forwards):
            what = f"port forward {forward.public_ip}:{forward.public_ports.match()}/{forward.protocol}"
            self._check_guest_ip(forward.guest_ip, network, what)
            if forward.public_ip not in public:
                raise RuleError(f"{what}: {forward.public_ip} is not a public IP of this router")
            if forward.public_ip in static_public:
                raise RuleError(f"{what}: conflicts with static NAT on {forward.public_ip}")
            for other in self.port_forwards[index + 1 :]:
                if (
                    other.public_ip == forward.public_ip
                    and other.protocol is forward.protocol
                    and other.public_ports.overlaps(forward.public_ports)
                ):
                    raise RuleError(
                        f"{what}: overlaps port forward {other.public_ip}:{other.public_ports.match()}"
                    )

    def _check_guest_ip(self, guest_ip: str, network: ipaddress.IPv4Network, what: str) -> None:
        _host_in(ipaddress.IPv4Address(guest_ip), network, f"{what}: guest IP")
        if guest_ip == self.guest.router_ip:
            raise RuleError(f"{what}: guest IP {guest_ip} is the router's own guest IP")

    @property
    def source_nat(self) -> PublicAddress | None:
        for address in self.public_addresses:
            if address.source_nat:
                return address
        return None

    def public_interface(self, ip: str) -> str:
        for address in self.public_addresses:
            if address.ip == ip:
                return address.interface
        raise KeyError(ip)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with sorted keys and lists; `from_json` reads it back."""
        return {
            "control": {"interface": self.control_interface, "port": self.control_port},
            "egress_policy": self.egress_policy.value,
            "egress_rules": [rule.to_json() for rule in self.egress_rules],
            "guest_network": self.guest.to_json(),
            "ingress_rules": [rule.to_json() for rule in self.ingress_rules],
            "port_forwards": [rule.to_json() for rule in self.port_forwards],
            "public_addresses": [address.to_json() for address in self.public_addresses],
            "static_nats": [rule.to_json() for rule in self.static_nats],
        }

    @classmethod
    def from_json(cls, obj: object) -> RouterRules:
        """Build from the control API's JSON object; any malformed part raises `RuleError`."""
        top = _object(
            obj,
            "rule set",
            required={"guest_network", "public_addresses"},
            optional={"control", "egress_policy", "egress_rules", "ingress_rules", "port_forwards", "static_nats"},
        )
        guest = _object(top["guest_network"], "guest_network", required={"cidr", "interface", "router_ip"})
        control = _object(top.get("control", {}), "control", optional={"interface", "port"})
        return cls(
            guest=GuestNetwork(guest["interface"], guest["cidr"], guest["router_ip"]),
            public_addresses=tuple(_public_address(v) for v in _list(top["public_addresses"], "public_addresses")),
            ingress_rules=tuple(_ingress(v) for v in _list(top.get("ingress_rules", []), "ingress_rules")),
            egress_policy=top.get("egress_policy", EgressPolicy.ALLOW.value),
            egress_rules=tuple(_egress(v) for v in _list(top.get("egress_rules", []), "egress_rules")),
            port_forwards=tuple(_forward(v) for v in _list(top.get("port_forwards", []), "port_forwards")),
            static_nats=tuple(_static(v) for v in _list(top.get("static_nats", []), "static_nats")),
            control_interface=control.get("interface", "eth1"),
            control_port=control.get("port", 3922),
        )


def _object(
    value: object, what: str, *, required: AbstractSet[str] = frozenset(), optional: AbstractSet[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleError(f"{what}: expected an object, got {value!r}")
    missing = sorted(required - value.keys())
    if missing:
        raise RuleError(f"{what}: missing {', '.join(missing)}")
    unknown = sorted(str(k) for k in value.keys() - required - optional)
    if unknown:
        raise RuleError(f"{what}: unknown field(s) {', '.join(unknown)}")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RuleError(f"{what}: expected a list, got {value!r}")
    return value


_MATCH_FIELDS = {"icmp_code", "icmp_type", "ports", "protocol"}


def _match_args(obj: Mapping[str, Any]) -> dict[str, Any]:
    ports = obj.get("ports")
    icmp_type = obj.get("icmp_type")
    icmp_code = obj.get("icmp_code")
    return {
        "protocol": obj["protocol"],
        "ports": None if ports is None else PortRange.parse(ports),
        "icmp_type": None if icmp_type is None else _integer(icmp_type, "ICMP type"),
        "icmp_code": None if icmp_code is None else _integer(icmp_code, "ICMP code"),
    }


def _public_address(value: object) -> PublicAddress:
    obj = _object(value, "public address", required={"interface", "ip"}, optional={"prefix_length", "source_nat"})
    return PublicAddress(obj["interface"], obj["ip"], obj.get("source_nat", False), obj.get("prefix_length", 32))


def _ingress(value: object) -> IngressRule:
    obj = _object(
        value,
        "ingress rule",
        required={"public_ip", "protocol"},
        optional=(_MATCH_FIELDS | {"source_cidrs"}) - {"protocol"},
    )
    cidrs = obj.get("source_cidrs", [ANY_CIDR])
    return IngressRule(public_ip=obj["public_ip"], source_cidrs=tuple(_list(cidrs, "source_cidrs")), **_match_args(obj))


def _egress(value: object) -> EgressRule:
    obj = _object(
        value, "egress rule", required={"protocol"}, optional=(_MATCH_FIELDS | {"destination_cidrs"}) - {"protocol"}
    )
    cidrs = obj.get("destination_cidrs", [ANY_CIDR])
    return EgressRule(destination_cidrs=tuple(_list(cidrs, "destination_cidrs")), **_match_args(obj))


def _forward(value: object) -> PortForward:
    fields = {"guest_ip", "guest_ports", "protocol", "public_ip", "public_ports"}
    obj = _object(value, "port forward", required=fields)
    return PortForward(
        public_ip=obj["public_ip"],
        protocol=obj["protocol"],
        public_ports=PortRange.parse(obj["public_ports"]),
        guest_ip=obj["guest_ip"],
        guest_ports=PortRange.parse(obj["guest_ports"]),
    )


def _static(value: object) -> StaticNat:
    obj = _object(value, "static NAT rule", required={"guest_ip", "public_ip"})
    return StaticNat(public_ip=obj["public_ip"], guest_ip=obj["guest_ip"])
