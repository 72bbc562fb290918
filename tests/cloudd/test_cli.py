"""`cloudd --version` and `twistd cloudd --version` print cloudd's version, not Twisted's."""

from __future__ import annotations

import importlib.metadata
import io
from contextlib import redirect_stdout

from twisted.trial.unittest import TestCase

import cloudd
from cloudd import cli, tap


class VersionTests(TestCase):
    def expected(self) -> str:
        try:
            return importlib.metadata.version("cloudd")
        except importlib.metadata.PackageNotFoundError:
            return cloudd.__version__

    def test_distribution_version(self) -> None:
        self.assertEqual(cli.distribution_version(), self.expected())

    def test_not_installed_falls_back_to_the_source(self) -> None:
        def missing(name: str) -> str:
            raise importlib.metadata.PackageNotFoundError(name)

        self.patch(importlib.metadata, "version", missing)
        self.assertEqual(cli.distribution_version(), cloudd.__version__)

    def test_cloudd_version(self) -> None:
        out = io.StringIO()
        with redirect_stdout(out), self.assertRaises(SystemExit) as exit_:
            cli.main(["--version"])
        self.assertEqual(exit_.exception.code, 0)
        self.assertEqual(out.getvalue(), f"cloudd {self.expected()}\n")

    def test_twistd_cloudd_version(self) -> None:
        out = io.StringIO()
        with redirect_stdout(out), self.assertRaises(SystemExit) as exit_:
            tap.Options().parseOptions(["--version"])
        self.assertEqual(exit_.exception.code, 0)
        self.assertEqual(out.getvalue(), f"cloudd {self.expected()}\n")
