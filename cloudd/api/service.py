"""The command layer's entry point: permission, throttling, binding, execution, events, jobs.

The web layer authenticates a request and hands over the caller, the command name and the raw
parameters; this layer never sees HTTP. Every answer is a response name, a body and a status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from cloudd.api import access
from cloudd.api.binding import TRANSPORT, bind
from cloudd.api.context import CallContext, Caller
from cloudd.api.errors import ApiError, internal, invalid_value
from cloudd.api.ratelimit import FixedWindowLimiter
from cloudd.api.registry import Command, Registry
from cloudd.api.results import Prepared, body_of
from cloudd.db.base import Conflict, NotFound
from cloudd.db.events import NewEvent
from cloudd.settings import Settings

if TYPE_CHECKING:
    from cloudd.db.accounts import Account
    from cloudd.db.connector import DBConnector
    from cloudd.jobs.runner import JobRunner

MASKED = "Internal error executing command, please contact your system administrator"


@dataclass(frozen=True)
class EventInfo:
    description: str
    resource_type: str | None = None
    resource_uuid: str | None = None
    resource_name: str | None = None
    owner: Account | None = None


@dataclass(frozen=True)
class Answer:
    response_name: str
    body: dict[str, Any]
    status: int = 200
    retry_after: float | None = None


class ApiService:
    log = Logger()

    def __init__(self, db: DBConnector, registry: Registry, settings: Settings, clock: IReactorTime,
                 management_server_uuid: str = "", rules_ttl: float = 5.0) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.jobs: JobRunner | None = None
        self.management_server_uuid = management_server_uuid
        self.rules_ttl = rules_ttl
        self._rules: dict[int, list[tuple[str, str]]] = {}
        self._rules_loaded = -1e18
        self.account_limiter = FixedWindowLimiter(clock)
        self.address_limiter = FixedWindowLimiter(clock)
        # called after any change to users, keys, accounts or roles (authentication caches)
        self.identity_listeners: list[Any] = []
        # runs CPU-bound or blocking work (password hashing) off the reactor thread
        self.blocking: Callable[..., Deferred[Any]] = deferToThread

    # --- permissions ----------------------------------------------------------------------------

    async def rules_for(self, role_id: int) -> list[tuple[str, str]]:
        if self.clock.seconds() - self._rules_loaded > self.rules_ttl:
            self._rules = await self.db.roles.all_rules()
            self._rules_loaded = self.clock.seconds()
        return self._rules.get(role_id, [])

    def identity_changed(self) -> None:
        """Forget cached roles and credentials after a change made through this process."""
        self._rules_loaded = -1e18
        for listener in self.identity_listeners:
            listener()

    async def allows(self, caller: Caller, cmd: Command) -> bool:
        return access.role_allows(caller.role_type, caller.is_root_admin, await self.rules_for(caller.account.role_id),
                                  cmd)

    async def permitted_commands(self, account: Account) -> set[str]:
        is_root = account.role_type == "Admin" and account.role_is_default
        return access.permitted(account.role_type, is_root, await self.rules_for(account.role_id), self.registry)

    async def permissions_cover(self, mine: Account, theirs: Account) -> bool:
        return (await self.permitted_commands(theirs)) <= (await self.permitted_commands(mine))

    # --- events ---------------------------------------------------------------------------------

    async def record_event(self, caller: Caller, type: str, state: str, info: EventInfo, level: str = "INFO",
                           start_id: int | None = None) -> int:
        owner = info.owner or caller.account
        return await self.db.events.record(NewEvent(
            type=type, state=state, level=level, description=info.description, user_id=caller.user.id,
            account_id=owner.id, domain_id=owner.domain_id, resource_type=info.resource_type,
            resource_uuid=info.resource_uuid, resource_name=info.resource_name, start_id=start_id))

    # --- throttling -----------------------------------------------------------------------------

    def throttle_account(self, caller: Caller) -> None:
        if not self.settings.bool("api.throttling.enabled") or caller.is_root_admin:
            return
        self.account_limiter.hit(str(caller.account.id), self.settings.int("api.throttling.max"),
                                 self.settings.int("api.throttling.interval"),
                                 self.settings.int("api.throttling.cachesize"))

    def throttle_address(self, address: str) -> None:
        if not self.settings.bool("api.throttling.enabled"):
            return
        self.address_limiter.hit(address, self.settings.int("api.throttling.address.max"),
                                 self.settings.int("api.throttling.interval"),
                                 self.settings.int("api.throttling.cachesize"))

    # --- dispatch -------------------------------------------------------------------------------

    def error_answer(self, cmd_name: str | None, err: ApiError) -> Answer:
        cmd = self.registry.get(cmd_name) if cmd_name else None
        name = cmd.response_name if cmd is not None and err.code != 432 else "errorresponse"
        return Answer(name, err.body(), err.code, err.retry_after)

    async def dispatch(self, caller: Caller, name: str, raw: dict[str, str], http_method: str = "GET",
                       client_address: str = "") -> Answer:
        """Run command `name` for an authenticated caller; every failure becomes an error answer."""
        cmd = self.registry.get(name)
        try:
            if cmd is None or cmd.authenticator or not await self.allows(caller, cmd):
                raise access.not_available(name, caller)
            self.throttle_account(caller)
            if (self.settings.bool("enforce.post.requests.and.timestamps") and cmd.state_changing
                    and http_method != "POST"):
                raise ApiError(405, f"Please use HTTP POST for {cmd.name}", 9999)
            params = bind(cmd, {k: v for k, v in raw.items() if k.lower() not in TRANSPORT})
            ctx = CallContext(self, caller, cmd, params, http_method, client_address)
            return await self.execute(ctx)
        except ApiError as err:
            return self.error_answer(name, err)

    async def execute(self, ctx: CallContext) -> Answer:
        cmd = ctx.command
        try:
            if cmd.is_async:
                prepared: Prepared = await cmd.handler(ctx)
                assert self.jobs is not None
                job_uuid = await self.jobs.submit(ctx, prepared)
                body: dict[str, Any] = {"jobid": job_uuid}
                if cmd.creates and prepared.created_id is not None:
                    body = {"id": prepared.created_id, "jobid": job_uuid}
                return Answer(cmd.response_name, body)
            result = await cmd.handler(ctx)
            if cmd.event is not None and isinstance(ctx.extras.get("event"), EventInfo):
                await self.record_event(ctx.caller, cmd.event, "Completed", ctx.extras["event"])
            return Answer(cmd.response_name, body_of(result))
        except ApiError as err:
            return self.error_answer(cmd.name, err)
        except Exception as exc:
            return self.error_answer(cmd.name, self.translate(exc, ctx.caller))

    def translate(self, exc: BaseException, caller: Caller | None) -> ApiError:
        """Map a domain exception to an API error; unexpected ones are logged and masked."""
        if isinstance(exc, ApiError):
            return exc
        if isinstance(exc, Conflict):
            return invalid_value(str(exc))
        if isinstance(exc, NotFound):
            return invalid_value("Unable to find the requested entity")
        self.log.failure("unexpected error while executing a command", failure=None)
        if caller is not None and caller.is_root_admin:
            return internal(f"Internal error executing command: {type(exc).__name__}")
        return internal(MASKED)

    def cmd_info(self, cmd: Command, params: dict[str, Any]) -> str:
        """The parameters of a job as stored: every secret parameter removed."""
        safe = {k: v for k, v in params.items() if k not in cmd.param_index or not cmd.param_index[k].secret}
        return json.dumps(safe, default=str, sort_keys=True)
