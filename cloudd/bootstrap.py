"""First start: the ROOT domain, the default roles, the system account and the admin.

The admin's random password and API keys are written once to a 0600 file in the base directory;
only the file's path is ever logged. The database keeps the secret key sealed, like every user's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloudd.db import model
from cloudd.db.connector import DBConnector
from cloudd.util.passwords import UNUSABLE, hash_password, new_api_key, new_password

CREDENTIALS_FILE = "admin-credentials.json"
DEFAULT_ROLES = (
    ("Root Admin", "Admin", "Default root admin role"),
    ("Resource Admin", "ResourceAdmin", "Default resource admin role"),
    ("Domain Admin", "DomainAdmin", "Default domain admin role"),
    ("User", "User", "Default Root Admin role"),
)


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str
    apikey: str
    secretkey: str


class StaleCredentialsFile(Exception):
    """The database has no admin yet, but the base directory already holds a credentials file."""


def thd_bootstrap(db: DBConnector, conn: Connection, basedir: str | None = None) -> AdminCredentials | None:
    """Create the initial rows unless they exist; returns the new admin's secrets on first start.

    With `basedir`, an existing credentials file there (left by another database) refuses the start
    before anything is created: the new admin's secrets could not be written, and would be lost.
    """
    if conn.execute(sa.select(model.domains.c.id).where(model.domains.c.parent_id.is_(None))).first() is not None:
        return None
    if basedir is not None and os.path.exists(os.path.join(basedir, CREDENTIALS_FILE)):
        raise StaleCredentialsFile(
            f"{os.path.join(basedir, CREDENTIALS_FILE)} exists but the database has no admin account yet; "
            "move the file away (it belongs to another database) and start again")
    root = db.domains.thd_create_root(conn)
    role_ids = [db.roles.thd_create(conn, name, rtype, desc, is_default=True) for name, rtype, desc in DEFAULT_ROLES]
    system = db.accounts.thd_create_account(conn, name="system", account_type=1, role_id=role_ids[0],
                                            domain_id=root, is_default=True)
    db.accounts.thd_create_user(conn, account_id=system, domain_id=root, username="system", password_hash=UNUSABLE,
                                firstname="system", lastname="cloud", email=None, timezone=None, is_default=True)
    admin = db.accounts.thd_create_account(conn, name="admin", account_type=1, role_id=role_ids[0], domain_id=root,
                                           is_default=True)
    creds = AdminCredentials("admin", new_password(), new_api_key(), new_api_key())
    user_id = db.accounts.thd_create_user(conn, account_id=admin, domain_id=root, username="admin",
                                          password_hash=hash_password(creds.password), firstname="Admin",
                                          lastname="User", email=None, timezone=None, is_default=True)
    db.accounts.thd_set_keys(conn, user_id, creds.apikey, creds.secretkey)
    return creds


def write_credentials(basedir: str, creds: AdminCredentials, endpoint: str) -> str:
    """Write the admin's secrets to a new 0600 file; never overwrite an existing one."""
    path = os.path.join(basedir, CREDENTIALS_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"endpoint": endpoint, "username": creds.username, "password": creds.password, "domain": "/",
                   "apikey": creds.apikey, "secretkey": creds.secretkey}, f, indent=2)
        f.write("\n")
    return path
