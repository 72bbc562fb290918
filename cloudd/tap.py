"""`twistd cloudd`: options and the composition root of the management server."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from twisted.application.service import IService
from twisted.logger import Logger
from twisted.python import usage

from appliance.logretention import DEFAULT_RETENTION, keep_rotated_logs
from cloudd.db.enginestrategy import expand_url
from cloudd.util.sealing import Sealer, SecretsKeyError, new_key_text, parse_key

DEFAULT_DB_URL = "sqlite:///%(basedir)s/cloudd.sqlite"
SECRETS_KEY_FILE = "secrets.key"
SECRETS_KEY_ENV = "CLOUDD_SECRETS_KEY"
SECRETS_KEY_HELP = ("File holding the key that seals the API secret keys in the database (base64 of 32 bytes); "
                    f"default <basedir>/{SECRETS_KEY_FILE}, created at first start. The environment variable "
                    f"{SECRETS_KEY_ENV} gives the key itself instead (servers sharing one database need the same key).")

log = Logger()


class Options(usage.Options):
    optParameters = [
        ["basedir", "d", "cloudd-data", "Base directory: SQLite database, credentials, server identity."],
        ["db-url", None, DEFAULT_DB_URL, "Database URL (sqlite:///…, mysql+pymysql://user:pw@host/db)."],
        ["listen", "l", "tcp:8080:interface=127.0.0.1", "Endpoint of the query API (/client/api)."],
        ["log-retention", None, DEFAULT_RETENTION, "Rotated log files kept (twistd --logfile rotates at 1 MB); "
                                                   "older ones are deleted.", int],
        ["secrets-key-file", None, None, SECRETS_KEY_HELP],
    ]
    optFlags = [["upgrade-db", None, "Apply pending schema migrations before starting."],
                ["no-simulator", None, "Do not build the simulated zone (a zone, two simulated hosts, storage, an "
                 "ssvm, a default template) at start: for operators building a real zone."]]

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


def private_basedir(basedir: str) -> None:
    """Create the base directory owner-only (0700), or take group and other access away from an
    existing one and from everything in it (files 0600), logging each path changed."""
    os.makedirs(basedir, mode=0o700, exist_ok=True)
    for top, _dirs, files in os.walk(basedir):
        for path, is_dir in [(top, True)] + [(os.path.join(top, name), False) for name in files]:
            # the base directory may itself be a link to the real one; links below it are left alone
            info = os.stat(path) if path == basedir else os.lstat(path)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
                continue
            private = (mode & 0o700) | (0o700 if is_dir else 0o600)
            try:
                os.chmod(path, private)
            except OSError as exc:
                log.error("{path} is open to other users (mode {mode}) and could not be made private: {error}",
                          path=path, mode=f"{mode:04o}", error=exc.strerror)
                continue
            log.warn("made {path} private to its owner: mode {mode} is now {private}", path=path,
                     mode=f"{mode:04o}", private=f"{private:04o}")


def load_sealer(basedir: str, key_file: str | None, environ: Mapping[str, str]) -> Sealer:
    """The secrets key: from CLOUDD_SECRETS_KEY, from --secrets-key-file, or from <basedir>/secrets.key,
    which is created (0600) when it does not exist yet. SecretsKeyError says what is wrong."""
    text = environ.get(SECRETS_KEY_ENV)
    if text is not None:
        if key_file:
            raise SecretsKeyError(f"both {SECRETS_KEY_ENV} and --secrets-key-file give a secrets key; give one")
        source = f"the environment variable {SECRETS_KEY_ENV}"
        return Sealer(parse_key(text, source), source)
    path = os.path.abspath(key_file or os.path.join(basedir, SECRETS_KEY_FILE))
    if not key_file:
        os.makedirs(basedir, mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(new_key_text())
            log.info("created a new secrets key in {path} (mode 0600); the API secret keys in the database cannot "
                     "be used without it: back it up with the database", path=path)
    try:
        with open(path) as f:
            text = f.read()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise SecretsKeyError(f"the secrets key file {path} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        log.warn("the secrets key file {path} is open to other users (mode {mode}); make it 0600", path=path,
                 mode=f"{mode:04o}")
    return Sealer(parse_key(text, f"the secrets key file {path}"), path)


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted API)
    from twisted.internet import reactor

    from cloudd.service import make_cloud_manager

    basedir = options["basedir"]
    # Every file cloudd writes from now on (the SQLite file and its -wal/-shm, credentials, pki/) is 0600.
    os.umask(0o077)
    private_basedir(basedir)
    try:
        sealer = load_sealer(basedir, options["secrets-key-file"], os.environ)
    except SecretsKeyError as exc:
        raise SystemExit(f"cloudd could not start: {exc}") from None
    auto = bool(options["upgrade-db"]) or fresh_sqlite(options["db-url"], basedir)
    service = make_cloud_manager(basedir=basedir, db_url=options["db-url"], listen=options["listen"],
                                 reactor=reactor, auto_upgrade=auto, sealer=sealer,
                                 simulator=not options["no-simulator"])
    keep_rotated_logs(service, options, options["log-retention"], reactor)
    return service
