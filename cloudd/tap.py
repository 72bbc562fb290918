"""`twistd cloudd`: options and the composition root of the management server."""

from __future__ import annotations

import os

from twisted.application.service import IService
from twisted.python import usage

from appliance.logretention import DEFAULT_RETENTION, keep_rotated_logs
from cloudd.db.enginestrategy import expand_url

DEFAULT_DB_URL = "sqlite:///%(basedir)s/cloudd.sqlite"


class Options(usage.Options):
    optParameters = [
        ["basedir", "d", "cloudd-data", "Base directory: SQLite database, credentials, server identity."],
        ["db-url", None, DEFAULT_DB_URL, "Database URL (sqlite:///…, mysql+pymysql://user:pw@host/db)."],
        ["listen", "l", "tcp:8080:interface=127.0.0.1", "Endpoint of the query API (/client/api)."],
        ["log-retention", None, DEFAULT_RETENTION, "Rotated log files kept (twistd --logfile rotates at 1 MB); "
                                                   "older ones are deleted.", int],
    ]
    optFlags = [["upgrade-db", None, "Apply pending schema migrations before starting."]]

    def opt_version(self) -> None:
        """Print cloudd's version and exit."""
        from cloudd.cli import print_version

        print_version()

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        self["basedir"] = os.path.abspath(self["basedir"])
        if not self["listen"].split(":", 1)[0]:
            raise usage.UsageError("--listen needs an endpoint description such as tcp:8080")
        if self["log-retention"] < 1:
            raise usage.UsageError("--log-retention must be a positive number of files")


def fresh_sqlite(db_url: str, basedir: str) -> bool:
    """A SQLite file that does not exist yet is created and migrated on first start."""
    url = expand_url(db_url, basedir)
    if not url.startswith("sqlite:///"):
        return False
    return not os.path.exists(url[len("sqlite:///"):])


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted API)
    from twisted.internet import reactor

    from cloudd.service import make_cloud_manager

    basedir = options["basedir"]
    os.makedirs(basedir, exist_ok=True)
    auto = bool(options["upgrade-db"]) or fresh_sqlite(options["db-url"], basedir)
    service = make_cloud_manager(basedir=basedir, db_url=options["db-url"], listen=options["listen"],
                                 reactor=reactor, auto_upgrade=auto)
    keep_rotated_logs(service, options, options["log-retention"], reactor)
    return service
