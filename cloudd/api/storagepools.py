"""Primary storage commands: createStoragePool, listStoragePools, updateStoragePool, deleteStoragePool,
enableStorageMaintenance and cancelStorageMaintenance; the storage pool entity and response object.

The work is `cloudd.orchestration.storage`; these handlers bind, check and render.
"""

from __future__ import annotations

from typing import Any

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.fields import SUCCESS_FIELDS, doc
from cloudd.api.infra_entities import CLUSTER, POD, ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import INFRA, ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Prepared, Result, SuccessResult
from cloudd.api.service import EventInfo as CallEvent
from cloudd.db.storage import PoolFilter, StoragePool
from cloudd.errors import invalid_value
from cloudd.orchestration.context import EventInfo, JobContext, Services
from cloudd.orchestration.storage import POOL, storage_manager
from cloudd.settings import Settings

P = Param


async def _pool(s: Services, uuid: str) -> Any:
    return await s.db.storage.get_by_uuid(uuid)


STORAGE_POOL = Entity("StoragePool", _pool)

# what the default (libvirt) storage driver can do, as CloudStack's default primary driver answers
DEFAULT_CAPABILITIES = {"VOLUME_SNAPSHOT_QUIESCEVM": "false"}


STORAGE_POOL_OBJ = ResponseObject(
    "storagepool",
    Out("id", "the ID of the storage pool", source="uuid"),
    Out("zoneid", "the Zone ID of the storage pool", source="zone_uuid"),
    Out("zonename", "the Zone name of the storage pool", source="zone_name"),
    Out("podid", "the Pod ID of the storage pool", source="pod_uuid"),
    Out("podname", "the Pod name of the storage pool", source="pod_name"),
    Out("name", "the name of the storage pool"),
    Out("ipaddress", "the IP address of the storage pool", source="host_address"),
    Out("path", "the storage pool path"),
    Out("created", "the date and time the storage pool was created", "date"),
    Out("type", "the storage pool type", source="pool_type"),
    Out("clusterid", "the ID of the cluster for the storage pool", source="cluster_uuid"),
    Out("clustername", "the name of the cluster for the storage pool", source="cluster_name"),
    Out("disksizetotal", "the total disk size of the storage pool", "long", source="total_bytes"),
    Out("disksizeallocated", "the host's currently allocated disk size", "long", source=lambda p: 0),
    Out("disksizeused", "the host's currently used disk size", "long", source="used_bytes"),
    Out("capacityiops", "IOPS CloudStack can provision from this storage pool", "long", source="capacity_iops"),
    Out("allocatediops", "total min IOPS currently in use by volumes", "long", source=lambda p: None),
    Out("tags", "the tags for the storage pool", source=lambda p: ",".join(p.tags) or None),
    Out("istagarule", "Whether the informed tag is a JS interpretable rule or not.", "boolean",
        source=lambda p: False),
    Out("state", "the state of the storage pool"),
    Out("scope", "the scope of the storage pool"),
    Out("overprovisionfactor", "the overprovisionfactor for the storage pool", source=lambda p: None),
    Out("hypervisor", "the hypervisor type of the storage pool"),
    Out("provider", "Storage provider for this pool"),
    Out("storagecapabilities", "the storage pool capabilities", "map", source=lambda p: dict(DEFAULT_CAPABILITIES)),
    Out("hasannotations", "whether this resource has annotations", "boolean", source=lambda p: False),
)
SUCCESS = doc("success", *SUCCESS_FIELDS)


def render_pool(settings: Settings, pool: StoragePool) -> dict[str, Any]:
    """A pool as StoragePoolResponse; the overprovisioning factor is the current setting's (Java's
    Double.toString form, "2.0")."""
    return STORAGE_POOL_OBJ.render(pool, overprovisionfactor=repr(settings.float("storage.overprovisioning.factor")))


@command("createStoragePool", description="Creates a storage pool.", roles=ROOT, response=STORAGE_POOL_OBJ,
         event="STORAGE.POOL.CREATE",
         java_class="org.apache.cloudstack.api.command.admin.storage.CreateStoragePoolCmd",
         params=[P("clusterid", CLUSTER, "the cluster ID for the storage pool", related="listClusters"),
                 P("name", description="the name for the storage pool", required=True),
                 P("podid", POD, "the Pod ID for the storage pool", related="listPods"),
                 P("tags", description="the tags for the storage pool"),
                 P("url", description="the URL of the storage pool", required=True),
                 P("zoneid", ZONE, "the Zone ID for the storage pool", required=True, related="listZones"),
                 P("provider", description="the storage provider name"),
                 P("scope", description="the scope of the storage: cluster or zone"),
                 P("managed", "boolean", "whether the storage should be managed by CloudStack"),
                 P("capacityiops", "long", "IOPS CloudStack can provision from this storage pool"),
                 P("capacitybytes", "long", "bytes CloudStack can provision from this storage pool"),
                 P("hypervisor", description="hypervisor type of the hosts in zone that will be attached to this "
                   "storage pool. KVM, VMware supported as of now.")])
async def create_storage_pool(ctx: CallContext) -> Result:
    pool = await storage_manager(ctx.services).create_pool(
        zone=ctx.get("zoneid"), pod=ctx.get("podid"), cluster=ctx.get("clusterid"), name=ctx.get("name"),
        url=ctx.get("url"), scope=ctx.get("scope"), hypervisor=ctx.get("hypervisor"), tags=ctx.get("tags"),
        capacity_bytes=ctx.get("capacitybytes"), capacity_iops=ctx.get("capacityiops"),
        managed=bool(ctx.get("managed")), provider=ctx.get("provider"))
    ctx.announce(CallEvent(f"Created storage pool {pool.name} ({pool.url})", "StoragePool", pool.uuid, pool.name))
    return ObjectResult("storagepool", render_pool(ctx.api.settings, pool))


@command("listStoragePools", description="Lists storage pools.", roles=INFRA, response=STORAGE_POOL_OBJ,
         listing=True, java_class="org.apache.cloudstack.api.command.admin.storage.ListStoragePoolsCmd",
         params=[P("clusterid", CLUSTER, "list storage pools belongig to the specific cluster", related="listClusters"),
                 P("ipaddress", description="the IP address for the storage pool"),
                 P("name", description="the name of the storage pool"),
                 P("path", description="the storage pool path"),
                 P("podid", POD, "the Pod ID for the storage pool", related="listPods"),
                 P("zoneid", ZONE, "the Zone ID for the storage pool", related="listZones"),
                 P("id", STORAGE_POOL, "the ID of the storage pool", related="listStoragePools"),
                 P("scope", description="the scope of the storage pool"),
                 P("status", description="the status of the storage pool")])
async def list_storage_pools(ctx: CallContext) -> Result:
    pool, zone, pod, cluster = ctx.get("id"), ctx.get("zoneid"), ctx.get("podid"), ctx.get("clusterid")
    scope = ctx.get("scope")
    if scope is not None and scope.strip().upper() not in ("CLUSTER", "ZONE", "HOST", "REGION", "GLOBAL"):
        raise invalid_value(f"Invalid scope {scope}: use one of cluster, zone, host")
    f = PoolFilter(uuid=pool.uuid if pool else None, name=ctx.get("name"), zone_id=zone.id if zone else None,
                   pod_id=pod.id if pod else None, cluster_id=cluster.id if cluster else None,
                   host_address=ctx.get("ipaddress"), path=ctx.get("path"), scope=scope, state=ctx.get("status"),
                   keyword=ctx.get("keyword"))
    total, pools = await ctx.db.storage.search(f, page_of(ctx))
    return ListResult("storagepool", [render_pool(ctx.api.settings, p) for p in pools], total)


@command("updateStoragePool", description="Updates a storage pool.", roles=ROOT, response=STORAGE_POOL_OBJ,
         since="3.0.0", event="STORAGE.POOL.UPDATE", java_class="org.apache.cloudstack.api.command.admin.storage.UpdateStoragePoolCmd",
         params=[P("id", STORAGE_POOL, "The Id of the storage pool", required=True, related="listStoragePools"),
                 P("name", description="Change the name of the storage pool", since="4.15"),
                 P("tags", "list", "Comma-separated list of tags for the storage pool"),
                 P("capacityiops", "long", "IOPS CloudStack can provision from this storage pool"),
                 P("capacitybytes", "long", "Bytes CloudStack can provision from this storage pool"),
                 P("enabled", "boolean", "false to disable the pool for allocation of new volumes, true to enable "
                   "it back.")])
async def update_storage_pool(ctx: CallContext) -> Result:
    pool = await storage_manager(ctx.services).update_pool(
        ctx.get("id"), name=ctx.get("name"), tags=ctx.get("tags"), capacity_bytes=ctx.get("capacitybytes"),
        capacity_iops=ctx.get("capacityiops"), enabled=ctx.get("enabled"))
    ctx.announce(CallEvent(f"Updated storage pool with ID: {pool.uuid}", "StoragePool", pool.uuid, pool.name))
    return ObjectResult("storagepool", render_pool(ctx.api.settings, pool))


@command("deleteStoragePool", description="Deletes a storage pool.", roles=ROOT, response=SUCCESS,
         event="STORAGE.POOL.DELETE",
         java_class="org.apache.cloudstack.api.command.admin.storage.DeletePoolCmd",
         params=[P("id", STORAGE_POOL, "Storage pool id", required=True, related="listStoragePools"),
                 P("forced", "boolean", "Force destroy storage pool (force expunge volumes in Destroyed state as a "
                   "part of pool removal)")])
async def delete_storage_pool(ctx: CallContext) -> Result:
    pool: StoragePool = ctx.get("id")
    await storage_manager(ctx.services).delete_pool(pool, bool(ctx.get("forced")))
    ctx.announce(CallEvent(f"Deleted storage pool with ID: {pool.uuid}", "StoragePool", pool.uuid, pool.name))
    return SuccessResult()


def _prepared(pool: StoragePool) -> Prepared:
    return Prepared("StoragePool", pool.uuid, f"StoragePool:{pool.id}", state={"resource_name": pool.name})


async def _maintain_job(jc: JobContext, prepared: Prepared) -> Result:
    manager = storage_manager(jc.services)
    pool = await jc.db.storage.get_by_uuid(prepared.instance_uuid or "")
    await manager.begin_maintenance(pool)
    pool = await manager.finish_maintenance(pool.uuid)
    jc.announce(EventInfo(f"Preparing storage pool with ID: {pool.uuid} for maintenance", "StoragePool", pool.uuid,
                          pool.name))
    return ObjectResult("storagepool", render_pool(jc.settings, pool))


@command("enableStorageMaintenance", description="Puts storage pool into maintenance state", roles=ROOT,
         response=STORAGE_POOL_OBJ, is_async=True, run=_maintain_job, event="MAINT.PREPARE.PS",
         response_name="prepareprimarystorageformaintenanceresponse",
         java_class="org.apache.cloudstack.api.command.admin.storage.PreparePrimaryStorageForMaintenanceCmd",
         params=[P("id", STORAGE_POOL, "Primary storage ID", required=True, related="listStoragePools")])
async def enable_storage_maintenance(ctx: CallContext) -> Prepared:
    pool: StoragePool = ctx.get("id")
    if not POOL.allows(pool.state, "maintain"):
        raise invalid_value(f"Primary storage with id {pool.uuid} is not ready for migration, as the status is:"
                            f"{pool.state}")
    return _prepared(pool)


async def _cancel_job(jc: JobContext, prepared: Prepared) -> Result:
    manager = storage_manager(jc.services)
    pool = await jc.db.storage.get_by_uuid(prepared.instance_uuid or "")
    await manager.begin_cancel(pool)
    pool = await manager.finish_cancel(pool.uuid)
    jc.announce(EventInfo(f"Canceling maintenance mode for primary storage pool with ID: {pool.uuid}",
                          "StoragePool", pool.uuid, pool.name))
    return ObjectResult("storagepool", render_pool(jc.settings, pool))


@command("cancelStorageMaintenance", description="Cancels maintenance for primary storage", roles=ROOT,
         response=STORAGE_POOL_OBJ, is_async=True, run=_cancel_job, event="MAINT.CANCEL.PS",
         response_name="cancelprimarystoragemaintenanceresponse",
         java_class="org.apache.cloudstack.api.command.admin.storage.CancelPrimaryStorageMaintenanceCmd",
         params=[P("id", STORAGE_POOL, "The primary storage ID", required=True, related="listStoragePools")])
async def cancel_storage_maintenance(ctx: CallContext) -> Prepared:
    pool: StoragePool = ctx.get("id")
    if not POOL.allows(pool.state, "cancel"):
        raise invalid_value(f"Primary storage with id {pool.uuid} is not ready to complete migration, as the "
                            f"status is:{pool.state}")
    return _prepared(pool)
