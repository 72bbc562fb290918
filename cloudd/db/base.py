"""Shared pieces of the per-table components: the base class, list scoping and paging."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cloudd.db import model

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

    from cloudd.db.pool import DBThreadPool


def new_uuid() -> str:
    return str(uuidlib.uuid4())


class NotFound(LookupError):
    """A row that a component was asked for does not exist (or was removed)."""


class Conflict(ValueError):
    """A write would break a uniqueness rule or a state precondition."""


@dataclass(frozen=True)
class Scope:
    """The owners a list may show.

    Every field that is set narrows the result: `account_ids` to those accounts, `domain_id` to
    exactly one domain, `domain_path` to a domain and everything below it. An empty Scope (root
    admin with listall) shows everything.
    """

    account_ids: tuple[int, ...] | None = None
    domain_id: int | None = None
    domain_path: str | None = None


@dataclass(frozen=True)
class Page:
    offset: int = 0
    limit: int | None = None


def insert_id(result: Any) -> int:
    """The primary key of the row an INSERT created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def thd_lock_domain(conn: Any, domain_id: int | None) -> None:
    """Hold the domain's row until the transaction ends, so that concurrent checks for a free name
    in that domain (accounts, users, sub-domains) run one after another on MariaDB/MySQL. SQLite
    serialises writers by itself and renders no FOR UPDATE."""
    if domain_id is not None:
        conn.execute(sa.select(model.domains.c.id).where(model.domains.c.id == domain_id).with_for_update())


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, text: str) -> Any:
    return column.like("%" + escape_like(text) + "%", escape="\\")


def apply_scope(query: Any, scope: Scope, account_col: Any, domain_col: Any, domains: sa.Table) -> Any:
    if scope.account_ids is not None:
        query = query.where(account_col.in_(scope.account_ids))
    if scope.domain_id is not None:
        query = query.where(domain_col == scope.domain_id)
    if scope.domain_path is not None:
        # Live domains only: a deleted domain keeps its path, which a new domain of the same name
        # gets again; its rows must not become the new tenant's.
        sub = sa.select(domains.c.id).where(
            domains.c.path.like(escape_like(scope.domain_path) + "%", escape="\\"),
            domains.c.removed.is_(None),
        )
        query = query.where(domain_col.in_(sub))
    return query


def apply_page(query: Any, page: Page) -> Any:
    if page.offset:
        query = query.offset(page.offset)
    if page.limit is not None:
        query = query.limit(page.limit)
    return query


class DBComponent:
    """A component owns one table family; every method returns a Deferred of frozen data."""

    def __init__(self, pool: DBThreadPool, clock: IReactorTime) -> None:
        self.pool = pool
        self.clock = clock

    def now(self) -> int:
        return int(self.clock.seconds())

    @staticmethod
    def thd_cas_state(conn: Any, table: sa.Table, row_id: int, expected: Iterable[str], new: str,
                      **values: Any) -> bool:
        """Set `state` (and `values`) of row `row_id` only if its state is one of `expected`: a
        compare-and-set, so of two racing writers exactly one changes the row."""
        result = conn.execute(table.update().where(table.c.id == row_id, table.c.state.in_(list(expected)))
                              .values(state=new, **values))
        return bool(result.rowcount == 1)

    def cas_state(self, table: sa.Table, row_id: int, expected: Iterable[str], new: str,
                  **values: Any) -> Deferred[bool]:
        wanted = list(expected)
        return self.pool.do(
            lambda conn: self.thd_cas_state(conn, table, row_id, wanted, new, **values))
