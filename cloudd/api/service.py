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
from cloudd.api.binding import TRANSPORT, bad_entity, bind
from cloudd.api.context import CallContext, Caller
from cloudd.api.errors import ApiError
from cloudd.api.objects import check_declared
from cloudd.api.ratelimit import FixedWindowLimiter
from cloudd.api.registry import Command, Registry
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, body_of, job_result_of
from cloudd.db.base import Conflict, NotFound
from cloudd.errors import MASKED, to_cloud_error  # noqa: F401 (MASKED re-exported)
from cloudd.jobs.runner import JobSpec
from cloudd.orchestration import context as orch
from cloudd.settings import Settings

if TYPE_CHECKING:
    from cloudd.db.accounts import Account
    from cloudd.db.connector import DBConnector
    from cloudd.jobs.runner import JobRunner
    from cloudd.orchestration.context import Services


@dataclass(frozen=True)
class EventInfo:
    """An event's text and resource, as API handlers give it (the owner as an account)."""

    description: str
    resource_type: str | None = None
    resource_uuid: str | None = None
    resource_name: str | None = None
    owner: Account | None = None

    def plain(self) -> orch.EventInfo:
        owner = (self.owner.id, self.owner.domain_id) if self.owner is not None else None
        return orch.EventInfo(self.description, self.resource_type, self.resource_uuid, self.resource_name, owner)


def actor_of(caller: Caller) -> orch.Actor:
    """The actor of work done for an API caller."""
    return orch.Actor(caller.user.id, caller.account.id, caller.account.domain_id)


@dataclass(frozen=True)
class Answer:
    response_name: str
    body: dict[str, Any]
    status: int = 200
    retry_after: float | None = None


class ApiService:
    log = Logger()

    def __init__(self, services: Services, registry: Registry, management_server_uuid: str = "", *,
                 jobs: JobRunner | None = None, blocking: Callable[..., Deferred[Any]] = deferToThread,
                 rules_ttl: float = 5.0, check_fields: bool = False) -> None:
        self.services = services
        self.db: DBConnector = services.db
        self.registry = registry
        self.settings: Settings = services.settings
        self.clock: IReactorTime = services.clock
        self.jobs = jobs
        # every rendered key must be declared by the command's response object (on in tests)
        self.check_fields = check_fields
        self.management_server_uuid = management_server_uuid
        self.rules_ttl = rules_ttl
        self._rules: dict[int, list[tuple[str, str]]] = {}
        self._rules_loaded = -1e18
        self.account_limiter = FixedWindowLimiter(self.clock)
        self.address_limiter = FixedWindowLimiter(self.clock)
        # called after any change to users, keys, accounts or roles (authentication caches)
        self.identity_listeners = services.identity_listeners
        self.identity_listeners.append(self._forget_rules)
        # runs CPU-bound or blocking work (password hashing) off the reactor thread
        self.blocking = blocking

    # --- permissions ----------------------------------------------------------------------------

    async def rules_for(self, role_id: int) -> list[tuple[str, str]]:
        if self.clock.seconds() - self._rules_loaded > self.rules_ttl:
            self._rules = await self.db.roles.all_rules()
            self._rules_loaded = self.clock.seconds()
        return self._rules.get(role_id, [])

    def identity_changed(self) -> None:
        """Forget cached roles and credentials after a change made through this process."""
        self.services.identity_changed()

    def _forget_rules(self) -> None:
        self._rules_loaded = -1e18

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
        return await self.services.events.record(actor_of(caller), type, state, info.plain(), level, start_id)

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
            await self.resolve_entities(cmd, caller, params)
            ctx = CallContext(self, caller, cmd, params, http_method, client_address)
            return await self.execute(ctx)
        except ApiError as err:
            return self.error_answer(name, err)

    async def resolve_entities(self, cmd: Command, caller: Caller, params: dict[str, Any]) -> None:
        """Replace each entity parameter's UUID(s) by the object, or answer 431 as CloudStack does when
        the entity does not exist or the caller may not see it."""
        for p in cmd.params:
            if p.entity is None or p.name not in params:
                continue
            value = params[p.name]
            uuids = value if isinstance(value, list) else [value]
            found = []
            for uuid in uuids:
                if p.accept_all and uuid == "-1":
                    found.append(uuid)
                    continue
                obj = await p.entity.resolve(self.services, caller, uuid)
                if obj is None:
                    raise bad_entity(cmd, uuid, p)
                found.append(obj)
            params[p.name] = found if isinstance(value, list) else found[0]

    def _check_fields(self, cmd: Command, result: Result) -> None:
        if not self.check_fields or cmd.response is None:
            return
        if isinstance(result, ObjectResult):
            check_declared(cmd.response, result.fields)
        elif isinstance(result, ListResult):
            for item in result.items:
                check_declared(cmd.response, item)

    def job_spec(self, ctx: CallContext, prepared: Prepared) -> JobSpec:
        """The job of an async command: its body runs the command's `run` with a job context."""
        cmd = ctx.command
        run = cmd.run
        assert run is not None

        async def body(jc: orch.JobContext) -> dict[str, Any]:
            result = await run(jc, prepared)
            self._check_fields(cmd, result)
            return job_result_of(result)

        owner = prepared.state.get("event_owner")
        return JobSpec(
            command=cmd.name, cmd_class=cmd.java_class, cmd_info=self.cmd_info(cmd, ctx.params),
            actor=actor_of(ctx.caller), body=body, params=ctx.params, event=cmd.event,
            instance_type=prepared.instance_type, instance_uuid=prepared.instance_uuid,
            sync_object=prepared.sync_object, resource_name=prepared.state.get("resource_name"),
            owner=(owner.id, owner.domain_id) if owner is not None else None)

    async def execute(self, ctx: CallContext) -> Answer:
        cmd = ctx.command
        try:
            if cmd.is_async:
                prepared: Prepared = await cmd.handler(ctx)
                assert self.jobs is not None
                job_uuid = await self.jobs.submit(self.job_spec(ctx, prepared))
                ctx.job_uuid = job_uuid
                body: dict[str, Any] = {"jobid": job_uuid}
                if cmd.creates and prepared.created_id is not None:
                    body = {"id": prepared.created_id, "jobid": job_uuid}
                return Answer(cmd.response_name, body)
            result = await cmd.handler(ctx)
            self._check_fields(cmd, result)
            if cmd.event is not None and isinstance(ctx.extras.get("event"), EventInfo):
                await self.record_event(ctx.caller, cmd.event, "Completed", ctx.extras["event"])
            return Answer(cmd.response_name, body_of(result))
        except ApiError as err:
            return self.error_answer(cmd.name, err)
        except Exception as exc:
            return self.error_answer(cmd.name, self.translate(exc, ctx.caller))

    def translate(self, exc: BaseException, caller: Caller | None) -> ApiError:
        """Map a domain exception to an API error; unexpected ones are logged and masked."""
        err = to_cloud_error(exc, reveal=caller is not None and caller.is_root_admin)
        if not isinstance(exc, ApiError | Conflict | NotFound):
            self.log.failure("unexpected error while executing a command", failure=None)
        return err

    def cmd_info(self, cmd: Command, params: dict[str, Any]) -> str:
        """The parameters of a job as stored: every secret parameter removed."""
        safe = {k: v for k, v in params.items() if k not in cmd.param_index or not cmd.param_index[k].secret}
        return json.dumps(safe, default=str, sort_keys=True)
