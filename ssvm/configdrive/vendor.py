"""The secret parts of a drive: the password, the operator's vendor data and `vendor_data.json`.

The password and vendor data are read by the config drive message (`appliance.messages.configdrive`,
re-exported here); this module renders them.

Their values never appear in an error message. The password reaches cloud-init as a cloud-config
(`password`, `chpasswd: {expire: false}`, `ssh_pwauth: true`) whose password is one YAML
double-quoted scalar in printable ASCII, so any password — quotes, colons, `#`, YAML keywords,
non-ASCII — loads back exactly (checked against cloud-init's own loader in the tests).

Operator vendor data is merged at the top level of `vendor_data.json`. With
`password_in_vendor_data` the password's cloud-config joins the operator's `cloud-init` value: a
string becomes a two-part list `[operator, password]`, a list gets the password part appended.
cloud-init processes such a list as a multi-part message and merges the cloud-config parts in
order, so the password part — last — wins over `password`, `chpasswd` and `ssh_pwauth` set by the
operator.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from appliance.messages.configdrive import (
    CONTROL_RE,
    MAX_PASSWORD_LENGTH,
    json_text,
    parse_password,
    parse_vendor_data,
)

__all__ = [
    "CONTROL_RE",
    "MAX_PASSWORD_LENGTH",
    "json_text",
    "parse_password",
    "parse_vendor_data",
    "password_cloud_config",
    "password_md5",
    "vendor_document",
    "yaml_quoted",
]

def yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar in printable ASCII (YAML 1.1 and 1.2 read it back)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def password_cloud_config(password: str) -> str:
    """The cloud-config that makes cloud-init (`set_passwords`) set `password`, unexpired, with
    SSH password authentication on."""
    return ("#cloud-config\n"
            f"password: {yaml_quoted(password)}\n"
            "chpasswd: {expire: false}\n"
            "ssh_pwauth: true\n")


def password_md5(password: str) -> str:
    """md5 hex as Java's `BigInteger(1, digest).toString(16)` prints it: leading zeros dropped."""
    digest = hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest()
    return format(int(digest, 16), "x")


def vendor_document(operator: str | None, password: str | None) -> dict[str, Any]:
    """The `vendor_data.json` document: the operator's additions (canonical JSON text, or None)
    and, when `password` is given, its cloud-config."""
    document: dict[str, Any] = json.loads(operator) if operator else {}
    if password is not None:
        snippet = password_cloud_config(password)
        current = document.get("cloud-init")
        if current is None:
            document["cloud-init"] = snippet
        elif isinstance(current, str):
            document["cloud-init"] = [current, snippet]
        else:
            document["cloud-init"] = [*current, snippet]
    return document
