"""A test cloud with image stores: the real SystemVmManager and TemplateManager over a fake ssvm
supervisor whose agents talk to `FakeStorageClient`s (the real `StorageClient`'s method names and
parameters, checked by a test), all on the fake clock.

    ic = ImageCloud.make(self)
    zone = ic.zone("z1")
    store = ic.ok("addImageStore", provider="NFS", url=f"file://{dir}", zoneid=zone)
    client = ic.client(zone)      # the zone's fake ssvm: .progress(id, 40), .finish(id), .fail(id, text)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from appliance.messages.common import Health
from appliance.messages.ssvm import (
    DownloadRequest,
    DownloadStatus,
    ImageEntry,
    SignedUrl,
    SignUrlRequest,
    StorageAnswer,
)
from cloudd.agents.control import ControlError
from cloudd.agents.service import AgentState, ApplianceAgent
from cloudd.agents.supervisor import SsvmEndpoint, VmState
from cloudd.orchestration.systemvms import SystemVmManager
from cloudd.orchestration.templates import TemplateManager
from tests.util.cloud import Cloud, Response, make_cloud


class FakeStorageClient:
    """ssvm's control API in memory. `down` makes every call fail as a refused connection."""

    def __init__(self) -> None:
        self.statuses: dict[str, DownloadStatus] = {}
        self.requests: dict[str, DownloadRequest] = {}
        self.started: list[str] = []
        self.deleted: list[str] = []
        self.signed: list[SignUrlRequest] = []
        self.down = False
        self.closed = False
        # the next start_download calls that fail as an ssvm that does not answer in time
        self.lose_starts = 0

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("ssvm is down")

    # -- the StorageClient methods ---------------------------------------------------------------

    async def health(self) -> Health:
        self._check()
        return Health("ssvm", "ok")

    async def close(self) -> None:
        self.closed = True

    async def start_download(self, download_id: str, request: DownloadRequest) -> DownloadStatus:
        self._check()
        if self.lose_starts:
            self.lose_starts -= 1
            raise TimeoutError("no answer from ssvm")
        self.started.append(download_id)
        self.requests[download_id] = request
        if download_id not in self.statuses:
            self.statuses[download_id] = DownloadStatus(download_id, "DOWNLOADING", 0, 0, request.format,
                                                        request.url)
        return self.statuses[download_id]

    async def download_status(self, download_id: str) -> DownloadStatus:
        self._check()
        if download_id not in self.statuses:
            raise ControlError(404, "not_found", f"no download {download_id}")
        return self.statuses[download_id]

    async def cancel_download(self, download_id: str) -> DownloadStatus:
        self._check()
        return self.statuses[download_id]

    async def delete_download(self, download_id: str) -> bool:
        self._check()
        self.deleted.append(download_id)
        return self.statuses.pop(download_id, None) is not None

    async def downloads(self) -> list[DownloadStatus]:
        self._check()
        return list(self.statuses.values())

    async def images(self) -> list[ImageEntry]:
        self._check()
        return []

    async def storage(self) -> StorageAnswer:
        self._check()
        return StorageAnswer(total=100 * 2**30, free=90 * 2**30, used_by_store=3 * 2**30)

    async def sign_url(self, request: SignUrlRequest) -> SignedUrl:
        self._check()
        self.signed.append(request)
        return SignedUrl(f"http://127.0.0.1:9999/{request.path}?sig=abc", 2_000_000_000)

    # -- what tests do to it -----------------------------------------------------------------------

    def progress(self, download_id: str, percent: int) -> None:
        s = self.statuses[download_id]
        self.statuses[download_id] = replace(s, state="DOWNLOADING", percent=percent, bytes=percent * 1000,
                                             total=100_000)

    def finish(self, download_id: str) -> None:
        s = self.statuses[download_id]
        self.statuses[download_id] = replace(
            s, state="DOWNLOADED", percent=100, bytes=100_000, total=100_000,
            install_path=f"template/tmpl/2/{download_id}/image.qcow2", physical_size=100_000,
            virtual_size=10 * 2**30, checksum="{SHA-256}" + "a" * 64)

    def fail(self, download_id: str, text: str) -> None:
        self.statuses[download_id] = replace(self.statuses[download_id], state="ERROR", error=text)

    def forget(self) -> None:
        """What a restarted ssvm without its state files knows: nothing."""
        self.statuses.clear()


@dataclass
class FakeVm:
    vm_id: int
    store_root: str
    settings: str | None
    client: FakeStorageClient
    agent: ApplianceAgent[Any]
    state: VmState = VmState.STARTING
    last_exit: str | None = None
    starts: int = 1


@dataclass
class FakeSupervisor:
    """The supervisor's interface (`start_vm`, `stop_vm`, `agent`, `endpoint`, `get`) without processes."""

    clock: Any
    on_state: Any
    vms: dict[int, FakeVm] = field(default_factory=dict)
    clients: dict[int, FakeStorageClient] = field(default_factory=dict)

    def _set(self, vm: FakeVm, state: VmState) -> None:
        vm.state = state
        self.on_state(vm.vm_id, state)

    async def start_vm(self, vm_id: int, store_root: str, *, settings: str | None = None,
                       resync: Any = None) -> Any:
        if vm_id in self.vms:
            return self.vms[vm_id]
        client = self.clients.setdefault(vm_id, FakeStorageClient())
        vm_ref: list[FakeVm] = []

        def changed(agent: ApplianceAgent[Any], state: AgentState) -> None:
            if state is AgentState.UP and vm_ref and vm_ref[0].state is VmState.STARTING:
                self._set(vm_ref[0], VmState.RUNNING)

        agent: ApplianceAgent[Any] = ApplianceAgent(f"s-{vm_id}-VM", client, self.clock, resync=resync,
                                                    on_state=changed, interval=10.0)
        vm = FakeVm(vm_id, store_root, settings, client, agent)
        vm_ref.append(vm)
        self.vms[vm_id] = vm
        self._set(vm, VmState.STARTING)
        agent.startService()
        return vm

    def stop_vm(self, vm_id: int) -> Deferred[None]:
        vm = self.vms.pop(vm_id, None)
        if vm is None:
            return succeed(None)
        self._set(vm, VmState.STOPPING)
        d = vm.agent.stopService()
        d.addCallback(lambda _: self._set(vm, VmState.STOPPED))
        return d

    def agent(self, vm_id: int) -> ApplianceAgent[Any] | None:
        vm = self.vms.get(vm_id)
        return None if vm is None else vm.agent

    def endpoint(self, vm_id: int) -> SsvmEndpoint | None:
        return SsvmEndpoint(f"https://127.0.0.1:{7000 + vm_id}", f"http://127.0.0.1:{8000 + vm_id}") \
            if vm_id in self.vms else None

    def get(self, vm_id: int) -> FakeVm | None:
        return self.vms.get(vm_id)

    def die(self, vm_id: int, forget: bool = True) -> None:
        """The child exits (kill -9): Error, agent lost; `restart` brings a new one up."""
        vm = self.vms[vm_id]
        vm.last_exit = "signal 9"
        vm.client.down = True
        self._set(vm, VmState.ERROR)
        vm.agent.lost("the ssvm process exited (signal 9)")
        if forget:
            vm.client.forget()

    def restart(self, vm_id: int) -> None:
        vm = self.vms[vm_id]
        vm.starts += 1
        vm.client.down = False
        self._set(vm, VmState.STARTING)
        vm.agent.appliance_restarted()
        vm.agent.check()


@dataclass
class ImageCloud:
    case: SynchronousTestCase
    cloud: Cloud
    supervisor: FakeSupervisor
    systemvms: SystemVmManager
    templates: TemplateManager

    @classmethod
    def make(cls, case: SynchronousTestCase, cloud: Cloud | None = None) -> ImageCloud:
        cloud = cloud or make_cloud()
        case.addCleanup(cloud.stop)
        services = cloud.api.services
        systemvms = SystemVmManager(services)
        supervisor = FakeSupervisor(cloud.reactor, systemvms.on_state)
        systemvms.attach(supervisor)
        services.systemvms = systemvms
        templates = TemplateManager(services, interval=2.0)
        services.templates = templates
        systemvms.startService()
        templates.startService()
        ic = cls(case, cloud, supervisor, systemvms, templates)
        case.addCleanup(ic.stop)
        return ic

    def restart_managers(self) -> None:
        """What a restart of cloudd does to them: new managers over the same database and ssvms."""
        self.templates.stopService()
        services = self.cloud.api.services
        self.systemvms = SystemVmManager(services)
        self.supervisor.on_state = self.systemvms.on_state
        self.systemvms.attach(self.supervisor)
        services.systemvms = self.systemvms
        self.templates = TemplateManager(services, interval=2.0)
        services.templates = self.templates
        self.systemvms.startService()
        self.templates.startService()

    def stop(self) -> None:
        if self.templates.running:
            self.templates.stopService()
        for vm_id in list(self.supervisor.vms):
            self.supervisor.stop_vm(vm_id)

    def call(self, command: str, **params: Any) -> Response:
        return self.cloud.signed(command, **params)

    def ok(self, command: str, **params: Any) -> Any:
        r = self.call(command, **params)
        assert r.status == 200, (command, r.body)
        return r.inner()

    def error(self, command: str, code: int, **params: Any) -> str:
        r = self.call(command, **params)
        assert r.status == code, (command, r.status, r.body)
        return str(r.inner()["errortext"])

    def job(self, command: str, **params: Any) -> dict[str, Any]:
        """Run an async command to its end; its queryAsyncJobResult answer."""
        jobid = self.ok(command, **params)["jobid"]
        return self.wait(jobid)

    def wait(self, jobid: str, caller: Any = None) -> dict[str, Any]:
        for _ in range(200):
            if caller is None:
                result: dict[str, Any] = self.ok("queryAsyncJobResult", jobid=jobid)
            else:
                result = caller("queryAsyncJobResult", jobid=jobid).inner()
            if result["jobstatus"] != 0:
                return result
            self.cloud.reactor.advance(1)
        raise AssertionError(f"job {jobid} did not end")

    def zone(self, name: str) -> str:
        return str(self.ok("createZone", name=name, dns1="192.0.2.53", internaldns1="192.0.2.53",
                           networktype="Advanced")["zone"]["id"])

    def store(self, zone: str, path: str) -> dict[str, Any]:
        return dict(self.ok("addImageStore", provider="NFS", url=f"file://{path}", zoneid=zone)["imagestore"])

    def vm_id(self, zone: str) -> int:
        zone_row = self.case.successResultOf(self.cloud.db.infra.get_zone_by_uuid(zone))
        vm = self.case.successResultOf(self.cloud.db.images.vm_of_zone(zone_row.id, "secondarystoragevm"))
        assert vm is not None
        return int(vm.id)

    def client(self, zone: str) -> FakeStorageClient:
        return self.supervisor.clients[self.vm_id(zone)]

    def tick(self, seconds: float = 2.0) -> None:
        self.cloud.reactor.advance(seconds)
