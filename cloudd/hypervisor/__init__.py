"""The libvirt driver: host connections, host facts, storage pools and simulated hosts.

Every libvirt call runs on the one "cloudd-libvirt" thread pool owned by the `Hypervisors` service,
never on the reactor thread. Real hosts are reached through libvirt's own remote protocol
(qemu:///system, qemu+ssh://, qemu+tls://, qemu+tcp://); simulated hosts are test-driver node files
(test:///<file>) run in this process by the same code.
"""

from __future__ import annotations

from cloudd.hypervisor.connection import HostConnection
from cloudd.hypervisor.errors import HostUnreachable, HypervisorError
from cloudd.hypervisor.facts import HostFacts, PoolFacts
from cloudd.hypervisor.service import Hypervisors
from cloudd.hypervisor.simulated import simulated_host_xml, write_simulated_host
from cloudd.hypervisor.uri import hypervisor_of, parse_host_uri

__all__ = [
    "HostConnection",
    "HostFacts",
    "HostUnreachable",
    "HypervisorError",
    "Hypervisors",
    "PoolFacts",
    "hypervisor_of",
    "parse_host_uri",
    "simulated_host_xml",
    "write_simulated_host",
]
