"""The network part of a drive description and the `network_data.json` it becomes.

Input (the `network` key of the description)::

    {"nics": [{"mac": "02:00:2e:8b:00:05", "device_id": 0, "mtu": 1500, "network_id": "<uuid>",
               "ipv4": {"address": ..., "netmask": ..., "gateway": ..., "routes": [...]} | {"dhcp": true},
               "ipv6": {"address": ..., "prefix": 64, "gateway": ...} | {"dhcp": true} | {"slaac": true}}],
     "dns": ["10.1.1.1", "fd00::1"]}

Output follows OpenStack's `network_data.json` as CloudStack writes it (spec §6) and as cloud-init's
`convert_net_json` reads it: one `phy` link per NIC named `eth<device_id>`, `ipv4`/`ipv6` networks
with a default route via the gateway (or `ipv4_dhcp`, `ipv6_dhcp`, `ipv6_slaac`), DNS services.
An empty NIC list is refused: cloud-init would apply the resulting empty configuration instead of its
DHCP fallback and leave the VM offline (apache/cloudstack PR #14020).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from ssvm.configdrive.validation import (
    expect_int,
    expect_list,
    expect_object,
    expect_str,
    expect_true,
    fail,
    quote,
)

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
DEFAULT_MTU = 1500
MAX_NICS = 32
MAX_ROUTES = 64
MAX_DNS = 16


@dataclass(frozen=True)
class Dhcp:
    """Addresses come from DHCP (DHCPv4, or stateful DHCPv6)."""


@dataclass(frozen=True)
class Slaac:
    """IPv6 addresses come from router advertisements."""


@dataclass(frozen=True)
class Route:
    network: str
    netmask: str
    gateway: str


@dataclass(frozen=True)
class IPv4Static:
    address: str
    netmask: str
    gateway: str | None
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class IPv6Static:
    address: str
    prefix: int
    gateway: str | None


@dataclass(frozen=True)
class Nic:
    mac: str
    """Lower-case, as cloud-init compares it."""
    device_id: int
    mtu: int
    network_id: str | None
    ipv4: IPv4Static | Dhcp | None
    ipv6: IPv6Static | Dhcp | Slaac | None

    @property
    def name(self) -> str:
        return f"eth{self.device_id}"


@dataclass(frozen=True)
class Network:
    nics: tuple[Nic, ...]
    """Sorted by device id."""
    dns: tuple[str, ...]


def uuid_value(value: object, where: str) -> str:
    """A canonical, hyphenated UUID, lower-cased."""
    text = expect_str(value, where)
    if not UUID_RE.fullmatch(text):
        fail(where, f"must be a UUID like 9f1c2b7e-1111-4222-8333-444455556666, not {quote(text)}")
    return text.lower()


def ipv4_address(value: object, where: str) -> ipaddress.IPv4Address:
    text = expect_str(value, where)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        fail(where, f"is not an IPv4 address: {quote(text)}")


def ipv6_address(value: object, where: str) -> ipaddress.IPv6Address:
    text = expect_str(value, where)
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        fail(where, f"is not an IPv6 address: {quote(text)}")
    if address.scope_id is not None:
        fail(where, f"must not carry a zone index: {quote(text)}")
    return address


def ip_address(value: object, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = expect_str(value, where)
    if ":" in text:
        return ipv6_address(text, where)
    return ipv4_address(text, where)


def _ipv4_netmask(value: object, where: str, allow_zero: bool) -> ipaddress.IPv4Address:
    mask = ipv4_address(value, where)
    bits = int(mask)
    inverted = ~bits & 0xFFFFFFFF
    if inverted & (inverted + 1):
        fail(where, f"is not a contiguous netmask like 255.255.255.0: {quote(value)}")
    if bits == 0 and not allow_zero:
        fail(where, "must not be 0.0.0.0")
    return mask


def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address, where: str) -> None:
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        fail(where, f"must be a unicast address, not {address}")


def _parse_route(value: object, where: str, subnet: ipaddress.IPv4Network) -> Route:
    route = expect_object(value, where, ("network", "netmask", "gateway"), ("network", "netmask", "gateway"))
    network = ipv4_address(route["network"], f"{where}.network")
    netmask = _ipv4_netmask(route["netmask"], f"{where}.netmask", allow_zero=True)
    gateway = ipv4_address(route["gateway"], f"{where}.gateway")
    destination = ipaddress.IPv4Network(f"{network}/{netmask}", strict=False)
    if destination.network_address != network:
        fail(f"{where}.network", f"{network} has host bits set for netmask {netmask}")
    if destination.prefixlen == 0:
        fail(where, "the default route comes from ipv4.gateway; do not list it in routes")
    if gateway not in subnet:
        fail(f"{where}.gateway", f"{gateway} is not on the NIC's subnet {subnet}")
    return Route(str(network), str(netmask), str(gateway))


def _parse_ipv4(value: object, where: str) -> IPv4Static | Dhcp:
    if isinstance(value, dict) and "dhcp" in value:
        expect_object(value, where, ("dhcp",))
        expect_true(value["dhcp"], f"{where}.dhcp")
        return Dhcp()
    config = expect_object(value, where, ("address", "netmask", "gateway", "routes"), ("address", "netmask"))
    address = ipv4_address(config["address"], f"{where}.address")
    _usable(address, f"{where}.address")
    netmask = _ipv4_netmask(config["netmask"], f"{where}.netmask", allow_zero=False)
    subnet = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
    gateway = None
    if config.get("gateway") is not None:
        gateway_address = ipv4_address(config["gateway"], f"{where}.gateway")
        if gateway_address not in subnet or gateway_address == address:
            fail(f"{where}.gateway", f"{gateway_address} must be another address on {subnet}")
        gateway = str(gateway_address)
    routes: list[Route] = []
    raw_routes = expect_list(config.get("routes", []), f"{where}.routes")
    if len(raw_routes) > MAX_ROUTES:
        fail(f"{where}.routes", f"at most {MAX_ROUTES} routes, not {len(raw_routes)}")
    for index, raw in enumerate(raw_routes):
        route = _parse_route(raw, f"{where}.routes[{index}]", subnet)
        if route not in routes:
            routes.append(route)
    return IPv4Static(str(address), str(netmask), gateway, tuple(routes))


def _parse_ipv6(value: object, where: str) -> IPv6Static | Dhcp | Slaac:
    if isinstance(value, dict) and ("dhcp" in value or "slaac" in value):
        flag = "dhcp" if "dhcp" in value else "slaac"
        expect_object(value, where, (flag,))
        expect_true(value[flag], f"{where}.{flag}")
        return Dhcp() if flag == "dhcp" else Slaac()
    config = expect_object(value, where, ("address", "prefix", "gateway"), ("address", "prefix"))
    address = ipv6_address(config["address"], f"{where}.address")
    _usable(address, f"{where}.address")
    if address.is_link_local:
        fail(f"{where}.address", f"must not be link-local: {address}")
    prefix = expect_int(config["prefix"], f"{where}.prefix", 1, 128)
    subnet = ipaddress.IPv6Network(f"{address}/{prefix}", strict=False)
    gateway = None
    if config.get("gateway") is not None:
        gateway_address = ipv6_address(config["gateway"], f"{where}.gateway")
        _usable(gateway_address, f"{where}.gateway")
        if gateway_address == address or not (gateway_address in subnet or gateway_address.is_link_local):
            fail(f"{where}.gateway", f"{gateway_address} must be another address on {subnet} or link-local")
        gateway = str(gateway_address)
    return IPv6Static(str(address), prefix, gateway)


def _parse_nic(value: object, where: str) -> Nic:
    config = expect_object(value, where, ("mac", "device_id", "mtu", "network_id", "ipv4", "ipv6"),
                           ("mac", "device_id"))
    mac = expect_str(config["mac"], f"{where}.mac")
    if not MAC_RE.fullmatch(mac):
        fail(f"{where}.mac", f"must be a MAC address like 02:00:2e:8b:00:05, not {quote(mac)}")
    mac = mac.lower()
    if int(mac[:2], 16) & 1:
        fail(f"{where}.mac", f"must be a unicast MAC address, not {mac}")
    device_id = expect_int(config["device_id"], f"{where}.device_id", 0, 255)
    mtu = expect_int(config.get("mtu", DEFAULT_MTU), f"{where}.mtu", 68, 65535)
    network_id = None
    if config.get("network_id") is not None:
        network_id = uuid_value(config["network_id"], f"{where}.network_id")
    ipv4 = None if config.get("ipv4") is None else _parse_ipv4(config["ipv4"], f"{where}.ipv4")
    ipv6 = None if config.get("ipv6") is None else _parse_ipv6(config["ipv6"], f"{where}.ipv6")
    if ipv6 is not None and mtu < 1280:
        fail(f"{where}.mtu", f"IPv6 needs an MTU of at least 1280, not {mtu}")
    return Nic(mac, device_id, mtu, network_id, ipv4, ipv6)


def parse_network(value: object, where: str = "network") -> Network | None:
    """The `network` key: None (unknown network, no `network_data.json`) or a `Network`."""
    if value is None:
        return None
    config = expect_object(value, where, ("nics", "dns"), ("nics",))
    raw_nics = expect_list(config["nics"], f"{where}.nics")
    if not raw_nics:
        fail(f"{where}.nics", "must list at least one NIC; send \"network\": null when the network is "
                              "unknown (an empty network_data.json leaves the guest offline)")
    if len(raw_nics) > MAX_NICS:
        fail(f"{where}.nics", f"at most {MAX_NICS} NICs, not {len(raw_nics)}")
    nics: list[Nic] = []
    for index, raw in enumerate(raw_nics):
        nic = _parse_nic(raw, f"{where}.nics[{index}]")
        for other in nics:
            if other.mac == nic.mac:
                fail(f"{where}.nics[{index}].mac", f"{nic.mac} is used by another NIC")
            if other.device_id == nic.device_id:
                fail(f"{where}.nics[{index}].device_id", f"{nic.device_id} is used by another NIC")
        nics.append(nic)
    dns: list[str] = []
    raw_dns = expect_list(config.get("dns", []), f"{where}.dns")
    if len(raw_dns) > MAX_DNS:
        fail(f"{where}.dns", f"at most {MAX_DNS} servers, not {len(raw_dns)}")
    for index, raw in enumerate(raw_dns):
        server = ip_address(raw, f"{where}.dns[{index}]")
        _usable(server, f"{where}.dns[{index}]")
        if str(server) not in dns:
            dns.append(str(server))
    return Network(tuple(sorted(nics, key=lambda nic: nic.device_id)), tuple(dns))


def _ipv6_netmask(prefix: int) -> str:
    """The prefix as an IPv6 mask, e.g. 64 → `ffff:ffff:ffff:ffff::` (the form Nova writes)."""
    return str(ipaddress.IPv6Network(f"::/{prefix}").netmask)


def _networks(nic: Nic) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"id": nic.name, "link": nic.name}
    if nic.network_id is not None:
        base["network_id"] = nic.network_id
    entries: list[dict[str, Any]] = []
    if isinstance(nic.ipv4, Dhcp):
        entries.append({**base, "type": "ipv4_dhcp"})
    elif isinstance(nic.ipv4, IPv4Static):
        routes = []
        if nic.ipv4.gateway is not None:
            routes.append({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": nic.ipv4.gateway})
        routes.extend({"network": r.network, "netmask": r.netmask, "gateway": r.gateway}
                      for r in nic.ipv4.routes)
        entries.append({**base, "type": "ipv4", "ip_address": nic.ipv4.address,
                        "netmask": nic.ipv4.netmask, "routes": routes})
    if isinstance(nic.ipv6, Dhcp):
        entries.append({**base, "type": "ipv6_dhcp"})
    elif isinstance(nic.ipv6, Slaac):
        entries.append({**base, "type": "ipv6_slaac"})
    elif isinstance(nic.ipv6, IPv6Static):
        routes = []
        if nic.ipv6.gateway is not None:
            # CloudStack writes the IPv6 default route's netmask as the prefix "0"; cloud-init and
            # other readers take a prefix length there as well as a mask.
            routes.append({"network": "::", "netmask": "0", "gateway": nic.ipv6.gateway})
        entries.append({**base, "type": "ipv6", "ip_address": nic.ipv6.address,
                        "netmask": _ipv6_netmask(nic.ipv6.prefix), "routes": routes})
    return entries


def network_data(network: Network) -> dict[str, Any]:
    """The `network_data.json` document for `network` (never empty: `parse_network` needs a NIC)."""
    links = [{"ethernet_mac_address": nic.mac, "id": nic.name, "mtu": nic.mtu, "type": "phy"}
             for nic in network.nics]
    networks = [entry for nic in network.nics for entry in _networks(nic)]
    services = [{"address": server, "type": "dns"} for server in network.dns]
    return {"links": links, "networks": networks, "services": services}
