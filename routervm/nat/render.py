"""Render a `RouterRules` model to one `iptables-restore` document (router.md §6).

The document replaces the `filter`, `nat` and `mangle` tables whole, so applying it with
`iptables-restore` (which commits each table atomically) leaves no stale rule behind.  Nothing
is run here; the process helper feeds the text to the tool.  The output is a pure function of
the model, and the model keeps its collections sorted, so equal rule sets give identical bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routervm.nat.rules import (
    ANY_CIDR,
    EgressPolicy,
    PortForward,
    PortRange,
    Protocol,
    RouterRules,
)

__all__ = ["EGRESS_CHAIN", "OUTBOUND_CHAIN", "firewall_chain", "render"]

EGRESS_CHAIN = "FW_EGRESS_RULES"
OUTBOUND_CHAIN = "FW_OUTBOUND"

_HEADER = "# cloudd routervm NAT/firewall rules; generated, do not edit"
_ESTABLISHED = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
_NEW = ["-m", "conntrack", "--ctstate", "NEW"]
_WAS_DNATED = ["-m", "conntrack", "--ctstate", "DNAT"]

# Guest-facing services (router.md §6.1): DNS on the router's guest IP; metadata and passwords
# on every router address of the guest interface (§2.1, security.md 23), as they listen there.
# (protocol, port, NEW only, router's guest IP only)
_GUEST_SERVICES: list[tuple[Protocol, int, bool, bool]] = [
    (Protocol.UDP, 53, False, True),
    (Protocol.TCP, 53, False, True),
    (Protocol.TCP, 80, True, False),
    (Protocol.TCP, 8080, True, False),
]
_DHCP_SERVER_PORT = 67


def firewall_chain(public_ip: str) -> str:
    """The mangle chain holding one public IP's ingress rules (at most 24 characters)."""
    return f"FIREWALL_{public_ip}"


@dataclass
class _Table:
    name: str
    policies: list[tuple[str, str]]
    chains: list[str] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)

    def append(
        self,
        chain: str,
        *args: str,
        s: str = ANY_CIDR,
        d: str = ANY_CIDR,
        i: str | None = None,
        o: str | None = None,
    ) -> None:
        """Append a rule.  Addresses and interfaces come first in the order `iptables-save`
        prints them (-s -d -i -o), so a rendered rule reads back unchanged."""
        head = [*_cidr("-s", s), *_cidr("-d", d)]
        head += [] if i is None else ["-i", i]
        head += [] if o is None else ["-o", o]
        self.rules.setdefault(chain, []).append(" ".join(["-A", chain, *head, *args]))

    def lines(self) -> list[str]:
        """The table's section, its rules grouped by chain in declaration order."""
        out = [f"*{self.name}"]
        out += [f":{chain} {policy} [0:0]" for chain, policy in self.policies]
        out += [f":{chain} - [0:0]" for chain in self.chains]
        declared = [chain for chain, _ in self.policies] + self.chains
        undeclared = sorted(self.rules.keys() - set(declared))
        if undeclared:
            raise AssertionError(f"rules for undeclared chains in {self.name}: {undeclared}")
        for chain in declared:
            out += self.rules.get(chain, [])
        out.append("COMMIT")
        return out


def _host(ip: str) -> str:
    return f"{ip}/32"


def _cidr(flag: str, cidr: str) -> list[str]:
    return [] if cidr == ANY_CIDR else [flag, cidr]


def _match(
    protocol: Protocol, ports: PortRange | None = None, icmp_type: int | None = None, icmp_code: int | None = None
) -> list[str]:
    if protocol is Protocol.ALL:
        return []
    args = ["-p", protocol.value]
    if protocol is Protocol.ICMP:
        if icmp_type is not None:
            kind = str(icmp_type) if icmp_code is None else f"{icmp_type}/{icmp_code}"
            args += ["-m", "icmp", "--icmp-type", kind]
    elif ports is not None:
        args += ["-m", protocol.value, "--dport", ports.match()]
    return args


def _service(protocol: Protocol, port: int) -> list[str]:
    return _match(protocol, PortRange(port, port))


def _forward_target(forward: PortForward) -> str:
    return f"{forward.guest_ip}:{forward.guest_ports.target()}"


def _filter(rules: RouterRules) -> _Table:
    guest = rules.guest
    gdev = guest.interface
    table = _Table("filter", [("INPUT", "DROP"), ("FORWARD", "DROP"), ("OUTPUT", "ACCEPT")])
    table.chains = [EGRESS_CHAIN, OUTBOUND_CHAIN]

    table.append("INPUT", *_ESTABLISHED, "-j", "ACCEPT")
    table.append("INPUT", "-j", "ACCEPT", i="lo")
    table.append("INPUT", "-p", "icmp", "-j", "ACCEPT")
    control = _service(Protocol.TCP, rules.control_port)
    table.append("INPUT", *control, *_NEW, "-j", "ACCEPT", i=rules.control_interface)
    # Guest-to-router services.  DHCP requests come from 0.0.0.0 to the broadcast address, so
    # they are matched by interface and port alone.
    table.append("INPUT", *_service(Protocol.UDP, _DHCP_SERVER_PORT), "-j", "ACCEPT", i=gdev)
    for protocol, port, new_only, router_ip_only in _GUEST_SERVICES:
        state = _NEW if new_only else []
        match = [*_service(protocol, port), *state]
        destination = _host(guest.router_ip) if router_ip_only else ANY_CIDR
        table.append("INPUT", *match, "-j", "ACCEPT", s=guest.cidr, d=destination, i=gdev)

    public_devices = sorted({a.interface for a in rules.public_addresses})
    for pdev in public_devices:
        table.append("FORWARD", *_ESTABLISHED, "-j", "ACCEPT", i=pdev, o=gdev)
    # Intra-network hairpin: guest -> public IP -> DNAT back to a guest.
    table.append("FORWARD", "-j", "ACCEPT", i=gdev, o=gdev)
    for forward in rules.port_forwards:
        pdev = rules.public_interface(forward.public_ip)
        match = _match(forward.protocol, forward.guest_ports)
        table.append("FORWARD", *match, *_NEW, "-j", "ACCEPT", d=_host(forward.guest_ip), i=pdev, o=gdev)
    for nat in rules.static_nats:
        pdev = rules.public_interface(nat.public_ip)
        table.append("FORWARD", *_NEW, "-j", "ACCEPT", d=_host(nat.guest_ip), i=pdev, o=gdev)
    for pdev in public_devices:
        table.append("FORWARD", "-j", OUTBOUND_CHAIN, i=gdev, o=pdev)

    table.append(OUTBOUND_CHAIN, *_ESTABLISHED, "-j", "ACCEPT")
    table.append(OUTBOUND_CHAIN, "-j", EGRESS_CHAIN)

    # Listed egress rules invert the offering's default; the default itself comes last.
    allow = rules.egress_policy is EgressPolicy.ALLOW
    listed, default = ("DROP", "ACCEPT") if allow else ("ACCEPT", "DROP")
    for rule in rules.egress_rules:
        match = _match(rule.protocol, rule.ports, rule.icmp_type, rule.icmp_code)
        for cidr in rule.destination_cidrs:
            table.append(EGRESS_CHAIN, *match, "-j", listed, d=cidr)
    table.append(EGRESS_CHAIN, "-j", default)
    return table


def _nat(rules: RouterRules) -> _Table:
    guest = rules.guest
    gdev = guest.interface
    table = _Table(
        "nat", [("PREROUTING", "ACCEPT"), ("INPUT", "ACCEPT"), ("OUTPUT", "ACCEPT"), ("POSTROUTING", "ACCEPT")]
    )
    # Guest-to-router traffic (DHCP, DNS, metadata, passwords) is never NATed: ACCEPT ends the
    # nat PREROUTING traversal before any DNAT rule is consulted.
    table.append("PREROUTING", "-j", "ACCEPT", d=_host(guest.router_ip), i=gdev)

    for forward in rules.port_forwards:
        pdev = rules.public_interface(forward.public_ip)
        match = _match(forward.protocol, forward.public_ports)
        target = ["-j", "DNAT", "--to-destination", _forward_target(forward)]
        public = _host(forward.public_ip)
        # From outside, then from the guest network (hairpin).
        table.append("PREROUTING", *match, *target, d=public, i=pdev)
        table.append("PREROUTING", *match, *target, d=public, i=gdev)
        # From the router itself.
        table.append("OUTPUT", *match, *target, d=public)
    for nat in rules.static_nats:
        pdev = rules.public_interface(nat.public_ip)
        target = ["-j", "DNAT", "--to-destination", nat.guest_ip]
        public = _host(nat.public_ip)
        table.append("PREROUTING", *target, d=public, i=pdev)
        table.append("PREROUTING", *target, d=public, i=gdev)
        table.append("OUTPUT", *target, d=public)

    # Hairpin return path: a guest that reached another guest through a public IP is SNATed to
    # the router's guest IP, so the reply comes back through the router and is un-NATed.
    to_router = ["-j", "SNAT", "--to-source", guest.router_ip]
    for forward in rules.port_forwards:
        match = _match(forward.protocol, forward.guest_ports)
        dest = _host(forward.guest_ip)
        table.append("POSTROUTING", *match, *_WAS_DNATED, *to_router, s=guest.cidr, d=dest, o=gdev)
    for nat in rules.static_nats:
        dest = _host(nat.guest_ip)
        table.append("POSTROUTING", *_WAS_DNATED, *to_router, s=guest.cidr, d=dest, o=gdev)
    # Static NAT outbound, before the general source NAT.
    for nat in rules.static_nats:
        pdev = rules.public_interface(nat.public_ip)
        snat = ["-j", "SNAT", "--to-source", nat.public_ip]
        table.append("POSTROUTING", *snat, s=_host(nat.guest_ip), o=pdev)
    source_nat = rules.source_nat
    if source_nat is not None:
        snat = ["-j", "SNAT", "--to-source", source_nat.ip]
        table.append("POSTROUTING", *snat, s=guest.cidr, o=source_nat.interface)
    return table


def _mangle(rules: RouterRules) -> _Table:
    table = _Table(
        "mangle",
        [
            ("PREROUTING", "ACCEPT"),
            ("INPUT", "ACCEPT"),
            ("FORWARD", "ACCEPT"),
            ("OUTPUT", "ACCEPT"),
            ("POSTROUTING", "ACCEPT"),
        ],
    )
    # Ingress firewall, before DNAT: traffic to a public IP is dropped unless a rule matches.
    for address in rules.public_addresses:
        chain = firewall_chain(address.ip)
        table.chains.append(chain)
        table.append("PREROUTING", "-j", chain, d=_host(address.ip))
    guest = rules.guest
    for address in rules.public_addresses:
        chain = firewall_chain(address.ip)
        table.append(chain, *_ESTABLISHED, "-j", "ACCEPT")
        # Hairpin from the guest network is not subject to the public ingress rules: the guests
        # already reach each other directly, and the DNAT targets are guests on this network.
        table.append(chain, "-j", "RETURN", s=guest.cidr, i=guest.interface)
        for rule in rules.ingress_rules:
            if rule.public_ip != address.ip:
                continue
            match = _match(rule.protocol, rule.ports, rule.icmp_type, rule.icmp_code)
            for cidr in rule.source_cidrs:
                table.append(chain, *match, "-j", "ACCEPT", s=cidr)
        table.append(chain, "-j", "DROP")
    return table


def render(rules: RouterRules) -> str:
    """The complete `iptables-restore` document for `rules`, newline-terminated."""
    lines = [_HEADER]
    for table in (_filter(rules), _nat(rules), _mangle(rules)):
        lines += table.lines()
    return "\n".join(lines) + "\n"
