"""Recording events (listEvents) for work done by API callers, jobs and background tasks alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudd.db.events import NewEvent

if TYPE_CHECKING:
    from cloudd.db.connector import DBConnector
    from cloudd.orchestration.context import Actor, EventInfo


class Events:
    def __init__(self, db: DBConnector) -> None:
        self.db = db

    async def record(self, actor: Actor, type: str, state: str, info: EventInfo, level: str = "INFO",
                     start_id: int | None = None) -> int:
        """Store one event; its id (the start id of the events that complete it)."""
        account_id, domain_id = info.owner or (actor.account_id, actor.domain_id)
        return await self.db.events.record(NewEvent(
            type=type, state=state, level=level, description=info.description, user_id=actor.user_id,
            account_id=account_id, domain_id=domain_id, resource_type=info.resource_type,
            resource_uuid=info.resource_uuid, resource_name=info.resource_name, start_id=start_id))
