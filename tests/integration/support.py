"""Shared pieces of the client integration tests: one real daemon per test class, and signers.

`DaemonCase` runs one `twistd -n cloudd` child process (tests/util/daemon.py) for all the tests of
a concrete TestCase class. trial does not call `setUpClass`/`tearDownClass`, so the daemon starts
in the first `setUp` of the class and stops in the cleanup of the last test that trial loaded for
it (every loaded test method is one instance); a process still running when the interpreter exits
(for instance after a skipped test) is stopped by an `atexit` hook.

The signers here are written from spec/api.md §2.2 and the clients' own code, independently of
`cloudd.web.signing`, so a mistake there cannot hide in the tests.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from cs import CloudStack
from twisted.trial.unittest import SynchronousTestCase

from tests.util.daemon import ROOT, CloudDaemon, HttpResult, http

_RUNNING: list[CloudDaemon] = []


@atexit.register
def _stop_leftovers() -> None:
    for daemon in list(_RUNNING):
        daemon.stop()


def unique(prefix: str) -> str:
    """A name no other test uses (tests share one daemon per class)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Call `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)  # noqa: TID251 (waiting on another process, not on our reactor)


class DaemonCase(SynchronousTestCase):
    """Base class: one daemon shared by the tests of each concrete subclass."""

    db_url: ClassVar[str | None] = None
    # the daemon builds the simulated zone (as `make run` does) instead of starting empty
    simulator: ClassVar[bool] = False
    # per concrete class (set with setattr on the class itself, never inherited)
    _daemon: ClassVar[CloudDaemon | None]
    _pending: ClassVar[int]
    _start_error: ClassVar[BaseException | None]
    # the class's own attributes when its daemon started: what tests add or change on the class while it
    # runs (a zone made once, a cached id) belongs to that daemon and is put back when it stops. Under
    # `trial -j` a worker may run a class's tests one at a time, each with a daemon of its own.
    _baseline: ClassVar[dict[str, Any]]
    _BOOKKEEPING = frozenset({"_daemon", "_pending", "_start_error", "_baseline"})

    def __init__(self, methodName: str = "runTest") -> None:  # noqa: N803 (unittest API)
        super().__init__(methodName)
        cls = type(self)
        cls._pending = cls.__dict__.get("_pending", 0) + 1

    @classmethod
    def prepare(cls, basedir: str) -> None:
        """Hook run once before the daemon starts (e.g. to set up a server database)."""

    @classmethod
    def _started(cls) -> CloudDaemon:
        daemon = cls.__dict__.get("_daemon")
        if daemon is not None:
            return daemon
        error = cls.__dict__.get("_start_error")
        if error is not None:
            raise RuntimeError(f"the daemon of {cls.__name__} failed to start") from error
        # under trial's working directory (_trial_temp), removed again when the daemon stops
        basedir = tempfile.mkdtemp(prefix=f"cloudd-{cls.__name__}-", dir=os.getcwd())
        try:
            cls.prepare(basedir)
            daemon = CloudDaemon(basedir, db_url=cls.db_url, simulator=cls.simulator)
            daemon.start()
        except BaseException as exc:
            cls._start_error = exc
            raise
        _RUNNING.append(daemon)
        cls._baseline = {k: v for k, v in cls.__dict__.items() if k not in cls._BOOKKEEPING}
        cls._daemon = daemon
        return daemon

    @classmethod
    def _release(cls) -> None:
        cls._pending = cls.__dict__.get("_pending", 1) - 1
        daemon = cls.__dict__.get("_daemon")
        if cls._pending <= 0 and daemon is not None:
            cls._daemon = None
            daemon.stop()
            _RUNNING.remove(daemon)
            shutil.rmtree(daemon.basedir, ignore_errors=True)
            baseline = cls.__dict__.get("_baseline", {})
            for key in [k for k in cls.__dict__ if k not in cls._BOOKKEEPING]:
                if key not in baseline:
                    delattr(cls, key)
                elif cls.__dict__[key] is not baseline[key]:
                    setattr(cls, key, baseline[key])

    def setUp(self) -> None:
        self.addCleanup(type(self)._release)
        self.daemon = self._started()
        self.endpoint = self.daemon.endpoint
        self.creds = self.daemon.credentials()
        self.admin = self.client(self.creds["apikey"], self.creds["secretkey"])

    def client(self, key: str, secret: str, **kwargs: Any) -> CloudStack:
        """A `cs` client for this daemon that polls jobs quickly."""
        kwargs.setdefault("poll_interval", 0.02)
        kwargs.setdefault("job_timeout", 30)
        return CloudStack(endpoint=self.endpoint, key=key, secret=secret, **kwargs)

    def http(self, params: Mapping[str, str], method: str = "GET",
             headers: dict[str, str] | None = None) -> HttpResult:
        """Send already complete (signed or session) parameters, in the query or a form body."""
        encoded = urllib.parse.urlencode(params)
        if method == "GET":
            return http(self.endpoint + "?" + encoded, headers=headers)
        return http(self.endpoint, data=encoded.encode(), method=method,
                    headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})

    def wait_job(self, client: CloudStack, jobid: str, timeout: float = 60) -> dict[str, Any]:
        """Poll queryAsyncJobResult until the job is finished; the flat job object."""
        found: dict[str, Any] = {}

        def done() -> bool:
            found.update(client.queryAsyncJobResult(jobid=jobid))
            return bool(found["jobstatus"] != 0)

        try:
            poll(done, timeout=timeout)
        except AssertionError:
            lines = [line for line in self.daemon.log().splitlines() if "AccessLog" not in line]
            raise AssertionError(f"job {jobid} not finished within {timeout:g} s: {found}\ncloudd's log:\n"
                                 + "\n".join(lines[-40:])) from None
        return found


# --- signing, as the Java server computes it (spec §2.2 reference) -----------------------------

def form_encode(value: str, safe: str) -> str:
    """Form-encode `value` byte by byte: ASCII letters, digits and `safe` kept, space as `+`, the rest
    `%XX` (upper-case hex) — the shape of both Java's URLEncoder and Go's QueryEscape."""
    out = []
    for b in value.encode("utf-8"):
        c = chr(b)
        if (b < 128 and c.isalnum()) or c in safe:
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def java_encode(value: str) -> str:
    """Java's URLEncoder.encode(value, "UTF-8")."""
    return form_encode(value, ".-*_")


def java_signature(params: Mapping[str, str], secret: str) -> str:
    names = sorted(k for k in params if k.lower() != "signature")
    text = "&".join(k + "=" + java_encode(params[k]).replace("+", "%20") for k in names).lower()
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_v1(command: str, api_key: str, secret: str, **params: str) -> dict[str, str]:
    """A version-1 request (no `expires`), as a bare API-key client signs it."""
    out = {"command": command, "response": "json", "apiKey": api_key, **params}
    out["signature"] = java_signature(out, secret)
    return out


# --- cmk (cloudmonkey 6.x, Go) ---------------------------------------------------------------------

def go_query_escape(value: str) -> str:
    """Go's url.QueryEscape: keeps A-Z a-z 0-9 - _ . ~, space becomes +, the rest %XX."""
    return form_encode(value, "-_.~")


def cmk_encode(params: Mapping[str, str]) -> str:
    """cmk's encodeRequestParams: sorted names, QueryEscape'd values, then + → %20 and %2A → *."""
    text = "&".join(f"{k}={go_query_escape(params[k])}" for k in sorted(params))
    return text.replace("+", "%20").replace("%2A", "*")


def cmk_expires(now: datetime | None = None) -> str:
    """Go's time.Now().UTC().Add(15 * time.Minute).Format(time.RFC3339)."""
    when = (now or datetime.now(UTC)) + timedelta(minutes=15)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def cmk_signed(command: str, api_key: str, secret: str, args: Mapping[str, str] | None = None,
               expires: str | None = None) -> str:
    """The encoded query (or form body) cmk sends for one signed API call."""
    params = {"command": command, **(args or {}), "response": "json", "signatureversion": "3",
              "expires": expires or cmk_expires(), "apiKey": api_key}
    encoded = cmk_encode(params)
    digest = hmac.new(secret.encode(), encoded.lower().encode(), hashlib.sha1).digest()
    return encoded + "&signature=" + go_query_escape(base64.b64encode(digest).decode())


# --- the cs command-line program -------------------------------------------------------------------

@dataclass
class CliResult:
    code: int
    output: Any
    stderr: str


def run_cs_cli(endpoint: str, key: str, secret: str, *args: str) -> CliResult:
    """Run the installed `cs` program with its environment configuration; its JSON output parsed."""
    program = os.path.join(os.path.dirname(sys.executable), "cs")
    argv = [program] if os.path.exists(program) else [sys.executable, "-m", "cs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSTACK_")}
    env.update({"CLOUDSTACK_ENDPOINT": endpoint, "CLOUDSTACK_KEY": key, "CLOUDSTACK_SECRET": secret,
                "CLOUDSTACK_POLL_INTERVAL": "0.05"})
    proc = subprocess.run([*argv, *args], env=env, cwd=ROOT, capture_output=True, timeout=60, text=True)
    output = json.loads(proc.stdout) if proc.stdout.strip() else None
    return CliResult(proc.returncode, output, proc.stderr)
