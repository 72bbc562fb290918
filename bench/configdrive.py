"""Benchmark of config-drive building: drives per second and CPU per drive, ours against genisoimage.

Run from a clone (``scripts/deps --test`` first)::

    .venv/bin/python bench/configdrive.py [--rounds 5] [--drives 100] [--single-drives 200] [--cpu N]

The headline is a **realistic mix** of ``--drives`` drives, every one a different VM and shape:
0 to 4 SSH keys, 2 to 7 metadata keys, user data from none to 1 MiB (none, 512 B, 4 KiB, 32 KiB,
256 KiB or 1 MiB, each size varied by up to 10 %, small ones most often), a password on half of
them and network data on about 60 % (one or two NICs, IPv4 and sometimes IPv6). The same drives
are built by both sides in every round:

* **ssvm** builds them exactly as the daemon does, sequentially on one thread: ``parse_drive`` of
  the JSON description, then the very function a store ``put`` runs on the thread pool,
  ``ssvm.configdrive.store.build_and_write``: ``build_iso`` (pycdlib, in memory, reusing mastered
  images of the same layout) and ``write_drive`` of the image to ``<tmp>/configdrive/<instance>.iso``
  (temporary file, fsync, rename) with its sha256.
* **genisoimage** masters each drive's tree, written once beforehand to a directory with hard links
  for identical files, with CloudStack's command line ``genisoimage -o out.iso -ldots
  -allow-lowercase -allow-multidot -cache-inodes -l -quiet -J -r -V config-2 <dir>``; only the
  genisoimage runs are timed (process start included, as in CloudStack).

Beside it, the **single layout** the image reuse is friendliest to: ``--single-drives`` drives of one
shape (32 KiB of user data, two SSH keys, a password and network data for one NIC with IPv4 and
IPv6), differing only in UUID, host name and password; with it, ssvm with image reuse disabled
(pycdlib masters every image from scratch), for reference.

For each figure (bench/measure.py) the rate and the CPU time per drive (this process for ssvm; the
genisoimage children for genisoimage) are printed as the median with the min-max spread over the
rounds (at least five), and the ratios to genisoimage as the median of the per-round ratios. The
process (and so genisoimage, its child) is pinned to one core (``--cpu``, default: the last one it
may use); ssvm and genisoimage alternate which goes first in each round. Target (the issue): the
mixed workload at least 2x genisoimage. Exit status 0 whether or not the target is met; non-zero
only when a tool is missing or fails.
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
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.measure import MIN_ROUNDS, ChildrenCpu, Sample, Series, ServerCpu, rounds_note  # noqa: E402
from ssvm.configdrive.content import DriveTree, drive_files, parse_drive  # noqa: E402
from ssvm.configdrive.iso import build_iso  # noqa: E402
from ssvm.configdrive.store import build_and_write, write_drive  # noqa: E402

GENISOIMAGE = ["-ldots", "-allow-lowercase", "-allow-multidot", "-cache-inodes", "-l", "-quiet",
               "-J", "-r", "-V", "config-2"]
TARGET = 2.0  # the mixed workload, ours / genisoimage
KiB, MiB = 1024, 1024 * 1024
# user-data sizes of the mix and how often each is drawn
USER_DATA_SIZES = ((0, 15), (512, 15), (4 * KiB, 25), (32 * KiB, 25), (256 * KiB, 12), (MiB, 8))
METADATA = {"service-offering": "Small", "availability-zone": "zone1", "local-ipv4": "10.1.1.50",
            "public-ipv4": "203.0.113.11", "public-hostname": "203.0.113.11",
            "hypervisor-host-name": "kvm01", "cloud-identifier": "CloudStack-{0c3e9b36}"}
KEYS = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGa5kC8UyLQwJY3XOVkQbD3d alice@laptop",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA3Y9Pcs8zG1Kk bob@desk",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2n7m0Vq3bWcGJ1t4E carol@build",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY dave@ci")


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


def nic(index: int, device: int, ipv6: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mac": f"02:00:2e:8b:{device:02x}:{index % 256:02x}", "device_id": device, "mtu": 1500,
        "network_id": f"5d2c3a10-0000-4000-8000-{device:012x}",
        "ipv4": {"address": f"10.{device + 1}.1.{index % 250 + 2}", "netmask": "255.255.255.0",
                 "gateway": f"10.{device + 1}.1.1"}}
    if ipv6:
        entry["ipv6"] = {"address": f"fd0{device}::{index % 250 + 2:x}", "prefix": 64, "gateway": f"fd0{device}::1"}
    return entry


def mixed_description(index: int, rng: random.Random, sizes: dict[int, bytes]) -> dict[str, Any]:
    """One drive of the realistic mix (see the module)."""
    size = rng.choices([s for s, _ in USER_DATA_SIZES], weights=[w for _, w in USER_DATA_SIZES])[0]
    if size:
        size = min(MiB, max(16, int(size * rng.uniform(0.9, 1.1))))
    item: dict[str, Any] = {
        "uuid": f"7a3e0c55-2222-4333-8444-{index:012x}",
        "hostname": f"vm{index}",
        "metadata": dict(rng.sample(sorted(METADATA.items()), rng.randint(2, len(METADATA)))),
        "public_keys": list(KEYS[:rng.randint(0, len(KEYS))]),
    }
    if size:
        if size not in sizes:
            sizes[size] = user_data(size)
        item["user_data"] = base64.b64encode(sizes[size]).decode()
    if rng.random() < 0.5:
        item["password"] = f"Pw{rng.getrandbits(40):x}"
    if rng.random() < 0.6:
        nics = [nic(index, device, ipv6=rng.random() < 0.5) for device in range(rng.choice((1, 1, 1, 2)))]
        item["network"] = {"nics": nics, "dns": ["10.1.1.1"]}
    return item


def mix(count: int) -> list[dict[str, Any]]:
    rng = random.Random(18)
    sizes: dict[int, bytes] = {}
    return [mixed_description(i, rng, sizes) for i in range(count)]


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


def ours(descriptions: list[dict[str, Any]], directory: str, reuse: bool = True) -> Sample:
    """Parse + build + write of every drive, as the daemon does it (store.build_and_write); with
    `reuse` False, pycdlib masters every drive from scratch."""
    with ServerCpu(os.getpid()) as cpu:
        start = time.perf_counter()
        for index, item in enumerate(descriptions):
            target = os.path.join(directory, f"i-2-{index}-VM.iso")
            if reuse:
                build_and_write(target, parse_drive(item))
            else:
                write_drive(target, build_iso(parse_drive(item), reuse=False))
        elapsed = time.perf_counter() - start
    return Sample(len(descriptions), elapsed, cpu.seconds)


def reference(genisoimage: str, tree_dirs: list[str], out: str) -> Sample:
    """One genisoimage run per prepared tree."""
    with ChildrenCpu() as cpu:
        start = time.perf_counter()
        for tree_dir in tree_dirs:
            subprocess.run([genisoimage, "-o", out, *GENISOIMAGE, tree_dir], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
    return Sample(len(tree_dirs), elapsed, cpu.seconds)


def prepare_trees(descriptions: list[dict[str, Any]], root: str) -> tuple[list[str], list[DriveTree]]:
    dirs, trees = [], []
    for index, item in enumerate(descriptions):
        tree = drive_files(parse_drive(item))
        path = os.path.join(root, f"tree-{index}")
        write_tree(tree, path)
        dirs.append(path)
        trees.append(tree)
    return dirs, trees


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


def alternate(round_: int, jobs: list[Callable[[], object]]) -> None:
    """Run the jobs in order in even rounds and in reverse order in odd ones."""
    for job in jobs if round_ % 2 == 0 else reversed(jobs):
        job()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--drives", type=int, default=100, help="drives of the realistic mix, built by both sides")
    parser.add_argument("--single-drives", type=int, default=200, help="drives of the single layout per round")
    parser.add_argument("--reference-runs", type=int, default=40, help="genisoimage runs of the single layout")
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last allowed)")
    args = parser.parse_args()

    genisoimage = shutil.which("genisoimage") or shutil.which("mkisofs")
    if genisoimage is None:
        print("genisoimage (or mkisofs) is not installed", file=sys.stderr)
        return 2
    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {cpu})
    note = rounds_note(args.rounds)
    if note:
        print(note)

    mixed = mix(args.drives)
    single = [description(i) for i in range(args.single_drives)]
    with tempfile.TemporaryDirectory(prefix="bench-configdrive-") as work:
        mixed_dirs, mixed_trees = prepare_trees(mixed, os.path.join(work, "mixed"))
        single_dirs, single_trees = prepare_trees(single[:1], os.path.join(work, "single"))
        store = os.path.join(work, "configdrive")
        os.makedirs(store)
        out = os.path.join(work, "genisoimage.iso")
        reference(genisoimage, single_dirs, out)
        reference_size = os.path.getsize(out)
        ours(single[:20], store)  # warm up: imports, caches
        ours(mixed[:5], store)

        mixed_ours, mixed_theirs = Series("ssvm, mixed"), Series("genisoimage, mixed")
        single_ours, single_cold = Series("ssvm, single layout"), Series("ssvm, single, no image reuse")
        single_theirs = Series("genisoimage, single layout")
        for round_ in range(args.rounds):
            alternate(round_, [lambda: mixed_ours.add(ours(mixed, store)),
                               lambda: mixed_theirs.add(reference(genisoimage, mixed_dirs, out))])
            alternate(round_, [lambda: single_ours.add(ours(single, store)),
                               lambda: single_cold.add(ours(single[: max(10, args.single_drives // 4)], store,
                                                            reuse=False)),
                               lambda: single_theirs.add(reference(genisoimage, single_dirs * args.reference_runs,
                                                                   out))])
            print(f"round {round_ + 1}: mixed: ssvm {mixed_ours.samples[-1].rate:7.1f}/s, genisoimage "
                  f"{mixed_theirs.samples[-1].rate:6.1f}/s   single: ssvm {single_ours.samples[-1].rate:7.1f}/s, "
                  f"cold {single_cold.samples[-1].rate:6.1f}/s, genisoimage {single_theirs.samples[-1].rate:6.1f}/s",
                  flush=True)
        steps = phases(single[:100], store)
        mixed_steps = phases(mixed, store)

    sizes = [len(base64.b64decode(d.get("user_data", ""))) for d in mixed]
    print()
    print(f"mixed workload: {len(mixed)} drives, user data 0 to {max(sizes) // KiB} KiB (median "
          f"{statistics.median(sizes) / KiB:.1f} KiB, {sum(1 for s in sizes if not s)} without), "
          f"{sum(1 for d in mixed if 'password' in d)} with a password, {sum(1 for d in mixed if 'network' in d)} "
          f"with network data, {statistics.median(len(t.files) for t in mixed_trees):.0f} files each (median)")
    print(f"single layout: {len(single_trees[0].files)} files, {single_trees[0].content_size()} bytes of content; "
          f"image {len(build_iso(drive_files(parse_drive(single[0]))))} bytes (genisoimage {reference_size})")
    print(f"pinned to CPU {cpu}; {args.rounds} rounds; median (min-max); ratios are ssvm / genisoimage per round")
    width = 30
    print("  " + mixed_ours.report(reference=mixed_theirs, unit="drives/s", per="drive", width=width, rate_spec=".1f"))
    print("  " + mixed_theirs.report(unit="drives/s", per="drive", width=width, rate_spec=".1f"))
    print("  " + single_ours.report(reference=single_theirs, unit="drives/s", per="drive", width=width,
                                    rate_spec=".1f"))
    print("  " + single_cold.report(reference=single_theirs, unit="drives/s", per="drive", width=width,
                                    rate_spec=".1f"))
    print("  " + single_theirs.report(unit="drives/s", per="drive", width=width, rate_spec=".1f"))
    print("ssvm steps, single layout (median ms): " + ", ".join(f"{name} {ms:.2f}" for name, ms in steps.items()))
    print("ssvm steps, mixed (median ms): " + ", ".join(f"{name} {ms:.2f}" for name, ms in mixed_steps.items()))
    ratio = mixed_ours.rate_ratio(mixed_theirs).median
    cpu_ratio = mixed_ours.cpu_ratio(mixed_theirs).median
    print(f"target: mixed workload >= {TARGET:g}x genisoimage: {'met' if ratio >= TARGET else 'NOT met'} "
          f"({ratio:.2f}x by rate, {cpu_ratio:.2f}x by CPU per drive); single layout "
          f"{single_ours.rate_ratio(single_theirs).median:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
