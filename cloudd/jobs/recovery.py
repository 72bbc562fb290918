"""Hooks that return a resource to a stable state after its job died with its process.

Each hook is registered for a job's instance type (declared with the job kind, next to the work it
recovers) and receives the services, never an API caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudd.db.jobs import Job
    from cloudd.orchestration.context import Services

Hook = Callable[["Services", "Job"], Awaitable[None]]
HOOKS: dict[str, Hook] = {}


def recovers(instance_type: str) -> Callable[[Hook], Hook]:
    def wrap(fn: Hook) -> Hook:
        HOOKS[instance_type] = fn
        return fn

    return wrap


async def recover(services: Services, job: Job) -> None:
    if job.instance_type is None:
        return
    hook = HOOKS.get(job.instance_type)
    if hook is not None:
        await hook(services, job)
