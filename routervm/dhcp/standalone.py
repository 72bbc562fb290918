"""Run the DHCP server alone on one interface, for network-namespace tests and the bench, until
the router daemon wires `DhcpService` itself.

    python -m routervm.dhcp.standalone --interface eth0 --router-ip 10.1.1.1 --cidr 10.1.1.0/24 \\
        --reservations hosts.json [--domain cloudnine.internal] [--dns 8.8.8.8 ...]

The reservations file is a JSON list of ``{"mac": "02:00:00:00:00:01", "ip": "10.1.1.10",
"hostname": "vm1", "default_nic": true}`` (``hostname`` and ``default_nic`` optional). Prints
``READY`` on stdout once port 67 is bound; SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from routervm.dhcp.packet import INFINITE_LEASE
from routervm.dhcp.reservations import NetworkConfig, Reservation, ReservationTable, parse_mac


def load_reservations(path: str) -> list[Reservation]:
    with open(path) as f:
        entries: Any = json.load(f)
    if not isinstance(entries, list):
        raise ValueError("the reservations file must hold a JSON list")
    result = []
    for entry in entries:
        result.append(
            Reservation(
                mac=parse_mac(entry["mac"]),
                ip=IPv4Address(entry["ip"]),
                hostname=entry.get("hostname"),
                default_nic=bool(entry.get("default_nic", True)),
            )
        )
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m routervm.dhcp.standalone", description=__doc__)
    parser.add_argument("--interface", required=True, help="guest interface to serve, e.g. eth0")
    parser.add_argument("--router-ip", required=True, type=IPv4Address, help="server identifier")
    parser.add_argument("--cidr", required=True, help="guest subnet, e.g. 10.1.1.0/24")
    parser.add_argument("--reservations", required=True, help="JSON list of host entries")
    parser.add_argument("--gateway", type=IPv4Address, help="option 3 (default: the router IP; 0.0.0.0 omits it)")
    parser.add_argument("--domain", help="option 15")
    parser.add_argument("--dns", type=IPv4Address, action="append", default=[], help="extra DNS server (repeatable)")
    parser.add_argument("--no-router-dns", action="store_true", help="do not offer the router as DNS server")
    parser.add_argument("--lease-seconds", type=int, default=INFINITE_LEASE)
    parser.add_argument("--port", type=int, default=67)
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    return parser.parse_args(list(argv))


def network_config(args: argparse.Namespace) -> NetworkConfig:
    return NetworkConfig(
        router_ip=args.router_ip,
        subnet=IPv4Network(args.cidr, strict=False),
        gateway=args.gateway if args.gateway is not None else args.router_ip,
        domain=args.domain,
        dns_servers=tuple(args.dns),
        router_dns=not args.no_router_dns,
        lease_seconds=args.lease_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    table = ReservationTable(load_reservations(args.reservations))
    network = network_config(args)

    # This is the composition root: the only place that touches the global reactor.
    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from routervm.dhcp.server import DhcpServerProtocol, DhcpService

    level = LogLevel.warn if args.quiet else LogLevel.info
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=level)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

    server = DhcpServerProtocol(args.interface, table, network, reactor)
    service = DhcpService(reactor, [server], port=args.port)  # type: ignore[arg-type]
    service.privilegedStartService()
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    print("READY", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
