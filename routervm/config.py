"""The router appliance's settings file (TOML), parsed into one frozen object; every error is
collected.

```toml
[passwords]
ttl = 86400                 # seconds a pending VM password is served before it is dropped

[dhcp]
lease_seconds = 4294967295  # lease time when the state names none (default: infinite, as CloudStack)

[control]
max_body = 8388608          # largest control request body, in bytes (user data can be 1 MiB)
max_state_body = 67108864   # largest full state (PUT /v1/state): 10,000 VMs of 6.5 KiB each

[limits]
connections_per_source = 64 # open TCP connections one guest address may hold (DNS, metadata, passwords)
max_connections = 10000     # all guests' open TCP connections (default: sized from RLIMIT_NOFILE)
control_connections = 64    # the control API's own budget, never taken by guests

[log]
retention = 10              # rotated log files kept (twistd --logfile rotates at 1 MB)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from appliance.logretention import DEFAULT_RETENTION
from routervm.dhcp.packet import INFINITE_LEASE
from routervm.limits import DEFAULT_PER_SOURCE
from routervm.state import DEFAULT_PASSWORD_TTL


class ConfigError(ValueError):
    """The settings file is not valid; the message lists every problem."""


@dataclass(frozen=True)
class Config:
    password_ttl: int = DEFAULT_PASSWORD_TTL
    lease_seconds: int = INFINITE_LEASE
    control_max_body: int = 8 * 1024 * 1024
    #: A full state holds every VM, so its limit grows with them: 10,000 VMs at 6.5 KiB of JSON
    #: each (a record is about 0.7 KiB; the rest is room for 4 KiB of user data in base64).
    control_max_state_body: int = 64 * 1024 * 1024
    connections_per_source: int = DEFAULT_PER_SOURCE
    #: ``None``: sized from the descriptor limit (`routervm.limits.guest_connection_budget`).
    max_connections: int | None = None
    control_connections: int = 64
    log_retention: int = DEFAULT_RETENTION


_KNOWN = {"passwords": {"ttl"}, "dhcp": {"lease_seconds"}, "control": {"max_body", "max_state_body"},
          "limits": {"connections_per_source", "max_connections", "control_connections"},
          "log": {"retention"}}


def _positive(errors: list[str], where: str, value: Any, default: Any, highest: int | None = None) -> Any:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or (
            highest is not None and value > highest):
        errors.append(f"{where} must be a positive integer" + ("" if highest is None else f" up to {highest}"))
        return default
    return value


def load_config(text: str) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the settings file is not valid TOML: {exc}") from None
    errors: list[str] = []
    sections: dict[str, dict[str, Any]] = {}
    for section, value in data.items():
        if section not in _KNOWN or not isinstance(value, dict):
            errors.append(f"unknown section [{section}]")
            continue
        sections[section] = value
        for key in sorted(set(value) - _KNOWN[section]):
            errors.append(f"unknown setting {section}.{key}")
    defaults = Config()
    limits = sections.get("limits", {})
    config = Config(
        password_ttl=_positive(errors, "passwords.ttl", sections.get("passwords", {}).get("ttl"),
                               defaults.password_ttl),
        lease_seconds=_positive(errors, "dhcp.lease_seconds", sections.get("dhcp", {}).get("lease_seconds"),
                                defaults.lease_seconds, INFINITE_LEASE),
        control_max_body=_positive(errors, "control.max_body", sections.get("control", {}).get("max_body"),
                                   defaults.control_max_body),
        control_max_state_body=_positive(errors, "control.max_state_body",
                                         sections.get("control", {}).get("max_state_body"),
                                         defaults.control_max_state_body),
        connections_per_source=_positive(errors, "limits.connections_per_source",
                                         limits.get("connections_per_source"), defaults.connections_per_source),
        max_connections=_positive(errors, "limits.max_connections", limits.get("max_connections"),
                                  defaults.max_connections),
        control_connections=_positive(errors, "limits.control_connections", limits.get("control_connections"),
                                      defaults.control_connections),
        log_retention=_positive(errors, "log.retention", sections.get("log", {}).get("retention"),
                                defaults.log_retention),
    )
    if errors:
        raise ConfigError("; ".join(errors))
    return config
