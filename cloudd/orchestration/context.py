"""What the work behind commands runs with: who it is done for, the services it may use, and the
context of a job body.

`Services` is built once, in `cloudd/service.py`, from services constructed bottom-up; the API
layer, the job runner and background tasks all receive the same instance. A job body receives a
`JobContext`, never an API caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from cloudd.db.connector import DBConnector
    from cloudd.orchestration.alerts import Alerts
    from cloudd.orchestration.events import Events
    from cloudd.settings import Settings


@dataclass(frozen=True)
class Actor:
    """On whose behalf work runs: the user, account and domain that events and ownership name. An API
    caller's, a job's (stored with it), or the system account's for background work."""

    user_id: int
    account_id: int
    domain_id: int


@dataclass(frozen=True)
class EventInfo:
    """What an event says about the resource it concerns."""

    description: str
    resource_type: str | None = None
    resource_uuid: str | None = None
    resource_name: str | None = None
    # the account the resource belongs to, when not the actor's (account id, domain id)
    owner: tuple[int, int] | None = None


@dataclass
class Services:
    """Every service the work may use, wired once in `cloudd/service.py`. Fields a deployment does not
    have (no hypervisor hosts yet, no appliances in a unit test) are None."""

    db: DBConnector
    clock: IReactorTime
    settings: Settings
    events: Events
    alerts: Alerts
    hypervisors: Any = None   # cloudd.hypervisor.Hypervisors
    hosts: Any = None         # cloudd.orchestration.hosts.HostManager
    storage: Any = None       # cloudd.orchestration.storage.StorageManager
    capacity: Any = None      # cloudd.orchestration.capacity.CapacityManager
    agents: Any = None        # cloudd.agents.service.AgentsService
    systemvms: Any = None     # cloudd.orchestration.systemvms.SystemVmManager
    templates: Any = None     # cloudd.orchestration.templates.TemplateManager
    # a callable running blocking or CPU-bound work off the reactor: blocking(fn, *args) -> Deferred
    blocking: Any = None
    # called after any change to users, keys, accounts or roles (authentication and permission caches)
    identity_listeners: list[Callable[[], None]] = field(default_factory=list)
    _system: Actor | None = field(default=None, init=False, repr=False)

    def identity_changed(self) -> None:
        for listener in list(self.identity_listeners):
            listener()

    async def system_actor(self) -> Actor:
        """The actor of background work: the built-in system account's default user."""
        if self._system is None:
            from cloudd.db.base import Scope

            _, users = await self.db.accounts.list_users(Scope(), username="system")
            user = next(u for u in users if u.is_default and u.account.name == "system")
            self._system = Actor(user.id, user.account.id, user.account.domain_id)
        return self._system


@dataclass
class JobContext:
    """What a job body runs with: the services, on whose behalf, its parameters (secrets included, in
    memory only) and the event it completes with."""

    services: Services
    actor: Actor
    job_uuid: str
    params: dict[str, Any] = field(default_factory=dict)
    # the body may set the description of its Completed event
    event: EventInfo | None = None

    @property
    def db(self) -> DBConnector:
        return self.services.db

    @property
    def clock(self) -> IReactorTime:
        return self.services.clock

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def identity_changed(self) -> None:
        self.services.identity_changed()

    def announce(self, info: Any) -> None:
        """The text of the Completed event (an EventInfo, or anything with `plain()` giving one)."""
        self.event = info if isinstance(info, EventInfo) else info.plain()


def make_services(db: DBConnector, clock: IReactorTime, settings: Settings, **more: Any) -> Services:
    """Services with events and alerts over `db`; `more` gives the optional ones."""
    from cloudd.orchestration.alerts import Alerts
    from cloudd.orchestration.events import Events

    return Services(db=db, clock=clock, settings=settings, events=Events(db), alerts=Alerts(db, clock), **more)
