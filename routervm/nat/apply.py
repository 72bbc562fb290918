"""Apply a `RouterRules` model to the kernel: the whole `render` document goes to
`iptables-restore` on stdin, one atomic transaction per table (router.md §6).

`RuleApplier.apply` skips the run when the rendered text equals the last one it applied
successfully, so re-publishing the same state costs nothing; a failure forgets the last text, so
the next apply runs again.  Errors carry the tool's exit code and stderr (which never holds a
secret: the rules hold none).
"""

from __future__ import annotations

from typing import Protocol

from routervm.nat.render import render
from routervm.nat.rules import RouterRules

__all__ = ["ApplyError", "Runner", "RuleApplier"]

#: Seconds `iptables-restore` may take.
APPLY_TIMEOUT = 60.0


class Runner(Protocol):
    """`routervm.process.RunProcess`, or a fake in tests."""

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = ...) -> tuple[int, bytes, bytes]:
        ...


class ApplyError(Exception):
    """`iptables-restore` refused the document (or could not run)."""


class RuleApplier:
    def __init__(self, runner: Runner, iptables_restore: str = "iptables-restore") -> None:
        self.runner = runner
        self.iptables_restore = iptables_restore
        self.applied: str | None = None  # the last document applied successfully
        self.runs = 0

    async def apply(self, rules: RouterRules) -> None:
        text = render(rules)
        if text == self.applied:
            return
        self.applied = None
        self.runs += 1
        argv = [self.iptables_restore]
        try:
            code, _out, err = await self.runner.run(argv, stdin=text.encode("ascii"), timeout=APPLY_TIMEOUT)
        except Exception as exc:
            raise ApplyError(f"{self.iptables_restore} could not run: {exc}") from None
        if code != 0:
            message = err.decode("utf-8", "replace").strip()[:2000]
            raise ApplyError(f"{self.iptables_restore} failed with exit code {code}: {message}")
        self.applied = text
