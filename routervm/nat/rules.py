"""The isolated router's NAT and firewall rule model (router.md §6): the control message model
(`appliance.messages.rules`), which cloudd validates with the same code before it sends."""

from __future__ import annotations

from appliance.messages.rules import (
    ANY_CIDR,
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
