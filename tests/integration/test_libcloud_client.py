"""apache-libcloud's CloudStack driver and connection against a real daemon."""

from __future__ import annotations

from typing import Any

from libcloud.common.types import ProviderError
from libcloud.compute.providers import get_driver
from libcloud.compute.types import InvalidCredsError, Provider

from tests.integration.support import DaemonCase, unique


class LibcloudTests(DaemonCase):
    """libcloud signs version 1 (no expires), sorts lower-cased names and keeps [ ] * ~ raw."""

    def driver(self, key: str | None = None, secret: str | None = None) -> Any:
        cls = get_driver(Provider.CLOUDSTACK)
        driver: Any = cls(key or self.creds["apikey"], secret or self.creds["secretkey"], host="127.0.0.1",
                     path="/client/api", port=self.daemon.port, secure=False)
        driver.connection.poll_interval = 0.02
        return driver

    def test_sync_request_lists_accounts(self) -> None:
        """connection._sync_request returns the object under `<command>response`."""
        connection = self.driver().connection
        accounts = connection._sync_request("listAccounts", params={"listall": "true"})
        self.assertGreaterEqual(accounts["count"], 1)
        self.assertIn("admin", [a["name"] for a in accounts["account"]])
        self.assertEqual(connection._sync_request("listAccounts", params={"name": unique("none")}), {})

    def test_signature_variants_of_libcloud_are_accepted(self) -> None:
        """A mixed-case name (sorted lower-cased by libcloud) and raw [ ] * ~ in a value verify."""
        driver = self.driver()
        name = unique("lc [x]*~ y")
        # "Name" sorts before "apiKey" as received but after it lower-cased: libcloud signs the latter
        domain = driver._sync_request("createDomain", params={"Name": name})["domain"]
        self.assertEqual(domain["name"], name)
        listed = driver.connection._sync_request("listDomains", params={"id": domain["id"]})
        self.assertEqual([d["name"] for d in listed["domain"]], [name])

    def test_async_request_polls_the_job(self) -> None:
        """_async_request submits deleteDomain, polls queryAsyncJobResult and returns the jobresult."""
        connection = self.driver().connection
        created = connection._sync_request("createDomain", params={"name": unique("lcdom")})["domain"]
        result = connection._async_request("deleteDomain", params={"id": created["id"]})
        self.assertEqual(result, {"success": True})
        self.assertEqual(connection._sync_request("listDomains", params={"id": created["id"]}), {})

    def test_bad_keys_raise_invalid_creds(self) -> None:
        """A wrong secret or an unknown API key gets 401, which libcloud raises as InvalidCredsError."""
        for key, secret in ((self.creds["apikey"], "not-the-secret"), ("unknown-key", self.creds["secretkey"])):
            connection = self.driver(key, secret).connection
            self.assertRaises(InvalidCredsError, connection._sync_request, "listAccounts")

    def test_other_errors_raise_provider_error(self) -> None:
        """Non-401 errors surface as ProviderError with the server's errortext and status."""
        connection = self.driver().connection
        with self.assertRaises(ProviderError) as caught:
            connection._sync_request("createDomain")
        self.assertEqual((caught.exception.http_code, caught.exception.value),
                         (431, "Unable to execute API command createdomain due to missing parameter name"))
        domain = connection._sync_request("createDomain", params={"name": unique("busy")})["domain"]
        connection._sync_request("createAccount", params={
            "accounttype": "0", "username": unique("lcuser"), "password": "pw-Secret-1", "firstname": "F",
            "lastname": "L", "email": "f@example.com", "domainid": domain["id"]})
        with self.assertRaises(ProviderError) as caught:
            connection._async_request("deleteDomain", params={"id": domain["id"]})
        self.assertEqual(caught.exception.http_code, 536)
        self.assertIn("Can't delete the domain yet", caught.exception.value)
        result = connection._async_request("deleteDomain", params={"id": domain["id"], "cleanup": "True"})
        self.assertEqual(result, {"success": True})
