"""The end-to-end identity story: domains, accounts, users and their own API keys, over real clients.

As the root admin (the `cs` client), each test builds a tenant: a domain with a child domain, a
domain-admin account and a user account in the domain, a user account in the child, an extra user
`bob` added to the user account with `createUser`, and keys from `registerUserKeys`. Requests are
then signed with those new keys (GET and POST, signature versions 1 and 3) and the tests follow the
story through listing, disabling, enabling, deleting and the events it leaves.

`StoryTests` runs on the default SQLite database; `StoryOnServerDatabaseTests` runs the same tests
against the MariaDB/MySQL database named by CLOUDD_TEST_DB_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from cs import CloudStack, CloudStackApiException

from tests.integration.support import DaemonCase, signed_v1
from tests.util.daemon import ROOT
from tests.util.db import ENV, test_db_url, using_server_db, wipe

PASSWORD = "pw-Secret-1"
CREDENTIALS_FAILED = "unable to verify user credentials and/or request signature"


@dataclass
class Tenant:
    tag: str
    domain: dict[str, Any]
    child: dict[str, Any]
    dadmin: dict[str, Any]  # domain-admin account in `domain`
    alice: dict[str, Any]  # user account in `domain`
    carol: dict[str, Any]  # user account in `child`
    bob: dict[str, Any]  # extra user of `alice`
    bob_keys: dict[str, str]
    dadmin_keys: dict[str, str]


class StoryMixin:
    """The story's tests; mixed into DaemonCase subclasses (one per database)."""

    admin: CloudStack
    creds: dict[str, str]
    assertEqual: Any
    assertIn: Any
    assertNotIn: Any
    assertRaises: Any
    assertTrue: Any
    client: Any  # DaemonCase.client
    http: Any  # DaemonCase.http
    wait_job: Any  # DaemonCase.wait_job

    def make_tenant(self) -> Tenant:
        tag = uuid.uuid4().hex[:8]
        admin = self.admin
        domain = admin.createDomain(name=f"story-{tag}")["domain"]
        child = admin.createDomain(name=f"child-{tag}", parentdomainid=domain["id"])["domain"]

        def account(kind: int, name: str, where: dict[str, Any]) -> dict[str, Any]:
            created: dict[str, Any] = admin.createAccount(
                accounttype=kind, username=name, password=PASSWORD, firstname=name, lastname="Story",
                email=f"{name}@example.com", domainid=where["id"])["account"]
            return created

        dadmin = account(2, f"dadmin-{tag}", domain)
        alice = account(0, f"alice-{tag}", domain)
        carol = account(0, f"carol-{tag}", child)
        bob = admin.createUser(account=alice["name"], domainid=domain["id"], username=f"bob-{tag}",
                               password=PASSWORD, firstname="Bob", lastname="Story",
                               email="bob@example.com")["user"]
        bob_keys = admin.registerUserKeys(id=bob["id"])["userkeys"]
        dadmin_keys = admin.registerUserKeys(id=dadmin["user"][0]["id"])["userkeys"]
        return Tenant(tag, domain, child, dadmin, alice, carol, bob, bob_keys, dadmin_keys)

    def as_user(self, keys: dict[str, str], method: str = "get") -> CloudStack:
        return self.client(keys["apikey"], keys["secretkey"], method=method)

    def assert_refused_401(self, keys: dict[str, str]) -> None:
        with self.assertRaises(CloudStackApiException) as caught:
            self.as_user(keys).listAccounts()
        self.assertEqual((caught.exception.error["errorcode"], caught.exception.error["errortext"]),
                         (401, CREDENTIALS_FAILED))
        raw = self.http(signed_v1("listAccounts", keys["apikey"], keys["secretkey"]))
        self.assertEqual(raw.status, 401)

    def names(self, listed: dict[str, Any], key: str = "account") -> set[str]:
        return {item["name"] for item in listed.get(key, [])}

    # --- tests ------------------------------------------------------------------------------

    def test_new_keys_sign_as_their_user(self) -> None:
        """bob's new keys work over GET and POST, v1 and v3, and only ever show bob's own account."""
        t = self.make_tenant()
        for method in ("get", "post"):
            listed = self.as_user(t.bob_keys, method).listAccounts(listall=True)
            self.assertEqual((listed["count"], [a["id"] for a in listed["account"]]), (1, [t.alice["id"]]))
            self.assertIn(t.bob["id"], [u["id"] for u in listed["account"][0]["user"]])
        for method in ("GET", "POST"):
            raw = self.http(signed_v1("listAccounts", t.bob_keys["apikey"], t.bob_keys["secretkey"]), method)
            self.assertEqual(raw.status, 200, raw.body)
            self.assertEqual([a["id"] for a in raw.inner()["account"]], [t.alice["id"]])
        bob = self.as_user(t.bob_keys)
        with self.assertRaises(CloudStackApiException) as caught:
            bob.listUsers()
        self.assertEqual(caught.exception.error["errorcode"], 432)
        with self.assertRaises(CloudStackApiException) as caught:
            bob.registerUserKeys(id=t.alice["user"][0]["id"])  # a peer's keys: not even visible
        self.assertEqual(caught.exception.error["errorcode"], 431)
        # bob may renew his own keys; the old pair stops working at once
        renewed = bob.registerUserKeys(id=t.bob["id"])["userkeys"]
        self.assert_refused_401(t.bob_keys)
        self.assertEqual(self.as_user(renewed).listAccounts()["account"][0]["id"], t.alice["id"])
        # the domain admin sees its whole subtree with listall, else only its own account
        dadmin = self.as_user(t.dadmin_keys)
        self.assertEqual(self.names(dadmin.listAccounts(listall=True)),
                         {t.dadmin["name"], t.alice["name"], t.carol["name"]})
        self.assertEqual(self.names(dadmin.listAccounts()), {t.dadmin["name"]})

    def test_list_scoping_and_paging(self) -> None:
        """listall, domainid, isrecursive, account+domainid, keyword, id; paging and empty shapes."""
        t = self.make_tenant()
        admin = self.admin
        in_domain = {"domainid": t.domain["id"]}
        everyone = {t.dadmin["name"], t.alice["name"], t.carol["name"]}
        self.assertEqual(self.names(admin.listAccounts(**in_domain)), {t.dadmin["name"], t.alice["name"]})
        self.assertEqual(self.names(admin.listAccounts(isrecursive=True, **in_domain)), everyone)
        self.assertEqual(self.names(admin.listAccounts(account=t.alice["name"], **in_domain)), {t.alice["name"]})
        self.assertEqual(self.names(admin.listAccounts(keyword=t.tag, listall=True)), everyone)
        self.assertEqual(self.names(admin.listAccounts(keyword=f"alice-{t.tag}", listall=True)), {t.alice["name"]})
        self.assertEqual(self.names(admin.listAccounts(id=t.carol["id"])), {t.carol["name"]})
        self.assertEqual(self.names(admin.listAccounts()), {"admin"})
        self.assertTrue(everyone | {"admin"} <= self.names(admin.listAccounts(listall=True)))
        users = admin.listUsers(isrecursive=True, **in_domain)
        self.assertEqual({u["username"] for u in users["user"]},
                         {f"dadmin-{t.tag}", f"alice-{t.tag}", f"carol-{t.tag}", f"bob-{t.tag}"})

        pages = [admin.listAccounts(isrecursive=True, page=page, pagesize=2, **in_domain) for page in (1, 2)]
        self.assertEqual([(p["count"], len(p["account"])) for p in pages], [(3, 2), (3, 1)])
        self.assertEqual({a["name"] for p in pages for a in p["account"]}, everyone)

        def raw(**params: str) -> Any:
            return self.http(signed_v1("listAccounts", self.creds["apikey"], self.creds["secretkey"], **params))

        past_end = raw(domainid=t.domain["id"], isrecursive="true", page="3", pagesize="2")
        self.assertEqual((past_end.status, past_end.body), (200, b'{"listaccountsresponse":{"count":3}}'))
        empty = raw(keyword=f"nothing-{t.tag}", listall="true")
        self.assertEqual((empty.status, empty.body), (200, b'{"listaccountsresponse":{}}'))
        self.assertEqual(empty.headers["content-type"], "application/json; charset=UTF-8")

        with self.assertRaises(CloudStackApiException) as caught:
            admin.listAccounts(account=f"nobody-{t.tag}", **in_domain)
        self.assertEqual((caught.exception.error["errorcode"], caught.exception.error["errortext"]),
                         (431, f"could not find account nobody-{t.tag} in domain {t.domain['name']}"))
        with self.assertRaises(CloudStackApiException) as caught:
            admin.listAccounts(pagesize=2, **in_domain)
        self.assertEqual(caught.exception.error["errortext"],
                         '"page" parameter is required when "pagesize" is specified')

    def test_disable_and_enable_user(self) -> None:
        """disableUser (async) locks bob's keys out with 401; enableUser lets them in again."""
        t = self.make_tenant()
        submitted = self.admin.disableUser(id=t.bob["id"])
        job = self.wait_job(self.admin, submitted["jobid"])
        self.assertEqual((job["jobstatus"], job["jobinstancetype"], job["jobinstanceid"]), (1, "User", t.bob["id"]))
        disabled = job["jobresult"]
        self.assertEqual((disabled["user"]["id"], disabled["user"]["state"]), (t.bob["id"], "disabled"))
        self.assert_refused_401(t.bob_keys)
        with self.assertRaises(CloudStackApiException) as caught:
            self.as_user(t.bob_keys).disableUser(id=t.alice["user"][0]["id"])
        self.assertEqual(caught.exception.error["errorcode"], 401)
        enabled = self.admin.enableUser(id=t.bob["id"])
        self.assertEqual(enabled["user"]["state"], "enabled")
        # the admin's job is not bob's to see, even though it is about bob
        with self.assertRaises(CloudStackApiException) as caught:
            self.as_user(t.bob_keys).queryAsyncJobResult(jobid=submitted["jobid"])
        self.assertEqual(caught.exception.error["errorcode"], 431)
        self.assertEqual(self.as_user(t.bob_keys).listAccounts()["account"][0]["id"], t.alice["id"])
        with self.assertRaises(CloudStackApiException) as caught:
            self.as_user(t.bob_keys).disableUser(id=t.alice["user"][0]["id"])
        self.assertEqual(caught.exception.error["errorcode"], 432)

    def test_disable_then_delete_account(self) -> None:
        """disableAccount lock=false refuses its users' keys; deleteAccount (async) removes its users."""
        t = self.make_tenant()
        disabled = self.admin.disableAccount(id=t.alice["id"], lock=False, fetch_result=True)
        self.assertEqual(disabled["account"]["state"], "disabled")
        self.assertEqual(self.admin.listAccounts(id=t.alice["id"])["account"][0]["state"], "disabled")
        self.assert_refused_401(t.bob_keys)
        # the domain admin still works and may delete the account of its domain
        dadmin = self.as_user(t.dadmin_keys)
        self.assertEqual(dadmin.deleteAccount(id=t.alice["id"], fetch_result=True), {"success": True})
        self.assertEqual(self.admin.listAccounts(id=t.alice["id"]), {})
        for user in (t.bob, t.alice["user"][0]):
            self.assertEqual(self.admin.listUsers(id=user["id"]), {})
        self.assertEqual(self.admin.listUsers(domainid=t.domain["id"], keyword="alice-"), {})
        self.assert_refused_401(t.bob_keys)
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.deleteAccount(id=t.alice["id"])
        self.assertEqual(caught.exception.error["errorcode"], 431)

    def test_delete_domain_with_cleanup(self) -> None:
        """deleteDomain refuses a domain in use, and with cleanup=true removes its tree and accounts."""
        t = self.make_tenant()
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.deleteDomain(id=t.domain["id"])
        self.assertEqual(caught.exception.error["errorcode"], 536)
        with self.assertRaises(CloudStackApiException) as caught:
            self.as_user(t.dadmin_keys).deleteDomain(id=t.child["id"], cleanup=True)
        self.assertEqual(caught.exception.error["errorcode"], 432)
        result = self.admin.deleteDomain(id=t.domain["id"], cleanup=True, fetch_result=True)
        self.assertEqual(result, {"success": True})
        for domain in (t.domain, t.child):
            self.assertEqual(self.admin.listDomains(id=domain["id"]), {})
        self.assertEqual(self.admin.listAccounts(keyword=t.tag, listall=True), {})
        self.assert_refused_401(t.dadmin_keys)
        self.assert_refused_401(t.bob_keys)

    def test_events_of_the_story(self) -> None:
        """The story's actions appear in listEvents for the admin, with async jobs' three states."""
        t = self.make_tenant()
        admin = self.admin
        admin.disableUser(id=t.bob["id"], fetch_result=True)
        admin.enableUser(id=t.bob["id"])
        # before the deletions: a normal user sees only its account's events, not the admin's
        own = self.as_user(t.bob_keys).listEvents(listall=True)
        self.assertEqual({e["account"] for e in own["event"]}, {t.alice["name"]})
        self.assertIn("REGISTER.USER.KEY", {e["type"] for e in own["event"]})
        admin.disableAccount(id=t.alice["id"], lock=False, fetch_result=True)
        admin.deleteAccount(id=t.alice["id"], fetch_result=True)
        admin.deleteDomain(id=t.domain["id"], cleanup=True, fetch_result=True)

        def states(type: str, resource: dict[str, Any]) -> list[str]:
            found = admin.listEvents(listall=True, type=type, resourceid=resource["id"])
            return sorted(e["state"] for e in found.get("event", []))

        self.assertEqual(states("DOMAIN.CREATE", t.domain), ["Completed"])
        self.assertEqual(states("ACCOUNT.CREATE", t.alice), ["Completed"])
        self.assertEqual(states("USER.CREATE", t.bob), ["Completed"])
        self.assertEqual(states("REGISTER.USER.KEY", t.bob), ["Completed"])
        self.assertEqual(states("USER.ENABLE", t.bob), ["Completed"])
        for type, resource in (("USER.DISABLE", t.bob), ("ACCOUNT.DISABLE", t.alice),
                               ("ACCOUNT.DELETE", t.alice), ("DOMAIN.DELETE", t.domain)):
            self.assertEqual(states(type, resource), ["Completed", "Scheduled", "Started"], type)
        deleted = admin.listEvents(listall=True, type="ACCOUNT.DELETE", resourceid=t.alice["id"])["event"]
        self.assertEqual({(e["level"], e["resourcetype"], e["username"]) for e in deleted},
                         {("INFO", "Account", "admin")})


class StoryTests(StoryMixin, DaemonCase):
    """The story on the daemon's default SQLite database."""


class StoryOnServerDatabaseTests(StoryMixin, DaemonCase):
    """The story on the MariaDB/MySQL database named by CLOUDD_TEST_DB_URL (its tables are dropped first)."""

    db_url = test_db_url() if using_server_db() else None
    if db_url is None:
        skip = f"{ENV} does not name a MariaDB/MySQL database"

    @classmethod
    def prepare(cls, basedir: str) -> None:
        assert cls.db_url is not None
        wipe(cls.db_url)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([sys.executable, "-m", "cloudd.cli", "upgrade-db", "--db-url", cls.db_url,
                        "--basedir", basedir], check=True, cwd=ROOT, env=env, capture_output=True, timeout=120)
