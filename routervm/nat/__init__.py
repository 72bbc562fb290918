"""The virtual router's NAT and firewall rules: a pure model (`rules`) rendered to one
`iptables-restore` document (`render`).  Applying the document is the process helper's job."""

from __future__ import annotations

from routervm.nat.render import render
from routervm.nat.rules import (
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
)

__all__ = [
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
    "render",
]
