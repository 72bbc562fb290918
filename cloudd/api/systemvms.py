"""System VM commands: listSystemVms, and startSystemVm, stopSystemVm, rebootSystemVm and
destroySystemVm for the secondary-storage VMs cloudd supervises (the work is in
`cloudd.orchestration.systemvms`)."""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.imagestores import IMAGE_STORE
from cloudd.api.infra_entities import HOST, POD, ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import INFRA, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result
from cloudd.db.base import NotFound
from cloudd.db.images import SystemVm
from cloudd.db.jobs import Job
from cloudd.errors import internal
from cloudd.jobs.recovery import recovers
from cloudd.orchestration.context import EventInfo, JobContext, Services
from cloudd.orchestration.systemvms import SSVM_TYPE, SystemVmState

P = Param


async def _vm(s: Services, uuid: str) -> Any:
    return await s.db.images.get_vm_by_uuid(uuid)


SYSTEM_VM = Entity("SystemVm", _vm)

SYSTEM_VM_OBJ = ResponseObject(
    "systemvm",
    Out("id", "the ID of the system VM", source="uuid"),
    Out("systemvmtype", "the system VM type", source="vm_type"),
    Out("zoneid", "the Zone ID for the system VM", source="zone_uuid"),
    Out("zonename", "the Zone name for the system VM", source="zone_name"),
    Out("name", "the name of the system VM"),
    Out("hypervisor", "the hypervisor on which the template runs", source=lambda vm: "Simulator"),
    Out("privateip", "the private IP address for the system VM", source="private_ip"),
    Out("linklocalip", "the link local IP address for the system vm", source="link_local_ip"),
    Out("publicip", "the public IP address for the system VM", source="public_ip"),
    Out("created", "the date and time the system VM was created", "date"),
    Out("state", "the state of the system VM"),
    Out("agentstate", "the agent state of the system VM", source="agent_state"),
    Out("activeviewersessions", "the number of active console sessions for the console proxy system vm",
        "integer"),
    Out("isdynamicallyscalable", "true if vm contains XS/VMWare tools inorder to support dynamic scaling of VM "
        "cpu/memory.", "boolean", source=lambda vm: False),
)


def render_vm(ctx: CallContext | JobContext, vm: SystemVm) -> dict[str, Any]:
    agent_state = None
    systemvms = ctx.services.systemvms
    if systemvms is not None:
        agent = systemvms.agent_for_zone(vm.zone_id)
        if agent is not None and vm.state != SystemVmState.STOPPED.value:
            agent_state = "Up" if agent.state.value == "Up" else "Disconnected"
    return SYSTEM_VM_OBJ.render(vm, agentstate=agent_state)


@command("listSystemVms", description="List system virtual machines.", roles=INFRA, response=SYSTEM_VM_OBJ,
         listing=True, java_class="org.apache.cloudstack.api.command.admin.systemvm.ListSystemVMsCmd",
         params=[P("hostid", HOST, "the host ID of the system VM", related="listHosts"),
                 P("id", SYSTEM_VM, "the ID of the system VM", related="listSystemVms"),
                 P("name", description="the name of the system VM"),
                 P("podid", POD, "the Pod ID of the system VM", related="listPods"),
                 P("state", description="the state of the system VM"),
                 P("systemvmtype", description="the system VM type. Possible types are \"consoleproxy\" and "
                   "\"secondarystoragevm\"."),
                 P("zoneid", ZONE, "the Zone ID of the system VM", related="listZones"),
                 P("storageid", IMAGE_STORE, "the storage ID where vm's volumes belong to", since="3.0.1")])
async def list_system_vms(ctx: CallContext) -> Result:
    vm_type = ctx.get("systemvmtype")
    if (vm_type is not None and vm_type.lower() != SSVM_TYPE) or ctx.get("hostid") is not None \
            or ctx.get("podid") is not None:
        # only secondary-storage VMs exist here, and they run on no host or pod
        return ListResult("systemvm", [], 0)
    vm = ctx.get("id")
    zone = ctx.get("zoneid")
    store = ctx.get("storageid")
    total, vms = await ctx.db.images.search_vms(
        vm_id=None if vm is None else vm.id, zone_id=None if zone is None else zone.id, name=ctx.get("name"),
        state=ctx.get("state"), store_id=None if store is None else store.id, keyword=ctx.get("keyword"),
        page=page_of(ctx))
    return ListResult("systemvm", [render_vm(ctx, v) for v in vms], total)


def _manager(services: Services) -> Any:
    if services.systemvms is None:
        raise internal("No secondary storage VM supervisor is configured on this management server")
    return services.systemvms


def _prepare(ctx: CallContext) -> Prepared:
    vm: SystemVm = ctx.get("id")
    _manager(ctx.services)
    return Prepared("SystemVm", vm.uuid, f"SystemVm:{vm.id}", state={"resource_name": vm.name})


async def _run(jc: JobContext, prepared: Prepared, action: str) -> Result:
    db = jc.db.images
    vm = await db.get_vm_by_uuid(prepared.instance_uuid or "")
    manager = _manager(jc.services)
    after = await getattr(manager, action)(vm)
    jc.announce(EventInfo(f"{action} system vm {vm.name}", "SystemVm", vm.uuid, vm.name))
    if action == "destroy":
        return ObjectResult("systemvm", SYSTEM_VM_OBJ.render(after, state=SystemVmState.DESTROYED.value))
    return ObjectResult("systemvm", render_vm(jc, await db.get_vm(after.id)))


async def _start_job(jc: JobContext, prepared: Prepared) -> Result:
    return await _run(jc, prepared, "start")


async def _stop_job(jc: JobContext, prepared: Prepared) -> Result:
    return await _run(jc, prepared, "stop")


async def _reboot_job(jc: JobContext, prepared: Prepared) -> Result:
    return await _run(jc, prepared, "reboot")


async def _destroy_job(jc: JobContext, prepared: Prepared) -> Result:
    return await _run(jc, prepared, "destroy")


ID = P("id", SYSTEM_VM, "The ID of the system virtual machine", required=True, related="listSystemVms")


@command("startSystemVm", description="Starts a system virtual machine.", roles=ROOT, response=SYSTEM_VM_OBJ,
         event="SSVM.START", is_async=True, run=_start_job,
         java_class="org.apache.cloudstack.api.command.admin.systemvm.StartSystemVMCmd", params=[ID])
async def start_system_vm(ctx: CallContext) -> Prepared:
    return _prepare(ctx)


@command("stopSystemVm", description="Stops a system VM.", roles=ROOT, response=SYSTEM_VM_OBJ,
         event="SSVM.STOP", is_async=True, run=_stop_job,
         java_class="org.apache.cloudstack.api.command.admin.systemvm.StopSystemVmCmd",
         params=[ID, P("forced", "boolean", "Force stop the VM (vm is marked as Stopped even when command fails to "
                       "be send to the backend, otherwise a force poweroff is attempted). To be used if the caller "
                       "knows the VM is stopped and should be marked as such.")])
async def stop_system_vm(ctx: CallContext) -> Prepared:
    return _prepare(ctx)


@command("rebootSystemVm", description="Reboots a system VM.", roles=ROOT, response=SYSTEM_VM_OBJ,
         event="SSVM.REBOOT", is_async=True, run=_reboot_job,
         java_class="org.apache.cloudstack.api.command.admin.systemvm.RebootSystemVmCmd",
         params=[ID, P("forced", "boolean", "Force reboot the system VM (System VM is Stopped and then Started)",
                       since="4.16.0")])
async def reboot_system_vm(ctx: CallContext) -> Prepared:
    return _prepare(ctx)


@command("destroySystemVm", description="Destroys a system virtual machine.", roles=ROOT, response=SYSTEM_VM_OBJ,
         event="SSVM.DESTROY", is_async=True, run=_destroy_job,
         java_class="org.apache.cloudstack.api.command.admin.systemvm.DestroySystemVmCmd", params=[ID])
async def destroy_system_vm(ctx: CallContext) -> Prepared:
    return _prepare(ctx)


@recovers("SystemVm")
async def _recover_system_vm(services: Services, job: Job) -> None:
    """A system VM command died with its process: the start of the next cloudd re-adopts every zone's
    ssvm (`SystemVmManager.adopt`), so the row only needs to leave Stopping."""
    try:
        vm = await services.db.images.get_vm_by_uuid(job.instance_uuid or "")
    except NotFound:
        return
    if vm.state == SystemVmState.STOPPING.value:
        await services.db.images.cas_vm_state(vm.id, [vm.state], SystemVmState.STOPPED.value)
