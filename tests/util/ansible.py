"""Run the Ansible CloudStack collection (ngine_io.cloudstack) against a real daemon, from a test.

`Ansible(workdir, endpoint, key, secret).play(tasks)` writes a one-play playbook for `localhost`
(local connection, this interpreter as the modules' Python) into `workdir`, runs the checkout's
`ansible-playbook` with the JSON stdout callback, and returns one `TaskResult` per task in order
(the module's own result: `changed`, `failed`, `msg` and the returned fields). The collection's
modules read the endpoint and the API keys from `CLOUDSTACK_ENDPOINT`, `CLOUDSTACK_KEY` and
`CLOUDSTACK_SECRET`; nothing else of the caller's Ansible set-up (configuration files, home
directory, collections) is read: every Ansible directory lives under `workdir`.

`missing()` says why Ansible cannot run here (for a skip reason), or "" when it can.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

BIN = os.path.dirname(sys.executable)
PLAYBOOK = os.path.join(BIN, "ansible-playbook")
COLLECTION = "ngine_io.cloudstack"


def missing() -> str:
    """Why the collection cannot be run from this interpreter ("" when it can)."""
    if not os.path.exists(PLAYBOOK):
        return f"ansible-playbook is not installed next to {sys.executable} (pip install ansible==12.3.0)"
    for module, what in (("ansible_collections.ngine_io.cloudstack", "the ngine_io.cloudstack collection"),
                         ("cs", "the cs library"), ("sshpubkeys", "sshpubkeys")):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed ({module} cannot be imported)"
    return ""


@dataclass
class TaskResult:
    """One task's module result."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.data.get("changed"))

    @property
    def failed(self) -> bool:
        return bool(self.data.get("failed"))

    @property
    def msg(self) -> str:
        return str(self.data.get("msg", ""))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class PlaybookError(AssertionError):
    """ansible-playbook did not produce a readable result."""


class Ansible:
    """Runs plays of the collection's modules against one cloudd endpoint."""

    def __init__(self, workdir: str, endpoint: str, key: str, secret: str, timeout: float = 300) -> None:
        self.workdir = os.path.abspath(workdir)
        self.endpoint = endpoint
        self.key = key
        self.secret = secret
        self.timeout = timeout
        self.runs = 0
        os.makedirs(self.workdir, exist_ok=True)

    def env(self) -> dict[str, str]:
        home = os.path.join(self.workdir, "ansible-home")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CLOUDSTACK_"))}
        env.update({
            "CLOUDSTACK_ENDPOINT": self.endpoint,
            "CLOUDSTACK_KEY": self.key,
            "CLOUDSTACK_SECRET": self.secret,
            "CLOUDSTACK_TIMEOUT": "30",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CONFIG": os.path.join(self.workdir, "ansible.cfg"),  # never a caller's config
            "ANSIBLE_HOME": home,
            "ANSIBLE_LOCAL_TEMP": os.path.join(home, "tmp"),
            "ANSIBLE_REMOTE_TEMP": os.path.join(home, "remote-tmp"),
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(home, "collections"),  # plus the installed ones
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        })
        return env

    def play(self, tasks: list[dict[str, Any]], name: str = "cloudd") -> list[TaskResult]:
        """Run `tasks` (each a task dict such as ``{"name": ..., "ngine_io.cloudstack.cs_zone": {...}}``)
        as one play on localhost; the module results in task order. A failed task ends the play, as
        Ansible does: the results stop at it (its `failed` is true)."""
        self.runs += 1
        path = os.path.join(self.workdir, f"play-{self.runs:03d}.yml")
        playbook = [{"name": name, "hosts": "localhost", "gather_facts": False, "connection": "local",
                     "tasks": tasks}]
        with open(path, "w") as f:
            json.dump(playbook, f, indent=1)  # JSON is YAML
        config = os.path.join(self.workdir, "ansible.cfg")
        if not os.path.exists(config):
            with open(config, "w") as f:
                f.write("[defaults]\n")
        proc = subprocess.run([PLAYBOOK, "-i", "localhost,", "-c", "local", path], cwd=self.workdir,
                              env=self.env(), capture_output=True, timeout=self.timeout, check=False)
        out = proc.stdout.decode(errors="replace")
        try:
            report = json.loads(out[out.index("{"):])
        except ValueError:
            raise PlaybookError(f"ansible-playbook exited {proc.returncode} without a JSON report:\n{out}\n"
                                f"{proc.stderr.decode(errors='replace')}") from None
        results: list[TaskResult] = []
        for one in report.get("plays", []):
            for task in one.get("tasks", []):
                hosts = task.get("hosts", {})
                data = hosts.get("localhost") or (next(iter(hosts.values())) if hosts else {})
                results.append(TaskResult(task.get("task", {}).get("name", ""), data))
        return results

    def module(self, module: str, **args: Any) -> TaskResult:
        """Run one module of the collection once; its result."""
        name = f"{module} {args.get('name', '')}".strip()
        results = self.play([{"name": name, f"{COLLECTION}.{module}": args}])
        if len(results) != 1:
            raise PlaybookError(f"expected one task result for {name}, got {len(results)}")
        return results[0]
