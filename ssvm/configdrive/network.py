"""The network part of a drive description and the `network_data.json` it becomes.

The description is read by the config drive message (`appliance.messages.configdrive`), whose
names are re-exported here; this module renders it.

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
from typing import Any

from appliance.messages.configdrive import (
    DEFAULT_MTU,
    MAC_RE,
    MAX_DNS,
    MAX_NICS,
    MAX_ROUTES,
    UUID_RE,
    Dhcp,
    IPv4Static,
    IPv6Static,
    Network,
    Nic,
    Route,
    Slaac,
    ip_address,
    ipv4_address,
    ipv6_address,
    parse_network,
    uuid_value,
)

__all__ = [
    "DEFAULT_MTU",
    "MAC_RE",
    "MAX_DNS",
    "MAX_NICS",
    "MAX_ROUTES",
    "UUID_RE",
    "Dhcp",
    "IPv4Static",
    "IPv6Static",
    "Network",
    "Nic",
    "Route",
    "Slaac",
    "ip_address",
    "ipv4_address",
    "ipv6_address",
    "network_data",
    "parse_network",
    "uuid_value",
]


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
