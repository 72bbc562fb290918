"""Command declarations: each API command is declared once, and the declaration feeds dispatch,
parameter binding, permissions, events, async handling and `listApis`.

Modules under `cloudd.api` declare commands with the `command` decorator; `Registry.scan` collects
every `Command` found at module level.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from cloudd.api.entities import Entity

if TYPE_CHECKING:
    from cloudd.api.context import CallContext
    from cloudd.api.objects import ResponseObject
    from cloudd.api.results import Prepared, Result
    from cloudd.orchestration.context import JobContext

ADMIN, RESOURCE_ADMIN, DOMAIN_ADMIN, USER = "Admin", "ResourceAdmin", "DomainAdmin", "User"
ROLE_TYPES = (ADMIN, RESOURCE_ADMIN, DOMAIN_ADMIN, USER)
# legacy commands.properties masks
ALL = frozenset(ROLE_TYPES)            # 15
ADMINS = frozenset({ADMIN, RESOURCE_ADMIN, DOMAIN_ADMIN})  # 7
ROOT = frozenset({ADMIN})              # 1
INFRA = frozenset({ADMIN, RESOURCE_ADMIN})  # 3


@dataclass(frozen=True)
class Param:
    """A declared parameter. `type` may be an `Entity` (`Param("zoneid", ZONE)`): the value is then a
    UUID the binder resolves to the object (a "list" of them with `element=ENTITY`)."""

    name: str
    type: Any = "string"
    description: str = ""
    required: bool = False
    length: int = 255
    since: str | None = None
    related: str | None = None
    element: Any = "string"
    secret: bool = False
    field: str | None = None
    with_time: bool = False  # dates that also accept "yyyy-MM-dd HH:mm:ss"
    entity: Entity | None = None
    # an entity parameter that also accepts "-1" (all zones, for example) and passes it through
    accept_all: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.type, Entity):
            object.__setattr__(self, "entity", self.type)
            object.__setattr__(self, "type", "uuid")
        if isinstance(self.element, Entity):
            object.__setattr__(self, "entity", self.element)
            object.__setattr__(self, "element", "uuid")

    @property
    def java_field(self) -> str:
        return self.field or self.name


@dataclass(frozen=True)
class Field:
    name: str
    description: str = ""
    type: str = "string"
    children: tuple[Field, ...] = ()


@dataclass(frozen=True)
class ResponseDoc:
    object_name: str
    fields: tuple[Field, ...]


Handler = Callable[["CallContext"], Awaitable["Result"]]
PrepareHandler = Callable[["CallContext"], Awaitable["Prepared"]]
# the body of an async command's job: runs with a job context, never an API caller
JobHandler = Callable[["JobContext", "Prepared"], Awaitable["Result"]]


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    params: tuple[Param, ...]
    roles: frozenset[str]
    handler: Callable[[CallContext], Awaitable[Any]]
    response: ResponseDoc | None = None
    event: str | None = None
    is_async: bool = False
    creates: bool = False
    run: JobHandler | None = None
    # the declaration that renders the response (new commands); `response` documents it
    response_object: ResponseObject | None = None
    since: str | None = None
    response_name_override: str | None = None
    java_class: str = ""
    post_only: bool = False
    authenticator: bool = False
    state_changing: bool = True
    param_index: dict[str, Param] = field(default_factory=dict, compare=False, repr=False)

    @property
    def response_name(self) -> str:
        return self.response_name_override or self.name.lower() + "response"

    @property
    def short_name(self) -> str:
        return self.name.lower()


LIST_PARAMS = (
    Param("keyword", description="List by keyword"),
    Param("page", "integer", "the page to return"),
    Param("pagesize", "integer", "the number of entries per page"),
)
OWNER_LIST_PARAMS = (
    Param("account", description="list resources by account. Must be used with the domainId parameter."),
    Param("domainid", "uuid", "list only resources belonging to the domain specified", related="listDomains"),
    Param("isrecursive", "boolean", "defaults to false, but if true, lists all resources from the parent "
          "specified by the domainId till leaves."),
    Param("listall", "boolean", "If set to false, list only resources belonging to the command's caller; "
          "if set to true - list resources that the caller is authorized to see. Default value is false"),
    Param("projectid", "uuid", "list objects by project; if projectid=-1 lists All VMs", related="listProjects"),
)


def command(
    name: str,
    *,
    description: str,
    params: Iterable[Param] = (),
    roles: frozenset[str] = ALL,
    response: ResponseDoc | ResponseObject | None = None,
    event: str | None = None,
    is_async: bool = False,
    creates: bool = False,
    run: JobHandler | None = None,
    listing: bool = False,
    owned: bool = False,
    since: str | None = None,
    response_name: str | None = None,
    java_class: str = "",
    post_only: bool = False,
    authenticator: bool = False,
    state_changing: bool | None = None,
) -> Callable[[Callable[[CallContext], Awaitable[Any]]], Command]:
    """Declare an API command; the decorated coroutine is its synchronous part."""
    all_params = tuple(params)
    if owned:
        all_params += OWNER_LIST_PARAMS
    if listing:
        all_params += LIST_PARAMS

    response_object = None if response is None or isinstance(response, ResponseDoc) else response
    response_doc = response_object.doc() if response_object is not None else cast(ResponseDoc | None, response)

    def wrap(fn: Callable[[CallContext], Awaitable[Any]]) -> Command:
        cmd = Command(
            name=name, description=description, params=all_params, roles=roles, handler=fn,
            response=response_doc, response_object=response_object,
            event=event, is_async=is_async, creates=creates, run=run, since=since,
            response_name_override=response_name, java_class=java_class or f"org.cloudd.api.{name}Cmd",
            post_only=post_only, authenticator=authenticator,
            state_changing=(not name.startswith(("list", "get", "query"))) if state_changing is None
            else state_changing,
        )
        cmd.param_index.update({p.name: p for p in all_params})
        return cmd

    return wrap


class Registry:
    """Every declared command, by exact (case-sensitive) name."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self.commands: dict[str, Command] = {}
        for c in commands:
            self.add(c)

    def add(self, cmd: Command) -> None:
        if cmd.name in self.commands:
            raise ValueError(f"command {cmd.name} declared twice")
        self.commands[cmd.name] = cmd

    def get(self, name: str) -> Command | None:
        return self.commands.get(name)

    def __iter__(self) -> Any:
        return iter(sorted(self.commands.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self.commands)

    def related_to(self, cmd: Command) -> list[str]:
        """Other commands answering with the same object (listApis `related`)."""
        if cmd.response is None:
            return []
        obj = cmd.response.object_name
        return [c.name for c in self if c is not cmd and c.response is not None and c.response.object_name == obj]

    @classmethod
    def scan(cls, package: ModuleType) -> Registry:
        reg = cls()
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for value in vars(module).values():
                if isinstance(value, Command) and value.name not in reg.commands:
                    reg.add(value)
        return reg

