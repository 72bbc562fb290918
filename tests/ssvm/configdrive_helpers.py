"""Shared material of the config-drive tests: sample drive descriptions and the real tools that read
the ISOs back (isoinfo, bsdtar, blkid, and cloud-init through `cloudinit_probe.py`).

Tests call `require_isoinfo()` / `require_cloudinit()` to skip, with the reason, on a machine
without those tools; CI installs them.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import tempfile
from functools import cache
from typing import Any

from twisted.trial.unittest import SkipTest

SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cloudinit_probe.py")

UUID = "9f1c2b7e-1111-4222-8333-444455556666"
NETWORK_UUID = "5d2c3a10-0000-4000-8000-00000000beef"
MAC = "02:00:2e:8b:00:05"
MAC2 = "02:00:2e:8b:00:06"
KEY_ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfakealicekey alice@laptop"
KEY_BOB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQfakebobkey bob@desk"
PASSWORD = "Vx8gkq2Lr"
USER_DATA = b"#cloud-config\nruncmd:\n  - [touch, /tmp/hello]\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def minimal() -> dict[str, Any]:
    """The smallest valid description."""
    return {"uuid": UUID, "hostname": "web1"}


def typical() -> dict[str, Any]:
    """A description with every part: metadata, two keys, user data, password, IPv4+IPv6 network."""
    return copy.deepcopy({
        "uuid": UUID,
        "hostname": "web1",
        "metadata": {
            "service-offering": "Small",
            "availability-zone": "zone1",
            "local-ipv4": "10.1.1.50",
            "public-ipv4": "203.0.113.11",
            "public-hostname": "web1.example.org",
            "hypervisor-host-name": "kvm01",
            "cloud-identifier": "CloudStack-{0c3e9b36-1111-2222-3333-444444444444}",
            "cloud-name": "acme",
            "role": "frontend",
        },
        "public_keys": [KEY_ALICE, KEY_BOB],
        "user_data": b64(USER_DATA),
        "password": PASSWORD,
        "network": {
            "nics": [{
                "mac": MAC, "device_id": 0, "mtu": 1500, "network_id": NETWORK_UUID,
                "ipv4": {"address": "10.1.1.50", "netmask": "255.255.255.0", "gateway": "10.1.1.1",
                         "routes": [{"network": "192.168.0.0", "netmask": "255.255.0.0",
                                     "gateway": "10.1.1.254"}]},
                "ipv6": {"address": "fd00::50", "prefix": 64, "gateway": "fd00::1"},
            }],
            "dns": ["10.1.1.1", "8.8.8.8", "fd00::1"],
        },
    })


# -- external tools ------------------------------------------------------------------------------


@cache
def _has_cloudinit() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import cloudinit"], cwd="/", capture_output=True).returncode == 0


def require_isoinfo() -> None:
    if shutil.which("isoinfo") is None:
        raise SkipTest("isoinfo (genisoimage package) is not installed; CI installs it")


def require_cloudinit() -> None:
    require_isoinfo()
    if not _has_cloudinit():
        raise SkipTest(f"{SYSTEM_PYTHON} cannot import cloudinit (apt-get install cloud-init); CI installs it")


def run(argv: list[str], stdin: bytes | None = None) -> bytes:
    result = subprocess.run(argv, input=stdin, capture_output=True, cwd="/")
    if result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
    return result.stdout


def write_iso(directory: str, image: bytes, name: str = "drive.iso") -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(image)
    return path


def isoinfo_files(iso_path: str, *flags: str) -> list[str]:
    """Every path isoinfo lists (`-R` for Rock Ridge names, `-J` for Joliet, none for ISO 9660)."""
    listing = run(["isoinfo", *flags, "-f", "-i", iso_path]).decode("utf-8")
    return sorted(line for line in listing.splitlines() if line)


def isoinfo_read(iso_path: str, path: str) -> bytes:
    return run(["isoinfo", "-R", "-x", path, "-i", iso_path])


def extract(iso_path: str, into: str) -> str:
    """The ISO's files under `into`, read through Rock Ridge by libarchive's bsdtar (or, where
    bsdtar is missing, by pycdlib)."""
    os.makedirs(into, exist_ok=True)
    if shutil.which("bsdtar"):
        run(["bsdtar", "-xf", iso_path, "-C", into])
        return into
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(iso_path)
    try:
        for directory, _, files in iso.walk(rr_path="/"):
            target = os.path.join(into, directory.lstrip("/"))
            os.makedirs(target, exist_ok=True)
            for name in files:
                iso.get_file_from_iso(os.path.join(target, name), rr_path=f"{directory.rstrip('/')}/{name}")
    finally:
        iso.close()
    return into


def probe_cloudinit(image: bytes, macs: dict[str, str] | None = None) -> dict[str, Any]:
    """What cloud-init's ConfigDrive datasource reads from `image` (see cloudinit_probe.py)."""
    workdir = tempfile.mkdtemp(prefix="configdrive-probe-")
    try:
        iso_path = write_iso(workdir, image)
        drive = extract(iso_path, os.path.join(workdir, "drive"))
        argv = [SYSTEM_PYTHON, PROBE, drive]
        for mac, name in (macs or {}).items():
            argv += ["--mac", f"{mac}={name}"]
        result: dict[str, Any] = json.loads(run(argv))
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cloudinit_load_yaml(documents: list[str]) -> list[Any]:
    """Each document loaded by cloud-init's own YAML loader (`cloudinit.util.load_yaml`)."""
    script = ("import json, sys\n"
              "from cloudinit import util\n"
              "print(json.dumps([util.load_yaml(d) for d in json.load(sys.stdin)]))\n")
    loaded: list[Any] = json.loads(run([SYSTEM_PYTHON, "-c", script], json.dumps(documents).encode()))
    return loaded
