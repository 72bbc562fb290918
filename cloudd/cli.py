"""`cloudd` command line: `cloudd upgrade-db` applies schema migrations; `cloudd run` starts the server."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import sys
from typing import NoReturn

from twisted.python import usage

from cloudd.pki import CertificateAuthority, pki_directory
from cloudd.tap import DEFAULT_DB_URL, SECRETS_KEY_HELP, load_sealer
from cloudd.util.sealing import Sealer, SecretsKeyError


def distribution_version() -> str:
    """cloudd's version as installed (the distribution's metadata), or the source's when not installed."""
    try:
        return importlib.metadata.version("cloudd")
    except importlib.metadata.PackageNotFoundError:
        from cloudd import __version__

        return __version__


def print_version() -> NoReturn:
    """`--version` of `cloudd` and of `twistd cloudd`: print cloudd's version and exit."""
    print(f"cloudd {distribution_version()}")
    sys.exit(0)


class UpgradeOptions(usage.Options):
    optParameters = [
        ["basedir", "d", "cloudd-data", "Base directory."],
        ["db-url", None, DEFAULT_DB_URL, "Database URL."],
        ["secrets-key-file", None, None, SECRETS_KEY_HELP],
    ]


class ApplianceCertOptions(usage.Options):
    optParameters = [
        ["basedir", "d", "cloudd-data", "Base directory (the authority lives in <basedir>/pki)."],
        ["name", None, None, "The appliance's name, e.g. ssvm-1."],
        ["out", "o", None, "Folder to write key.pem, cert.pem and ca.pem into."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["hosts"] = []

    def opt_host(self, host: str) -> None:
        """A host name or address cloudd reaches the appliance by (repeatable)."""
        self["hosts"].append(host)

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        if not self["name"] or not self["out"] or not self["hosts"]:
            raise usage.UsageError("--name, --out and at least one --host are needed")


class Options(usage.Options):
    subCommands = [
        ["upgrade-db", None, UpgradeOptions, "Create or upgrade the database schema."],
        ["appliance-cert", None, ApplianceCertOptions,
         "Issue an appliance's control-channel key and certificate from cloudd's authority."],
    ]

    def opt_version(self) -> NoReturn:
        """Print cloudd's version and exit."""
        print_version()

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        if self.subCommand is None:
            raise usage.UsageError("a sub-command is needed")


def upgrade_db(basedir: str, db_url: str, sealer: Sealer) -> str:
    from cloudd.db import migrate
    from cloudd.db.connector import redact_url
    from cloudd.db.enginestrategy import create_engine, expand_url

    os.makedirs(basedir, exist_ok=True)
    engine = create_engine(db_url, basedir)
    try:
        migrate.upgrade(engine, sealer=sealer)
    finally:
        engine.dispose()
    return redact_url(expand_url(db_url, basedir))


def issue_appliance_cert(basedir: str, name: str, hosts: list[str], out: str) -> str:
    now = datetime.datetime.now(datetime.UTC)
    authority = CertificateAuthority.load_or_create(pki_directory(basedir), now)
    authority.issue_appliance(name, hosts, now).write(os.path.abspath(out))
    return os.path.abspath(out)


def main(argv: list[str] | None = None) -> int:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as exc:
        print(f"{options}\ncloudd: {exc}", file=sys.stderr)
        return 2
    sub = options.subOptions
    if options.subCommand == "upgrade-db":
        basedir = os.path.abspath(sub["basedir"])
        os.umask(0o077)  # the base directory and a new SQLite file are the owner's only, as under twistd
        try:
            sealer = load_sealer(basedir, sub["secrets-key-file"], os.environ)
        except SecretsKeyError as exc:
            print(f"cloudd: {exc}", file=sys.stderr)
            return 1
        where = upgrade_db(basedir, sub["db-url"], sealer)
        print(f"cloudd: the schema of {where} is current; API secret keys are sealed with the key from "
              f"{sealer.source}")
    elif options.subCommand == "appliance-cert":
        out = issue_appliance_cert(os.path.abspath(sub["basedir"]), sub["name"], sub["hosts"], sub["out"])
        print(f"cloudd: wrote key.pem, cert.pem and ca.pem for {sub['name']} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
