"""Shared pieces of the per-table components: the base class, list scoping and paging, and the
reads and checks every component repeats (a live row or NotFound, "that name is taken", "still in
use" counts, count-and-page of a search, marking a row removed)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from cloudd.db import model

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

    from cloudd.db.pool import DBThreadPool


_T = TypeVar("_T")


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


def thd_one(conn: Any, query: Any, key: object) -> Any:
    """The first row `query` finds; NotFound(key) when it finds none."""
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(key)
    return row


def thd_live_row(conn: Any, query: Any, column: Any, key: object) -> Any:
    """The row of `query` whose `column` (of a table with a `removed` column) is `key` and that is
    not removed; NotFound(key) otherwise."""
    return thd_one(conn, query.where(column == key, column.table.c.removed.is_(None)), key)


def thd_exists(conn: Any, table: sa.Table, *where: Any, except_id: int | None = None) -> bool:
    """Whether a row of `table` that is not removed matches `where`, leaving out row `except_id`:
    the check behind "a ... with that name already exists" on create (no `except_id`) and update."""
    query = sa.select(table.c.id).where(*where, table.c.removed.is_(None))
    if except_id is not None:
        query = query.where(table.c.id != except_id)
    return conn.execute(query).first() is not None


def thd_update_live(conn: Any, table: sa.Table, row_id: int, **values: Any) -> bool:
    """Set `values` in row `row_id` of `table` if it is not removed; whether it is there to change."""
    result = conn.execute(table.update().where(table.c.id == row_id, table.c.removed.is_(None)).values(**values))
    return bool(result.rowcount == 1)


def thd_count_live(conn: Any, table: sa.Table, *where: Any) -> int:
    """How many rows of `table` that are not removed match `where` (what a removal refuses on)."""
    query = sa.select(sa.func.count()).select_from(table).where(*where, table.c.removed.is_(None))
    return int(conn.execute(query).scalar_one())


def thd_count_and_page(conn: Any, query: Any, order: Iterable[Any], page: Page) -> tuple[int, list[Any]]:
    """How many rows `query` finds in all, and the rows of `page` of them in `order` (a search's
    total and page; no second query when there is nothing)."""
    if page.limit is None and not page.offset:
        # everything asked for: the rows are the count, one query instead of two
        rows = list(conn.execute(query.order_by(*order)).all())
        return len(rows), rows
    total = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
    rows = list(conn.execute(apply_page(query.order_by(*order), page)).all()) if total else []
    return total, rows


def thd_tags_of(conn: Any, owner: Any, owner_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The tags of each of `owner_ids`, in the order they were stored, from the tag table whose
    column `owner` names the row they tag (a host's, a storage pool's)."""
    table = owner.table
    ids = list(owner_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for owner_id, tag in conn.execute(sa.select(owner, table.c.tag).where(owner.in_(ids))
                                          .order_by(table.c.id)).all():
            out[owner_id].append(tag)
    return {k: tuple(v) for k, v in out.items()}


class DBComponent:
    """A component owns one table family; every method returns a Deferred of frozen data."""

    def __init__(self, pool: DBThreadPool, clock: IReactorTime) -> None:
        self.pool = pool
        self.clock = clock

    def now(self) -> int:
        return int(self.clock.seconds())

    def get_live(self, query: Any, column: Any, key: object, make: Callable[[Any], _T]) -> Deferred[_T]:
        """`make` of the live row of `query` whose `column` is `key` (NotFound otherwise)."""
        return self.pool.do(lambda conn: make(thd_live_row(conn, query, column, key)))

    def thd_mark_removed(self, conn: Any, table: sa.Table, row_id: int, **values: Any) -> bool:
        """Mark row `row_id` removed now (and set `values`) if it is not removed yet; whether it was."""
        return thd_update_live(conn, table, row_id, removed=self.now(), **values)

    def thd_remove_unused(self, conn: Any, table: sa.Table, row_id: int, users: Iterable[Any],
                          refusal: Exception) -> None:
        """Mark row `row_id` removed unless a live row refers to it through one of the `users`
        columns (of other tables); `refusal` is raised then, and nothing changes."""
        if any(thd_count_live(conn, column.table, column == row_id) for column in users):
            raise refusal
        self.thd_mark_removed(conn, table, row_id)

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
