"""What every bench measures the same way: server CPU per request, load-tool saturation, spread.

A bench's headline used to be requests per second alone, which a busy machine or a saturated load
generator moves as much as the server does. Every bench now reports, per subject (ours and its
reference), over at least `MIN_ROUNDS` rounds:

* the rate (requests, queries, drives... per second): median and min-max spread;
* the server's CPU time per request: utime + stime of the server process (all its threads) from
  ``/proc/<pid>/stat`` before and after the round, divided by the requests served. Other load on a
  shared machine disturbs this much less than the rate;
* the ratio to the reference, as ``reference CPU per request / ours`` (so, like a rate ratio,
  higher is better: 0.5 means we spend twice the reference's CPU on a request), the median of the
  per-round ratios with its spread;
* whether the load tool capped the rate: when the load tool itself used at least
  `LOAD_CAPPED_SHARE` of a core during the round, the rate is the tool's, not the server's, and
  the report says so (CPU per request stays meaningful).

Usage, for a server in another process driven by a load tool::

    ours, theirs = Series("routervm"), Series("nginx")
    for n in range(rounds):
        with ServerCpu(nginx_pid) as cpu:
            result = run_load(["taskset", "-c", "0", "wrk", ...])
        theirs.add(Sample(requests=parsed, seconds=wall, server_cpu=cpu.seconds, load_cpu=result.cpu))
        ...
    print(ours.report(reference=theirs))

For work done in this very process (no load tool), measure with ``ServerCpu(os.getpid())``; for
a reference that is a command run once per request (genisoimage), ``ChildrenCpu`` sums the CPU of
the children waited for during the block.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

MIN_ROUNDS = 5
# A load tool using this share of one core (or more) during a round caps the measured rate.
LOAD_CAPPED_SHARE = 0.90

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` and all its threads so far (``/proc/<pid>/stat``;
    for this very process ``getrusage``, which counts in microseconds rather than clock ticks)."""
    if pid == os.getpid():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as f:
        # the command name (field 2) may hold spaces and parentheses: split after its last ")"
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, their children...), from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except FileNotFoundError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of process `pid` and of its descendants that are still running (e.g. nginx's
    master and worker). Children that have exited are counted only once waited for, in `pid`."""
    total = 0.0
    for one in [pid, *descendants(pid)]:
        try:
            total += cpu_seconds(one)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def children_cpu_seconds() -> float:
    """User plus system CPU time of this process's children that have been waited for, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ServerCpu:
    """Context manager: the CPU seconds process `pid` spent inside the block (``.seconds``); with
    `tree`, also its running descendants' (a server with worker processes)."""

    def __init__(self, pid: int, tree: bool = False) -> None:
        self.pid = pid
        self.seconds = float("nan")
        self._read = tree_cpu_seconds if tree else cpu_seconds
        self._before = 0.0

    def __enter__(self) -> ServerCpu:
        self._before = self._read(self.pid)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.seconds = self._read(self.pid) - self._before


class ChildrenCpu:
    """Context manager: the CPU seconds of the children waited for inside the block (``.seconds``)."""

    def __init__(self) -> None:
        self.seconds = float("nan")
        self._before = 0.0

    def __enter__(self) -> ChildrenCpu:
        self._before = children_cpu_seconds()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.seconds = children_cpu_seconds() - self._before


@dataclass
class LoadRun:
    """A load tool's run: its exit status, output, wall time and own CPU time (seconds)."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu: float


def run_load(argv: Sequence[str], timeout: float | None = None) -> LoadRun:
    """Run a load tool to completion and measure its own CPU time (exactly this child's rusage).

    ``taskset -c N tool ...`` is fine: taskset execs the tool in the same process.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return LoadRun(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                       seconds, usage.ru_utime + usage.ru_stime)


@dataclass
class Sample:
    """One round of one subject: `requests` served in `seconds` (wall), costing the server
    `server_cpu` seconds; `load_cpu` is the load tool's CPU seconds (None: no load tool, or unknown)."""

    requests: int
    seconds: float
    server_cpu: float
    load_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request, microseconds."""
        return self.server_cpu / self.requests * 1e6 if self.requests else float("nan")

    @property
    def load_share(self) -> float | None:
        """The load tool's CPU as a share of one core over the round."""
        if self.load_cpu is None or self.seconds <= 0:
            return None
        return self.load_cpu / self.seconds

    @property
    def capped(self) -> bool:
        share = self.load_share
        return share is not None and share >= LOAD_CAPPED_SHARE


@dataclass
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        good = [v for v in values if v == v]  # drop NaN
        if not good:
            return cls(float("nan"), float("nan"), float("nan"))
        return cls(statistics.median(good), min(good), max(good))

    def format(self, spec: str = ".0f") -> str:
        return f"{self.median:{spec}} ({self.low:{spec}}-{self.high:{spec}})"


@dataclass
class Series:
    """The rounds of one subject (ours or a reference), in round order."""

    name: str
    samples: list[Sample] = field(default_factory=list)
    # what `Sample.load_cpu` measured, for the capped-rate note
    load_name: str = "the load tool"

    def add(self, sample: Sample) -> Sample:
        self.samples.append(sample)
        return sample

    @property
    def rate(self) -> Spread:
        return Spread.of([s.rate for s in self.samples])

    @property
    def cpu_us(self) -> Spread:
        return Spread.of([s.cpu_us for s in self.samples])

    def capped_rounds(self) -> int:
        return sum(1 for s in self.samples if s.capped)

    def max_load_share(self) -> float | None:
        shares = [s.load_share for s in self.samples if s.load_share is not None]
        return max(shares) if shares else None

    def cpu_ratio(self, reference: Series) -> Spread:
        """Per-round ``reference CPU per request / ours``: higher is better, like a rate ratio."""
        return Spread.of([r.cpu_us / o.cpu_us for o, r in zip(self.samples, reference.samples, strict=False)
                          if o.cpu_us > 0])

    def rate_ratio(self, reference: Series) -> Spread:
        """Per-round ``our rate / the reference's``."""
        return Spread.of([o.rate / r.rate for o, r in zip(self.samples, reference.samples, strict=False)
                          if r.rate > 0])

    def report(self, reference: Series | None = None, unit: str = "req/s", per: str = "req",
               width: int = 28, rate_spec: str = ".0f") -> str:
        """One line: rate median (min-max), CPU per request median (min-max), the ratios to the
        reference and a note when the load tool capped the rate."""
        cpu = self.cpu_us
        cpu_spec = ".1f" if cpu.median < 100 else ".0f"
        line = (f"{self.name:<{width}} {self.rate.format(rate_spec)} {unit}   "
                f"cpu {cpu.format(cpu_spec)} us/{per}")
        if reference is not None and reference.samples:
            line += (f"   rate ratio {self.rate_ratio(reference).format('.2f')}"
                     f"   cpu ratio {self.cpu_ratio(reference).format('.2f')}")
        note = self.capped_note()
        if note:
            line += f"\n{'':<{width}} {note}"
        return line

    def capped_note(self) -> str:
        capped = self.capped_rounds()
        if not capped:
            return ""
        share = self.max_load_share() or 0.0
        return (f"! rate capped by {self.load_name} in {capped} of {len(self.samples)} rounds (its CPU up to "
                f"{share:.0%} of a core): compare the CPU per request, not the rate")


def rounds_note(rounds: int) -> str:
    """A warning to print when a run has fewer rounds than the spread needs ("" otherwise)."""
    if rounds >= MIN_ROUNDS:
        return ""
    return f"note: {rounds} rounds (< {MIN_ROUNDS}): a smoke run; the spread and medians are not meaningful"
