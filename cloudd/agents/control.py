"""One JSON-over-mutual-TLS client for an appliance's control API.

The client trusts only cloudd's authority, presents cloudd's client certificate, checks the
appliance's name or address in its certificate, and turns the appliances' error envelope
(`{"error": {"code", "message"}}`) into `ControlError`.

`exchange` sends a typed control message (`appliance.messages`) and reads the answer with its
model: a body is checked with the model the appliance reads it with before it is sent (a
`MessageError` then, and nothing is sent), and an answer the model refuses raises
`ControlError(status, "bad_answer", ...)`.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from appliance.messages.base import Message, MessageError
from appliance.tls import ControlClientPolicy, TlsMaterial

DEFAULT_TIMEOUT = 60.0
BAD_ANSWER = "bad_answer"

M = TypeVar("M", bound=Message)


class _Collect(Protocol):
    """Gathers a response body. (`readBody` warns on TLS transports, which lack `abortConnection`.)"""

    def __init__(self, done: Deferred[bytes]) -> None:
        self._done = done
        self._parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802 (Twisted API)
        if reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(reason)


def read_body(response: IResponse) -> Deferred[bytes]:
    done: Deferred[bytes] = Deferred()
    response.deliverBody(_Collect(done))
    return done


class ControlError(Exception):
    """The appliance answered with an error (or not with JSON)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ControlClient:
    def __init__(self, reactor: Any, base_url: str, material: TlsMaterial,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._reactor = reactor
        self._clock: IReactorTime = reactor
        self.base_url = base_url.rstrip("/")
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._agent = Agent(reactor, contextFactory=ControlClientPolicy(material), pool=self._pool)
        self.timeout = timeout

    async def close(self) -> None:
        await self._pool.closeCachedConnections()

    async def raw(self, method: str, path: str, body: Any = None) -> tuple[int, Headers, bytes]:
        """Send one request (a JSON body when `body` is not None); the status, headers and body."""
        headers = Headers({b"Accept": [b"application/json"]})
        producer: IBodyProducer | None = None
        if body is not None:
            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
        d = self._agent.request(method.encode(), (self.base_url + path).encode(), headers, producer)
        d.addTimeout(self.timeout, self._clock)
        response = await d
        data = await read_body(response)
        return response.code, response.headers, data

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """A request whose answer is JSON; errors become `ControlError`."""
        _status, value = await self._call(method, path, body)
        return value

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _headers, data = await self.raw(method, path, body)
        try:
            value = json.loads(data) if data else None
        except ValueError:
            raise ControlError(status, "not_json", "the appliance did not answer JSON") from None
        if status >= 400:
            error = value.get("error", {}) if isinstance(value, dict) else {}
            raise ControlError(status, str(error.get("code", "error")), str(error.get("message", "")))
        return status, value

    async def exchange(self, method: str, path: str, body: Message | None, answer: type[M]) -> M:
        """Send `body` (checked first, see `checked`) and read the JSON answer as `answer`."""
        status, value = await self._call(method, path, None if body is None else checked(body))
        return read_answer(answer, status, value)


def checked(message: Message) -> dict[str, Any]:
    """`message`'s JSON, read back with its own model first: a message built in cloudd with values
    the appliance would refuse raises `MessageError` here instead of being sent."""
    body = message.to_json()
    type(message).from_json(body)
    return body


def read_answer(model: type[M], status: int, value: Any) -> M:
    """An appliance's answer read with its model; `ControlError(status, "bad_answer", ...)` when
    the model refuses it."""
    try:
        return model.from_json(value)
    except MessageError as exc:
        raise ControlError(status, BAD_ANSWER, f"{model.__name__}: {exc}") from None
