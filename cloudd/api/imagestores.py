"""Image store commands: addImageStore, addSecondaryStorage, listImageStores, deleteImageStore.

A store is a directory the zone's ssvm serves (`file:///path`, provider NFS as CloudStack names its
image store provider). Adding the first store of a zone starts the zone's ssvm (`SystemVmManager`);
the start is asynchronous, as in CloudStack: a failure is logged and retried at the next start.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.logger import Logger

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.infra_entities import ZONE
from cloudd.api.objects import Out, ResponseObject
from cloudd.api.paging import page_of
from cloudd.api.registry import ROOT, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result, SuccessResult
from cloudd.api.service import EventInfo
from cloudd.db.base import Conflict
from cloudd.db.images import ImageStore
from cloudd.errors import invalid_value, unsupported
from cloudd.orchestration.context import Services

P = Param
log = Logger()
PROVIDERS = ("NFS",)
NFS_NOT_MOUNTED = ("nfs:// image stores are not mounted by cloudd in this release: mount the export on the "
                   "management server and add it as file:///<mount point>")


async def _store(s: Services, uuid: str) -> Any:
    return await s.db.images.get_store_by_uuid(uuid)


IMAGE_STORE = Entity("ImageStore", _store)

STORE_FIELDS = (
    Out("id", "The ID of the image store", source="uuid"),
    Out("zoneid", "The Zone ID of the image store", source="zone_uuid"),
    Out("zonename", "The Zone name of the image store", source="zone_name"),
    Out("name", "The name of the image store"),
    Out("url", "The URL of the image store"),
    Out("protocol", "The protocol of the image store"),
    Out("providername", "The provider name of the image store", source="provider"),
    Out("scope", "The scope of the image store", source=lambda s: "ZONE"),
    Out("readonly", "Defines if store is read-only", "boolean"),
    Out("disksizetotal", "The total disk size of the host", "long", source="total_size"),
    Out("disksizeused", "The host's currently used disk size", "long", source="used_size"),
    Out("hasannotations", "True if the entity has annotations", "boolean", source=lambda s: False),
)
IMAGE_STORE_OBJ = ResponseObject("imagestore", *STORE_FIELDS)
SECONDARY_STORAGE_OBJ = ResponseObject("secondarystorage", *STORE_FIELDS)


def parse_store_url(url: str) -> tuple[str, str]:
    """(protocol, local directory) of an image store URL; 431 for what this release cannot serve."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "nfs":
        if not parts.netloc or not parts.path:
            raise invalid_value(f"Invalid NFS url {url}: it must be nfs://<server>/<path>")
        raise invalid_value(NFS_NOT_MOUNTED)
    if scheme != "file":
        raise invalid_value(f"Unsupported image store url {url}: use file:///<directory> (or nfs://<server>/<path>)")
    if parts.netloc not in ("", "localhost"):
        raise invalid_value(f"Invalid image store url {url}: a file:// url names a directory on the management "
                            "server (file:///<directory>)")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise invalid_value(f"Invalid image store url {url}: the directory must be an absolute path")
    norm = os.path.normpath(path)
    if norm in ("/", "/proc", "/sys", "/dev", "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/root") or \
            norm.startswith(("/proc/", "/sys/", "/dev/", "/etc/")):
        raise invalid_value(f"Invalid image store url {url}: {norm} may not hold an image store")
    return "file", norm


def _details(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in (raw or {}).values():
        key, value = entry.get("key"), entry.get("value")
        if key is not None:
            out[str(key)] = "" if value is None else str(value)
    return out


async def add_store(ctx: CallContext, name: str | None, url: str, provider: str,
                    details: dict[str, str]) -> ImageStore:
    zone = ctx.get("zoneid")
    if zone is None:
        raise invalid_value("A zone id is required for an image store of provider " + provider)
    protocol, path = parse_store_url(url)
    db = ctx.db.images
    if await db.stores_in_zone(zone.id):
        raise unsupported(f"Zone {zone.name} already has an image store; this release serves one image store "
                          "per zone")
    store = await db.add_store(name=name or url, zone_id=zone.id, provider=provider, protocol=protocol, url=url,
                               path=path, details=details)
    systemvms = ctx.services.systemvms
    if systemvms is None:
        log.warn("image store {store} added but no system VM manager runs here: zone {zone} has no ssvm",
                 store=store.name, zone=zone.name)
    else:
        try:
            await systemvms.ensure_zone(store)
        except Exception as exc:
            log.error("the secondary storage VM of zone {zone} did not start: {error}", zone=zone.name,
                      error=str(exc) or type(exc).__name__)
    ctx.announce(EventInfo(f"Image store {store.name} added to zone {zone.name}", "ImageStore", store.uuid,
                           store.name))
    return await db.get_store(store.id)


@command("addImageStore", description="Adds backup image store.", roles=ROOT, response=IMAGE_STORE_OBJ,
         event="IMAGE.STORE.ADD",
         java_class="org.apache.cloudstack.api.command.admin.storage.AddImageStoreCmd",
         params=[P("name", description="the name for the image store"),
                 P("url", description="the URL for the image store", length=2048),
                 P("zoneid", ZONE, "the Zone ID for the image store", related="listZones"),
                 P("provider", description="the image store provider name", required=True),
                 P("details", "map", "the details for the image store. Example: details[0].key=accesskey&"
                   "details[0].value=s389ddssaa&details[1].key=secretkey&details[1].value=8dshfsss")])
async def add_image_store(ctx: CallContext) -> Result:
    provider = ctx.get("provider")
    match = [p for p in PROVIDERS if p.lower() == provider.strip().lower()]
    if not match:
        raise invalid_value(f"can't find image store provider: {provider}")
    if not ctx.get("url"):
        raise invalid_value("The url of an image store is required for provider " + match[0])
    store = await add_store(ctx, ctx.get("name"), ctx.get("url"), match[0], _details(ctx.get("details")))
    return ObjectResult("imagestore", IMAGE_STORE_OBJ.render(store))


@command("addSecondaryStorage", description="Adds secondary storage.", roles=ROOT, response=SECONDARY_STORAGE_OBJ,
         event="IMAGE.STORE.ADD",
         java_class="org.apache.cloudstack.api.command.admin.host.AddSecondaryStorageCmd",
         params=[P("url", description="the URL for the secondary storage", required=True, length=2048),
                 P("zoneid", ZONE, "the Zone ID for the secondary storage", related="listZones")])
async def add_secondary_storage(ctx: CallContext) -> Result:
    store = await add_store(ctx, None, ctx.get("url"), "NFS", {})
    return ObjectResult("secondarystorage", SECONDARY_STORAGE_OBJ.render(store))


@command("listImageStores", description="Lists image stores.", roles=ROOT, response=IMAGE_STORE_OBJ, listing=True,
         java_class="org.apache.cloudstack.api.command.admin.storage.ListImageStoresCmd",
         params=[P("name", description="the name of the image store"),
                 P("protocol", description="the image store protocol"),
                 P("provider", description="the image store provider"),
                 P("zoneid", ZONE, "the Zone ID for the image store", related="listZones"),
                 P("id", IMAGE_STORE, "the ID of the storage pool", related="listImageStores"),
                 P("readonly", "boolean", "read-only status of the image store", since="4.15.0")])
async def list_image_stores(ctx: CallContext) -> Result:
    if ctx.get("readonly"):
        return ListResult("imagestore", [], 0)
    store = ctx.get("id")
    zone = ctx.get("zoneid")
    provider = ctx.get("provider")
    total, stores = await ctx.db.images.search_stores(
        store_id=None if store is None else store.id, zone_id=None if zone is None else zone.id,
        name=ctx.get("name"), protocol=ctx.get("protocol"),
        provider=None if provider is None else provider.upper(), keyword=ctx.get("keyword"), page=page_of(ctx))
    return ListResult("imagestore", [IMAGE_STORE_OBJ.render(s) for s in stores], total)


@command("deleteImageStore", description="Deletes an image store or Secondary Storage.", roles=ROOT,
         event="IMAGE.STORE.DELETE",
         response=ResponseObject("success", Out("success", "true if operation is executed successfully", "boolean"),
                                 Out("displaytext", "any text associated with the success or failure")),
         java_class="org.apache.cloudstack.api.command.admin.storage.DeleteImageStoreCmd",
         params=[P("id", IMAGE_STORE, "The image store ID or Secondary Storage ID.", required=True,
                   related="listImageStores")])
async def delete_image_store(ctx: CallContext) -> Result:
    store: ImageStore = ctx.get("id")
    try:
        await ctx.db.images.remove_store(store.id)
    except Conflict:
        raise invalid_value("Cannot delete image store with active templates backup!") from None
    if not await ctx.db.images.stores_in_zone(store.zone_id) and ctx.services.systemvms is not None:
        await ctx.services.systemvms.zone_removed_store(store.zone_id)
    ctx.announce(EventInfo(f"Image store {store.name} deleted", "ImageStore", store.uuid, store.name))
    return SuccessResult()
