"""Who is calling, and the per-call context handed to command handlers (never an HTTP request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloudd.api.registry import ADMIN, DOMAIN_ADMIN, RESOURCE_ADMIN, USER
from cloudd.db.accounts import Account, User
from cloudd.orchestration.context import Actor

if TYPE_CHECKING:
    from cloudd.api.registry import Command
    from cloudd.api.service import ApiService, EventInfo
    from cloudd.db.connector import DBConnector
    from cloudd.orchestration.context import Services

# privilege order of role types: a caller may act on targets of lower rank (CVE-2025-47713)
RANK = {ADMIN: 4, RESOURCE_ADMIN: 3, DOMAIN_ADMIN: 2, USER: 1}
ACCOUNT_TYPE_FOR_ROLE = {ADMIN: 1, DOMAIN_ADMIN: 2, RESOURCE_ADMIN: 3, USER: 0}
ROLE_FOR_ACCOUNT_TYPE = {v: k for k, v in ACCOUNT_TYPE_FOR_ROLE.items()}


@dataclass(frozen=True)
class Caller:
    user: User

    @property
    def account(self) -> Account:
        return self.user.account

    @property
    def role_type(self) -> str:
        return self.user.account.role_type

    @property
    def is_root_admin(self) -> bool:
        return self.role_type == ADMIN and self.user.account.role_is_default

    @property
    def is_admin(self) -> bool:
        """Root, resource or domain admin: may see below its own account."""
        return self.role_type in (ADMIN, RESOURCE_ADMIN, DOMAIN_ADMIN)

    @property
    def is_domain_admin(self) -> bool:
        return self.role_type in (RESOURCE_ADMIN, DOMAIN_ADMIN) or (
            self.role_type == ADMIN and not self.user.account.role_is_default)

    @property
    def domain_path(self) -> str:
        return self.user.account.domain_path

    def sees_domain(self, path: str) -> bool:
        """The caller's domain is `path` or one of its ancestors."""
        return path.startswith(self.domain_path)


@dataclass
class CallContext:
    api: ApiService
    caller: Caller
    command: Command
    params: dict[str, Any]
    http_method: str = "GET"
    client_address: str = ""
    job_uuid: str | None = None
    # secret values given to the job in memory only; never stored
    extras: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    @property
    def db(self) -> DBConnector:
        return self.api.db

    def identity_changed(self) -> None:
        self.api.identity_changed()

    def announce(self, info: EventInfo) -> None:
        """The text of the event the command completes with."""
        self.extras["event"] = info

    @property
    def services(self) -> Services:
        """The orchestration services (the work behind commands)."""
        return self.api.services

    @property
    def actor(self) -> Actor:
        return Actor(self.caller.user.id, self.caller.account.id, self.caller.account.domain_id)
