"""Zone commands on the in-process cloud: createZone, listZones, updateZone, deleteZone, with
CloudStack's fields, errors and visibility rules (every user lists zones, Disabled ones hidden)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.util.infra import InfraCloud
from tests.util.tenants import Tenants

UNKNOWN = "7b9e0e4e-0f57-4c52-9a54-1a2b3c4d5e6f"


def bad_uuid_text(command: str, param: str, value: str) -> str:
    return (f"Unable to execute API command {command.lower()} due to invalid value. Invalid parameter {param} "
            f"value={value} due to incorrect long value format, or entity does not exist or due to incorrect "
            "parameter annotation for the field in api cmd class.")


class ZoneCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.infra = InfraCloud.make(self, start_monitor=False)

    def error(self, command: str, status: int, **params: Any) -> str:
        r = self.infra.call(command, **params)
        self.assertEqual(r.status, status, r.body)
        body = r.inner()
        self.assertEqual(body["errorcode"], status)
        text: str = body["errortext"]
        return text

    def names(self, **params: Any) -> list[str]:
        return [z["name"] for z in self.infra.ok("listZones", **params).get("zone", [])]


class CreateZoneTests(ZoneCase):
    def test_fields(self) -> None:
        """createZone answers the zone with CloudStack's field names and the values given."""
        zone = self.infra.zone("z1", dns2="8.8.4.4", ip6dns1="2001:db8::1", internaldns2="10.0.0.3",
                               guestcidraddress="10.1.1.0/24", domain="cloud.example", localstorageenabled="true",
                               networktype="advanced")
        self.assertEqual(zone["name"], "z1")
        self.assertEqual((zone["dns1"], zone["dns2"], zone["ip6dns1"]), ("8.8.8.8", "8.8.4.4", "2001:db8::1"))
        self.assertEqual((zone["internaldns1"], zone["internaldns2"]), ("10.0.0.2", "10.0.0.3"))
        self.assertEqual(zone["guestcidraddress"], "10.1.1.0/24")
        self.assertEqual(zone["domain"], "cloud.example")
        self.assertEqual(zone["networktype"], "Advanced")
        self.assertIs(zone["localstorageenabled"], True)
        self.assertIs(zone["securitygroupsenabled"], False)
        self.assertEqual(zone["allocationstate"], "Enabled")
        self.assertEqual(zone["dhcpprovider"], "VirtualRouter")
        self.assertEqual(zone["tags"], [])
        self.assertNotIn("domainid", zone)
        self.assertEqual(len(zone["id"]), 36)

    def test_basic_zone_and_default_disabled(self) -> None:
        """A Basic zone is accepted; without allocationstate a zone is created Disabled, as in CloudStack."""
        zone = self.infra.ok("createZone", name="b", dns1="1.1.1.1", internaldns1="10.0.0.1",
                             networktype="Basic", securitygroupenabled="true")["zone"]
        self.assertEqual(zone["networktype"], "Basic")
        self.assertEqual(zone["allocationstate"], "Disabled")
        self.assertIs(zone["securitygroupsenabled"], True)

    def test_missing_parameters(self) -> None:
        """Each required parameter missing is CloudStack's 431 naming it; nothing is stored."""
        full = {"name": "z", "dns1": "8.8.8.8", "internaldns1": "10.0.0.2", "networktype": "Advanced"}
        for missing in full:
            params = {k: v for k, v in full.items() if k != missing}
            text = self.error("createZone", 431, **params)
            self.assertEqual(text, f"Unable to execute API command createzone due to missing parameter {missing}")
        self.assertEqual(self.names(), [])

    def test_invalid_values(self) -> None:
        """A bad network type, DNS address, CIDR or allocation state is 431 and stores nothing."""
        base = {"name": "z", "dns1": "8.8.8.8", "internaldns1": "10.0.0.2", "networktype": "Advanced"}
        for bad in ({"networktype": "Fancy"}, {"dns1": "not-an-ip"}, {"internaldns1": "2001:db8::1"},
                    {"ip6dns1": "10.0.0.1"}, {"guestcidraddress": "10.0.0.0/99"}, {"allocationstate": "Maybe"},
                    {"name": "  "}):
            text = self.error("createZone", 431, **{**base, **bad})
            self.assertTrue(text, bad)
        self.assertEqual(self.names(), [])

    def test_duplicate_name(self) -> None:
        """A second zone of the same name is refused with 431."""
        self.infra.zone("dup")
        self.assertIn("already exists", self.error("createZone", 431, name="dup", dns1="8.8.8.8",
                                                   internaldns1="10.0.0.2", networktype="Advanced"))

    def test_create_records_event(self) -> None:
        """createZone completes with a ZONE.CREATE event naming the zone."""
        zone = self.infra.zone("evz")
        events = self.infra.ok("listEvents", type="ZONE.CREATE")["event"]
        self.assertEqual(len(events), 1)
        self.assertIn("evz", events[0]["description"])
        self.assertEqual(events[0].get("resourceid", zone["id"]), zone["id"])


class ListZonesTests(ZoneCase):
    def setUp(self) -> None:
        super().setUp()
        self.a = self.infra.zone("alpha")
        self.b = self.infra.zone("beta", networktype="Basic")
        self.c = self.infra.zone("gamma-off", allocationstate="Disabled")

    def test_filters(self) -> None:
        """id, ids, name, networktype and keyword each narrow the list."""
        self.assertEqual(self.names(), ["alpha", "beta", "gamma-off"])
        self.assertEqual(self.names(id=self.b["id"]), ["beta"])
        self.assertEqual(self.names(ids=f"{self.a['id']},{self.c['id']}"), ["alpha", "gamma-off"])
        self.assertEqual(self.names(name="alpha"), ["alpha"])
        self.assertEqual(self.names(networktype="Basic"), ["beta"])
        self.assertEqual(self.names(keyword="amm"), ["gamma-off"])
        self.assertEqual(self.names(showcapacities="true"), ["alpha", "beta", "gamma-off"])

    def test_paging(self) -> None:
        """page/pagesize give one page and the total count."""
        body = self.infra.ok("listZones", page=2, pagesize=2)
        self.assertEqual(body["count"], 3)
        self.assertEqual([z["name"] for z in body["zone"]], ["gamma-off"])

    def test_unknown_id(self) -> None:
        """An unknown zone id is CloudStack's 431 text."""
        self.assertEqual(self.error("listZones", 431, id=UNKNOWN), bad_uuid_text("listZones", "id", UNKNOWN))

    def test_users_see_enabled_zones_only(self) -> None:
        """A plain user and a domain admin list zones, without the Disabled one; the root admin sees all."""
        tenants = Tenants(self.infra.cloud)
        for party in ("a_user", "a_admin"):
            r = tenants.call(party, "listZones")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual([z["name"] for z in r.inner()["zone"]], ["alpha", "beta"])

    def test_dedicated_zone(self) -> None:
        """A zone dedicated to a domain is listed to that domain's users (and its sub-domains'), not to others."""
        tenants = Tenants(self.infra.cloud)
        zone = self.infra.zone("private", domainid=tenants.a)
        self.assertEqual(zone["domainid"], tenants.a)
        self.assertEqual(zone["domainname"], "tenant-a")

        def seen(party: str) -> list[str]:
            r = tenants.call(party, "listZones")
            self.assertEqual(r.status, 200, r.body)
            return [z["name"] for z in r.inner().get("zone", [])]

        self.assertIn("private", seen("a_user"))
        self.assertIn("private", seen("sub_user"))
        self.assertNotIn("private", seen("b_user"))
        self.assertEqual(self.names(domainid=tenants.a), ["private"])

    def test_user_may_not_change_zones(self) -> None:
        """createZone, updateZone and deleteZone are not available to a plain user (CloudStack's 432)."""
        tenants = Tenants(self.infra.cloud)
        for command, params in (("createZone", {"name": "x", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1",
                                                "networktype": "Advanced"}),
                                ("updateZone", {"id": self.a["id"], "name": "y"}),
                                ("deleteZone", {"id": self.a["id"]})):
            r = tenants.call("a_user", command, **params)
            self.assertEqual(r.status, 432, r.body)
            self.assertIn("does not exist or is not available", r.inner()["errortext"])
        self.assertEqual(self.names(name="alpha"), ["alpha"])


class UpdateDeleteZoneTests(ZoneCase):
    def test_update(self) -> None:
        """updateZone changes the name, DNS and allocation state; the list shows the new values."""
        zone = self.infra.zone("old")
        updated = self.infra.ok("updateZone", id=zone["id"], name="new", dns2="9.9.9.9",
                                allocationstate="Disabled")["zone"]
        self.assertEqual((updated["name"], updated["dns2"], updated["allocationstate"]), ("new", "9.9.9.9", "Disabled"))
        self.assertEqual(updated["dns1"], zone["dns1"])
        listed = self.infra.ok("listZones", id=zone["id"])["zone"][0]
        self.assertEqual(listed["name"], "new")
        enabled = self.infra.ok("updateZone", id=zone["id"], allocationstate="Enabled")["zone"]
        self.assertEqual(enabled["allocationstate"], "Enabled")

    def test_update_bad_input(self) -> None:
        """Bad values and unknown ids are 431 and change nothing."""
        zone = self.infra.zone("keep")
        self.error("updateZone", 431, id=zone["id"], dns1="bad")
        self.error("updateZone", 431, id=zone["id"], allocationstate="Sleeping")
        self.error("updateZone", 431, id=zone["id"], dns1="")
        self.error("updateZone", 431, id=UNKNOWN, name="x")
        self.assertEqual(self.infra.ok("listZones", id=zone["id"])["zone"][0], zone)

    def test_delete_refused_while_not_empty(self) -> None:
        """deleteZone is 536 while a pod lives in the zone, and succeeds once it is gone."""
        zone = self.infra.zone("full")
        pod = self.infra.pod(zone)
        text = self.error("deleteZone", 536, id=zone["id"])
        self.assertIn("not deletable", text)
        self.assertEqual(self.names(), ["full"])
        self.infra.ok("deletePod", id=pod["id"])
        self.assertIs(self.infra.ok("deleteZone", id=zone["id"])["success"], True)
        self.assertEqual(self.names(), [])
        self.assertEqual(self.error("deleteZone", 431, id=zone["id"]), bad_uuid_text("deleteZone", "id", zone["id"]))

    def test_deleted_name_reusable(self) -> None:
        """A deleted zone's name may be used again."""
        zone = self.infra.zone("again")
        self.infra.ok("deleteZone", id=zone["id"])
        self.assertNotEqual(self.infra.zone("again")["id"], zone["id"])
