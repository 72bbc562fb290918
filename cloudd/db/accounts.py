"""Accounts and their users (one table family: a user never lives without its account).

API secret keys are stored sealed (`cloudd.util.sealing`, bound to the user's uuid) and opened only
when a caller's signature is to be checked or the key is handed back to its owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cloudd.db import model
from cloudd.db.base import (
    Conflict,
    DBComponent,
    NotFound,
    Page,
    Scope,
    apply_page,
    apply_scope,
    contains,
    insert_id,
    new_uuid,
    thd_lock_domain,
)
from cloudd.util.sealing import Sealer, SealError, SecretsKeyError, key_id_of

if TYPE_CHECKING:
    from cloudd.db.pool import DBThreadPool

A = model.accounts
U = model.users
D = model.domains
R = model.roles


@dataclass(frozen=True)
class Account:
    id: int
    uuid: str
    name: str
    account_type: int
    role_id: int
    role_uuid: str
    role_name: str
    role_type: str
    role_is_default: bool
    domain_id: int
    domain_uuid: str
    domain_name: str
    domain_path: str
    state: str
    network_domain: str | None
    is_default: bool
    created: int


@dataclass(frozen=True)
class User:
    id: int
    uuid: str
    username: str
    firstname: str | None
    lastname: str | None
    email: str | None
    state: str
    timezone: str | None
    api_key: str | None
    is_default: bool
    created: int
    account: Account


@dataclass(frozen=True)
class Credentials:
    """What authentication needs about a user; carries the secret, so it never leaves the server."""

    user: User
    secret_key: str | None
    password_hash: str


_ACCOUNT_COLS = (
    A.c.id.label("a_id"), A.c.uuid.label("a_uuid"), A.c.name.label("a_name"),
    A.c.account_type.label("a_type"), A.c.role_id.label("a_role_id"), A.c.domain_id.label("a_domain_id"),
    A.c.state.label("a_state"), A.c.network_domain.label("a_netdom"), A.c.is_default.label("a_default"),
    A.c.created.label("a_created"),
    R.c.uuid.label("r_uuid"), R.c.name.label("r_name"), R.c.role_type.label("r_type"),
    R.c.is_default.label("r_default"),
    D.c.uuid.label("d_uuid"), D.c.name.label("d_name"), D.c.path.label("d_path"),
)


def _account_from(m: sa.RowMapping) -> Account:
    return Account(
        id=m["a_id"], uuid=m["a_uuid"], name=m["a_name"], account_type=m["a_type"], role_id=m["a_role_id"],
        role_uuid=m["r_uuid"], role_name=m["r_name"], role_type=m["r_type"],
        role_is_default=bool(m["r_default"]), domain_id=m["a_domain_id"],
        domain_uuid=m["d_uuid"], domain_name=m["d_name"], domain_path=m["d_path"], state=m["a_state"],
        network_domain=m["a_netdom"], is_default=bool(m["a_default"]), created=m["a_created"],
    )


def _account_select() -> sa.Select:
    return sa.select(*_ACCOUNT_COLS).select_from(
        A.join(R, A.c.role_id == R.c.id).join(D, A.c.domain_id == D.c.id)
    ).where(A.c.removed.is_(None))


def _user_select(*extra: sa.ColumnElement) -> sa.Select:
    return sa.select(U.c.id, U.c.uuid, U.c.username, U.c.firstname, U.c.lastname, U.c.email, U.c.state,
                     U.c.timezone, U.c.api_key, U.c.is_default, U.c.created, *extra, *_ACCOUNT_COLS).select_from(
        U.join(A, U.c.account_id == A.c.id).join(R, A.c.role_id == R.c.id).join(D, A.c.domain_id == D.c.id)
    ).where(U.c.removed.is_(None), A.c.removed.is_(None))


def _user_from(m: sa.RowMapping, account: Account | None = None) -> User:
    return User(id=m["id"], uuid=m["uuid"], username=m["username"], firstname=m["firstname"],
                lastname=m["lastname"], email=m["email"], state=m["state"], timezone=m["timezone"],
                api_key=m["api_key"], is_default=bool(m["is_default"]), created=m["created"],
                account=account if account is not None else _account_from(m))


def _users_from(rows: Iterable[sa.Row[Any]]) -> list[User]:
    """The users of many rows of one query; users of one account share its (frozen) Account."""
    accounts: dict[int, Account] = {}
    users = []
    for row in rows:
        m = row._mapping
        account = accounts.get(m["a_id"])
        if account is None:
            account = accounts[m["a_id"]] = _account_from(m)
        users.append(_user_from(m, account))
    return users


def _one_user(conn: Connection, q: sa.Select) -> User:
    row = conn.execute(q).first()
    if row is None:
        raise NotFound()
    return _user_from(row._mapping)


class AccountsComponent(DBComponent):
    log = Logger()

    def __init__(self, pool: DBThreadPool, clock: IReactorTime, sealer: Sealer | None = None) -> None:
        super().__init__(pool, clock)
        self.sealer = sealer or Sealer.ephemeral()

    # --- accounts -------------------------------------------------------------------------------

    def thd_get_account(self, conn: Connection, account_id: int) -> Account:
        row = conn.execute(_account_select().where(A.c.id == account_id)).first()
        if row is None:
            raise NotFound(account_id)
        return _account_from(row._mapping)

    def get_account(self, account_id: int) -> Deferred[Account]:
        return self.pool.do(lambda conn: self.thd_get_account(conn, account_id))

    def get_account_by_uuid(self, uuid: str) -> Deferred[Account]:
        def thd(conn: Connection) -> Account:
            row = conn.execute(_account_select().where(A.c.uuid == uuid)).first()
            if row is None:
                raise NotFound(uuid)
            return _account_from(row._mapping)

        return self.pool.do(thd)

    def find_account(self, name: str, domain_id: int) -> Deferred[Account]:
        def thd(conn: Connection) -> Account:
            row = conn.execute(_account_select().where(A.c.name == name, A.c.domain_id == domain_id)).first()
            if row is None:
                raise NotFound(name)
            return _account_from(row._mapping)

        return self.pool.do(thd)

    def thd_create_account(self, conn: Connection, *, name: str, account_type: int, role_id: int,
                           domain_id: int, network_domain: str | None = None, uuid: str | None = None,
                           is_default: bool = False) -> int:
        thd_lock_domain(conn, domain_id)
        if conn.execute(sa.select(A.c.id).where(
                A.c.name == name, A.c.domain_id == domain_id, A.c.removed.is_(None))).first():
            raise Conflict(f"The specified account: {name} already exists")
        if uuid is not None and conn.execute(sa.select(A.c.id).where(A.c.uuid == uuid)).first():
            raise Conflict(f"An account with uuid {uuid} already exists")
        return int(insert_id(conn.execute(A.insert().values(
            uuid=uuid or new_uuid(), name=name, account_type=account_type, role_id=role_id,
            domain_id=domain_id, state="enabled", network_domain=network_domain,
            is_default=int(is_default), created=self.now()))))

    def create_account(self, *, name: str, account_type: int, role_id: int, domain_id: int,
                       network_domain: str | None, account_uuid: str | None, username: str,
                       password_hash: str, firstname: str, lastname: str, email: str,
                       timezone: str | None, user_uuid: str | None) -> Deferred[Account]:
        """Create an account and its first user in one transaction."""

        def thd(conn: Connection) -> Account:
            aid = self.thd_create_account(conn, name=name, account_type=account_type, role_id=role_id,
                                          domain_id=domain_id, network_domain=network_domain, uuid=account_uuid)
            self.thd_create_user(conn, account_id=aid, domain_id=domain_id, username=username,
                                 password_hash=password_hash, firstname=firstname, lastname=lastname,
                                 email=email, timezone=timezone, uuid=user_uuid)
            return self.thd_get_account(conn, aid)

        return self.pool.do(thd)

    def list_accounts(self, scope: Scope, *, uuid: str | None = None, name: str | None = None,
                      account_type: int | None = None, state: str | None = None, keyword: str | None = None,
                      page: Page | None = None) -> Deferred[tuple[int, list[Account]]]:
        def thd(conn: Connection) -> tuple[int, list[Account]]:
            q = apply_scope(_account_select(), scope, A.c.id, A.c.domain_id, D)
            if uuid is not None:
                q = q.where(A.c.uuid == uuid)
            if name is not None:
                q = q.where(A.c.name == name)
            if account_type is not None:
                q = q.where(A.c.account_type == account_type)
            if state is not None:
                q = q.where(A.c.state == state)
            if keyword:
                q = q.where(contains(A.c.name, keyword))
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(apply_page(q.order_by(A.c.id), page or Page())).all()
            return int(total), [_account_from(r._mapping) for r in rows]

        return self.pool.do(thd)

    def update_account(self, account: Account, *, name: str | None = None, network_domain: str | None = None,
                       role_id: int | None = None) -> Deferred[Account]:
        def thd(conn: Connection) -> Account:
            values: dict[str, object] = {}
            if name is not None and name != account.name:
                thd_lock_domain(conn, account.domain_id)
                if conn.execute(sa.select(A.c.id).where(A.c.name == name, A.c.domain_id == account.domain_id,
                                                        A.c.removed.is_(None))).first():
                    raise Conflict(f"The specified account: {name} already exists")
                values["name"] = name
            if network_domain is not None:
                values["network_domain"] = network_domain
            if role_id is not None:
                values["role_id"] = role_id
            if values:
                conn.execute(A.update().where(A.c.id == account.id).values(**values))
            return self.thd_get_account(conn, account.id)

        return self.pool.do(thd)

    def set_account_state(self, account_id: int, state: str) -> Deferred[Account]:
        def thd(conn: Connection) -> Account:
            conn.execute(A.update().where(A.c.id == account_id).values(state=state))
            if state != "enabled":
                conn.execute(model.sessions.delete().where(model.sessions.c.user_id.in_(
                    sa.select(U.c.id).where(U.c.account_id == account_id))))
            return self.thd_get_account(conn, account_id)

        return self.pool.do(thd)

    def thd_remove_account(self, conn: Connection, account_id: int) -> None:
        now = self.now()
        conn.execute(model.sessions.delete().where(model.sessions.c.user_id.in_(
            sa.select(U.c.id).where(U.c.account_id == account_id))))
        conn.execute(U.update().where(U.c.account_id == account_id, U.c.removed.is_(None)).values(
            removed=now, api_key=None, secret_key=None, state="disabled"))
        conn.execute(A.update().where(A.c.id == account_id).values(removed=now))

    def remove_account(self, account_id: int) -> Deferred[None]:
        return self.pool.do(lambda conn: self.thd_remove_account(conn, account_id))

    def account_ids_in_domain(self, domain_id: int) -> Deferred[list[int]]:
        def thd(conn: Connection) -> list[int]:
            return [r[0] for r in conn.execute(sa.select(A.c.id).where(
                A.c.domain_id == domain_id, A.c.removed.is_(None)).order_by(A.c.id))]

        return self.pool.do(thd)

    def count_accounts_in_subtree(self, path: str) -> Deferred[int]:
        def thd(conn: Connection) -> int:
            q = apply_scope(sa.select(sa.func.count()).select_from(A).where(A.c.removed.is_(None)),
                            Scope(domain_path=path), A.c.id, A.c.domain_id, D)
            return int(conn.execute(q).scalar_one())

        return self.pool.do(thd)

    # --- users ----------------------------------------------------------------------------------

    def thd_create_user(self, conn: Connection, *, account_id: int, domain_id: int, username: str,
                        password_hash: str, firstname: str | None, lastname: str | None, email: str | None,
                        timezone: str | None, uuid: str | None = None, is_default: bool = False) -> int:
        thd_lock_domain(conn, domain_id)
        clash = conn.execute(sa.select(U.c.id).select_from(U.join(A, U.c.account_id == A.c.id)).where(
            U.c.username == username, A.c.domain_id == domain_id, U.c.removed.is_(None))).first()
        if clash is not None:
            raise Conflict(f"The user {username} already exists in domain")
        if uuid is not None and conn.execute(sa.select(U.c.id).where(U.c.uuid == uuid)).first():
            raise Conflict(f"A user with uuid {uuid} already exists")
        return int(insert_id(conn.execute(U.insert().values(
            uuid=uuid or new_uuid(), username=username, password_hash=password_hash, firstname=firstname,
            lastname=lastname, email=email, account_id=account_id, state="enabled", timezone=timezone,
            is_default=int(is_default), created=self.now()))))

    def create_user(self, account: Account, *, username: str, password_hash: str, firstname: str,
                    lastname: str, email: str, timezone: str | None, uuid: str | None) -> Deferred[User]:
        def thd(conn: Connection) -> User:
            uid = self.thd_create_user(conn, account_id=account.id, domain_id=account.domain_id,
                                       username=username, password_hash=password_hash, firstname=firstname,
                                       lastname=lastname, email=email, timezone=timezone, uuid=uuid)
            return _one_user(conn, _user_select().where(U.c.id == uid))

        return self.pool.do(thd)

    def thd_get_user(self, conn: Connection, user_id: int) -> User:
        return _one_user(conn, _user_select().where(U.c.id == user_id))

    def get_user(self, user_id: int) -> Deferred[User]:
        return self.pool.do(lambda conn: self.thd_get_user(conn, user_id))

    def get_user_by_uuid(self, uuid: str) -> Deferred[User]:
        return self.pool.do(lambda conn: _one_user(conn, _user_select().where(U.c.uuid == uuid)))

    def get_user_by_api_key(self, api_key: str) -> Deferred[User]:
        return self.pool.do(lambda conn: _one_user(conn, _user_select().where(U.c.api_key == api_key)))

    def users_of_accounts(self, account_ids: list[int]) -> Deferred[dict[int, list[User]]]:
        def thd(conn: Connection) -> dict[int, list[User]]:
            out: dict[int, list[User]] = {}
            if not account_ids:
                return out
            for u in _users_from(conn.execute(_user_select().where(U.c.account_id.in_(account_ids))
                                              .order_by(U.c.id))):
                out.setdefault(u.account.id, []).append(u)
            return out

        return self.pool.do(thd)

    def credentials_by_api_key(self, api_key: str) -> Deferred[Credentials]:
        """The user of an API key with its secret key opened (to check a signature, or for its owner).

        A sealed key that does not open leaves the secret out (the caller then answers 401) and is
        reported once per lookup, without the value."""

        def thd(conn: Connection) -> tuple[Credentials, str | None]:
            row = conn.execute(_user_select(U.c.secret_key, U.c.password_hash).where(U.c.api_key == api_key)).first()
            if row is None:
                raise NotFound()
            m = row._mapping
            secret, problem = m["secret_key"], None
            if secret is not None:
                try:
                    secret = self.sealer.open(secret, m["uuid"])
                except SealError as exc:
                    secret, problem = None, str(exc)
            return Credentials(_user_from(m), secret, m["password_hash"]), problem

        def report(result: tuple[Credentials, str | None]) -> Credentials:
            creds, problem = result
            if problem is not None:
                self.log.error("the API secret key of user {user} cannot be used: {problem}",
                               user=creds.user.uuid, problem=problem)
            return creds

        return self.pool.do(thd).addCallback(report)

    def credentials_for_login(self, username: str, domain_id: int) -> Deferred[Credentials]:
        """The user and password hash for a login; the secret key stays sealed in the database."""

        def thd(conn: Connection) -> Credentials:
            row = conn.execute(_user_select(U.c.password_hash).where(
                U.c.username == username, A.c.domain_id == domain_id)).first()
            if row is None:
                raise NotFound()
            m = row._mapping
            return Credentials(_user_from(m), None, m["password_hash"])

        return self.pool.do(thd)

    def thd_set_keys(self, conn: Connection, user_id: int, api_key: str, secret_key: str) -> None:
        """Give a user a new key pair (the secret is stored sealed)."""
        uuid = conn.execute(sa.select(U.c.uuid).where(U.c.id == user_id)).scalar_one()
        conn.execute(U.update().where(U.c.id == user_id).values(
            api_key=api_key, secret_key=self.sealer.seal(secret_key, uuid)))

    def thd_check_secrets_key(self, conn: Connection) -> None:
        """Refuse to run with a master key other than the one the stored secret keys were sealed
        with (every signed request would fail with 401); a database without any is accepted."""
        rows = conn.execute(sa.select(U.c.uuid, U.c.secret_key).where(U.c.secret_key.is_not(None))
                            .order_by(U.c.id)).all()
        if not rows:
            return
        kids: dict[str | None, int] = {}
        for _uuid, sealed in rows:
            kid = key_id_of(sealed)
            kids[kid] = kids.get(kid, 0) + 1
        foreign = {kid: n for kid, n in kids.items() if kid != self.sealer.key_id}
        if foreign:
            found = ", ".join(f"{n} under key {kid}" if kid else f"{n} not sealed" for kid, n in sorted(
                foreign.items(), key=lambda item: item[0] or ""))
            problem = f"sealed under another key than this server's ({found})"
        else:
            try:
                self.sealer.open(rows[0][1], rows[0][0])
                return
            except SealError as exc:
                problem = f"that do not open ({exc})"
        raise SecretsKeyError(
            f"the database holds API secret keys {problem}, while this server's key {self.sealer.key_id} comes "
            f"from {self.sealer.source}; start cloudd with the key they were sealed with (--secrets-key-file or "
            "CLOUDD_SECRETS_KEY)")

    def password_hash(self, user_id: int) -> Deferred[str]:
        def thd(conn: Connection) -> str:
            value = conn.execute(sa.select(U.c.password_hash).where(U.c.id == user_id)).scalar()
            if value is None:
                raise NotFound(user_id)
            return str(value)

        return self.pool.do(thd)

    def list_users(self, scope: Scope, *, uuid: str | None = None, username: str | None = None,
                   account_id: int | None = None, account_type: int | None = None, state: str | None = None,
                   keyword: str | None = None, page: Page | None = None) -> Deferred[tuple[int, list[User]]]:
        def thd(conn: Connection) -> tuple[int, list[User]]:
            q = apply_scope(_user_select(), scope, A.c.id, A.c.domain_id, D)
            if uuid is not None:
                q = q.where(U.c.uuid == uuid)
            if username is not None:
                q = q.where(U.c.username == username)
            if account_id is not None:
                q = q.where(U.c.account_id == account_id)
            if account_type is not None:
                q = q.where(A.c.account_type == account_type)
            if state is not None:
                q = q.where(U.c.state == state)
            if keyword:
                q = q.where(sa.or_(contains(U.c.username, keyword), contains(U.c.firstname, keyword),
                                   contains(U.c.lastname, keyword), contains(U.c.email, keyword),
                                   contains(A.c.name, keyword)))
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(apply_page(q.order_by(U.c.id), page or Page())).all()
            return int(total), _users_from(rows)

        return self.pool.do(thd)

    def update_user(self, user: User, values: dict[str, object]) -> Deferred[User]:
        """Update plain columns (username, names, email, timezone, password_hash, api/secret keys);
        a secret key is given in clear and stored sealed."""
        if values.get("secret_key") is not None:
            values = dict(values, secret_key=self.sealer.seal(str(values["secret_key"]), user.uuid))

        def thd(conn: Connection) -> User:
            new_name = values.get("username")
            if new_name is not None and new_name != user.username:
                thd_lock_domain(conn, user.account.domain_id)
                clash = conn.execute(sa.select(U.c.id).select_from(U.join(A, U.c.account_id == A.c.id)).where(
                    U.c.username == new_name, A.c.domain_id == user.account.domain_id,
                    U.c.removed.is_(None), U.c.id != user.id)).first()
                if clash is not None:
                    raise Conflict(f"The user {new_name} already exists in domain")
            if "api_key" in values and values["api_key"] is not None:
                if conn.execute(sa.select(U.c.id).where(U.c.api_key == values["api_key"],
                                                        U.c.id != user.id)).first():
                    raise Conflict("The api key is already in use")
            if values:
                conn.execute(U.update().where(U.c.id == user.id).values(**values))
            if "password_hash" in values:
                conn.execute(model.sessions.delete().where(model.sessions.c.user_id == user.id))
            return self.thd_get_user(conn, user.id)

        return self.pool.do(thd)

    def set_user_state(self, user_id: int, state: str) -> Deferred[User]:
        def thd(conn: Connection) -> User:
            conn.execute(U.update().where(U.c.id == user_id).values(state=state))
            if state != "enabled":
                conn.execute(model.sessions.delete().where(model.sessions.c.user_id == user_id))
            return self.thd_get_user(conn, user_id)

        return self.pool.do(thd)

    def remove_user(self, user: User) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            others = conn.execute(sa.select(sa.func.count()).select_from(U).where(
                U.c.account_id == user.account.id, U.c.removed.is_(None), U.c.id != user.id)).scalar_one()
            if not others:
                raise Conflict("Cannot delete the last user of an account; delete the account instead")
            conn.execute(model.sessions.delete().where(model.sessions.c.user_id == user.id))
            conn.execute(U.update().where(U.c.id == user.id).values(
                removed=self.now(), api_key=None, secret_key=None, state="disabled"))

        return self.pool.do(thd)

    def thd_insert_users_bulk(self, conn: Connection, account_id: int,
                              rows: list[dict[str, object]]) -> None:
        """Insert many users at once (benches and fixtures); `rows` hold username/password_hash/…
        (a secret_key given in clear is stored sealed)."""
        now = self.now()
        values = []
        for r in rows:
            row = {"uuid": new_uuid(), "account_id": account_id, "state": "enabled", "created": now,
                   "is_default": 0, **r}
            if row.get("secret_key") is not None:
                row["secret_key"] = self.sealer.seal(str(row["secret_key"]), str(row["uuid"]))
            values.append(row)
        conn.execute(U.insert(), values)
