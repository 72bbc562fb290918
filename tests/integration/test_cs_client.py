"""The `cs` Python client (library and command-line program) against a real daemon."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from cs import CloudStack, CloudStackApiException

from tests.integration.support import DaemonCase, run_cs_cli, signed_v1, unique

CREDENTIALS_FAILED = "unable to verify user credentials and/or request signature"


def record_requests(client: CloudStack) -> list[Any]:
    """Keep every prepared request `client` sends (its session's send, wrapped)."""
    sent: list[Any] = []
    original = client.session.send

    def send(prepped: Any, **kwargs: Any) -> Any:
        sent.append(prepped)
        return original(prepped, **kwargs)

    client.session.send = send
    return sent


def query_of(prepped: Any) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(prepped.url).query, keep_blank_values=True))


def body_of(prepped: Any) -> dict[str, str]:
    body = prepped.body.decode() if isinstance(prepped.body, bytes) else (prepped.body or "")
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


class CsLibraryTests(DaemonCase):
    """`from cs import CloudStack`: signing, paging, async polling and errors."""

    def make_account(self, users: int = 0) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """A new domain with one user account in it, plus `users` extra users; the ids of all users."""
        domain = self.admin.createDomain(name=unique("csdom"))["domain"]
        account = self.admin.createAccount(accounttype=0, username=unique("owner"), password="pw-Secret-1",
                                           firstname="F", lastname="L", email="o@example.com",
                                           domainid=domain["id"])["account"]
        ids = [account["user"][0]["id"]]
        for _ in range(users):
            user = self.admin.createUser(account=account["name"], domainid=domain["id"], username=unique("u"),
                                         password="pw-Secret-1", firstname="F", lastname="L",
                                         email="u@example.com")["user"]
            ids.append(user["id"])
        return domain, account, ids

    def assert_api_error(self, exc: CloudStackApiException, status: int, response_name: str,
                         text: str, cs_code: int | None) -> None:
        self.assertEqual(exc.response.status_code, status)
        self.assertEqual(list(exc.response.json()), [response_name])
        expected: dict[str, Any] = {"uuidList": [], "errorcode": status, "errortext": text}
        if cs_code is not None:
            expected["cserrorcode"] = cs_code
        self.assertEqual(exc.error, expected)

    def test_get_signs_version_3_with_expires(self) -> None:
        """By default cs sends GET, signatureVersion=3 and an `expires` in +0000 form; both are accepted."""
        sent = record_requests(self.admin)
        caps = self.admin.listCapabilities()
        self.assertEqual(list(caps), ["capability"])
        self.assertIsInstance(caps["capability"]["cloudstackversion"], str)
        accounts = self.admin.listAccounts()
        self.assertEqual([a["name"] for a in accounts["account"]], ["admin"])
        self.assertEqual(accounts["count"], 1)
        self.assertEqual([p.method for p in sent], ["GET", "GET"])
        query = query_of(sent[0])
        self.assertEqual(query["signatureVersion"], "3")
        self.assertRegex(query["expires"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")
        self.assertEqual(query["apiKey"], self.creds["apikey"])
        self.assertIn("signature", query)

    def test_post_sends_a_form_body(self) -> None:
        """With method="post" every parameter travels in a form body, and is read from there."""
        client = self.client(self.creds["apikey"], self.creds["secretkey"], method="post")
        sent = record_requests(client)
        name = unique("posted dom")
        domain = client.createDomain(name=name)["domain"]
        self.assertEqual(domain["name"], name)
        self.assertEqual(domain["path"], f"ROOT/{name}")
        self.assertEqual(sent[0].method, "POST")
        self.assertEqual(query_of(sent[0]), {})
        body = body_of(sent[0])
        self.assertEqual((body["command"], body["name"], body["signatureVersion"]), ("createDomain", name, "3"))
        listed = client.listDomains(id=domain["id"])
        self.assertEqual((listed["count"], listed["domain"][0]["id"]), (1, domain["id"]))

    def test_parameter_errors_raise_with_the_servers_envelope(self) -> None:
        """A missing or malformed parameter: CloudStackApiException carrying the 431 error object."""
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.createDomain()
        self.assert_api_error(caught.exception, 431, "createdomainresponse",
                              "Unable to execute API command createdomain due to missing parameter name", 9999)
        self.assertEqual(caught.exception.response.headers["X-Description"],
                         "Unable to execute API command createdomain due to missing parameter name")
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.listAccounts(id="not-a-uuid")
        self.assertEqual(caught.exception.error["errorcode"], 431)
        self.assertIn("Invalid parameter id value=not-a-uuid", caught.exception.error["errortext"])

    def test_credential_errors_are_401(self) -> None:
        """A wrong secret, an unknown key, an expired request and an unknown command all get 401."""
        cases = [
            (self.client(self.creds["apikey"], "wrong-secret"), "listAccounts", {}),
            (self.client("no-such-key", self.creds["secretkey"]), "listAccounts", {}),
            (self.admin, "listAccounts", {"signatureVersion": "3", "expires": "2001-01-01T00:00:00+0000"}),
        ]
        for client, command, extra in cases:
            with self.assertRaises(CloudStackApiException) as caught:
                getattr(client, command)(**extra)
            self.assert_api_error(caught.exception, 401, "listaccountsresponse", CREDENTIALS_FAILED, None)
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.listNoSuchThings()
        self.assert_api_error(caught.exception, 401, "errorresponse", "The API [listNoSuchThings] may not exist or may "
                              f"not be available to this account, or {CREDENTIALS_FAILED}", None)
        # version 3 without any expires (cs always adds one, so this request is built by hand)
        no_expiry = self.http(signed_v1("listAccounts", self.creds["apikey"], self.creds["secretkey"],
                                        signatureVersion="3"))
        self.assertEqual((no_expiry.status, no_expiry.inner()["errortext"]), (401, CREDENTIALS_FAILED))
        self.assertEqual(self.http(signed_v1("listAccounts", self.creds["apikey"], self.creds["secretkey"])).status,
                         200)

    def test_map_parameter_built_by_cs(self) -> None:
        """cs turns a dict into `name[0].key=value` pairs; they are signed and bound like any other."""
        domain = self.admin.createDomain(name=unique("mapdom"))["domain"]
        sent = record_requests(self.admin)
        account = self.admin.createAccount(accounttype=0, username=unique("mapuser"), password="pw-Secret-1",
                                           firstname="F", lastname="L", email="m@example.com",
                                           domainid=domain["id"], accountdetails={"key": "value"})["account"]
        self.assertEqual(query_of(sent[0])["accountdetails[0].key"], "value")
        self.assertEqual(self.admin.listAccounts(id=account["id"])["account"][0]["name"], account["name"])
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.createAccount(accounttype=0, username=unique("mapuser"), password="pw-Secret-1",
                                     firstname="F", lastname="L", email="m@example.com",
                                     **{"accountdetails[0]": "no-field"})
        self.assertEqual(caught.exception.error["errorcode"], 430)

    def test_fetch_list_walks_every_page(self) -> None:
        """fetch_list with a small pagesize asks page after page and gathers every match once."""
        domain, account, ids = self.make_account(users=7)
        sent = record_requests(self.admin)
        users = self.admin.listUsers(fetch_list=True, pagesize=3, account=account["name"], domainid=domain["id"])
        self.assertEqual(sorted(u["id"] for u in users), sorted(ids))
        self.assertEqual([(q["page"], q["pagesize"]) for q in map(query_of, sent)],
                         [("1", "3"), ("2", "3"), ("3", "3")])
        scope = {"account": account["name"], "domainid": domain["id"]}
        last = self.admin.listUsers(page=3, pagesize=3, **scope)
        self.assertEqual((last["count"], len(last["user"])), (8, 2))
        self.assertEqual(self.admin.listUsers(page=4, pagesize=3, **scope), {"count": 8})
        self.assertEqual(self.admin.listUsers(username=unique("nobody"), **scope), {})
        # the default page size of cs (500) is the server's maximum, so fetch_list works unchanged
        self.assertEqual(len(self.admin.listUsers(fetch_list=True, **scope)), 8)

    def test_default_page_size_setting_limits_pages(self) -> None:
        """default.page.size is the default and the maximum page size; count stays the total."""
        domain, account, ids = self.make_account(users=7)
        scope = {"account": account["name"], "domainid": domain["id"]}
        before = self.admin.listConfigurations(name="default.page.size")["configuration"][0]["value"]
        self.admin.updateConfiguration(name="default.page.size", value="3")
        self.addCleanup(self.admin.updateConfiguration, name="default.page.size", value=before)
        first = self.admin.listUsers(**scope)
        self.assertEqual((first["count"], len(first["user"])), (8, 3))
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.listUsers(fetch_list=True, **scope)
        self.assert_api_error(caught.exception, 431, "listusersresponse",
                              "Page size can't exceed max allowed page size value: 3", 4350)
        users = self.admin.listUsers(fetch_list=True, pagesize=3, **scope)
        self.assertEqual(sorted(u["id"] for u in users), sorted(ids))

    def test_fetch_result_polls_delete_account_and_delete_domain(self) -> None:
        """cs polls queryAsyncJobResult itself for deleteAccount and deleteDomain and returns the result."""
        domain, account, ids = self.make_account()
        self.assertEqual(self.admin.deleteAccount(id=account["id"], fetch_result=True), {"success": True})
        self.assertEqual(self.admin.listAccounts(id=account["id"]), {})
        self.assertEqual(self.admin.listUsers(id=ids[0]), {})
        self.assertEqual(self.admin.deleteDomain(id=domain["id"], fetch_result=True), {"success": True})
        self.assertEqual(self.admin.listDomains(id=domain["id"]), {})

    def test_async_submission_and_manual_polling(self) -> None:
        """Without fetch_result cs returns the job id; queryAsyncJobResult then has cs's required fields."""
        domain = self.admin.createDomain(name=unique("jobdom"))["domain"]
        submitted = self.admin.deleteDomain(id=domain["id"])
        self.assertEqual(list(submitted), ["jobid"])
        job = self.wait_job(self.admin, submitted["jobid"])
        self.assertEqual((job["jobstatus"], job["jobresultcode"], job["jobresulttype"], job["jobresult"]),
                         (1, 0, "object", {"success": True}))
        self.assertEqual((job["jobinstancetype"], job["jobinstanceid"], job["jobid"]),
                         ("Domain", domain["id"], submitted["jobid"]))
        self.assertTrue(job["cmd"].endswith("DeleteDomainCmd"))
        listed = self.admin.listAsyncJobs(id=submitted["jobid"])
        self.assertEqual([j["jobid"] for j in listed["asyncjobs"]], [submitted["jobid"]])

    def test_refused_async_command_raises(self) -> None:
        """deleteDomain of a domain with accounts and without cleanup is refused with 536."""
        domain, account, _ = self.make_account()
        with self.assertRaises(CloudStackApiException) as caught:
            self.admin.deleteDomain(id=domain["id"], fetch_result=True)
        self.assert_api_error(caught.exception, 536, "deletedomainresponse",
                              f"Can't delete the domain yet because it has accounts and/or child domains: "
                              f"{domain['name']}", 4375)
        self.assertEqual(self.admin.listAccounts(id=account["id"])["count"], 1)


class CsProgramTests(DaemonCase):
    """The `cs` command-line program, configured by CLOUDSTACK_* environment variables."""

    def cs(self, *args: str) -> Any:
        return run_cs_cli(self.endpoint, self.creds["apikey"], self.creds["secretkey"], *args)

    def test_get_post_and_async_commands(self) -> None:
        """`cs listCapabilities`, `cs --post createDomain`, and an async delete it waits for."""
        caps = self.cs("listCapabilities")
        self.assertEqual(caps.code, 0, caps.stderr)
        self.assertEqual(list(caps.output), ["capability"])
        self.assertIn("cloudstackversion", caps.output["capability"])
        name = unique("cli dom")
        created = self.cs("--post", "createDomain", f"name={name}")
        self.assertEqual(created.code, 0, created.stderr)
        self.assertEqual(created.output["domain"]["name"], name)
        domain_id = created.output["domain"]["id"]
        self.assertEqual(self.admin.listDomains(id=domain_id)["domain"][0]["name"], name)
        deleted = self.cs("deleteDomain", f"id={domain_id}")
        self.assertEqual((deleted.code, deleted.output), (0, {"success": True}), deleted.stderr)
        self.assertEqual(self.admin.listDomains(id=domain_id), {})

    def test_error_exit_status_and_envelope(self) -> None:
        """On an API error `cs` exits 1 and prints the server's whole error envelope."""
        result = self.cs("listAccounts", "id=NOT-A-UUID")
        self.assertEqual(result.code, 1)
        self.assertIn("HTTP 431 response from CloudStack", result.stderr)
        error = result.output["listaccountsresponse"]
        self.assertEqual((error["errorcode"], error["cserrorcode"]), (431, 9999))
        self.assertTrue(re.search(r"Invalid parameter id value=NOT-A-UUID", error["errortext"]))
        denied = run_cs_cli(self.endpoint, self.creds["apikey"], "bad-secret", "listCapabilities")
        self.assertEqual(denied.code, 1)
        self.assertEqual(denied.output["listcapabilitiesresponse"]["errorcode"], 401)
