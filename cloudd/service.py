"""The management server's root service: database first, then jobs, then the API listeners."""

from __future__ import annotations

import datetime
import os
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource

import cloudd.api
from cloudd import bootstrap
from cloudd.agents.service import AgentsService
from cloudd.agents.supervisor import SsvmSupervisor
from cloudd.api.auth import Authenticator
from cloudd.api.context import Caller
from cloudd.api.registry import Registry
from cloudd.api.service import ApiService
from cloudd.db.base import Scope
from cloudd.db.connector import DatabaseNotReadyError, DBConnector
from cloudd.hypervisor import Hypervisors
from cloudd.jobs.runner import JobRunner
from cloudd.orchestration.capacity import CapacityManager
from cloudd.orchestration.context import make_services
from cloudd.orchestration.hosts import HostManager
from cloudd.orchestration.storage import StorageManager
from cloudd.orchestration.systemvms import SystemVmManager
from cloudd.orchestration.templates import TemplateManager
from cloudd.pki import CertificateAuthority, client_material, pki_directory
from cloudd.settings import Settings
from cloudd.simulator import SimulatedZone
from cloudd.util.sealing import Sealer, SecretsKeyError
from cloudd.web.accesslog import access_log_line
from cloudd.web.resource import ApiResource
from cloudd.web.site import ApiSite

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


def api_site(resource: ApiResource) -> ApiSite:
    root = Resource()
    client = Resource()
    root.putChild(b"client", client)
    client.putChild(b"api", resource)
    # The access log hides parameter values: they carry passwords and signatures.
    site = ApiSite(root, resource.api.settings, logFormatter=access_log_line)
    site.displayTracebacks = False
    return site


class CloudManager(MultiService):
    """cloudd: owns the DB connector (started first, stopped last), the job runner and the listeners."""

    log = Logger()

    def __init__(self, *, basedir: str, db: DBConnector, listen: str, reactor: Any,
                 ms_uuid: str, endpoint_url: str, on_fatal: Callable[[], None] | None = None,
                 simulator: bool = False) -> None:
        super().__init__()
        self.basedir = basedir
        self.db = db
        self.listen = listen
        self.reactor = reactor
        self.endpoint_url = endpoint_url
        self.on_fatal = on_fatal
        self.settings = Settings()
        self.registry = Registry.scan(cloudd.api)
        self.cpu_pool = ThreadPool(1, 4, name="cloudd-cpu")
        self.simulator = simulator
        self._simulating: Deferred[None] | None = None
        # Wired bottom-up, each through its constructor: the hypervisor connections and the appliance
        # agents, the orchestration services over them, the job runner that runs their work, then the
        # API that calls both. Children start in this order once the database is ready (_start) and
        # stop in reverse.
        now = datetime.datetime.fromtimestamp(reactor.seconds(), datetime.UTC)
        self.hypervisors = Hypervisors(reactor)
        self.hypervisors.setName("hypervisors")
        self.agents = AgentsService()
        self.ssvms = SsvmSupervisor(
            reactor, basedir, CertificateAuthority.load_or_create(pki_directory(basedir), now), agents=self.agents,
            client_material=client_material(basedir, now), on_state=self._ssvm_state)
        self.ssvms.setName("ssvms")
        self.orchestration = make_services(db, reactor, self.settings, blocking=self._blocking,
                                           hypervisors=self.hypervisors, agents=self.agents)
        # the managers of the work: each gets the services, and the others reach it through them
        self.hosts = HostManager(self.orchestration)
        self.hosts.setName("hosts")
        self.orchestration.hosts = self.hosts
        self.storage = StorageManager(self.orchestration)
        self.storage.setName("storage")
        self.orchestration.storage = self.storage
        self.capacity = CapacityManager(self.orchestration)
        self.capacity.setName("capacity")
        self.orchestration.capacity = self.capacity
        self.systemvms = SystemVmManager(self.orchestration, self.ssvms)
        self.systemvms.setName("systemvms")
        self.orchestration.systemvms = self.systemvms
        self.templates = TemplateManager(self.orchestration)
        self.templates.setName("templates")
        self.orchestration.templates = self.templates
        self.jobs = JobRunner(self.orchestration, ms_uuid)
        self.api = ApiService(self.orchestration, self.registry, ms_uuid, jobs=self.jobs, blocking=self._blocking)
        self.auth = Authenticator(self.api, reactor, self.cpu_pool)
        self.ready: Deferred[None] = Deferred()
        self._system_user_id: int | None = None

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.cpu_pool, fn, *args)

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted API)
        # Before the reactor runs: an outdated schema stops twistd here, logged and with a non-zero exit
        # status (once the reactor runs, a failed start can only stop it, and twistd then exits 0). So is a
        # secrets key other than the one the stored API secret keys were sealed with.
        try:
            self.db.check_schema()
            self.db.check_secrets_key()
        except (DatabaseNotReadyError, SecretsKeyError) as exc:
            self.log.error("cloudd could not start: {error}", error=str(exc))
            raise
        super().privilegedStartService()

    def startService(self) -> None:  # noqa: N802 (Twisted API)
        super().startService()
        self.cpu_pool.start()
        d = Deferred.fromCoroutine(self._start())
        d.addCallbacks(self.ready.callback, self._fatal)

    def _fatal(self, failure: Any) -> None:
        if not self.running:
            # stopped (SIGTERM) while still starting: the failure is the stop itself, not a fault
            self.log.info("cloudd stopped before it finished starting")
            return
        self.ready.errback(failure)
        self.log.failure("cloudd could not start", failure)
        if self.on_fatal is not None:
            self.on_fatal()

    async def _start(self) -> None:
        await self.db.setup()
        self.settings.load(await self.db.configuration.all())
        creds = await self.db.pool.do(lambda conn: bootstrap.thd_bootstrap(self.db, conn, self.basedir))
        if creds is not None:
            path = bootstrap.write_credentials(self.basedir, creds, self.endpoint_url)
            self.log.info("created the ROOT domain and the admin account; its password and API keys are in "
                          "{path} (mode 0600)", path=path)
        self.hypervisors.setServiceParent(self)
        self.agents.setServiceParent(self)
        self.ssvms.setServiceParent(self)
        self.jobs.setName("jobs")
        await self.jobs.prepare(str(uuidlib.uuid4()))
        self.jobs.setServiceParent(self)
        # after recovery has run: the host monitor, the storage pools and the capacity checks
        self.hosts.setServiceParent(self)
        self.storage.setServiceParent(self)
        self.capacity.setServiceParent(self)
        # every zone's ssvm, then the download poller
        self.systemvms.setServiceParent(self)
        self.templates.setServiceParent(self)
        resource = ApiResource(self.api, self.auth)
        listener = strports.service(self.listen, api_site(resource), reactor=self.reactor)
        listener.setName("api")
        listener.setServiceParent(self)
        port = self.settings.int("integration.api.port")
        if port > 0:
            integration = ApiResource(self.api, self.auth, integration_caller=self._system_caller)
            svc = strports.service(f"tcp:{port}:interface=127.0.0.1", api_site(integration), reactor=self.reactor)
            svc.setName("integration-api")
            svc.setServiceParent(self)
            self.log.warn("the unauthenticated integration API listens on 127.0.0.1:{port}", port=port)
        self.log.info("cloudd API endpoint {url}; admin credentials in {path}", url=self.endpoint_url,
                      path=os.path.join(self.basedir, bootstrap.CREDENTIALS_FILE))
        if self.simulator:
            zone = SimulatedZone(self.api, self.basedir, self.reactor, self._blocking)
            self._simulating = Deferred.fromCoroutine(zone.ensure())
            self._simulating.addErrback(lambda f: None if f.check(CancelledError) else
                                        self.log.failure("building the simulated zone failed", f))

    def _ssvm_state(self, vm_id: int, state: Any) -> None:
        """A supervised ssvm changed state: the system VM manager stores it (and raises alerts)."""
        manager = self.orchestration.systemvms
        if manager is not None:
            manager.on_state(vm_id, state)

    async def _system_caller(self) -> Caller:
        """The integration port acts as the built-in system user (found once, then read by id, so a
        change to it, such as disabling it, is seen at once)."""
        if self._system_user_id is None:
            _, users = await self.db.accounts.list_users(Scope(), username="system")
            self._system_user_id = next(u.id for u in users if u.is_default and u.account.name == "system")
        return Caller(await self.db.accounts.get_user(self._system_user_id))

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted API)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._simulating is not None and not self._simulating.called:
            self._simulating.cancel()
        await super().stopService()
        if self.cpu_pool.started:
            self.cpu_pool.stop()
        self.db.stopService()


def make_cloud_manager(*, basedir: str, db_url: str, listen: str, reactor: IReactorCore,
                       threadpool: ThreadPool | None = None, endpoint_url: str | None = None,
                       auto_upgrade: bool = False, sealer: Sealer | None = None,
                       simulator: bool = False) -> CloudManager:
    """Build the service tree (used by tap.py and by tests with their own reactor); `sealer` holds the
    secrets key (without one, a key for this process only)."""
    os.makedirs(basedir, exist_ok=True)
    db = DBConnector(db_url, basedir, reactor, reactor, threadpool=threadpool,  # type: ignore[arg-type]
                     auto_upgrade=auto_upgrade, sealer=sealer)
    url = endpoint_url or endpoint_from(listen)
    return CloudManager(basedir=basedir, db=db, listen=listen, reactor=reactor, ms_uuid=management_server_uuid(basedir),
                        endpoint_url=url, on_fatal=getattr(reactor, "stop", None), simulator=simulator)


def _endpoint_fields(description: str) -> list[str]:
    """The fields of an endpoint description as Twisted reads them: `:` separates, `\\` escapes."""
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in description:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def endpoint_from(listen: str) -> str:
    """The API URL for a listen endpoint (`tcp:8080`, `tcp:port=8080:interface=\\:\\:1`, `ssl:8443:…`)."""
    kind, *rest = _endpoint_fields(listen)
    options = dict(f.split("=", 1) for f in rest if "=" in f)
    positional = [f for f in rest if "=" not in f]
    port = options.get("port") or (positional[0] if positional else "8080")
    host = options.get("interface", "127.0.0.1")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if kind == "ssl" else "http"
    return f"{scheme}://{host}:{port}/client/api"
