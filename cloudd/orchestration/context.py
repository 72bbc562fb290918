"""What the work behind commands runs with: who it is done for, the services it may use, and the
context of a job body.

`Services` is built once, in `cloudd/service.py`, from services constructed bottom-up; the API
layer, the job runner and background tasks all receive the same instance. A job body receives a
`JobContext`, never an API caller.
"""

from __future__ import annotations

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

    user_id: int | None
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
    # the actor of background work: the built-in system account
    system: Actor
    hypervisors: Any = None   # cloudd.hypervisor.Hypervisors
    hosts: Any = None         # cloudd.orchestration.hosts.HostManager
    storage: Any = None       # cloudd.orchestration.storage.StorageManager
    capacity: Any = None      # cloudd.orchestration.capacity.CapacityManager
    agents: Any = None        # cloudd.agents.service.AgentsService
    systemvms: Any = None     # cloudd.orchestration.systemvms.SystemVmManager
    templates: Any = None     # cloudd.orchestration.templates.TemplateManager
    # a callable running blocking or CPU-bound work off the reactor: blocking(fn, *args) -> Deferred
    blocking: Any = None


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
