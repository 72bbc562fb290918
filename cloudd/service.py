"""The management server's root service: database first, then jobs, then the API listeners."""

from __future__ import annotations

import os
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import Site

import cloudd.api
from cloudd import bootstrap
from cloudd.api.auth import Authenticator
from cloudd.api.context import Caller
from cloudd.api.registry import Registry
from cloudd.api.service import ApiService
from cloudd.db.base import Scope
from cloudd.db.connector import DBConnector
from cloudd.jobs.runner import JobRunner
from cloudd.settings import Settings
from cloudd.web.resource import ApiResource

MSID_FILE = "management-server-id"


def management_server_uuid(basedir: str) -> str:
    """This server's persistent identity, kept in the base directory."""
    path = os.path.join(basedir, MSID_FILE)
    try:
        with open(path) as f:
            value = f.read().strip()
            if value:
                return value
    except FileNotFoundError:
        pass
    value = str(uuidlib.uuid4())
    with open(path, "w") as f:
        f.write(value + "\n")
    return value


def api_site(resource: ApiResource) -> Site:
    root = Resource()
    client = Resource()
    root.putChild(b"client", client)
    client.putChild(b"api", resource)
    site = Site(root)
    site.displayTracebacks = False
    return site


class CloudManager(MultiService):
    """cloudd: owns the DB connector (started first, stopped last), the job runner and the listeners."""

    log = Logger()

    def __init__(self, *, basedir: str, db: DBConnector, listen: str, reactor: Any,
                 ms_uuid: str, endpoint_url: str, on_fatal: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.basedir = basedir
        self.db = db
        self.listen = listen
        self.reactor = reactor
        self.endpoint_url = endpoint_url
        self.on_fatal = on_fatal
        self.settings = Settings()
        self.registry = Registry.scan(cloudd.api)
        self.api = ApiService(db, self.registry, self.settings, reactor, ms_uuid)
        self.cpu_pool = ThreadPool(1, 4, name="cloudd-cpu")
        self.api.blocking = self._blocking
        self.auth = Authenticator(self.api, reactor, self.cpu_pool)
        self.jobs = JobRunner(self.api, ms_uuid)
        self.ready: Deferred[None] = Deferred()

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.cpu_pool, fn, *args)

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        self.cpu_pool.start()
        d = Deferred.fromCoroutine(self._start())
        d.addCallbacks(self.ready.callback, self._fatal)

    def _fatal(self, failure: Any) -> None:
        self.log.failure("cloudd could not start", failure)
        self.ready.errback(failure)
        if self.on_fatal is not None:
            self.on_fatal()

    async def _start(self) -> None:
        await self.db.setup()
        self.settings.load(await self.db.configuration.all())
        creds = await self.db.pool.do(lambda conn: bootstrap.thd_bootstrap(self.db, conn))
        if creds is not None:
            path = bootstrap.write_credentials(self.basedir, creds, self.endpoint_url)
            self.log.info("created the ROOT domain and the admin account; its password and API keys are in "
                          "{path} (mode 0600)", path=path)
        self.jobs.setName("jobs")
        await self.jobs.prepare(str(uuidlib.uuid4()))
        self.jobs.setServiceParent(self)
        resource = ApiResource(self.api, self.auth)
        listener = strports.service(self.listen, api_site(resource))
        listener.setName("api")
        listener.setServiceParent(self)
        port = self.settings.int("integration.api.port")
        if port > 0:
            integration = ApiResource(self.api, self.auth, integration_caller=self._system_caller)
            svc = strports.service(f"tcp:{port}:interface=127.0.0.1", api_site(integration))
            svc.setName("integration-api")
            svc.setServiceParent(self)
            self.log.warn("the unauthenticated integration API listens on 127.0.0.1:{port}", port=port)
        self.log.info("cloudd API endpoint {url}; admin credentials in {path}", url=self.endpoint_url,
                      path=os.path.join(self.basedir, bootstrap.CREDENTIALS_FILE))

    async def _system_caller(self) -> Caller:
        """The integration port acts as the built-in system user."""
        _, users = await self.db.accounts.list_users(Scope(), username="system")
        system = next(u for u in users if u.is_default and u.account.name == "system")
        return Caller(system)

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        if self.cpu_pool.started:
            self.cpu_pool.stop()
        self.db.stopService()


def make_cloud_manager(*, basedir: str, db_url: str, listen: str, reactor: IReactorCore,
                       threadpool: ThreadPool | None = None, endpoint_url: str | None = None,
                       auto_upgrade: bool = False) -> CloudManager:
    """Build the service tree (used by tap.py and by tests with their own reactor)."""
    os.makedirs(basedir, exist_ok=True)
    db = DBConnector(db_url, basedir, reactor, reactor, threadpool=threadpool,  # type: ignore[arg-type]
                     auto_upgrade=auto_upgrade)
    url = endpoint_url or endpoint_from(listen)
    return CloudManager(basedir=basedir, db=db, listen=listen, reactor=reactor, ms_uuid=management_server_uuid(basedir),
                        endpoint_url=url, on_fatal=getattr(reactor, "stop", None))


def endpoint_from(listen: str) -> str:
    parts = dict(p.split("=", 1) for p in listen.split(":")[2:] if "=" in p)
    bits = listen.split(":")
    port = bits[1] if len(bits) > 1 and bits[1].isdigit() else "8080"
    host = parts.get("interface", "127.0.0.1")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/client/api"
