"""`page`/`pagesize` handling common to every list command (spec/api.md §4.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudd.api.errors import invalid_value
from cloudd.db.base import Page

if TYPE_CHECKING:
    from cloudd.api.context import CallContext


def page_of(ctx: CallContext) -> Page:
    page = ctx.get("page")
    size = ctx.get("pagesize")
    default = ctx.api.settings.int("default.page.size")
    if size is not None and page is None:
        if size == -1:
            return Page(0, None)
        raise invalid_value('"page" parameter is required when "pagesize" is specified')
    if page is not None and size is None:
        raise invalid_value('"pagesize" parameter is required when "page" is specified')
    if size is None:
        return Page(0, None if default < 0 else default)
    if size == -1:
        raise invalid_value("Can't specify page parameter when pagesize is -1 (Unlimited)")
    if size <= 0:
        raise invalid_value(f"Page size must be a positive number, or -1 for unlimited; got {size}")
    if default >= 0 and size > default:
        raise invalid_value(f"Page size can't exceed max allowed page size value: {default}")
    return Page(size * (max(page, 1) - 1), size)
