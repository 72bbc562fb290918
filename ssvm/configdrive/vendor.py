"""The secret parts of a drive: the password, the operator's vendor data and `vendor_data.json`.

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
import re
from typing import Any

from ssvm.configdrive.validation import fail, is_utf8, quote, type_name

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_PASSWORD_LENGTH = 512


def json_text(value: object) -> str:
    """Compact, key-sorted, ASCII-only JSON: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def parse_password(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        fail("password", f"must be a string, not {type_name(value)}")
    if not value:
        fail("password", "is empty; leave password out when there is none")
    if len(value) > MAX_PASSWORD_LENGTH:
        fail("password", f"is longer than {MAX_PASSWORD_LENGTH} characters")
    if CONTROL_RE.search(value) or not is_utf8(value):
        fail("password", "must not contain control characters or invalid Unicode")
    return value


def _check_json(value: object, where: str) -> None:
    """Raise unless `value` is plain JSON data whose strings are valid Unicode (names the key
    path, never a value)."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            fail(where, "must not hold NaN or infinite numbers")
        return
    if isinstance(value, str):
        if not is_utf8(value):
            fail(where, "holds invalid Unicode")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not is_utf8(key):
                fail(where, "keys must be strings")
            _check_json(item, f"{where}[{quote(key)}]")
        return
    fail(where, f"must be JSON data, not {type_name(value)}")


def parse_vendor_data(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        fail("vendor_data", f"must be an object, not {type_name(value)}")
    _check_json(value, "vendor_data")
    if "cloud-init" in value:
        part = value["cloud-init"]
        parts = part if isinstance(part, list) else [part]
        if not parts or not all(isinstance(p, str) and p.strip() for p in parts):
            fail("vendor_data['cloud-init']", "must be a non-empty string or a list of them "
                                              "(cloud-config, scripts or MIME parts)")
    return json_text(value)


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
