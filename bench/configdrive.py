"""Benchmark of config-drive building: drives per second, ours against genisoimage.

Run from a clone after ``pip install .[test]``::

    python bench/configdrive.py [--rounds 5] [--drives 200] [--reference-runs 40] [--cpu N]

The drive is a typical one: 32 KiB of user data, two SSH keys, a password and network data for one
NIC with IPv4 and IPv6 (so the full tree: CloudStack files plus the ten OpenStack version folders).

* **ssvm** builds it exactly as the daemon does, sequentially on one thread: ``parse_drive`` of the
  JSON description, then the very function a store ``put`` runs on the thread pool,
  ``ssvm.configdrive.store.build_and_write``: ``build_iso`` (pycdlib, in memory) and
  ``write_drive`` of the image to ``<tmp>/configdrive/<instance>.iso`` (temporary file, fsync,
  rename) with its sha256. Every drive is a different VM (its own UUID, host name and password), so
  the figure includes the daemon's reuse of mastered images of the same layout, as in production.
* **genisoimage** masters the same tree, written once to a directory with hard links for
  identical files, with CloudStack's command line
  ``genisoimage -o out.iso -ldots -allow-lowercase -allow-multidot -cache-inodes -l -quiet -J -r
  -V config-2 <dir>``; only the genisoimage runs are timed (process start included, as in
  CloudStack).
* **ssvm, cold** is ours with image reuse disabled (the first drive of a shape: pycdlib masters
  the whole image), otherwise the same, for reference.

The process (and so genisoimage, its child) is pinned to one core (``--cpu``, default: the last
one it may use). Each round measures all three back to back; the figures are medians over the
rounds, the ratio the median of the per-round ratios. Target (the issue): ssvm at least 3x
genisoimage's rate. Exit status 0 whether or not the target is met; non-zero only when a tool is
missing or fails.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ssvm.configdrive.content import DriveTree, drive_files, parse_drive  # noqa: E402
from ssvm.configdrive.iso import build_iso  # noqa: E402
from ssvm.configdrive.store import build_and_write, write_drive  # noqa: E402

GENISOIMAGE = ["-ldots", "-allow-lowercase", "-allow-multidot", "-cache-inodes", "-l", "-quiet",
               "-J", "-r", "-V", "config-2"]


def user_data(size: int) -> bytes:
    """A cloud-config of exactly `size` bytes (a script with a long comment block)."""
    rng = random.Random(1)
    head = b"#cloud-config\nruncmd:\n  - [sh, -c, 'echo configured > /var/tmp/drive']\n"
    words: list[str] = []
    length = 0
    while length < size:
        words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))))
        length += len(words[-1]) + 1
    body = ("# " + " ".join(words)).encode()
    return (head + body)[:size - 1] + b"\n"


USER_DATA = base64.b64encode(user_data(32 * 1024)).decode()


def description(index: int) -> dict[str, Any]:
    return {
        "uuid": f"9f1c2b7e-1111-4222-8333-{index:012x}",
        "hostname": f"web{index}",
        "metadata": {"service-offering": "Small", "availability-zone": "zone1", "local-ipv4": "10.1.1.50",
                     "public-ipv4": "203.0.113.11", "public-hostname": "203.0.113.11",
                     "hypervisor-host-name": "kvm01", "cloud-identifier": "CloudStack-{0c3e9b36}"},
        "public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGa5kC8UyLQwJY3XOVkQbD3d alice@laptop",
                        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA3Y9Pcs8zG1Kk bob@desk"],
        "user_data": USER_DATA,
        "password": f"Vx8gkq2Lr{index}",
        "network": {"nics": [{
            "mac": "02:00:2e:8b:00:05", "device_id": 0, "mtu": 1500,
            "network_id": "5d2c3a10-0000-4000-8000-00000000beef",
            "ipv4": {"address": "10.1.1.50", "netmask": "255.255.255.0", "gateway": "10.1.1.1"},
            "ipv6": {"address": "fd00::50", "prefix": 64, "gateway": "fd00::1"}}],
            "dns": ["10.1.1.1", "fd00::1"]},
    }


def write_tree(tree: DriveTree, root: str) -> None:
    for directory in tree.directories:
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    for drive_file in tree.files:
        path = os.path.join(root, drive_file.path)
        if drive_file.same_as is None:
            with open(path, "wb") as f:
                f.write(drive_file.data)
        else:
            os.link(os.path.join(root, drive_file.same_as), path)


def ours(descriptions: list[dict[str, Any]], directory: str) -> float:
    """Seconds per drive for parse + build + write, as the daemon does it (store.build_and_write)."""
    start = time.perf_counter()
    for index, item in enumerate(descriptions):
        build_and_write(os.path.join(directory, f"i-2-{index}-VM.iso"), parse_drive(item))
    return (time.perf_counter() - start) / len(descriptions)


def ours_cold(descriptions: list[dict[str, Any]], directory: str) -> float:
    """As `ours`, with image reuse disabled: pycdlib masters every drive from scratch."""
    start = time.perf_counter()
    for index, item in enumerate(descriptions):
        write_drive(os.path.join(directory, f"i-2-{index}-VM.iso"), build_iso(parse_drive(item), reuse=False))
    return (time.perf_counter() - start) / len(descriptions)


def reference(genisoimage: str, tree_dir: str, out: str, runs: int) -> float:
    """Seconds per genisoimage run on the prepared tree."""
    argv = [genisoimage, "-o", out, *GENISOIMAGE, tree_dir]
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) / runs


def phases(descriptions: list[dict[str, Any]], directory: str) -> dict[str, float]:
    """Median milliseconds of each step, measured separately."""
    spent: dict[str, list[float]] = {"parse_drive": [], "build_iso": [], "write_drive": []}
    for index, item in enumerate(descriptions):
        t0 = time.perf_counter()
        spec = parse_drive(item)
        t1 = time.perf_counter()
        image = build_iso(spec)
        t2 = time.perf_counter()
        write_drive(os.path.join(directory, f"p-{index}.iso"), image)
        t3 = time.perf_counter()
        spent["parse_drive"].append(t1 - t0)
        spent["build_iso"].append(t2 - t1)
        spent["write_drive"].append(t3 - t2)
    return {name: statistics.median(values) * 1000 for name, values in spent.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--drives", type=int, default=200, help="drives built by ssvm per round")
    parser.add_argument("--reference-runs", type=int, default=40, help="genisoimage runs per round")
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last allowed)")
    args = parser.parse_args()

    genisoimage = shutil.which("genisoimage") or shutil.which("mkisofs")
    if genisoimage is None:
        print("genisoimage (or mkisofs) is not installed", file=sys.stderr)
        return 2
    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {cpu})

    descriptions = [description(i) for i in range(args.drives)]
    tree = drive_files(parse_drive(descriptions[0]))
    image = build_iso(tree)
    with tempfile.TemporaryDirectory(prefix="bench-configdrive-") as work:
        tree_dir = os.path.join(work, "tree")
        write_tree(tree, tree_dir)
        store = os.path.join(work, "configdrive")
        os.makedirs(store)
        out = os.path.join(work, "genisoimage.iso")
        reference(genisoimage, tree_dir, out, 1)
        reference_size = os.path.getsize(out)
        ours(descriptions[:20], store)  # warm up: imports, caches

        warm, cold, theirs, ratios = [], [], [], []
        for round_ in range(args.rounds):
            per_drive = ours(descriptions, store)
            per_cold = ours_cold(descriptions[: max(10, args.drives // 4)], store)
            per_run = reference(genisoimage, tree_dir, out, args.reference_runs)
            warm.append(1 / per_drive)
            cold.append(1 / per_cold)
            theirs.append(1 / per_run)
            ratios.append(per_run / per_drive)
            print(f"round {round_ + 1}: ssvm {1 / per_drive:7.1f}/s  ssvm cold {1 / per_cold:7.1f}/s  "
                  f"genisoimage {1 / per_run:7.1f}/s  ratio {per_run / per_drive:4.2f}", flush=True)
        steps = phases(descriptions[:100], store)

    ratio = statistics.median(ratios)
    print()
    print(f"drive: {len(tree.files)} files ({sum(1 for f in tree.files if f.same_as is None)} distinct, "
          f"{tree.content_size()} bytes of content), {len(tree.directories)} directories")
    print(f"image: ssvm {len(image)} bytes, genisoimage {reference_size} bytes; pinned to CPU {cpu}; "
          f"{args.rounds} rounds")
    print(f"ssvm (parse + build + write):       {statistics.median(warm):8.1f} drives/s "
          f"({1000 / statistics.median(warm):.2f} ms)")
    print(f"ssvm, no image reuse:               {statistics.median(cold):8.1f} drives/s "
          f"({1000 / statistics.median(cold):.2f} ms)")
    print(f"genisoimage:                        {statistics.median(theirs):8.1f} drives/s "
          f"({1000 / statistics.median(theirs):.2f} ms)")
    print("ssvm steps (median ms): " + ", ".join(f"{name} {ms:.2f}" for name, ms in steps.items()))
    print(f"ratio ssvm / genisoimage: {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
