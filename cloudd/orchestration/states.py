"""Resource states as explicit machines: an Enum of states and a table of transitions.

A transition is applied in the database as a compare-and-set on the current state
(`UPDATE ... WHERE id=? AND state IN (...)`, see `DBComponent.cas_state`), so two racing commands
cannot both win, and a crash leaves either the old or the new state, never one in between.

    HOST = StateMachine("Host", HostState, {
        (HostState.UP, "maintain"): HostState.PREPARE_FOR_MAINTENANCE, ...})
    new = await HOST.apply(db.infra.cas_host_state, host.id, host.state, "maintain")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from enum import Enum
from typing import Generic, TypeVar

from cloudd.errors import CloudError, concurrent

S = TypeVar("S", bound=Enum)

# compare-and-set: (row id, the states it may be in, the new state) -> whether the row changed
Cas = Callable[[int, Iterable[str], str], Awaitable[bool]]


class InvalidTransition(CloudError):
    """The event is not allowed from the resource's current state: 431, as CloudStack answers an
    operation on a resource in the wrong state."""

    def __init__(self, machine: str, current: str, event: str) -> None:
        super().__init__(431, f"Unable to {event} the {machine.lower()}: it is in state {current}", 4350)
        self.current = current
        self.event = event


class StateMachine(Generic[S]):
    """The states of one kind of resource and the events that move it between them."""

    def __init__(self, name: str, states: type[S], transitions: Mapping[tuple[S, str], S]) -> None:
        self.name = name
        self.states = states
        self.transitions = dict(transitions)
        for (source, event), target in self.transitions.items():
            if not isinstance(source, states) or not isinstance(target, states) or not event:
                raise ValueError(f"bad transition {source!r} --{event}--> {target!r} in {name}")

    def state(self, value: str | S) -> S:
        """The state named `value` (the stored string)."""
        return value if isinstance(value, self.states) else self.states(value)

    def events(self) -> set[str]:
        return {event for _, event in self.transitions}

    def sources(self, event: str) -> set[S]:
        """The states from which `event` is allowed."""
        return {source for source, e in self.transitions if e == event}

    def allows(self, current: str | S, event: str) -> bool:
        return (self.state(current), event) in self.transitions

    def next(self, current: str | S, event: str) -> S:
        """The state `event` leads to from `current`; InvalidTransition when it is not allowed."""
        target = self.transitions.get((self.state(current), event))
        if target is None:
            raise InvalidTransition(self.name, self.state(current).value, event)
        return target

    async def apply(self, cas: Cas, row_id: int, current: str | S, event: str) -> S:
        """Move a stored resource from `current` by `event`, checked against the table and then set in
        the database only if it is still in `current`. A lost race raises 530 (a concurrent operation),
        never a silent overwrite."""
        source = self.state(current)
        target = self.next(source, event)
        if not await cas(row_id, [source.value], target.value):
            raise concurrent(f"The {self.name.lower()} changed state while it was being updated "
                             f"(it was {source.value}); retry the operation")
        return target

    async def apply_any(self, cas: Cas, row_id: int, event: str) -> S | None:
        """Move a resource by `event` from whichever allowed state it is in now, without reading it first
        (background tasks: a ping result). None when it was in no state the event leaves from. Only for
        events whose every source leads to the same target."""
        targets = {self.transitions[(s, event)] for s in self.sources(event)}
        if len(targets) != 1:
            raise ValueError(f"event {event} of {self.name} has several targets; use apply()")
        target = targets.pop()
        if await cas(row_id, [s.value for s in self.sources(event)], target.value):
            return target
        return None

    def table(self) -> list[tuple[str, str, str]]:
        """(from, event, to) rows, for the docs."""
        return sorted((s.value, e, t.value) for (s, e), t in self.transitions.items())
