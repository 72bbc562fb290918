"""Installing cloudd for development: `pip install -e .` and then `twistd cloudd`.

Twisted finds `twistd` plugins by scanning every ``twisted/plugins`` directory on ``sys.path``.
setuptools' default editable install for a flat layout is an import-hook finder that maps the
packages without putting the checkout on ``sys.path``, so the scan missed ``twisted/plugins`` and
``twistd cloudd`` only worked with ``PYTHONPATH``. pyproject.toml declares the checkout's root as
the package root, which makes the editable install a plain ``.pth`` entry instead.

The test installs a copy of the project (with a version of its own and one extra plugin that only
the copy has, so a cloudd installed elsewhere cannot make it pass) editable into a throwaway
virtual environment, without dependencies (they come from the running environment through a
``.pth`` line, which keeps it fast), and runs ``twistd --help``, ``twistd cloudd --version`` and
``cloudd --version`` there. It needs PyPI (or pip's cache) for setuptools in pip's isolated build.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.util.daemon import ROOT

PROBE_VERSION = "0.0.0.dev9"
PROBE_PLUGIN = '''from twisted.application.service import ServiceMaker

probe = ServiceMaker("cloudd-editable-probe", "cloudd.tap", "Only in the editable copy.", "cloudd-editable-probe")
'''
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


class EditableInstallTests(SynchronousTestCase):
    """One install (the slow part), then every check against it."""

    def setUp(self) -> None:
        self.work = tempfile.mkdtemp(prefix="cloudd-editable-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.project = os.path.join(self.work, "project")
        self.venv = os.path.join(self.work, "venv")
        self.python = os.path.join(self.venv, "bin", "python")

    def copy_project(self) -> None:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
        os.makedirs(self.project)
        for name in ("appliance", "cloudd", "routervm", "ssvm", "twisted"):
            shutil.copytree(os.path.join(ROOT, name), os.path.join(self.project, name), ignore=ignore)
        shutil.copy(os.path.join(ROOT, "README.md"), self.project)
        with open(os.path.join(ROOT, "pyproject.toml")) as f:
            pyproject = f.read()
        pyproject, count = re.subn(r'(?m)^version = ".*"$', f'version = "{PROBE_VERSION}"', pyproject, count=1)
        self.assertEqual(count, 1, "pyproject.toml has no version line")
        with open(os.path.join(self.project, "pyproject.toml"), "w") as f:
            f.write(pyproject)
        with open(os.path.join(self.project, "twisted", "plugins", "cloudd_editable_probe.py"), "w") as f:
            f.write(PROBE_PLUGIN)

    def install(self) -> None:
        subprocess.run([sys.executable, "-m", "venv", self.venv], check=True, capture_output=True)
        purelib = self.run_in_venv(self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        # The running environment's packages (Twisted and the rest), after the venv's own entries.
        with open(os.path.join(purelib.stdout.strip(), "zz-running-environment.pth"), "w") as f:
            f.write("\n".join(site.getsitepackages()) + "\n")
        out = self.run_in_venv(self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "--no-deps", "-e", self.project, timeout=600)
        if out.returncode != 0:
            if "No matching distribution" in out.stderr or "Could not find a version" in out.stderr:
                raise SkipTest(f"pip could not fetch setuptools for the build (no PyPI?):\n{out.stderr[-2000:]}")
            self.fail(f"pip install -e failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")

    def run_in_venv(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["VIRTUAL_ENV"] = self.venv
        # from a folder without twisted/plugins of its own (twistd scans the working directory too)
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=self.work,
                              timeout=timeout)

    def test_editable_install(self) -> None:
        self.copy_project()
        self.install()

        # twistd finds the plugins of the editable install: the probe exists only there
        out = self.run_in_venv(self.python, "-c", TWISTD, "--help")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("cloudd-editable-probe", out.stdout)
        self.assertRegex(out.stdout, r"(?m)^\s+cloudd\s")

        # the checkout itself is imported, not a copy of it
        out = self.run_in_venv(self.python, "-c", "import cloudd.tap; print(cloudd.tap.__file__)")
        self.assertEqual(out.stdout.strip(), os.path.join(self.project, "cloudd", "tap.py"), out.stderr)

        # --version is cloudd's, from the installed distribution's metadata
        for argv in ([self.python, "-c", TWISTD, "cloudd", "--version"],
                     [self.python, "-c", TWISTD, "cloudd-editable-probe", "--version"],
                     [os.path.join(self.venv, "bin", "cloudd"), "--version"]):
            out = self.run_in_venv(*argv)
            self.assertEqual((out.returncode, out.stdout.strip()), (0, f"cloudd {PROBE_VERSION}"),
                             f"{argv[-2:]}: {out.stderr}")
