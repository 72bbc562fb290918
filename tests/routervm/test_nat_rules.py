"""Tests for the router's NAT/firewall rule model and its `iptables-restore` rendering."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from routervm.nat import (
    EgressPolicy,
    EgressRule,
    GuestNetwork,
    IngressRule,
    PortForward,
    PortRange,
    Protocol,
    PublicAddress,
    RouterRules,
    RuleError,
    StaticNat,
    render,
)

GUEST = GuestNetwork(interface="eth0", cidr="10.1.1.0/24", router_ip="10.1.1.1")
SOURCE_NAT = PublicAddress(interface="eth2", ip="203.0.113.10", source_nat=True)
STATIC_PUBLIC = PublicAddress(interface="eth2", ip="203.0.113.11")


def realistic(**changes: Any) -> RouterRules:
    """One guest network, a source-NAT IP, a static NAT, a port forward, ingress from two CIDRs
    and a deny-by-default egress policy with one allowed rule."""
    fields: dict[str, Any] = {
        "guest": GUEST,
        "public_addresses": (SOURCE_NAT, STATIC_PUBLIC),
        "ingress_rules": (
            IngressRule(
                public_ip="203.0.113.10",
                protocol=Protocol.TCP,
                ports=PortRange(2222, 2222),
                source_cidrs=("198.51.100.0/24", "192.0.2.0/25"),
            ),
            IngressRule(public_ip="203.0.113.11", protocol=Protocol.TCP, ports=PortRange(80, 80)),
        ),
        "egress_policy": EgressPolicy.DENY,
        "egress_rules": (EgressRule(protocol=Protocol.TCP, ports=PortRange(443, 443)),),
        "port_forwards": (
            PortForward(
                public_ip="203.0.113.10",
                protocol=Protocol.TCP,
                public_ports=PortRange(2222, 2222),
                guest_ip="10.1.1.50",
                guest_ports=PortRange(22, 22),
            ),
        ),
        "static_nats": (StaticNat(public_ip="203.0.113.11", guest_ip="10.1.1.51"),),
    }
    fields.update(changes)
    return RouterRules(**fields)


GOLDEN = """\
# cloudd routervm NAT/firewall rules; generated, do not edit
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:FW_EGRESS_RULES - [0:0]
:FW_OUTBOUND - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -i eth1 -p tcp -m tcp --dport 3922 -m conntrack --ctstate NEW -j ACCEPT
-A INPUT -i eth0 -p udp -m udp --dport 67 -j ACCEPT
-A INPUT -s 10.1.1.0/24 -d 10.1.1.1/32 -i eth0 -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -s 10.1.1.0/24 -d 10.1.1.1/32 -i eth0 -p tcp -m tcp --dport 53 -j ACCEPT
-A INPUT -s 10.1.1.0/24 -i eth0 -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A INPUT -s 10.1.1.0/24 -i eth0 -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i eth2 -o eth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -o eth0 -j ACCEPT
-A FORWARD -d 10.1.1.50/32 -i eth2 -o eth0 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -d 10.1.1.51/32 -i eth2 -o eth0 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i eth0 -o eth2 -j FW_OUTBOUND
-A FW_EGRESS_RULES -p tcp -m tcp --dport 443 -j ACCEPT
-A FW_EGRESS_RULES -j DROP
-A FW_OUTBOUND -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FW_OUTBOUND -j FW_EGRESS_RULES
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.1.1.1/32 -i eth0 -j ACCEPT
-A PREROUTING -d 203.0.113.10/32 -i eth2 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 10.1.1.50:22
-A PREROUTING -d 203.0.113.10/32 -i eth0 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 10.1.1.50:22
-A PREROUTING -d 203.0.113.11/32 -i eth2 -j DNAT --to-destination 10.1.1.51
-A PREROUTING -d 203.0.113.11/32 -i eth0 -j DNAT --to-destination 10.1.1.51
-A OUTPUT -d 203.0.113.10/32 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 10.1.1.50:22
-A OUTPUT -d 203.0.113.11/32 -j DNAT --to-destination 10.1.1.51
-A POSTROUTING -s 10.1.1.0/24 -d 10.1.1.50/32 -o eth0 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT \
-j SNAT --to-source 10.1.1.1
-A POSTROUTING -s 10.1.1.0/24 -d 10.1.1.51/32 -o eth0 -m conntrack --ctstate DNAT -j SNAT --to-source 10.1.1.1
-A POSTROUTING -s 10.1.1.51/32 -o eth2 -j SNAT --to-source 203.0.113.11
-A POSTROUTING -s 10.1.1.0/24 -o eth2 -j SNAT --to-source 203.0.113.10
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FIREWALL_203.0.113.10 - [0:0]
:FIREWALL_203.0.113.11 - [0:0]
-A PREROUTING -d 203.0.113.10/32 -j FIREWALL_203.0.113.10
-A PREROUTING -d 203.0.113.11/32 -j FIREWALL_203.0.113.11
-A FIREWALL_203.0.113.10 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FIREWALL_203.0.113.10 -s 10.1.1.0/24 -i eth0 -j RETURN
-A FIREWALL_203.0.113.10 -s 192.0.2.0/25 -p tcp -m tcp --dport 2222 -j ACCEPT
-A FIREWALL_203.0.113.10 -s 198.51.100.0/24 -p tcp -m tcp --dport 2222 -j ACCEPT
-A FIREWALL_203.0.113.10 -j DROP
-A FIREWALL_203.0.113.11 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FIREWALL_203.0.113.11 -s 10.1.1.0/24 -i eth0 -j RETURN
-A FIREWALL_203.0.113.11 -p tcp -m tcp --dport 80 -j ACCEPT
-A FIREWALL_203.0.113.11 -j DROP
COMMIT
"""


def _rules_of(document: str, table: str) -> list[str]:
    """The `-A` lines of one table section."""
    lines = document.splitlines()
    start = lines.index(f"*{table}")
    end = lines.index("COMMIT", start)
    return [line for line in lines[start:end] if line.startswith("-A ")]


class RenderTests(SynchronousTestCase):
    def test_golden(self) -> None:
        """The realistic rule set renders to exactly the reviewed document."""
        self.assertEqual(render(realistic()), GOLDEN)

    def test_shuffled_input_is_byte_identical(self) -> None:
        """Input order never changes the model or the document."""
        base = realistic(
            ingress_rules=realistic().ingress_rules
            + (
                IngressRule(public_ip="203.0.113.10", protocol=Protocol.ICMP, icmp_type=8, icmp_code=0),
                IngressRule(public_ip="203.0.113.10", protocol=Protocol.UDP, ports=PortRange(500, 510)),
            ),
            egress_rules=(
                EgressRule(protocol=Protocol.TCP, ports=PortRange(443, 443)),
                EgressRule(protocol=Protocol.UDP, ports=PortRange(53, 53), destination_cidrs=("8.8.8.8/32", "8.8.4.4/32")),
                EgressRule(protocol=Protocol.ICMP),
            ),
        )
        expected = render(base)
        shuffler = random.Random(20261122)
        for _ in range(20):
            changes: dict[str, Any] = {}
            for name in ("public_addresses", "ingress_rules", "egress_rules", "port_forwards", "static_nats"):
                items = list(getattr(base, name))
                shuffler.shuffle(items)
                changes[name] = tuple(items)
            changes["ingress_rules"] = tuple(
                replace(rule, source_cidrs=tuple(shuffler.sample(rule.source_cidrs, len(rule.source_cidrs))))
                for rule in changes["ingress_rules"]
            )
            shuffled = replace(base, **changes)
            self.assertEqual(shuffled, base)
            self.assertEqual(render(shuffled), expected)

    def test_duplicates_collapse(self) -> None:
        rules = realistic(static_nats=realistic().static_nats * 2)
        self.assertEqual(render(rules), GOLDEN)

    def test_egress_allow_default_inverts(self) -> None:
        """Default allow: listed rules drop, the catch-all accepts, and it comes last."""
        rules = realistic(
            egress_policy=EgressPolicy.ALLOW,
            egress_rules=(
                EgressRule(protocol=Protocol.TCP, ports=PortRange(25, 25), destination_cidrs=("192.0.2.0/24",)),
                EgressRule(protocol=Protocol.ICMP, icmp_type=8),
            ),
        )
        egress = [line for line in _rules_of(render(rules), "filter") if line.startswith("-A FW_EGRESS_RULES ")]
        self.assertEqual(
            egress,
            [
                "-A FW_EGRESS_RULES -p icmp -m icmp --icmp-type 8 -j DROP",
                "-A FW_EGRESS_RULES -d 192.0.2.0/24 -p tcp -m tcp --dport 25 -j DROP",
                "-A FW_EGRESS_RULES -j ACCEPT",
            ],
        )

    def test_public_address_without_rules_drops(self) -> None:
        """Every public IP gets its own firewall chain ending in DROP, rules or not."""
        rules = realistic(ingress_rules=())
        chain = [line for line in _rules_of(render(rules), "mangle") if "FIREWALL_203.0.113.11" in line]
        self.assertEqual(
            chain,
            [
                "-A PREROUTING -d 203.0.113.11/32 -j FIREWALL_203.0.113.11",
                "-A FIREWALL_203.0.113.11 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FIREWALL_203.0.113.11 -s 10.1.1.0/24 -i eth0 -j RETURN",
                "-A FIREWALL_203.0.113.11 -j DROP",
            ],
        )

    def test_guest_to_router_is_never_nated(self) -> None:
        """The first nat PREROUTING rule lets traffic to the router's guest IP through untouched,
        and no SNAT rule can match guest traffic to the router."""
        nat = _rules_of(render(realistic()), "nat")
        self.assertEqual(nat[0], "-A PREROUTING -d 10.1.1.1/32 -i eth0 -j ACCEPT")
        for line in nat:
            if "-j SNAT" in line:
                self.assertTrue("-o eth2" in line or "--ctstate DNAT" in line, line)

    def test_multi_port_forward_and_icmp_code(self) -> None:
        rules = realistic(
            port_forwards=(
                PortForward(
                    public_ip="203.0.113.10",
                    protocol=Protocol.UDP,
                    public_ports=PortRange(5000, 5010),
                    guest_ip="10.1.1.52",
                    guest_ports=PortRange(5000, 5010),
                ),
            ),
            ingress_rules=(
                IngressRule(public_ip="203.0.113.10", protocol=Protocol.ICMP, icmp_type=3, icmp_code=4),
                IngressRule(public_ip="203.0.113.10", protocol=Protocol.ALL, source_cidrs=("192.0.2.7/32",)),
            ),
        )
        document = render(rules)
        self.assertIn(
            "-A PREROUTING -d 203.0.113.10/32 -i eth2 -p udp -m udp --dport 5000:5010 "
            "-j DNAT --to-destination 10.1.1.52:5000-5010\n",
            document,
        )
        self.assertIn("-A FIREWALL_203.0.113.10 -p icmp -m icmp --icmp-type 3/4 -j ACCEPT\n", document)
        self.assertIn("-A FIREWALL_203.0.113.10 -s 192.0.2.7/32 -j ACCEPT\n", document)

    def test_without_source_nat(self) -> None:
        """No source-NAT IP: no general SNAT rule."""
        rules = realistic(public_addresses=(replace(SOURCE_NAT, source_nat=False), STATIC_PUBLIC))
        postrouting = [line for line in _rules_of(render(rules), "nat") if line.startswith("-A POSTROUTING")]
        self.assertNotIn("-A POSTROUTING -s 10.1.1.0/24 -o eth2 -j SNAT --to-source 203.0.113.10", postrouting)


class JsonTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        rules = realistic()
        obj = rules.to_json()
        self.assertEqual(RouterRules.from_json(json.loads(json.dumps(obj))), rules)
        self.assertEqual(RouterRules.from_json(obj).to_json(), obj)

    def test_output_is_stable_and_sorted(self) -> None:
        obj = realistic().to_json()
        self.assertEqual(json.dumps(obj), json.dumps(obj, sort_keys=True))
        self.assertEqual(
            obj["ingress_rules"][0],
            {
                "ports": [2222, 2222],
                "protocol": "tcp",
                "public_ip": "203.0.113.10",
                "source_cidrs": ["192.0.2.0/25", "198.51.100.0/24"],
            },
        )
        self.assertEqual(obj["control"], {"interface": "eth1", "port": 3922})
        self.assertEqual(obj["egress_policy"], "deny")

    def test_defaults_and_databag_port_strings(self) -> None:
        """Optional parts default; ports may arrive as databag strings `"start:end"`."""
        rules = RouterRules.from_json(
            {
                "guest_network": {"interface": "eth0", "cidr": "10.1.1.0/24", "router_ip": "10.1.1.1"},
                "public_addresses": [{"interface": "eth2", "ip": "203.0.113.10", "source_nat": True}],
                "port_forwards": [
                    {
                        "public_ip": "203.0.113.10",
                        "protocol": "tcp",
                        "public_ports": "2222:2222",
                        "guest_ip": "10.1.1.50",
                        "guest_ports": "22",
                    }
                ],
                "ingress_rules": [{"public_ip": "203.0.113.10", "protocol": "tcp", "ports": 2222}],
            }
        )
        self.assertEqual(rules.egress_policy, EgressPolicy.ALLOW)
        self.assertEqual(rules.control_interface, "eth1")
        self.assertEqual(rules.port_forwards[0].guest_ports, PortRange(22, 22))
        self.assertEqual(rules.ingress_rules[0].source_cidrs, ("0.0.0.0/0",))

    def test_malformed_json_is_rule_error(self) -> None:
        good = realistic().to_json()
        cases: list[tuple[Any, str]] = [
            ([], "expected an object"),
            ({"public_addresses": []}, "missing guest_network"),
            ({**good, "surprise": 1}, "unknown field(s) surprise"),
            ({**good, "public_addresses": "eth2"}, "expected a list"),
            ({**good, "ingress_rules": [{"public_ip": "203.0.113.10", "protocol": "sctp"}]}, "unknown protocol"),
            ({**good, "ingress_rules": [{"public_ip": "203.0.113.10", "protocol": "tcp", "ports": "a:b"}]}, "not 'start[:end]'"),
            ({**good, "ingress_rules": [{"public_ip": "203.0.113.10", "protocol": "tcp", "ports": True}]}, "expected an integer"),
            ({**good, "egress_policy": "maybe"}, "not 'allow' or 'deny'"),
            ({**good, "control": {"port": "22"}}, "expected an integer"),
        ]
        for obj, message in cases:
            with self.assertRaises(RuleError, msg=repr(obj)) as caught:
                RouterRules.from_json(obj)
            self.assertIn(message, str(caught.exception))


def _forward(public_ip: str = "203.0.113.10", ports: tuple[int, int] = (2222, 2222), **changes: Any) -> PortForward:
    fields: dict[str, Any] = {
        "public_ip": public_ip,
        "protocol": Protocol.TCP,
        "public_ports": PortRange(*ports),
        "guest_ip": "10.1.1.50",
        "guest_ports": PortRange(*ports),
    }
    fields.update(changes)
    return PortForward(**fields)


REJECTED: list[tuple[str, Callable[[], object], str]] = [
    ("bad guest CIDR", lambda: GuestNetwork("eth0", "10.1.1.0/33", "10.1.1.1"), "not a valid CIDR"),
    ("host bits set", lambda: GuestNetwork("eth0", "10.1.1.5/24", "10.1.1.1"), "host bits set"),
    ("IPv6 guest", lambda: GuestNetwork("eth0", "fd00::/64", "fd00::1"), "only IPv4"),
    ("router IP outside", lambda: GuestNetwork("eth0", "10.1.1.0/24", "10.1.2.1"), "outside the guest network"),
    ("router IP is broadcast", lambda: GuestNetwork("eth0", "10.1.1.0/24", "10.1.1.255"), "broadcast"),
    ("bad interface", lambda: GuestNetwork("eth 0", "10.1.1.0/24", "10.1.1.1"), "not a valid interface name"),
    ("long interface", lambda: PublicAddress("a" * 16, "203.0.113.10"), "not a valid interface name"),
    ("bad public IP", lambda: PublicAddress("eth2", "203.0.113.300"), "not an IP address"),
    ("source_nat not bool", lambda: PublicAddress("eth2", "203.0.113.10", "yes"), "must be a boolean"),  # type: ignore[arg-type]
    ("port 0", lambda: PortRange(0, 22), "outside 1-65535"),
    ("port > 65535", lambda: PortRange(22, 65536), "outside 1-65535"),
    ("reversed range", lambda: PortRange(30, 22), "reversed"),
    ("bool port", lambda: PortRange(True, 22), "expected an integer"),
    (
        "icmp with ports",
        lambda: IngressRule("203.0.113.10", Protocol.ICMP, ports=PortRange(1, 2)),
        "takes no port range",
    ),
    ("all with ports", lambda: EgressRule(Protocol.ALL, ports=PortRange(1, 2)), "takes no port range"),
    ("tcp with icmp type", lambda: EgressRule(Protocol.TCP, icmp_type=8), "ICMP type/code given"),
    ("icmp code without type", lambda: EgressRule(Protocol.ICMP, icmp_code=0), "needs an ICMP type"),
    ("icmp type > 255", lambda: EgressRule(Protocol.ICMP, icmp_type=256), "outside 0-255"),
    ("unknown protocol", lambda: EgressRule("gre"), "unknown protocol"),  # type: ignore[arg-type]
    (
        "bad source CIDR",
        lambda: IngressRule("203.0.113.10", Protocol.TCP, PortRange(22, 22), source_cidrs=("198.51.100.0/24", "nope")),
        "not a valid CIDR",
    ),
    ("CIDR list as string", lambda: EgressRule(Protocol.TCP, destination_cidrs="0.0.0.0/0"), "expected a list"),  # type: ignore[arg-type]
    ("port forward icmp", lambda: _forward(protocol=Protocol.ICMP), "must be tcp or udp"),
    ("port forward length", lambda: _forward(guest_ports=PortRange(22, 23)), "differ in length"),
    (
        "port forward shifted range",
        lambda: _forward(ports=(2000, 2010), guest_ports=PortRange(3000, 3010)),
        "keep the same port numbers",
    ),
    (
        "static NAT and port forward on one public IP",
        lambda: realistic(port_forwards=(_forward(public_ip="203.0.113.11", ports=(80, 80)),)),
        "conflicts with static NAT on 203.0.113.11",
    ),
    (
        "overlapping port forwards",
        lambda: realistic(
            port_forwards=(_forward(ports=(2000, 2010)), _forward(ports=(2010, 2020), guest_ip="10.1.1.52"))
        ),
        "overlaps port forward",
    ),
    (
        "port forward guest outside network",
        lambda: realistic(port_forwards=(_forward(guest_ip="10.9.9.9"),)),
        "outside the guest network",
    ),
    (
        "port forward to the router",
        lambda: realistic(port_forwards=(_forward(guest_ip="10.1.1.1"),)),
        "router's own guest IP",
    ),
    (
        "port forward on unknown public IP",
        lambda: realistic(port_forwards=(_forward(public_ip="203.0.113.99"),)),
        "not a public IP of this router",
    ),
    (
        "static NAT on the source-NAT IP",
        lambda: realistic(static_nats=(StaticNat("203.0.113.10", "10.1.1.60"),), port_forwards=()),
        "is the source-NAT IP",
    ),
    (
        "one guest behind two static NATs",
        lambda: realistic(
            public_addresses=(SOURCE_NAT, STATIC_PUBLIC, PublicAddress("eth2", "203.0.113.12")),
            static_nats=(StaticNat("203.0.113.11", "10.1.1.51"), StaticNat("203.0.113.12", "10.1.1.51")),
        ),
        "10.1.1.51 already has static NAT",
    ),
    (
        "one public IP to two guests",
        lambda: realistic(static_nats=(StaticNat("203.0.113.11", "10.1.1.51"), StaticNat("203.0.113.11", "10.1.1.52"))),
        "203.0.113.11 already has static NAT",
    ),
    (
        "two source-NAT IPs",
        lambda: realistic(public_addresses=(SOURCE_NAT, replace(STATIC_PUBLIC, source_nat=True)), static_nats=()),
        "more than one source-NAT IP",
    ),
    (
        "public IP twice",
        lambda: realistic(public_addresses=(SOURCE_NAT, replace(SOURCE_NAT, interface="eth3"), STATIC_PUBLIC)),
        "listed more than once",
    ),
    (
        "public IP on the guest interface",
        lambda: realistic(public_addresses=(replace(SOURCE_NAT, interface="eth0"), STATIC_PUBLIC)),
        "not a public interface",
    ),
    (
        "public IP inside the guest network",
        lambda: realistic(public_addresses=(SOURCE_NAT, STATIC_PUBLIC, PublicAddress("eth2", "10.1.1.9"))),
        "inside the guest network",
    ),
    (
        "ingress rule for an unknown public IP",
        lambda: realistic(ingress_rules=(IngressRule("203.0.113.99", Protocol.ALL),)),
        "not a public IP of this router",
    ),
    ("control port 0", lambda: realistic(control_port=0), "outside 1-65535"),
    ("guest on the control interface", lambda: realistic(control_interface="eth0"), "both eth0"),
]


class RejectionTests(SynchronousTestCase):
    def test_rejected(self) -> None:
        """Each bad rule raises `RuleError` (a `ValueError`) naming the problem."""
        for name, build, message in REJECTED:
            with self.assertRaises(RuleError, msg=name) as caught:
                build()
            self.assertIn(message, str(caught.exception), name)
            self.assertIsInstance(caught.exception, ValueError)


class IptablesRestoreTests(SynchronousTestCase):
    def test_accepted_by_iptables_restore(self) -> None:
        """The real tool parses the document, inside a throwaway network namespace only."""
        tool = shutil.which("iptables-restore")
        ip = shutil.which("ip")
        if tool is None:
            raise SkipTest("iptables-restore is not installed on this machine")
        if ip is None:
            raise SkipTest("the ip tool (iproute2) is not installed on this machine")
        if os.geteuid() != 0:
            raise SkipTest("creating a network namespace needs root")
        namespace = f"cloudd-nat-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        created = subprocess.run([ip, "netns", "add", namespace], capture_output=True, text=True, timeout=30)
        if created.returncode != 0:
            raise SkipTest(f"cannot create a network namespace: {created.stderr.strip()}")
        try:
            result = subprocess.run(
                [ip, "netns", "exec", namespace, tool, "--test"],
                input=render(realistic()),
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            subprocess.run([ip, "netns", "delete", namespace], capture_output=True, timeout=30, check=True)
        self.assertEqual(result.returncode, 0, result.stderr)
