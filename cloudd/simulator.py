"""The simulated zone of the embedded setup (DESIGN.md §2, §3.2): a working single-machine cloud
built at start, through the same commands an operator would send, as the root admin.

It makes, unless each already exists (matched by name, so a second start changes nothing):
a zone, a pod, a cluster, two simulated hosts (libvirt test-driver node files with their own CPU
and memory), a primary storage directory, an image store directory (served by a supervised local
ssvm), a default template and an ISO built here (a small qcow2 from `qemu-img`, an ISO from
pycdlib) and registered from a loopback HTTP server that lives only while ssvm downloads them, so
no internet is needed. The service and disk offerings are the seeded defaults.

A failed step is logged and the rest goes on: the API serves whatever was made.
`twistd cloudd --no-simulator` skips all of it, for operators building a real zone.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.server import Site
from twisted.web.static import File

from cloudd.db.base import Scope

if TYPE_CHECKING:
    from cloudd.api.context import Caller
    from cloudd.api.service import ApiService

ZONE = "Simulated Zone"
POD = "Simulated Pod"
CLUSTER = "Simulated Cluster"
PRIMARY = "Simulated Primary Storage"
STORE = "Simulated Image Store"
TEMPLATE = "Simulated Debian 12"
ISO = "Simulated Tools ISO"
# (name, CPUs, MHz, memory MiB): hosts of different sizes, so placement has something to choose
HOSTS = (("sim-host-1", 8, 2400, 16384), ("sim-host-2", 16, 2000, 32768))
TEMPLATE_OS = "Debian GNU/Linux 12 (64-bit)"
# how long the start waits for ssvm to download the template and the ISO from the loopback server
DOWNLOAD_WAIT = 120.0


class SimulatorError(Exception):
    """A command of the simulated zone's build was refused."""


class SimulatedZone:
    log = Logger()

    def __init__(self, api: ApiService, basedir: str, reactor: Any,
                 run: Callable[..., defer.Deferred[Any]]) -> None:
        """`run(fn, *args)` runs blocking work (files, qemu-img) off the reactor thread."""
        self.api = api
        self.basedir = basedir
        self.reactor = reactor
        self.run = run
        self.root = os.path.join(basedir, "simulator")
        self._caller: Caller | None = None

    async def _admin(self) -> Caller:
        from cloudd.api.context import Caller

        if self._caller is None:
            _, users = await self.api.db.accounts.list_users(Scope(), username="admin")
            user = next(u for u in users if u.account.name == "admin" and u.account.role_type == "Admin")
            self._caller = Caller(user)
        return self._caller

    async def call(self, command: str, **params: Any) -> dict[str, Any]:
        """Send one command as the root admin; its response object, or SimulatorError."""
        raw = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
        answer = await self.api.dispatch(await self._admin(), command, raw, http_method="POST")
        if answer.status != 200:
            raise SimulatorError(f"{command}: {answer.status} {answer.body.get('errortext', '')}")
        return answer.body

    async def find(self, command: str, obj: str, name: str, **params: Any) -> dict[str, Any] | None:
        body = await self.call(command, **params)
        for item in body.get(obj, []):
            if item.get("name") == name:
                return dict(item)
        return None

    async def ensure(self) -> None:
        """Build what is missing; log and go on after a failure."""
        await self.run(os.makedirs, self.root, 0o700, True)
        try:
            zone = await self._zone()
            pod = await self._pod(zone)
            cluster = await self._cluster(zone, pod)
            for name, cpus, mhz, memory in HOSTS:
                await self._host(zone, pod, cluster, name, cpus, mhz, memory)
            await self._primary(zone, pod, cluster)
            await self._store(zone)
            await self._images(zone)
        except SimulatorError as exc:
            self.log.error("the simulated zone is incomplete: {error}", error=str(exc))
            return
        self.log.info("the simulated zone {zone} is ready", zone=ZONE)

    async def _zone(self) -> dict[str, Any]:
        zone = await self.find("listZones", "zone", ZONE)
        if zone is None:
            self.log.info("creating the simulated zone")
            zone = (await self.call("createZone", name=ZONE, networktype="Advanced", dns1="127.0.0.1",
                                    internaldns1="127.0.0.1", guestcidraddress="10.1.0.0/16", allocationstate="Enabled",
                                    localstorageenabled=True))["zone"]
        return zone

    async def _pod(self, zone: dict[str, Any]) -> dict[str, Any]:
        pod = await self.find("listPods", "pod", POD, zoneid=zone["id"])
        if pod is None:
            pod = (await self.call("createPod", zoneid=zone["id"], name=POD, gateway="192.168.56.1",
                                   netmask="255.255.255.0", startip="192.168.56.10",
                                   endip="192.168.56.200"))["pod"]
        return pod

    async def _cluster(self, zone: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
        cluster = await self.find("listClusters", "cluster", CLUSTER, zoneid=zone["id"])
        if cluster is None:
            body = await self.call("addCluster", zoneid=zone["id"], podid=pod["id"], clustername=CLUSTER,
                                   hypervisor="Simulator", clustertype="CloudManaged")
            found = body["cluster"]
            cluster = found[0] if isinstance(found, list) else found
        return cluster

    async def _host(self, zone: dict[str, Any], pod: dict[str, Any], cluster: dict[str, Any], name: str,
                    cpus: int, mhz: int, memory: int) -> None:
        from cloudd.hypervisor import write_simulated_host

        if await self.find("listHosts", "host", name, zoneid=zone["id"]) is not None:
            return
        path = os.path.join(self.root, f"{name}.xml")
        uri = await self.run(write_simulated_host, path, name, cpus, mhz, memory)
        await self.call("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=uri,
                        hypervisor="Simulator", username="root", password="unused")

    async def _primary(self, zone: dict[str, Any], pod: dict[str, Any], cluster: dict[str, Any]) -> None:
        if await self.find("listStoragePools", "storagepool", PRIMARY, zoneid=zone["id"]) is not None:
            return
        path = os.path.join(self.root, "primary")
        await self.run(os.makedirs, path, 0o700, True)
        await self.call("createStoragePool", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"],
                        name=PRIMARY, url=f"file://{path}", scope="cluster", hypervisor="Simulator")

    async def _store(self, zone: dict[str, Any]) -> None:
        if await self.find("listImageStores", "imagestore", STORE, zoneid=zone["id"]) is not None:
            return
        # the embedded ssvm fetches the default images from this process's loopback server
        sites = self.api.settings.get("secstorage.allowed.internal.sites")
        if "127.0.0.1" not in sites:
            await self.call("updateConfiguration", name="secstorage.allowed.internal.sites",
                            value=",".join(s for s in (sites, "127.0.0.1/32") if s))
        path = os.path.join(self.root, "secondary")
        await self.run(os.makedirs, path, 0o700, True)
        await self.call("addImageStore", name=STORE, provider="NFS", url=f"file://{path}", zoneid=zone["id"])

    async def _images(self, zone: dict[str, Any]) -> None:
        template = await self.find("listTemplates", "template", TEMPLATE, templatefilter="all")
        iso = await self.find("listIsos", "iso", ISO, isofilter="all")
        if template is not None and iso is not None:
            return
        files = os.path.join(self.root, "images")
        await self.run(os.makedirs, files, 0o700, True)
        image = os.path.join(files, "debian-12-simulated.qcow2")
        tools = os.path.join(files, "tools.iso")
        await self._qemu_img(image)
        await self.run(_write_iso, tools)
        site = Site(File(files))
        site.noisy = False
        port = await TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1").listen(site)
        base = f"http://127.0.0.1:{port.getHost().port}"
        try:
            ostype = await self._ostype()
            if template is None:
                digest = await self.run(_sha256, image)
                await self.call("registerTemplate", name=TEMPLATE, displaytext="Debian 12 (simulated, 64 MiB)",
                                url=f"{base}/debian-12-simulated.qcow2", format="QCOW2", hypervisor="Simulator",
                                ostypeid=ostype, zoneid=zone["id"], isfeatured=True, ispublic=True,
                                isextractable=True, passwordenabled=True, sshkeyenabled=True,
                                checksum=f"{{SHA-256}}{digest}")
            if iso is None:
                await self.call("registerIso", name=ISO, displaytext="Tools ISO (simulated)",
                                url=f"{base}/tools.iso", ostypeid=ostype, zoneid=zone["id"], isfeatured=True,
                                ispublic=True, bootable=True)
            await self._wait_ready(zone)
        finally:
            await port.stopListening()

    async def _ostype(self) -> str | None:
        body = await self.call("listOsTypes", description=TEMPLATE_OS)
        types = body.get("ostype", [])
        return types[0]["id"] if types else None

    async def _wait_ready(self, zone: dict[str, Any]) -> None:
        """Until ssvm has the template and the ISO (or reports a failure), at most DOWNLOAD_WAIT."""
        waited = 0.0
        while waited < DOWNLOAD_WAIT:
            template = await self.find("listTemplates", "template", TEMPLATE, templatefilter="all")
            iso = await self.find("listIsos", "iso", ISO, isofilter="all")
            pending = [x for x in (template, iso) if x is not None and not x.get("isready") and _downloading(x)]
            if not pending:
                for x in (template, iso):
                    if x is not None and not x.get("isready"):
                        self.log.error("the simulated zone's {name} did not download: {status}", name=x["name"],
                                       status=x.get("status"))
                return
            await deferLater(self.reactor, 0.5)
            waited += 0.5
        self.log.warn("the simulated zone's images are still downloading after {wait}s", wait=DOWNLOAD_WAIT)

    async def _qemu_img(self, path: str) -> None:
        if await self.run(os.path.exists, path):
            return
        from twisted.internet.utils import getProcessOutputAndValue

        out, err, code = await getProcessOutputAndValue(
            "qemu-img", ["create", "-q", "-f", "qcow2", path + ".part", "64M"], env=dict(os.environ),
            reactor=self.reactor)
        if code != 0:
            raise SimulatorError(f"qemu-img could not make the default template: {err.decode(errors='replace')}")
        await self.run(os.replace, path + ".part", path)


def _downloading(image: dict[str, Any]) -> bool:
    """Still on its way (no status yet, "N% Downloaded", installing), as opposed to failed."""
    status = str(image.get("status") or "")
    return not status or status.endswith("% Downloaded") or status in ("NOT_DOWNLOADED", "Installing Template")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_iso(path: str) -> None:
    """A small ISO 9660 image with one text file, written once."""
    if os.path.exists(path):
        return
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, vol_ident="CLOUDD_TOOLS")
    text = b"cloudd simulated tools ISO\n"
    iso.add_fp(io.BytesIO(text), len(text), "/README.TXT;1", joliet_path="/README.txt")
    iso.write(path + ".part")
    iso.close()
    os.replace(path + ".part", path)
