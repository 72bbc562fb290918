"""cloudmonkey (cmk 6.x, Go) reproduced request by request: API-key signing and login sessions.

cmk cannot be installed here, so these tests send exactly what it sends (spec/api.md §2.2, §2.5):
signed calls with `signatureversion=3` and an RFC 3339 `expires`, values escaped by Go's
`url.QueryEscape`; and for username/password profiles a POSTed login whose session key is read
from the `sessionkey` cookie only, then `sessionkey=<key>` on every call next to the cookie jar.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from tests.integration.support import DaemonCase, cmk_expires, cmk_signed, java_signature, unique

CREDENTIALS_FAILED = "unable to verify user credentials and/or request signature"
SESSION_FAILED = "unable to verify user credentials"


def response_data(data: dict[str, Any]) -> dict[str, Any]:
    """cmk's getResponseData: the value of the first key ending in `response`."""
    for key, value in data.items():
        if key.endswith("response"):
            assert isinstance(value, dict)
            return value
    raise AssertionError(f"no response key in {data}")


class CmkSigningTests(DaemonCase):
    """Signed requests as cmk builds them."""

    def cmk(self, command: str, args: dict[str, str] | None = None, method: str = "GET",
            key: str | None = None, secret: str | None = None, expires: str | None = None) -> requests.Response:
        encoded = cmk_signed(command, key or self.creds["apikey"], secret or self.creds["secretkey"], args,
                             expires)
        if method == "GET":
            return requests.get(f"{self.endpoint}?{encoded}", timeout=30)
        return requests.post(self.endpoint, data=encoded, timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})

    def test_expires_is_rfc3339_utc(self) -> None:
        """The helper produces cmk's `expires`: UTC, `Z`, 15 minutes ahead (guards the tests below)."""
        now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
        self.assertEqual(cmk_expires(now), "2024-05-01T12:15:00Z")

    def test_value_with_tilde_and_spaces_get_and_post(self) -> None:
        """A value with `~`, spaces, `*` and non-ASCII (Go leaves `~` raw) is accepted over GET and POST."""
        name = unique("cmk ~ dom") + " a~b *é雲"
        signed = dict(urllib.parse.parse_qsl(cmk_signed("createDomain", "k", "s", {"name": name})))
        # cmk's string differs from the Java canonical form here, so the server must be tolerant
        self.assertNotEqual(signed["signature"], java_signature(signed, "s"))
        created = self.cmk("createDomain", {"name": name})
        self.assertEqual(created.status_code, 200, created.text)
        self.assertEqual(created.headers["Content-Type"], "application/json; charset=UTF-8")
        domain = response_data(created.json())["domain"]
        self.assertEqual(domain["name"], name)
        self.assertIn(f'"name":"{name}"'.encode(), created.content)  # raw UTF-8, no \\u escapes
        listed = self.cmk("listDomains", {"keyword": "~ dom", "listall": "true"}, method="POST")
        self.assertEqual(listed.status_code, 200, listed.text)
        self.assertIn(domain["id"], [d["id"] for d in response_data(listed.json())["domain"]])
        deleted = self.cmk("deleteDomain", {"id": domain["id"]}, method="POST")
        self.assertEqual(deleted.status_code, 200, deleted.text)
        self.assertEqual(list(response_data(deleted.json())), ["jobid"])

    def test_refused_signatures(self) -> None:
        """An expired `expires`, a wrong secret and a tampered value all get 401."""
        past = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
        expired = self.cmk("listAccounts", expires=past)
        wrong = self.cmk("listAccounts", secret="not-the-secret")
        tampered_query = cmk_signed("listAccounts", self.creds["apikey"], self.creds["secretkey"],
                                    {"name": "admin"}).replace("name=admin", "name=other")
        tampered = requests.get(f"{self.endpoint}?{tampered_query}", timeout=30)
        for response in (expired, wrong, tampered):
            self.assertEqual(response.status_code, 401)
            self.assertEqual(response.json(), {"listaccountsresponse": {
                "uuidList": [], "errorcode": 401, "errortext": CREDENTIALS_FAILED}})

    def test_error_objects_carry_what_cmk_prints(self) -> None:
        """cmk prints `(HTTP errorcode, error code cserrorcode) errortext` for any object with errorcode."""
        response = self.cmk("createDomain", {"parentdomainid": "0a0a0a0a-0000-0000-0000-000000000000"})
        self.assertEqual(response.status_code, 431)
        error = response_data(response.json())
        self.assertEqual((error["errorcode"], error["cserrorcode"], error["errortext"]),
                         (431, 9999, "Unable to execute API command createdomain due to missing parameter name"))


class CmkSessionTests(DaemonCase):
    """cmk's username/password profile: login, session calls, logout."""

    def login(self, username: str, password: str, domain: str = "/") -> requests.Response:
        jar = requests.Session()
        self.addCleanup(jar.close)
        return jar.post(self.endpoint, timeout=30, data={
            "command": "login", "username": username, "password": password, "domain": domain, "response": "json"})

    def session_login(self, username: str, password: str, domain: str = "/") -> tuple[requests.Session, str]:
        """Log in as cmk does; the cookie jar and the key from the `sessionkey` cookie."""
        jar = requests.Session()
        self.addCleanup(jar.close)
        response = jar.post(self.endpoint, timeout=30, data={
            "command": "login", "username": username, "password": password, "domain": domain, "response": "json"})
        self.assertEqual(response.status_code, 200, response.text)
        key = response.cookies.get("sessionkey") or ""
        self.assertTrue(key)
        return jar, key

    def call(self, jar: requests.Session, key: str, command: str, **args: str) -> requests.Response:
        params = {"command": command, **args, "response": "json", "sessionkey": key}
        return jar.get(f"{self.endpoint}?{urllib.parse.urlencode(params)}", timeout=30)

    def test_login_session_and_logout(self) -> None:
        """The key comes from the cookie; calls with key + cookies work until logout, then 401."""
        response = self.login(self.creds["username"], self.creds["password"])
        self.assertEqual(response.status_code, 200, response.text)
        login = response.json()["loginresponse"]
        cookies = {c.name: c for c in response.cookies}
        self.assertEqual(set(cookies), {"JSESSIONID", "sessionkey"})
        self.assertEqual(login["sessionkey"], cookies["sessionkey"].value)
        self.assertEqual((login["username"], login["account"], login["type"], login["timeout"]),
                         ("admin", "admin", "1", 1800))
        for header in response.raw.headers.getlist("Set-Cookie"):
            self.assertIn("HttpOnly", header)

        jar, key = self.session_login(self.creds["username"], self.creds["password"])
        accounts = self.call(jar, key, "listAccounts")
        self.assertEqual(accounts.status_code, 200, accounts.text)
        self.assertEqual([a["name"] for a in response_data(accounts.json())["account"]], ["admin"])

        domain = response_data(self.call(jar, key, "createDomain", name=unique("sess dom")).json())["domain"]
        job = response_data(self.call(jar, key, "deleteDomain", id=domain["id"]).json())
        self.assertEqual(self.wait_job(self.admin, job["jobid"])["jobresult"], {"success": True})
        polled = response_data(self.call(jar, key, "queryAsyncJobResult", jobid=job["jobid"]).json())
        self.assertEqual((polled["jobstatus"], polled["jobresult"]), (1, {"success": True}))

        old_cookies = {c.name: c.value or "" for c in jar.cookies}
        out = jar.get(f"{self.endpoint}?command=logout&response=json", timeout=30)
        self.assertEqual(out.json(), {"logoutresponse": {"description": "success"}})
        self.assertEqual(len(jar.cookies), 0)  # Max-Age=0 removed both cookies from the jar
        stale = requests.get(self.endpoint, timeout=30, cookies=old_cookies,
                             params={"command": "listAccounts", "response": "json", "sessionkey": key})
        self.assertEqual(stale.status_code, 401)
        self.assertEqual(stale.json(), {"listaccountsresponse": {
            "uuidList": [], "errorcode": 401, "errortext": SESSION_FAILED}})

    def test_wrong_session_key_ends_the_session(self) -> None:
        """A session call with a wrong key gets 401 and ends the session (cmk then logs in again)."""
        jar, key = self.session_login(self.creds["username"], self.creds["password"])
        wrong = self.call(jar, key[:-2] + ("xx" if not key.endswith("xx") else "yy"), "listAccounts")
        self.assertEqual(wrong.status_code, 401)
        self.assertEqual(wrong.json(), {"listaccountsresponse": {
            "uuidList": [], "errorcode": 401, "errortext": SESSION_FAILED}})
        self.assertEqual(self.call(jar, key, "listAccounts").status_code, 401)
        jar, key = self.session_login(self.creds["username"], self.creds["password"])
        self.assertEqual(self.call(jar, key, "listAccounts").status_code, 200)

    def test_login_replaces_the_previous_session(self) -> None:
        """Logging in again with the same cookie jar ends the session the jar held before."""
        jar, first = self.session_login(self.creds["username"], self.creds["password"])
        first_cookies = {c.name: c.value or "" for c in jar.cookies}
        again = jar.post(self.endpoint, timeout=30, data={
            "command": "login", "username": self.creds["username"], "password": self.creds["password"],
            "domain": "/", "response": "json"})
        second = again.cookies["sessionkey"] or ""
        self.assertNotEqual(second, first)
        self.assertEqual(self.call(jar, second, "listAccounts").status_code, 200)
        stale = requests.get(self.endpoint, timeout=30, cookies=first_cookies,
                             params={"command": "listAccounts", "response": "json", "sessionkey": first})
        self.assertEqual(stale.status_code, 401)

    def test_session_without_command_and_logout_without_session(self) -> None:
        """A live session without `command` gets 400; logout without any session still succeeds."""
        jar, key = self.session_login(self.creds["username"], self.creds["password"])
        bare = jar.get(self.endpoint, params={"response": "json", "sessionkey": key}, timeout=30)
        self.assertEqual(bare.status_code, 400)
        self.assertEqual(bare.json(), {"errorresponse": {
            "uuidList": [], "errorcode": 400, "errortext": "no command specified"}})
        out = requests.post(self.endpoint, data={"command": "logout", "response": "json"}, timeout=30)
        self.assertEqual((out.status_code, out.json()), (200, {"logoutresponse": {"description": "success"}}))

    def test_login_of_a_user_in_a_sub_domain(self) -> None:
        """`domain` is the path below ROOT; the session runs as that user (account type "0")."""
        name = unique("subdom")
        domain = self.admin.createDomain(name=name)["domain"]
        username = unique("cmkuser")
        account = self.admin.createAccount(accounttype=0, username=username, password="pw-Secret-1",
                                           firstname="F", lastname="L", email="c@example.com",
                                           domainid=domain["id"])["account"]
        jar, key = self.session_login(username, "pw-Secret-1", domain=f"/{name}/")
        login = self.login(username, "pw-Secret-1", domain=name).json()["loginresponse"]
        self.assertEqual((login["type"], login["domainid"], login["account"]), ("0", domain["id"], username))
        self.assertNotIn("managementserverid", login)
        accounts = response_data(self.call(jar, key, "listAccounts", listall="true").json())
        self.assertEqual([a["id"] for a in accounts["account"]], [account["id"]])
        refused = self.call(jar, key, "createDomain", name="nope")
        self.assertEqual(refused.status_code, 432)
        self.assertEqual(refused.json()["errorresponse"]["errortext"],
                         f"The API [createDomain] does not exist or is not available for the account {username}.")

    def test_login_with_get_is_405_plain_text(self) -> None:
        """login over GET: 405 with CloudStack's plain-text body, and no session."""
        query = urllib.parse.urlencode({"command": "login", "username": "admin", "password": self.creds["password"],
                                        "domain": "/", "response": "json"})
        response = requests.get(f"{self.endpoint}?{query}", timeout=30)
        self.assertEqual(response.status_code, 405)
        self.assertEqual(response.text, "Please use HTTP POST to authenticate using this API")
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(len(response.cookies), 0)

    def test_failed_login_is_531(self) -> None:
        """A wrong password or an unknown domain path: 531 in a `loginresponse` error, no cookies."""
        root = self.admin.listDomains()["domain"][0]
        self.assertEqual(root["path"], "ROOT")
        response = self.login("admin", "not-the-password")
        self.assertEqual(response.status_code, 531)
        self.assertEqual(response.json(), {"loginresponse": {
            "uuidList": [], "errorcode": 531,
            "errortext": f"Failed to authenticate user admin in domain {root['id']}; please provide valid "
                         "credentials"}})
        self.assertEqual(len(response.cookies), 0)
        missing = self.login("admin", self.creds["password"], domain="/no-such-domain")
        self.assertEqual(missing.status_code, 531)
        self.assertEqual(missing.json()["loginresponse"]["errortext"],
                         "Unable to find the domain from the path /no-such-domain/")
