"""The agents service: one `ApplianceAgent` per appliance, held by `AgentsService` ("agents").

An agent owns its appliance's control client and watches it:

* a health check every `interval` seconds (a `TimerService` on the injected clock) moves it through
  `Connecting → Up → Lost → Up …`; while it is not Up, a failed check is retried sooner, with
  backoff, so a restarted appliance is seen at once;
* every transition to Up (the first connection and each reconnection) runs the owner's `resync`
  callback, which sends the appliance the whole state it should hold (the router's full state; for
  ssvm, reading its downloads back). A resync that fails is tried again at the next check. So is
  one asked for by `generation_mismatch()`, which `call` itself uses when the appliance answers that
  a generation is stale;
* `call(fn)` runs one control call and retries it with exponential backoff when it may succeed
  later (connection refused or lost, a timeout, a 5xx answer), never for a 4xx answer;
* `health` says what the last check answered or why it failed, and since when the state holds.

Nothing here knows what the appliance is: the client needs only `health()` and `close()`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived

from cloudd.agents.control import ControlError

DEFAULT_INTERVAL = 10.0
DEFAULT_HEALTH_TIMEOUT = 10.0
DEFAULT_RETRY_BASE = 1.0
DEFAULT_RETRY_FACTOR = 2.0
DEFAULT_RETRY_ATTEMPTS = 5
DEFAULT_RETRY_MAX_DELAY = 30.0
# A first quick re-check of an appliance not yet (or no longer) Up; it doubles up to `interval`.
DEFAULT_RECONNECT_BASE = 0.5
# The error codes of a 409 that mean "the generation you sent is stale" (the router's envelope says
# `conflict`; the typed control messages may name it more precisely).
STALE_GENERATION_CODES = frozenset({"conflict", "stale_generation", "generation_mismatch"})

# Failures of the exchange itself: the same call may succeed once the appliance is back.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    net_error.ConnectError,  # refused, no route, TCP timeout, DNS lookup
    net_error.ConnectionClosed,  # lost or closed under a request
    net_error.TimeoutError,
    defer.TimeoutError,  # no answer within the client's timeout
    TimeoutError,
    RequestTransmissionFailed,
    ResponseNeverReceived,
    ResponseFailed,
    ConnectionError,
)


class AgentState(enum.Enum):
    """Where cloudd stands with an appliance's control API."""

    CONNECTING = "Connecting"  # never answered since the agent started
    UP = "Up"
    LOST = "Lost"  # answered before, does not now


class AgentClient(Protocol):
    """What an agent needs from a control client."""

    async def health(self) -> Any: ...

    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=AgentClient)
T = TypeVar("T")


@dataclass(frozen=True)
class AgentHealth:
    """An agent's view of its appliance; times are the injected clock's seconds."""

    state: AgentState
    since: float  # when `state` was entered
    last_answer: Any  # the last health answer (None before the first)
    last_answer_at: float | None
    last_error: str | None  # why the last failed check or call failed (None before the first failure)
    last_error_at: float | None
    resyncs: int  # full re-syncs completed
    resync_pending: bool  # a resync is owed (asked for, or the last one failed)


def describe(failure: BaseException) -> str:
    """A short text of a control failure, for health and logs (no request bodies: they hold secrets)."""
    if isinstance(failure, ControlError):
        return str(failure)
    if isinstance(failure, ResponseNeverReceived | RequestTransmissionFailed | ResponseFailed):
        reasons = [r.getErrorMessage() for r in failure.reasons]
        return f"{type(failure).__name__}: {'; '.join(reasons)}"
    text = str(failure) or type(failure).__name__
    return text if text.startswith(type(failure).__name__) else f"{type(failure).__name__}: {text}"


def is_transient(exc: BaseException) -> bool:
    """Whether a failed control call may succeed if sent again: no answer, or a 5xx answer."""
    if isinstance(exc, ControlError):
        return exc.status >= 500
    return isinstance(exc, TRANSIENT_ERRORS)


def is_stale_generation(exc: BaseException, codes: frozenset[str] = STALE_GENERATION_CODES) -> bool:
    return isinstance(exc, ControlError) and exc.status == 409 and exc.code in codes


class ApplianceAgent(MultiService, Generic[ClientT]):
    """One appliance's client, its health and its re-syncs. A service: add it to `AgentsService`.

    `resync(agent)` is awaited on every transition to Up and on `generation_mismatch()`; at most one
    runs at a time. `on_state(agent, state)` is told of every transition.
    """

    log = Logger()

    def __init__(self, appliance_id: str, client: ClientT, clock: IReactorTime, *,
                 resync: Callable[[ApplianceAgent[ClientT]], Awaitable[None]] | None = None,
                 on_state: Callable[[ApplianceAgent[ClientT], AgentState], None] | None = None,
                 interval: float = DEFAULT_INTERVAL, health_timeout: float = DEFAULT_HEALTH_TIMEOUT,
                 reconnect_base: float = DEFAULT_RECONNECT_BASE,
                 retry_base: float = DEFAULT_RETRY_BASE, retry_factor: float = DEFAULT_RETRY_FACTOR,
                 retry_attempts: int = DEFAULT_RETRY_ATTEMPTS, retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
                 stale_codes: frozenset[str] = STALE_GENERATION_CODES) -> None:
        super().__init__()
        if interval <= 0 or health_timeout <= 0 or retry_attempts < 1 or retry_base < 0 or retry_factor < 1:
            raise ValueError("an agent needs a positive interval and timeout, at least one attempt, "
                             "a non-negative retry base and a retry factor of at least 1")
        self.appliance_id = appliance_id
        self.setName(appliance_id)
        self.client = client
        self.clock = clock
        self._resync = resync
        self._on_state = on_state
        self.interval = interval
        self.health_timeout = health_timeout
        self.reconnect_base = reconnect_base
        self.retry_base = retry_base
        self.retry_factor = retry_factor
        self.retry_attempts = retry_attempts
        self.retry_max_delay = retry_max_delay
        self.stale_codes = stale_codes

        self._state = AgentState.CONNECTING
        self._since = clock.seconds()
        self._last_answer: Any = None
        self._last_answer_at: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._resyncs = 0
        self._resync_owed = False
        self._resync_running: Deferred[None] | None = None
        self._resync_again = False
        self._check_running: Deferred[None] | None = None
        self._reconnect_call: IDelayedCall | None = None
        self._reconnect_delay = reconnect_base
        self._waits: set[Deferred[Any]] = set()

        timer = TimerService(interval, self.check)
        timer.clock = clock
        timer.setName("health")
        timer.setServiceParent(self)

    # -- what owners read ----------------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def health(self) -> AgentHealth:
        return AgentHealth(self._state, self._since, self._last_answer, self._last_answer_at,
                           self._last_error, self._last_error_at, self._resyncs,
                           self._resync_owed or self._resync_running is not None)

    # -- health ----------------------------------------------------------------------------------

    def check(self) -> Deferred[None]:
        """Ask the appliance for its health now (joining a check already under way); never fails."""
        if self._check_running is not None:
            return _follow(self._check_running)
        if not self.running:
            return Deferred.fromCoroutine(_nothing())
        d = Deferred.fromCoroutine(self._check())
        if not d.called:
            self._check_running = d

            def done(result: Any) -> Any:
                self._check_running = None
                return result

            d.addBoth(done)
        return _follow(d)

    async def _check(self) -> None:
        try:
            answer = await self._timed(Deferred.fromCoroutine(self.client.health()), self.health_timeout)
        except CancelledError:
            return  # stopped
        except Exception as exc:
            self._failed(exc)
            return
        now = self.clock.seconds()
        self._last_answer = answer
        self._last_answer_at = now
        self._cancel_reconnect()
        self._reconnect_delay = self.reconnect_base
        if self._state is not AgentState.UP:
            self._enter(AgentState.UP)
            self._resync_owed = True
        if self._resync_owed:
            # not awaited: the checks go on while a long resync runs, and see the appliance go away
            self._start_resync()

    def _failed(self, exc: BaseException) -> None:
        self._note_error(exc)
        if self._state is AgentState.UP:
            self._enter(AgentState.LOST)
        self._schedule_reconnect()

    def lost(self, reason: str) -> None:
        """The owner knows the appliance is gone (its process died): Lost now, and checked again soon."""
        self._last_error = reason
        self._last_error_at = self.clock.seconds()
        if self._state is AgentState.UP:
            self._enter(AgentState.LOST)
        self._schedule_reconnect()

    def appliance_restarted(self) -> None:
        """The owner has just (re)started the appliance: look at it soon, from the shortest delay."""
        self._cancel_reconnect()
        self._reconnect_delay = self.reconnect_base
        self._schedule_reconnect()

    def _enter(self, state: AgentState) -> None:
        previous, self._state = self._state, state
        self._since = self.clock.seconds()
        if state is AgentState.UP:
            self.log.info("appliance {appliance} is up (was {previous})", appliance=self.appliance_id,
                          previous=previous.value)
        else:
            self.log.warn("appliance {appliance} is {state}: {error}", appliance=self.appliance_id,
                          state=state.value, error=self._last_error)
        if self._on_state is not None:
            try:
                self._on_state(self, state)
            except Exception:
                self.log.failure("the state callback of appliance {appliance} failed", appliance=self.appliance_id)

    def _schedule_reconnect(self) -> None:
        """While the appliance is not Up, look again sooner than the regular interval, backing off."""
        if not self.running or self._reconnect_call is not None or self._reconnect_delay >= self.interval:
            return
        delay = self._reconnect_delay
        self._reconnect_delay = min(self._reconnect_delay * 2, self.interval)

        def again() -> None:
            self._reconnect_call = None
            self.check()

        self._reconnect_call = self.clock.callLater(delay, again)

    def _cancel_reconnect(self) -> None:
        if self._reconnect_call is not None:
            if self._reconnect_call.active():
                self._reconnect_call.cancel()
            self._reconnect_call = None

    def _note_error(self, exc: BaseException) -> None:
        self._last_error = describe(exc)
        self._last_error_at = self.clock.seconds()

    # -- re-sync ---------------------------------------------------------------------------------

    def generation_mismatch(self) -> Deferred[None]:
        """The appliance holds another generation than cloudd sent: send the full state again (now
        if the appliance is Up, else at the next successful check). Fires when that resync ends;
        never fails."""
        self._resync_owed = True
        if self._state is not AgentState.UP or not self.running:
            return Deferred.fromCoroutine(_nothing())
        return _follow(self._start_resync())

    def _start_resync(self) -> Deferred[None]:
        if self._resync_running is not None:
            self._resync_again = True
            return self._resync_running
        d = Deferred.fromCoroutine(self._run_resyncs())
        if not d.called:
            self._resync_running = d

            def done(result: Any) -> Any:
                self._resync_running = None
                return result

            d.addBoth(done)
        return d

    async def _run_resyncs(self) -> None:
        while self._resync_owed and self._state is AgentState.UP and self.running:
            self._resync_owed = False
            self._resync_again = False
            if self._resync is None:
                self._resyncs += 1
                return
            try:
                await self._resync(self)
            except CancelledError:
                self._resync_owed = True
                return
            except Exception as exc:
                # owed again, tried at the next check: a resync that keeps failing (a stale answer
                # to the full state itself) must not spin
                self._resync_owed = True
                self._note_error(exc)
                self.log.warn("full re-sync of appliance {appliance} failed: {error}",
                              appliance=self.appliance_id, error=describe(exc))
                return
            self._resyncs += 1
            self.log.info("appliance {appliance} re-synced", appliance=self.appliance_id)
            if self._resync_again:
                self._resync_owed = True

    # -- control calls ---------------------------------------------------------------------------

    async def call(self, fn: Callable[[ClientT], Awaitable[T]]) -> T:
        """`await fn(client)`, sent again with exponential backoff while it fails in a way that may
        pass (no answer, or 5xx), up to `retry_attempts` tries; a 4xx answer is raised at once. A
        409 naming a stale generation also asks for a full re-sync (`generation_mismatch`)."""
        attempt = 1
        while True:
            try:
                return await fn(self.client)
            except Exception as exc:
                if is_stale_generation(exc, self.stale_codes):
                    self.generation_mismatch()
                    raise
                if not is_transient(exc) or attempt >= self.retry_attempts or not self.running:
                    if is_transient(exc):
                        self._note_error(exc)
                    raise
                delay = min(self.retry_base * self.retry_factor ** (attempt - 1), self.retry_max_delay)
                self._note_error(exc)
                self.log.info("control call to {appliance} failed ({error}); attempt {next} in {delay} s",
                              appliance=self.appliance_id, error=describe(exc), next=attempt + 1, delay=delay)
                if not isinstance(exc, ControlError):
                    self.check()  # the appliance did not answer: find out whether it is still Up
                await self._wait(delay)
                attempt += 1

    async def _wait(self, delay: float) -> None:
        d: Deferred[None] = deferLater(self.clock, delay, lambda: None)
        self._waits.add(d)
        try:
            await d
        finally:
            self._waits.discard(d)

    async def _timed(self, d: Deferred[T], timeout: float) -> T:
        d.addTimeout(timeout, self.clock)
        self._waits.add(d)
        try:
            return await d
        finally:
            self._waits.discard(d)

    # -- service ---------------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._cancel_reconnect()
        for d in list(self._waits):
            d.cancel()
        stopping = super().stopService()
        if self._resync_running is not None:
            self._resync_running.cancel()
        if stopping is not None:
            await stopping
        try:
            await self.client.close()
        except Exception:
            self.log.failure("closing the client of appliance {appliance} failed", appliance=self.appliance_id)


class AgentsService(MultiService):
    """All appliance agents of this management server, by appliance id (a system VM's instance name)."""

    def __init__(self) -> None:
        super().__init__()
        self.setName("agents")

    def add(self, agent: ApplianceAgent[Any]) -> ApplianceAgent[Any]:
        """Hold and start (when this service runs) `agent`; an id held already is an error."""
        if agent.appliance_id in self.namedServices:
            raise KeyError(f"an agent for {agent.appliance_id} is held already")
        agent.setServiceParent(self)
        return agent

    def get(self, appliance_id: str) -> ApplianceAgent[Any] | None:
        service = self.namedServices.get(appliance_id)
        return service if isinstance(service, ApplianceAgent) else None

    def remove(self, appliance_id: str) -> Deferred[None]:
        """Stop and drop the agent (and close its client); fires once it has stopped."""
        agent = self.get(appliance_id)
        if agent is None:
            return Deferred.fromCoroutine(_nothing())
        stopped = agent.disownServiceParent()
        return Deferred.fromCoroutine(_await(stopped))

    def __iter__(self) -> Iterator[ApplianceAgent[Any]]:
        return iter([s for s in self.services if isinstance(s, ApplianceAgent)])

    def __contains__(self, appliance_id: object) -> bool:
        return appliance_id in self.namedServices


async def _nothing() -> None:
    return None


async def _await(d: Deferred[Any] | None) -> None:
    if d is not None:
        await d


def _follow(d: Deferred[None]) -> Deferred[None]:
    """A Deferred firing when `d` does, whose cancellation does not cancel `d` (shared work)."""
    out: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        if not out.called:
            out.callback(None)
        return result

    d.addBoth(fire)
    return out
