"""An in-process management server for unit tests: real DB, real command layer, fake reactor.

`make_cloud()` returns a Cloud whose `call()` renders a request through the real ApiResource with
a fake request object (no sockets), so tests see exactly the status, headers and body a client
would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twisted.web.test.requesthelper import DummyRequest

import cloudd.api
from cloudd import bootstrap
from cloudd.api.auth import Authenticator
from cloudd.api.registry import Registry
from cloudd.api.service import ApiService
from cloudd.db.connector import DBConnector
from cloudd.jobs.runner import JobRunner
from cloudd.orchestration.context import make_services
from cloudd.settings import Settings
from cloudd.web.resource import ApiResource
from cloudd.web.signing import sign
from tests.util.db import make_db
from tests.util.reactor import FakeReactor


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def inner(self) -> Any:
        """The object under the single top-level key."""
        data = self.json()
        assert len(data) == 1, data
        return next(iter(data.values()))


@dataclass
class Cloud:
    reactor: FakeReactor
    db: DBConnector
    api: ApiService
    auth: Authenticator
    jobs: JobRunner
    resource: ApiResource
    admin: bootstrap.AdminCredentials

    def request(self, params: dict[str, str], method: str = "GET", body: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, client: str = "127.0.0.1") -> Response:
        req = DummyRequest([b"client", b"api"])
        req.method = method.encode()
        req.uri = b"/client/api?" + urlencode(params).encode()
        req.args = {}
        from twisted.internet.address import IPv4Address

        req.client = IPv4Address("TCP", client, 40000)
        if body is not None:
            import io

            req.content = io.BytesIO(urlencode(body).encode())
            req.requestHeaders.setRawHeaders(b"content-type", [b"application/x-www-form-urlencoded"])
        for k, v in (headers or {}).items():
            req.requestHeaders.setRawHeaders(k.encode(), [v.encode()])
        self.resource.render(req)
        assert req.finished, "the request did not finish synchronously"
        hdrs = {k.decode().lower(): b", ".join(v).decode() for k, v in req.responseHeaders.getAllRawHeaders()}
        return Response(req.responseCode or 200, hdrs, b"".join(req.written))

    def signed(self, command: str, key: str | None = None, secret: str | None = None, method: str = "GET",
               **params: Any) -> Response:
        """A v1-signed JSON call (as libcloud signs) with the admin's keys unless others are given."""
        p = {"command": command, "response": "json", "apiKey": key or self.admin.apikey}
        p.update({k: str(v) for k, v in params.items()})
        p["signature"] = sign(p, secret or self.admin.secretkey)
        if method == "POST":
            return self.request({}, "POST", body=p)
        return self.request(p)

    def stop(self) -> None:
        self.db.pool.stop()


def make_cloud(basedir: str = ".", url: str | None = None) -> Cloud:
    reactor = FakeReactor()
    db = make_db(reactor, basedir, url)
    settings = Settings()
    services = make_services(db, reactor, settings, blocking=_now)
    jobs = JobRunner(services, "ms-test", "test")
    # every key a command renders must be declared by its response object
    api = ApiService(services, Registry.scan(cloudd.api), "ms-test", jobs=jobs, blocking=_now, check_fields=True)
    creds = db.pool.do_sync(lambda conn: bootstrap.thd_bootstrap(db, conn))
    assert creds is not None
    auth = Authenticator(api, reactor, reactor.pool)
    from twisted.internet.defer import Deferred

    d = Deferred.fromCoroutine(jobs.prepare("run-1"))
    assert d.called
    resource = ApiResource(api, auth)
    return Cloud(reactor, db, api, auth, jobs, resource, creds)


def _now(fn: Any, *args: Any) -> Any:
    from twisted.internet.defer import succeed

    return succeed(fn(*args))
