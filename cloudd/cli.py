"""`cloudd` command line: `cloudd upgrade-db` applies schema migrations; `cloudd run` starts the server."""

from __future__ import annotations

import os
import sys

from twisted.python import usage

from cloudd.tap import DEFAULT_DB_URL


class UpgradeOptions(usage.Options):
    optParameters = [
        ["basedir", "d", "cloudd-data", "Base directory."],
        ["db-url", None, DEFAULT_DB_URL, "Database URL."],
    ]


class Options(usage.Options):
    subCommands = [["upgrade-db", None, UpgradeOptions, "Create or upgrade the database schema."]]

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        if self.subCommand is None:
            raise usage.UsageError("a sub-command is needed")


def upgrade_db(basedir: str, db_url: str) -> str:
    from cloudd.db import migrate
    from cloudd.db.connector import redact_url
    from cloudd.db.enginestrategy import create_engine, expand_url

    os.makedirs(basedir, exist_ok=True)
    engine = create_engine(db_url, basedir)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return redact_url(expand_url(db_url, basedir))


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
        where = upgrade_db(basedir, sub["db-url"])
        print(f"cloudd: the schema of {where} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
