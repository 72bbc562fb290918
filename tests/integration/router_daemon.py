"""The real router daemon (`twistd -n routervm`) in a router network namespace whose bridge ``br0``
connects guest namespaces: the topology, starting and killing the process, and its control API
driven with curl over mutual TLS.  Shared by the router's namespace integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.trial.unittest import TestCase

from tests.integration.support import poll
from tests.util.appliance import RouterAppliance
from tests.util.daemon import twistd_argv, twistd_env
from tests.util.netns import IP, GuestSpec, Topology, require_commands, require_root_and_netns

# A stub upstream DNS server (stdlib only), started in the public namespace: A ADDRESS (TTL 300)
# for NAME, NXDOMAIN for anything else, RD copied from the query; every query is appended as
# "name type" to LOG unless LOG is "-"; in MODE "silent" it reads every query and never answers.
# Arguments: HOST LOG NAME ADDRESS MODE.
STUB_UPSTREAM = r"""
import socket, struct, sys
host, log, name, address, mode = sys.argv[1], sys.argv[2], sys.argv[3].lower(), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    if mode == "silent" or len(data) < 12 or data[2] & 0x80:
        continue
    labels, i = [], 12
    while i < len(data) and data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
        i += 1 + data[i]
    question = data[12:i + 5]
    qname = ".".join(labels).lower()
    qtype, = struct.unpack("!H", data[i + 1:i + 3])
    if log != "-":
        with open(log, "a") as f:
            f.write("%s %d\n" % (qname, qtype))
    rd = data[2] & 0x01
    if qname == name and qtype == 1:
        flags, answers = 0x8080 | (rd << 8), b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) \
            + socket.inet_aton(address)
        count = 1
    else:
        flags, answers, count = 0x8083 | (rd << 8), b"", 0
    s.sendto(data[:2] + struct.pack("!HHHHH", flags, 1, count, 0, 0) + question + answers, peer)
"""


class RouterDaemonCase(TestCase):
    timeout = 240

    def build(self, macs: Sequence[str], router_cidr: str, public: bool = False) -> None:
        """A router namespace with one guest namespace per MAC on its bridge ``br0``, which holds
        `router_cidr`; the daemon's files in a fresh folder (not started yet)."""
        require_root_and_netns()
        require_commands("curl")
        self.topo = Topology.for_test(self, guests=[GuestSpec(mac=mac) for mac in macs], public=public)
        steps = [["link", "add", "br0", "type", "bridge"]]
        steps += [["link", "set", guest.router_ifname, "master", "br0"] for guest in self.topo.guests]
        steps += [["link", "set", "br0", "up"], ["addr", "add", router_cidr, "dev", "br0"]]
        for argv in steps:
            self.topo.run_in(self.topo.router, [IP, *argv])
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.app = RouterAppliance(os.path.join(self.dir, "router"), data_plane=True)
        self.proc: subprocess.Popen[Any] | None = None

    def start_stub_upstream(self, ns: str, host: str, name: str, address: str, *, log: str | None = None,
                            silent: bool = False) -> subprocess.Popen[Any]:
        """The stub upstream DNS server (`STUB_UPSTREAM`) on `host` port 53 in namespace `ns`,
        once it listens."""
        script = os.path.join(self.dir, "stub_upstream.py")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(STUB_UPSTREAM)
        proc = self.topo.spawn_in(ns, [sys.executable, "-u", script, host, log or "-", name, address,
                                       "silent" if silent else "answer"])
        self.topo.wait_for_line(proc, "ready")
        return proc

    # --- the daemon ---------------------------------------------------------------------------------

    def start(self) -> None:
        argv = twistd_argv("-n", "--pidfile=", "--logfile", self.app.log_path, "routervm",
                           *self.app.plugin_args())
        self.proc = self.topo.spawn_in(self.topo.router, argv, env=twistd_env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"routervm exited with {self.proc.returncode}:\n{self.app.log()}")
            status, _ = self.control("GET", "/health", check=False)
            if status == 200:
                return
            time.sleep(0.2)  # polling a real process
        self.fail(f"routervm did not answer:\n{self.app.log()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def control(self, method: str, path: str, body: Any = None, check: bool = True) -> tuple[int | None, Any]:
        """One control request with curl inside the router namespace (mutual TLS)."""
        app = self.app
        argv = ["curl", "-sS", "--max-time", "20", "--cacert", os.path.join(app.tls_dir, "ca.pem"),
                "--cert", os.path.join(app.client_dir, "cert.pem"),
                "--key", os.path.join(app.client_dir, "key.pem"),
                "-X", method, "-o", "-", "-w", "\n%{http_code}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        argv.append(app.control_url + path)
        done = self.topo.run_in(self.topo.router, argv, check=False,
                                input=None if body is None else json.dumps(body))
        text, _, code = done.stdout.rpartition("\n")
        status = int(code) if code.strip().isdigit() and int(code) else None
        if check:
            self.assertEqual(status, 200, f"{method} {path}: {done.stdout} {done.stderr}\n{app.log()}")
        return status, json.loads(text) if status else None

    def wait_for(self, what: str, check: Callable[[], Any], explain: Callable[[], str] | None = None,
                 timeout: float = 30) -> Any:
        """Poll `check` until it returns something true (returned), failing after `timeout`."""
        try:
            return poll(check, timeout=timeout, interval=0.1)
        except AssertionError:
            detail = explain() if explain is not None else ""
            self.fail(f"timed out waiting for {what}\n{detail}\n{self.app.log()}")
