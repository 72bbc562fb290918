"""The real `cs` program and apache-libcloud's CloudStack driver against a daemon on embedded defaults.

Two halves:

* `SimulatedZoneTests`: `twistd cloudd` with no option builds the simulated zone (cloudd/simulator.py):
  `cs listZones`, `cs listTemplates templatefilter=featured`, `cs listServiceOfferings`, `cs listHosts`
  and libcloud's `list_locations()`, `list_images()` and `list_sizes()` see it, ready, out of the box.
* `CreatedThroughApiTests`: what a test creates through the API (a zone with a pod, a cluster, a
  simulated host, an image store and a template from a local HTTP server; a service offering) is what
  the same clients list, with CloudStack's fields.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, ClassVar

from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

from cloudd.hypervisor import write_simulated_host
from tests.integration.support import DaemonCase, poll, run_cs_cli, unique
from tests.integration.test_ssvm import FileServerProcess
from tests.ssvm import images

try:
    from cloudd import simulator as sim
except ImportError:  # pragma: no cover - until the simulated zone lands
    sim = None  # type: ignore[assignment]

# how long the simulated zone may take after the daemon listens (two hosts, an ssvm, two downloads)
ZONE_READY_SECONDS = 240.0


class ClientCase(DaemonCase):
    def cs(self, *args: str) -> Any:
        """Run the installed `cs` program as the root admin; its JSON output (it must succeed)."""
        result = run_cs_cli(self.endpoint, self.creds["apikey"], self.creds["secretkey"], *args)
        self.assertEqual(result.code, 0, f"cs {' '.join(args)} failed: {result.stderr}\n{result.output}")
        return result.output

    def libcloud(self) -> Any:
        cls = get_driver(Provider.CLOUDSTACK)
        driver: Any = cls(self.creds["apikey"], self.creds["secretkey"], host="127.0.0.1", port=self.daemon.port,
                          path="/client/api", secure=False)
        return driver


class SimulatedZoneTests(ClientCase):
    """The simulated zone that `twistd cloudd` builds on embedded defaults, as the clients see it."""

    skip = None if sim is not None else "cloudd.simulator (the simulated zone) is not in this tree yet"
    # the daemon starts on embedded defaults: with the simulated zone
    simulator = True
    # per class: the zone once ready, or why it never was (so later tests fail at once, not after a wait)
    _zone: ClassVar[dict[str, Any] | None] = None
    _not_ready: ClassVar[str | None] = None

    def setUp(self) -> None:
        super().setUp()
        self.zone = self.simulated_zone_ready()

    def simulated_zone_ready(self) -> dict[str, Any]:
        """The simulated zone once its default template and ISO are Ready (waited for on first use)."""
        cls = type(self)
        if cls._zone is not None:
            return cls._zone
        if cls._not_ready is not None:
            self.fail(cls._not_ready)

        def ready() -> dict[str, Any] | None:
            zones = [z for z in self.admin.listZones().get("zone", []) if z["name"] == sim.ZONE]
            if not zones:
                return None
            featured = self.admin.listTemplates(templatefilter="featured", zoneid=zones[0]["id"])
            isos = self.admin.listIsos(isofilter="featured", zoneid=zones[0]["id"])
            done = [t for t in featured.get("template", []) + isos.get("iso", [])
                    if t["name"] in (sim.TEMPLATE, sim.ISO) and t.get("isready")]
            zone: dict[str, Any] = zones[0]
            return zone if len(done) == 2 else None

        try:
            cls._zone = poll(ready, timeout=ZONE_READY_SECONDS, interval=0.5)
        except AssertionError:
            lines = [line for line in self.daemon.log().splitlines()
                     if "AccessLog" not in line and not line.startswith("\t")]
            cls._not_ready = (f"the simulated zone was not ready within {ZONE_READY_SECONDS:g} s; cloudd's log "
                              f"(requests left out):\n" + "\n".join(lines[-40:]))
            self.fail(cls._not_ready)
        assert cls._zone is not None
        return cls._zone

    def test_cs_lists_the_zone(self) -> None:
        """`cs listZones` answers the simulated zone: Advanced networking, enabled for use."""
        zones = self.cs("listZones")
        mine = [z for z in zones["zone"] if z["name"] == sim.ZONE]
        self.assertEqual(len(mine), 1, zones)
        self.assertEqual((mine[0]["id"], mine[0]["networktype"], mine[0]["allocationstate"]),
                         (self.zone["id"], "Advanced", "Enabled"))
        self.assertEqual(zones["count"], len(zones["zone"]))

    def test_cs_lists_the_featured_template_ready(self) -> None:
        """`cs listTemplates templatefilter=featured` shows the default template Ready in the zone, with the
        fields clients read (format, hypervisor, OS type, size, status)."""
        listed = self.cs("listTemplates", "templatefilter=featured")
        mine = [t for t in listed["template"] if t["name"] == sim.TEMPLATE]
        self.assertEqual(len(mine), 1, listed)
        tpl = mine[0]
        self.assertEqual((tpl["isready"], tpl["status"], tpl["zoneid"], tpl["zonename"]),
                         (True, "Download Complete", self.zone["id"], sim.ZONE))
        self.assertEqual((tpl["format"], tpl["hypervisor"], tpl["ostypename"], tpl["templatetype"]),
                         ("QCOW2", "Simulator", sim.TEMPLATE_OS, "USER"))
        self.assertEqual((tpl["isfeatured"], tpl["ispublic"], tpl["passwordenabled"]), (True, True, True))
        self.assertGreater(tpl["size"], 0)
        isos = self.cs("listIsos", "isofilter=featured")
        self.assertEqual([(i["isready"], i["bootable"]) for i in isos["iso"] if i["name"] == sim.ISO],
                         [(True, True)])

    def test_cs_lists_service_offerings(self) -> None:
        """`cs listServiceOfferings` shows CloudStack's default compute offerings with their sizes; system
        offerings are not among them."""
        offerings = {o["name"]: o for o in self.cs("listServiceOfferings")["serviceoffering"]}
        small, medium = offerings["Small Instance"], offerings["Medium Instance"]
        self.assertEqual((small["cpunumber"], small["cpuspeed"], small["memory"]), (1, 500, 512))
        self.assertEqual((medium["cpunumber"], medium["cpuspeed"], medium["memory"]), (1, 1000, 1024))
        self.assertFalse([o for o in offerings.values() if o.get("issystem")])

    def test_cs_lists_the_hosts_up(self) -> None:
        """`cs listHosts type=Routing` shows the simulated hosts Up and Enabled, each with its own CPU and
        memory, in the zone's pod and cluster."""
        hosts = self.cs("listHosts", "type=Routing", f"zoneid={self.zone['id']}")["host"]
        seen = sorted((h["name"], h["cpunumber"], h["cpuspeed"], h["memorytotal"], h["state"], h["resourcestate"],
                       h["hypervisor"], h["clustername"], h["podname"]) for h in hosts)
        self.assertEqual(seen, sorted((name, cpus, mhz, memory * 2**20, "Up", "Enabled", "Simulator", sim.CLUSTER,
                                       sim.POD) for name, cpus, mhz, memory in sim.HOSTS))

    def test_storage_and_ssvm_are_listed(self) -> None:
        """The zone's primary storage is Up with its capacity, its image store is listed, and its ssvm runs."""
        pools = self.cs("listStoragePools", f"zoneid={self.zone['id']}")["storagepool"]
        self.assertEqual([(p["name"], p["state"]) for p in pools], [(sim.PRIMARY, "Up")])
        self.assertGreater(pools[0]["disksizetotal"], 0)
        stores = self.cs("listImageStores", f"zoneid={self.zone['id']}")["imagestore"]
        self.assertEqual([s["name"] for s in stores], [sim.STORE])
        vms = self.cs("listSystemVms", f"zoneid={self.zone['id']}")["systemvm"]
        self.assertEqual([(v["systemvmtype"], v["state"]) for v in vms], [("secondarystoragevm", "Running")])

    def test_libcloud_lists_locations_images_and_sizes(self) -> None:
        """libcloud's driver lists the zone as a location, the default template as an image (also when
        asked for that location) and the default offerings as sizes."""
        driver = self.libcloud()
        locations = [loc for loc in driver.list_locations() if loc.name == sim.ZONE]
        self.assertEqual([loc.id for loc in locations], [self.zone["id"]])
        for found in (driver.list_images(), driver.list_images(location=locations[0])):
            image = [i for i in found if i.name == sim.TEMPLATE]
            self.assertEqual(len(image), 1, [i.name for i in found])
            self.assertEqual((image[0].extra["format"], image[0].extra["hypervisor"], image[0].extra["os"]),
                             ("QCOW2", "Simulator", sim.TEMPLATE_OS))
            self.assertGreater(image[0].extra["size"], 0)
        sizes = {s.name: s for s in driver.list_sizes()}
        self.assertEqual((sizes["Small Instance"].ram, sizes["Small Instance"].extra["cpu"]), (512, 1))
        self.assertEqual((sizes["Medium Instance"].ram, sizes["Medium Instance"].extra["cpu"]), (1024, 1))


class CreatedThroughApiTests(ClientCase):
    """What a test creates through the API is what `cs` and libcloud list."""

    def make_zone(self) -> dict[str, Any]:
        """A zone with a pod, a Simulator cluster and one simulated host (6 CPUs at 2200 MHz, 6 GiB)."""
        zone = self.admin.createZone(name=unique("cli-zone"), dns1="192.0.2.53", internaldns1="192.0.2.53",
                                     networktype="Advanced")["zone"]
        pod = self.admin.createPod(zoneid=zone["id"], name=unique("cli-pod"), gateway="192.0.2.1",
                                   netmask="255.255.255.0", startip="192.0.2.10", endip="192.0.2.20")["pod"]
        found = self.admin.addCluster(zoneid=zone["id"], podid=pod["id"], clustername=unique("cli-cluster"),
                                      hypervisor="Simulator", clustertype="CloudManaged")["cluster"]
        cluster = found[0] if isinstance(found, list) else found
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        name = unique("cli-host")
        url = write_simulated_host(os.path.join(directory, "node.xml"), name, 6, 2200, 6144)
        host = self.admin.addHost(zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=url,
                                  hypervisor="Simulator", username="root", password="unused")["host"][0]
        return {"zone": zone, "pod": pod, "cluster": cluster, "host": host}

    def test_cs_and_libcloud_see_a_new_zone_and_host(self) -> None:
        """A zone and host made through the API: `cs listZones` and `cs listHosts` show them with the CPU and
        memory read from the host's node file; libcloud lists the zone as a location."""
        made = self.make_zone()
        zone = made["zone"]
        listed = self.cs("listZones", f"id={zone['id']}")
        self.assertEqual([(z["name"], z["networktype"]) for z in listed["zone"]], [(zone["name"], "Advanced")])
        hosts = self.cs("listHosts", f"zoneid={zone['id']}")
        self.assertEqual([(h["id"], h["cpunumber"], h["cpuspeed"], h["memorytotal"], h["type"], h["hypervisor"])
                          for h in hosts["host"]],
                         [(made["host"]["id"], 6, 2200, 6144 * 2**20, "Routing", "Simulator")])
        self.assertEqual(hosts["host"][0]["clusterid"], made["cluster"]["id"])
        locations = {loc.id: loc.name for loc in self.libcloud().list_locations()}
        self.assertEqual(locations.get(zone["id"]), zone["name"])

    def test_cs_and_libcloud_see_a_new_offering(self) -> None:
        """A service offering made through the API is listed by `cs listServiceOfferings` and as a libcloud
        size with its memory and CPU count."""
        name = unique("cli-offering")
        offering = self.admin.createServiceOffering(name=name, displaytext="three by 3 GiB", cpunumber=3,
                                                    cpuspeed=1500, memory=3072)["serviceoffering"]
        listed = self.cs("listServiceOfferings", f"name={name}")["serviceoffering"]
        self.assertEqual([(o["id"], o["cpunumber"], o["cpuspeed"], o["memory"]) for o in listed],
                         [(offering["id"], 3, 1500, 3072)])
        sizes = {s.id: s for s in self.libcloud().list_sizes()}
        self.assertEqual((sizes[offering["id"]].name, sizes[offering["id"]].ram, sizes[offering["id"]].extra["cpu"]),
                         (name, 3072, 3))

    def test_cs_and_libcloud_see_a_registered_template(self) -> None:
        """A template registered from a local HTTP server into a new zone's image store becomes Ready; `cs
        listTemplates templatefilter=executable` and libcloud's list_images (for that location) show it."""
        made = self.make_zone()
        zone = made["zone"]
        self.admin.updateConfiguration(name="secstorage.allowed.internal.sites", value="127.0.0.1/32")
        store = os.path.abspath(self.mktemp())
        os.makedirs(store)
        self.admin.addImageStore(name=unique("cli-store"), provider="NFS", url=f"file://{store}", zoneid=zone["id"])
        self.admin.updateZone(id=zone["id"], allocationstate="Enabled")
        files = os.path.abspath(self.mktemp())
        os.makedirs(files)
        image = images.qcow2(32 * 2**20, padding=128 * 1024)
        with open(os.path.join(files, "disk.qcow2"), "wb") as f:
            f.write(image)
        server = FileServerProcess(files)
        self.addCleanup(server.stop)
        ostype = self.admin.listOsTypes(description="Other Linux (64-bit)")["ostype"][0]
        name = unique("cli-tpl")
        registered = self.admin.registerTemplate(
            name=name, displaytext="registered by the test", url=server.url("disk.qcow2"), format="QCOW2",
            hypervisor="Simulator", ostypeid=ostype["id"], zoneid=zone["id"], ispublic=True,
            checksum="{SHA-256}" + hashlib.sha256(image).hexdigest())["template"][0]

        def ready() -> bool:
            tpl = self.admin.listTemplates(templatefilter="executable", id=registered["id"])["template"][0]
            self.assertNotIn("rror", tpl.get("status", ""), tpl)
            return bool(tpl["isready"])

        poll(ready, timeout=120, interval=0.2)
        listed = [t for t in self.cs("listTemplates", "templatefilter=executable", f"zoneid={zone['id']}")["template"]
                  if t["id"] == registered["id"]]
        self.assertEqual([(t["name"], t["status"], t["size"], t["ostypename"]) for t in listed],
                         [(name, "Download Complete", 32 * 2**20, "Other Linux (64-bit)")])
        location = next(loc for loc in self.libcloud().list_locations() if loc.id == zone["id"])
        found = [i for i in self.libcloud().list_images(location=location) if i.id == registered["id"]]
        self.assertEqual([(i.name, i.extra["format"], i.extra["hypervisor"], i.extra["size"]) for i in found],
                         [(name, "QCOW2", "Simulator", 32 * 2**20)])
