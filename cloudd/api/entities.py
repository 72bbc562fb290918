"""Entity-typed parameters: `P("zoneid", ZONE)` makes the binder resolve the UUID to the stored
object, check that the caller may see it, and answer CloudStack's 431 text otherwise, so handlers
receive objects, never ids to look up.

An `Entity` says how to load one object by UUID (raising `NotFound` when there is none) and who may
see it. Each resource family declares its entity next to its commands; others import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudd.db.base import NotFound

if TYPE_CHECKING:
    from cloudd.api.context import Caller
    from cloudd.orchestration.context import Services


def everyone(caller: Caller, obj: Any) -> bool:
    return True


def owner_visible(caller: Caller, obj: Any) -> bool:
    """Objects owned by an account (`account_id`, `domain_path`): the owner, admins of its domain or
    above, and the root admin see them."""
    if caller.is_root_admin:
        return True
    if caller.is_admin:
        return bool(str(getattr(obj, "domain_path", "")).startswith(caller.domain_path))
    return getattr(obj, "account_id", None) == caller.account.id


@dataclass(frozen=True)
class Entity:
    """A kind of stored object a parameter may name by UUID."""

    name: str
    load: Callable[[Services, str], Awaitable[Any]]
    visible: Callable[[Caller, Any], bool] = everyone
    # answers for a UUID that exists but may not be seen are the same as for one that does not exist

    async def resolve(self, services: Services, caller: Caller, uuid: str) -> Any | None:
        """The object, or None when it does not exist or the caller may not see it."""
        try:
            obj = await self.load(services, uuid)
        except NotFound:
            return None
        if obj is None or not self.visible(caller, obj):
            return None
        return obj
