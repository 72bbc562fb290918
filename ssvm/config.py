"""The appliance's settings file (TOML), parsed into one frozen object; every error is collected.

```toml
[download]
allowed_cidrs = ["192.0.2.0/24"]   # private or otherwise refused ranges templates may come from
max_size = 53687091200             # bytes (max.template.iso.size); 50 GiB by default
max_redirects = 5

[urls]
max_ttl = 604800                   # longest lifetime of a signed image URL, in seconds

[log]
retention = 10                     # rotated log files kept (twistd --logfile rotates at 1 MB)
```
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from typing import Any

from appliance.logretention import DEFAULT_RETENTION


class ConfigError(ValueError):
    """The settings file is not valid; the message lists every problem."""


@dataclass(frozen=True)
class Config:
    allowed_cidrs: tuple[str, ...] = field(default_factory=tuple)
    max_size: int = 50 * 2**30
    max_redirects: int = 5
    url_max_ttl: int = 7 * 86400
    log_retention: int = DEFAULT_RETENTION


_KNOWN = {"download": {"allowed_cidrs", "max_size", "max_redirects"}, "urls": {"max_ttl"}, "log": {"retention"}}


def _positive(errors: list[str], where: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        errors.append(f"{where} must be a positive integer")
        return default
    return value


def load_config(text: str) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the settings file is not valid TOML: {exc}") from None
    errors: list[str] = []
    for section, value in data.items():
        if section not in _KNOWN or not isinstance(value, dict):
            errors.append(f"unknown section [{section}]")
            continue
        for key in sorted(set(value) - _KNOWN[section]):
            errors.append(f"unknown setting {section}.{key}")
    download = data.get("download", {}) if isinstance(data.get("download"), dict) else {}
    urls = data.get("urls", {}) if isinstance(data.get("urls"), dict) else {}
    log = data.get("log", {}) if isinstance(data.get("log"), dict) else {}
    cidrs = download.get("allowed_cidrs", [])
    if not isinstance(cidrs, list):
        errors.append("download.allowed_cidrs must be a list of CIDRs")
        cidrs = []
    good_cidrs = []
    for cidr in cidrs:
        try:
            good_cidrs.append(str(ipaddress.ip_network(str(cidr), strict=False)))
        except ValueError:
            errors.append(f"download.allowed_cidrs: {cidr!r} is not a CIDR")
    defaults = Config()
    config = Config(
        allowed_cidrs=tuple(good_cidrs),
        max_size=_positive(errors, "download.max_size", download.get("max_size"), defaults.max_size),
        max_redirects=_positive(errors, "download.max_redirects", download.get("max_redirects"),
                                defaults.max_redirects),
        url_max_ttl=_positive(errors, "urls.max_ttl", urls.get("max_ttl"), defaults.url_max_ttl),
        log_retention=_positive(errors, "log.retention", log.get("retention"), defaults.log_retention),
    )
    if errors:
        raise ConfigError("; ".join(errors))
    return config
