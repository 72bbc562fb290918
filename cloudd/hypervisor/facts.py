"""What the driver reports about a host and a storage pool, as plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostFacts:
    """A host as its libvirt describes it (read by `HostConnection.facts`)."""

    hypervisor: str  # "KVM" for qemu*:// URIs, "Simulator" for test://
    hypervisor_version: str  # "7.2.0" from getVersion(); "" when libvirt does not say
    hostname: str  # getHostname(); a simulated host's own name from its node file
    cpus: int  # logical CPUs
    cpu_mhz: int
    cpu_sockets: int
    memory_bytes: int  # total memory of the host
    cpu_model: str  # the host CPU model libvirt names ("kvm64", "Skylake-Client"...)
    arch: str  # "x86_64"
    libvirt_version: str  # the host's libvirt, "9.0.0"


@dataclass(frozen=True)
class PoolFacts:
    """A storage pool's size as its host's libvirt reports it (the test driver always says 100 GiB)."""

    capacity_bytes: int
    used_bytes: int  # libvirt's allocation
    available_bytes: int
