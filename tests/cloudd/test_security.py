"""Security tests of the query API (spec/security.md §6 items 1–6, 9, 12; spec/api.md §2, §7).

Signatures and expiry, sessions (logout, CSRF origin check), canary secrets in logs, responses,
events and jobs, throttling, forwarded-for handling and the integration port. Almost everything
runs in process through the real ApiResource on a fake clock (`make_cloud`); the log file and the
listening ports are checked on a real `twistd -n cloudd` process.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from cloudd.api.context import CallContext
from cloudd.api.errors import invalid_value
from cloudd.api.registry import ROOT, Param, command
from cloudd.api.results import Prepared, Result, SuccessResult
from cloudd.web.accesslog import redact_uri
from cloudd.web.signing import sign
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.daemon import CloudDaemon, free_port, http
from tests.util.tenants import (
    fast_hashing,
    iso,
    login,
    session_call,
    session_of,
    set_config,
    snapshot,
    table_text,
    v1_params,
    v3_params,
)

SIGNATURE_FAILED = "unable to verify user credentials and/or request signature"
SESSION_FAILED = "unable to verify user credentials"
NOW = 1_700_000_000.0


def new_cloud(test: SynchronousTestCase) -> Cloud:
    cloud = make_cloud()
    test.addCleanup(cloud.stop)
    cloud.reactor.advance(NOW)
    fast_hashing(cloud)
    return cloud


def make_user(cloud: Cloud, name: str, account_type: int = 0, password: str | None = None) -> dict[str, str]:
    """A new account with one user and API keys: ids, keys and password."""
    password = password or f"pw-{name}"
    r = cloud.signed("createAccount", username=name, password=password, firstname="f", lastname="l",
                     email="e@example.com", accounttype=account_type)
    assert r.status == 200, r.body
    account = r.inner()["account"]
    user_id = account["user"][0]["id"]
    keys = cloud.signed("registerUserKeys", id=user_id).inner()["userkeys"]
    return {"user_id": user_id, "account_id": account["id"], "apikey": keys["apikey"],
            "secretkey": keys["secretkey"], "username": name, "password": password}


def domain_names(cloud: Cloud) -> list[str]:
    r = cloud.signed("listDomains", listall="true")
    return [d["name"] for d in r.inner().get("domain", [])]


class LogCapture:
    """Every log event published while active, raw and formatted."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def text(self) -> str:
        parts = []
        for event in self.events:
            parts.append(formatEvent(event) or "")
            parts.append(repr(event))
            failure = event.get("log_failure")
            if failure is not None:
                parts.append(failure.getTraceback())
        return "\n".join(parts)


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    capture = LogCapture()

    @provider(ILogObserver)
    def observer(event: dict[str, Any]) -> None:
        capture.events.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield capture
    finally:
        globalLogPublisher.removeObserver(observer)


def reports(logs: LogCapture) -> int:
    """How many log events report requests signed without an expiry."""
    return sum("without an expiry" in (e.get("log_format") or "") for e in logs.events)


class SignatureExpiryTests(SynchronousTestCase):
    """Signed requests: expiry, the v3 requirement and the credential checks (security.md §6.1–3)."""

    def setUp(self) -> None:
        self.cloud = new_cloud(self)

    def assertRefused(self, r: Response, name: str = "") -> None:  # noqa: N802 (unittest style)
        self.assertEqual(r.status, 401, r.body)
        body = r.inner()
        self.assertEqual(body["errorcode"], 401)
        self.assertEqual(body["errortext"], SIGNATURE_FAILED)
        self.assertNotIn("cserrorcode", body)
        if name:
            self.assertEqual(list(r.json()), [name])

    def test_past_expires_is_refused_without_side_effect(self) -> None:
        """A v3 createDomain whose expires lies one second in the past gets 401 and creates nothing."""
        before = snapshot(self.cloud)
        p = v3_params(self.cloud, "createDomain", name="too-late", expires=iso(NOW - 1))
        self.assertRefused(self.cloud.request(p), "createdomainresponse")
        self.assertEqual(snapshot(self.cloud), before)
        self.assertNotIn("too-late", domain_names(self.cloud))

    def test_replay_after_expiry_is_refused(self) -> None:
        """A captured v3 request works until its expires passes; replayed afterwards it gets 401."""
        read = v3_params(self.cloud, "listDomains", ttl=60)
        write = v3_params(self.cloud, "createDomain", name="replayed", ttl=60)
        self.assertEqual(self.cloud.request(read).status, 200)
        self.assertEqual(self.cloud.request(read).status, 200)  # no replay cache inside the window
        self.cloud.reactor.advance(61)
        self.assertRefused(self.cloud.request(read))
        before = snapshot(self.cloud)
        self.assertRefused(self.cloud.request(write))
        self.assertEqual(snapshot(self.cloud), before)
        self.assertNotIn("replayed", domain_names(self.cloud))

    def test_expires_beyond_the_cap_is_refused(self) -> None:
        """expires further ahead than api.request.expires.max.seconds gets 401, also after lowering it."""
        cap = self.cloud.api.settings.int("api.request.expires.max.seconds")
        self.assertEqual(self.cloud.request(v3_params(self.cloud, "listDomains", ttl=cap - 5)).status, 200)
        self.assertRefused(self.cloud.request(v3_params(self.cloud, "listDomains", ttl=cap + 5)))
        self.assertRefused(self.cloud.request(v3_params(self.cloud, "createDomain", name="far", ttl=10 * 365 * 86400)))
        set_config(self.cloud, "api.request.expires.max.seconds", "60")
        self.assertRefused(self.cloud.request(v3_params(self.cloud, "listDomains", ttl=120)))
        self.assertEqual(self.cloud.request(v3_params(self.cloud, "listDomains", ttl=30)).status, 200)
        self.assertNotIn("far", domain_names(self.cloud))

    def test_missing_or_garbage_expires_is_refused(self) -> None:
        """signatureVersion=3 without a parseable expires gets 401, whatever else is right."""
        for expires in ["", "garbage", "2024-13-01T00:00:00Z", "2023-11-14T22:13:20", "1700000600",
                        "2023-11-14T22:23:20+2500"]:
            p = v3_params(self.cloud, "listDomains", expires=expires)
            self.assertRefused(self.cloud.request(p))
        p = {"command": "listDomains", "response": "json", "apiKey": self.cloud.admin.apikey,
             "signatureVersion": "3"}
        p["signature"] = sign(p, self.cloud.admin.secretkey)
        self.assertRefused(self.cloud.request(p))

    def test_version3_required(self) -> None:
        """With api.signature.version3.required=true a v1 request gets 401 while v3 still works."""
        self.assertEqual(self.cloud.signed("listDomains").status, 200)
        set_config(self.cloud, "api.signature.version3.required", "true")
        self.assertRefused(self.cloud.signed("listDomains"), "listdomainsresponse")
        before = snapshot(self.cloud)
        self.assertRefused(self.cloud.signed("createDomain", name="v1-only"))
        self.assertEqual(snapshot(self.cloud), before)
        self.assertEqual(self.cloud.request(v3_params(self.cloud, "listDomains")).status, 200)

    def test_enforce_post_requests_and_timestamps(self) -> None:
        """With enforce.post.requests.and.timestamps a v1 request gets 401 and a state-changing command
        sent by GET gets 405 without running; v3 POST works."""
        set_config(self.cloud, "enforce.post.requests.and.timestamps", "true")
        self.assertRefused(self.cloud.signed("listDomains"))
        before = snapshot(self.cloud)
        r = self.cloud.request(v3_params(self.cloud, "createDomain", name="by-get"))
        self.assertEqual(r.status, 405, r.body)
        self.assertEqual(r.inner()["errorcode"], 405)
        self.assertEqual(snapshot(self.cloud), before)
        self.assertEqual(self.cloud.request(v3_params(self.cloud, "listDomains")).status, 200)
        r = self.cloud.request({}, "POST", body=v3_params(self.cloud, "createDomain", name="by-post"))
        self.assertEqual(r.status, 200, r.body)

    def test_unexpiring_requests_are_logged(self) -> None:
        """A v1 request (no expiry) is accepted in the default legacy mode but leaves a log event."""
        with captured_logs() as logs:
            self.assertEqual(self.cloud.signed("listDomains").status, 200)
        self.assertIn("without an expiry", logs.text())
        with captured_logs() as logs:
            self.assertEqual(self.cloud.request(v3_params(self.cloud, "listDomains")).status, 200)
        self.assertNotIn("without an expiry", logs.text())

    def test_unexpiring_requests_are_counted_and_reported_once_a_minute(self) -> None:
        """Each v1 request is counted; a user's are reported at most once a minute, with the count since."""
        auth = self.cloud.auth
        with captured_logs() as logs:
            for _ in range(5):
                self.assertEqual(self.cloud.signed("listDomains").status, 200)
            self.cloud.reactor.advance(30)
            self.assertEqual(self.cloud.signed("listDomains").status, 200)
        self.assertEqual(reports(logs), 1)
        self.assertEqual(auth.unexpiring_accepted, 6)
        self.cloud.reactor.advance(31)
        with captured_logs() as logs:
            self.assertEqual(self.cloud.signed("listDomains").status, 200)
        self.assertEqual(reports(logs), 1)
        self.assertIn("accepted 6 signed request(s) without an expiry", logs.text())
        self.assertEqual(auth.unexpiring_accepted, 7)

    def test_bad_credentials(self) -> None:
        """Unknown apiKey, wrong secret, disabled or locked user, disabled or locked account, deleted
        account, keys replaced: all 401."""
        cloud = self.cloud
        good = make_user(cloud, "alice")
        self.assertEqual(cloud.signed("listEvents", key=good["apikey"], secret=good["secretkey"]).status, 200)
        self.assertRefused(cloud.signed("listEvents", key="no-such-key", secret=good["secretkey"]),
                           "listeventsresponse")
        self.assertRefused(cloud.signed("listEvents", key=good["apikey"], secret=cloud.admin.secretkey))
        self.assertRefused(cloud.request(v3_params(cloud, "listEvents", key=good["apikey"], secret="x" * 86)))

        def refused_for(state_change: tuple[str, dict[str, str]], undo: tuple[str, dict[str, str]]) -> None:
            r = cloud.signed(state_change[0], **state_change[1])
            self.assertEqual(r.status, 200, r.body)
            self.assertRefused(cloud.signed("listEvents", key=good["apikey"], secret=good["secretkey"]))
            self.assertRefused(cloud.request(v3_params(cloud, "listEvents", key=good["apikey"],
                                                       secret=good["secretkey"])))
            self.assertEqual(cloud.signed(undo[0], **undo[1]).status, 200)
            self.assertEqual(cloud.signed("listEvents", key=good["apikey"], secret=good["secretkey"]).status, 200)

        user, account = {"id": good["user_id"]}, {"id": good["account_id"]}
        refused_for(("disableUser", user), ("enableUser", user))
        refused_for(("lockUser", user), ("enableUser", user))
        refused_for(("disableAccount", {**account, "lock": "false"}), ("enableAccount", account))
        refused_for(("disableAccount", {**account, "lock": "true"}), ("enableAccount", account))
        self.assertEqual(cloud.signed("registerUserKeys", id=good["user_id"]).status, 200)
        self.assertRefused(cloud.signed("listEvents", key=good["apikey"], secret=good["secretkey"]))
        fresh = cloud.signed("getUserKeys", id=good["user_id"]).inner()["userkeys"]
        self.assertEqual(cloud.signed("listEvents", key=fresh["apikey"], secret=fresh["secretkey"]).status, 200)
        self.assertEqual(cloud.signed("deleteAccount", id=good["account_id"]).status, 200)
        self.assertRefused(cloud.signed("listEvents", key=fresh["apikey"], secret=fresh["secretkey"]))
        self.assertEqual(login(cloud, "alice", good["password"]).status, 531)

    def test_unknown_command(self) -> None:
        """An unknown command is 401 on the signature path, and 432 `errorresponse` on a session."""
        for name in ("noSuchCommand", "listdomains"):  # the name is case-sensitive
            r = self.cloud.signed(name)
            self.assertEqual((r.status, list(r.json())), (401, ["errorresponse"]))
            self.assertEqual(r.inner(), {"uuidList": [], "errorcode": 401, "errortext": (
                f"The API [{name}] may not exist or may not be available to this account, or {SIGNATURE_FAILED}")})
        r = login(self.cloud, "admin", self.cloud.admin.password)
        session = session_of(r)
        r = session_call(self.cloud, session, "noSuchCommand")
        self.assertEqual(r.status, 432)
        self.assertEqual(list(r.json()), ["errorresponse"])
        self.assertEqual(r.inner()["errorcode"], 432)
        self.assertIn("The API [noSuchCommand] does not exist or is not available", r.inner()["errortext"])


# Values for signed parameters in the property test: no control characters (refused with 431
# only after authentication, which would hide nothing, but keeps the unmodified request valid).
_VALUE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_EXTRA_NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,7}", fullmatch=True).filter(
    lambda n: n.lower() not in {"command", "response", "apikey", "signature", "signatureversion", "expires",
                                "sessionkey", "id", "name", "level", "listall", "details", "keyword", "page",
                                "pagesize"})


class SignaturePropertyTests(SynchronousTestCase):
    """A valid signed request with one character of one signed value changed gets 401 (§6.3)."""

    def setUp(self) -> None:
        self.cloud = new_cloud(self)

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
    @given(data=st.data(), version3=st.booleans(),
           extra=st.dictionaries(_EXTRA_NAMES, _VALUE, max_size=4).filter(
               lambda d: len({k.lower() for k in d}) == len(d)),
           name=_VALUE)
    def test_one_changed_character_is_refused(self, data: st.DataObject, version3: bool, extra: dict[str, str],
                                              name: str) -> None:
        """Over random parameter sets, the unmodified request is accepted and every single-character
        change to a signed value (other than a change of letter case, which the scheme folds) is not."""
        cloud = self.cloud
        params = {"name": name, **extra}
        if version3:
            p = v3_params(cloud, "listDomains", **params)
        else:
            p = v1_params("listDomains", cloud.admin.apikey, cloud.admin.secretkey, **params)
        self.assertEqual(cloud.request(p).status, 200)
        target = data.draw(st.sampled_from(sorted(k for k in p if k != "signature" and p[k])), label="param")
        old = p[target]
        index = data.draw(st.integers(0, len(old) - 1), label="index")
        char = data.draw(st.characters(blacklist_categories=("Cs",)), label="char")
        new = old[:index] + char + old[index + 1:]
        assume(new.lower() != old.lower())
        r = cloud.request({**p, target: new})
        self.assertEqual(r.status, 401, (target, old, new, r.body))


class SessionTests(SynchronousTestCase):
    """Login sessions: cookies, session keys, logout, the Origin check and disabled users (§6.5)."""

    def setUp(self) -> None:
        self.cloud = new_cloud(self)
        self.user = make_user(self.cloud, "bob")

    def test_login_sets_both_cookies(self) -> None:
        """A POST login answers the flat loginresponse and sets JSESSIONID and sessionkey, HttpOnly."""
        r = login(self.cloud, "bob", self.user["password"])
        self.assertEqual(r.status, 200, r.body)
        body = r.inner()
        session = session_of(r)
        self.assertEqual(body["sessionkey"], session.key)
        self.assertEqual(body["username"], "bob")
        for cookie in ("JSESSIONID=", "sessionkey="):
            self.assertIn(cookie, r.headers["set-cookie"])
        self.assertEqual(r.headers["set-cookie"].count("HttpOnly"), 2)

    def test_login_by_get_is_refused(self) -> None:
        """login over GET gets 405 with the plain-text body, and no session."""
        r = self.cloud.request({"command": "login", "username": "bob", "password": self.user["password"],
                                "response": "json"})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.body, b"Please use HTTP POST to authenticate using this API")
        self.assertNotIn("set-cookie", r.headers)

    def test_session_key_checks(self) -> None:
        """The key as a parameter works; a wrong key (parameter or cookie) or an unknown session gets
        401, and a failed key check ends the session (spec §2.1)."""
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        r = session_call(self.cloud, session, "listEvents")
        self.assertEqual(r.status, 200, r.body)
        wrong_param = {"params": {"sessionkey": "wrong"}, "cookie": None}
        wrong_cookie = {"params": {}, "cookie": "{sid}; sessionkey=wrong"}
        for variant in (wrong_param, wrong_cookie):
            session = session_of(login(self.cloud, "bob", self.user["password"]))
            cookie = (variant["cookie"] or "{sid}; sessionkey={key}").format(
                sid=f"JSESSIONID={session.session_id}", key=session.key)
            params = {"command": "listEvents", "response": "json", "sessionkey": session.key, **variant["params"]}
            r = self.cloud.request(params, headers={"Cookie": cookie})
            self.assertEqual(r.status, 401, (variant, r.body))
            self.assertEqual(r.inner()["errortext"], SESSION_FAILED)
            self.assertEqual(session_call(self.cloud, session, "listEvents").status, 401)
        r = self.cloud.request({"command": "listEvents", "response": "json", "sessionkey": session.key},
                               headers={"Cookie": "JSESSIONID=not-a-session"})
        self.assertEqual(r.status, 401)

    def test_logout_invalidates_the_key(self) -> None:
        """After logout the old session key gets 401 on every API, reads and writes (CVE-2024-45462)."""
        session = session_of(login(self.cloud, "admin", self.cloud.admin.password))
        self.assertEqual(session_call(self.cloud, session, "listDomains").status, 200)
        r = self.cloud.request({"command": "logout", "response": "json"},
                               headers={"Cookie": session.cookie()})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"logoutresponse": {"description": "success"}})
        before = snapshot(self.cloud)
        for cmd, params in [("listDomains", {}), ("listUsers", {}), ("createDomain", {"name": "after-logout"}),
                            ("updateConfiguration", {"name": "api.key.access", "value": "false"}),
                            ("noSuchCommand", {})]:
            r = session_call(self.cloud, session, cmd, **params)
            self.assertEqual(r.status, 401, (cmd, r.body))
            self.assertEqual(r.inner()["errortext"], SESSION_FAILED)
        self.assertEqual(snapshot(self.cloud), before)

    def test_foreign_origin_is_refused(self) -> None:
        """A session-cookie request with a foreign Origin gets 403 and changes nothing; same origin
        works (CVE-2024-45693)."""
        session = session_of(login(self.cloud, "admin", self.cloud.admin.password))
        host = {"Host": "cloud.example:8080"}
        before = snapshot(self.cloud)
        for origin in ["http://evil.example", "http://cloud.example:8081", "http://cloud.example.evil:8080", "null"]:
            r = session_call(self.cloud, session, "createDomain", name="csrf",
                             headers={**host, "Origin": origin})
            self.assertEqual(r.status, 403, (origin, r.body))
            self.assertEqual(r.inner()["errorcode"], 403)
            # the cookie alone, without the key as a parameter
            r = self.cloud.request({"command": "createDomain", "name": "csrf", "response": "json"},
                                   headers={"Cookie": session.cookie(), "Origin": origin, **host})
            self.assertEqual(r.status, 403, (origin, r.body))
        self.assertEqual(snapshot(self.cloud), before)
        r = session_call(self.cloud, session, "createDomain", name="same-origin",
                         headers={**host, "Origin": "http://cloud.example:8080"})
        self.assertEqual(r.status, 200, r.body)
        r = session_call(self.cloud, session, "listDomains", headers=host)
        self.assertEqual(r.status, 200, r.body)

    def test_foreign_referer_or_fetch_site_is_refused(self) -> None:
        """Without an Origin header (a top-level GET navigation sends none), a foreign Referer or
        `Sec-Fetch-Site: cross-site` also gets 403; a same-site Referer works."""
        session = session_of(login(self.cloud, "admin", self.cloud.admin.password))
        host = {"Host": "cloud.example:8080"}
        before = snapshot(self.cloud)
        for headers in [{"Referer": "http://evil.example/page?x=1"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Referer": "http://cloud.example:8080/", "Sec-Fetch-Site": "cross-site"}]:
            r = self.cloud.request({"command": "createDomain", "name": "csrf", "response": "json"},
                                   headers={"Cookie": session.cookie(), **host, **headers})
            self.assertEqual(r.status, 403, (headers, r.body))
        self.assertEqual(snapshot(self.cloud), before)
        for headers in [{"Referer": "http://cloud.example:8080/client/"}, {"Sec-Fetch-Site": "same-origin"},
                        {"Sec-Fetch-Site": "none"}]:
            r = session_call(self.cloud, session, "listDomains", headers={**host, **headers})
            self.assertEqual(r.status, 200, (headers, r.body))

    def test_origin_check_can_be_turned_off(self) -> None:
        """With api.session.origin.check=false a foreign Origin is not refused (operator's choice)."""
        session = session_of(login(self.cloud, "admin", self.cloud.admin.password))
        set_config(self.cloud, "api.session.origin.check", "false")
        r = session_call(self.cloud, session, "listDomains",
                         headers={"Host": "cloud.example:8080", "Origin": "http://evil.example"})
        self.assertEqual(r.status, 200, r.body)

    def test_cookie_and_parameter_mode(self) -> None:
        """With api.sessionkey.check.locations=CookieAndParameter a request with the key in only one
        place gets 401; with both it works."""
        set_config(self.cloud, "api.sessionkey.check.locations", "CookieAndParameter")
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        r = self.cloud.request({"command": "listEvents", "response": "json"}, headers={"Cookie": session.cookie()})
        self.assertEqual(r.status, 401, r.body)
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        r = self.cloud.request({"command": "listEvents", "response": "json", "sessionkey": session.key},
                               headers={"Cookie": session.cookie(with_key=False)})
        self.assertEqual(r.status, 401, r.body)
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 200)

    def test_session_ends(self) -> None:
        """A session ends after session.timeout seconds of inactivity, and when the password changes."""
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        self.cloud.reactor.advance(1700)
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 200)
        self.cloud.reactor.advance(1801)
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 401)
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        self.assertEqual(self.cloud.signed("updateUser", id=self.user["user_id"], password="new-pw").status, 200)
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 401)
        self.assertEqual(login(self.cloud, "bob", "new-pw").status, 200)

    def test_disabling_the_user_kills_its_sessions(self) -> None:
        """Disabling a user ends its sessions for good: they stay dead after it is enabled again."""
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 200)
        self.assertEqual(self.cloud.signed("disableUser", id=self.user["user_id"]).status, 200)
        self.assertEqual(self.cloud.signed("enableUser", id=self.user["user_id"]).status, 200)
        r = session_call(self.cloud, session, "listEvents")
        self.assertEqual(r.status, 401, r.body)
        self.assertNotIn(session.session_id, table_text(self.cloud, "sessions"))
        # a disabled account's sessions end the same way
        session = session_of(login(self.cloud, "bob", self.user["password"]))
        r = self.cloud.signed("disableAccount", id=self.user["account_id"], lock="true")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 401)
        self.assertEqual(self.cloud.signed("enableAccount", id=self.user["account_id"]).status, 200)
        self.assertEqual(session_call(self.cloud, session, "listEvents").status, 401)
        self.assertEqual(login(self.cloud, "bob", self.user["password"]).status, 200)


# --- canary secrets (security.md §6.12) --------------------------------------------------------------

CANARY = "CaNaRy-5e3b9f0d2c"


async def _prepare_secret_job(ctx: CallContext) -> Prepared:
    return Prepared("User", ctx.caller.user.uuid, f"User:{ctx.caller.user.id}",
                    state={"resource_name": ctx.caller.user.username})


async def _run_secret_job(ctx: CallContext, prepared: Prepared) -> Result:
    assert ctx.get("password", "").startswith(CANARY), "the job receives the secret in memory"
    if ctx.get("fail"):
        raise invalid_value("the back end refused the credentials")
    return SuccessResult()


# An async command with a secret parameter (no built-in one has any yet): its job must store and
# report nothing of the secret, whether it succeeds or fails.
SECRET_JOB = command("testSecretJob", description="test only", roles=ROOT, event="TEST.SECRET", is_async=True,
                     run=_run_secret_job,
                     params=[Param("password", required=True, secret=True), Param("fail", "boolean")],
                     )(_prepare_secret_job)


class CanaryTests(SynchronousTestCase):
    """A canary secret sent in any call never shows up in logs, responses, events or jobs."""

    def setUp(self) -> None:
        self.cloud = new_cloud(self)
        self.cloud.api.registry.add(SECRET_JOB)
        self.responses: list[Response] = []

    def send(self, r: Response) -> Response:
        self.responses.append(r)
        return r

    def exercise(self) -> None:
        """Send the canary as a password, a secret key and a signature, in calls that succeed and fail."""
        cloud, c = self.cloud, CANARY
        send = self.send
        user = {"firstname": "f", "lastname": "l", "email": "e@example.com"}
        r = send(cloud.signed("createAccount", username="carol", password=c + "1", accounttype=0, **user))
        self.assertEqual(r.status, 200, r.body)
        user_id = r.inner()["account"]["user"][0]["id"]
        self.assertEqual(send(cloud.signed("createUser", account="carol", username="carol2", password=c + "2",
                                           **user)).status, 200)
        self.assertEqual(send(cloud.signed("updateUser", id=user_id, password=c + "3")).status, 200)
        self.assertEqual(send(cloud.signed("updateUser", id=user_id, userapikey="carol-key",
                                           usersecretkey=c + "4")).status, 200)
        logged_in = send(login(cloud, "carol", c + "3"))
        self.assertEqual(logged_in.status, 200)
        # failures: wrong password, missing or bad parameters, duplicates, not authorised
        self.assertEqual(send(login(cloud, "carol", c + "wrong")).status, 531)
        self.assertEqual(send(login(cloud, "carol", c + "dup", **{"Password": c + "dup2"})).status, 431)
        self.assertEqual(send(cloud.request({"command": "login", "username": "carol", "password": c + "5",
                                             "response": "json"})).status, 405)
        self.assertEqual(send(login(cloud, "carol", c + "6", domain="/no/such/")).status, 531)
        self.assertEqual(send(cloud.signed("createAccount", username="dave", password=c + "7", **user)).status, 431)
        self.assertEqual(send(cloud.signed("createAccount", username="carol", password=c + "8", accounttype=0,
                                           **user)).status, 431)
        self.assertEqual(send(cloud.signed("createAccount", username="erin", password=c + "9" * 300,
                                           accounttype=0, **user)).status, 431)
        self.assertEqual(send(cloud.signed("createAccount", username="erin", password=c + "\t", accounttype=0,
                                           **user)).status, 431)
        self.assertEqual(send(cloud.signed("createAccount", username="erin", password=c + "a", accounttype="x",
                                           **user)).status, 431)
        self.assertEqual(send(cloud.signed("createAccount", username="erin", password=c + "b", accounttype=0,
                                           domainid="not-a-uuid", **user)).status, 431)
        self.assertEqual(send(cloud.signed("updateUser", id=user_id, usersecretkey=c + "c")).status, 431)
        self.assertEqual(send(cloud.signed("updateUser", id=user_id, password="")).status, 431)
        self.assertEqual(send(cloud.signed("updateUser", id=user_id, currentpassword=c + "d",
                                           password=c + "e", lastname="x" * 300)).status, 431)
        p = v1_params("createAccount", cloud.admin.apikey, cloud.admin.secretkey, username="frank",
                      password=c + "f", accounttype=0, **user)
        self.assertEqual(send(cloud.request(p, "POST", body={"password": c + "g"})).status, 431)
        self.assertEqual(send(cloud.request(p, "POST", body={"Password": c + "h"})).status, 431)
        carol_keys = cloud.signed("registerUserKeys", id=user_id).inner()["userkeys"]
        r = send(cloud.signed("updateUser", key=carol_keys["apikey"], secret=carol_keys["secretkey"], id=user_id,
                              password=c + "i", currentpassword=c + "wrong"))
        self.assertEqual(r.status, 431)
        r = send(cloud.signed("createAccount", key=carol_keys["apikey"], secret=carol_keys["secretkey"],
                              username="gina", password=c + "j", accounttype=0, **user))
        self.assertEqual(r.status, 432)
        # signatures and keys that fail
        for extra in [{"apiKey": cloud.admin.apikey, "signature": c + "k"},
                      {"apiKey": c + "l", "signature": c + "m"},
                      {"apikey": cloud.admin.apikey, "signature": c + "n", "sessionkey": c + "o"}]:
            self.assertEqual(send(cloud.request({"command": "createAccount", "response": "json", "username": "h",
                                                 "password": c + "p", **extra})).status, 401)
        self.assertEqual(send(cloud.request(v3_params(cloud, "createAccount", username="hal", password=c + "q",
                                                      accounttype=0, expires=iso(NOW - 5), **user))).status, 401)
        session = session_of(logged_in)
        self.assertEqual(send(cloud.request({"command": "listUsers", "response": "json", "sessionkey": c + "r"},
                                            headers={"Cookie": f"JSESSIONID={session.session_id}"})).status, 401)
        # an async command with a secret parameter, succeeding and failing
        for fail in ("false", "true"):
            r = send(cloud.signed("testSecretJob", password=c + "s", fail=fail))
            self.assertEqual(r.status, 200, r.body)
            job = cloud.signed("queryAsyncJobResult", jobid=r.inner()["jobid"]).inner()
            self.assertEqual(job["jobstatus"], 2 if fail == "true" else 1, job)
            self.responses.append(cloud.signed("queryAsyncJobResult", jobid=r.inner()["jobid"]))
        self.assertEqual(send(cloud.signed("testSecretJob", password=c + "t" * 300)).status, 431)

    def test_canary_never_leaks(self) -> None:
        """The canary is absent from log events, response bodies and headers, listEvents, and the
        events and async_jobs tables (raw SQL)."""
        with captured_logs() as logs:
            self.exercise()
            self.cloud.reactor.advance(5)
        self.assertTrue(logs.events, "the capture saw the server's log events")
        self.assertNotIn(CANARY, logs.text())
        for r in self.responses:
            self.assertNotIn(CANARY.encode(), r.body)
            self.assertNotIn(CANARY, json.dumps(r.headers))
        listed = self.cloud.signed("listEvents", listall="true", pagesize=-1)
        self.assertGreater(listed.inner()["count"], 5)
        self.assertNotIn(CANARY.encode(), listed.body)
        for table in ("events", "async_jobs"):
            self.assertNotIn(CANARY, table_text(self.cloud, table), table)
        jobs = table_text(self.cloud, "async_jobs")
        self.assertIn("testSecretJob", jobs)
        self.assertIn("the back end refused the credentials", jobs)
        # the only place the canary may be stored is the secret key column it was set as
        for table, rows in snapshot(self.cloud).items():
            for row in rows:
                hits = [v for v in row if isinstance(v, str) and CANARY in v]
                self.assertEqual(hits, [CANARY + "4"] if hits else [], (table, row))


class AccessLogTests(SynchronousTestCase):
    """The access log formatter of the API site hides parameter values."""

    def test_redact_uri(self) -> None:
        """Only command and response keep their values; names stay; other URIs pass unchanged."""
        self.assertEqual(redact_uri(b"/client/api?command=login&username=a&password=s3cret&response=json"),
                         b"/client/api?command=login&username=***&password=***&response=json")
        self.assertEqual(redact_uri(b"/client/api?Command=x&signature=abc%2B&flag&=v"),
                         b"/client/api?Command=x&signature=***&flag&=***")
        self.assertEqual(redact_uri(b"/client/api"), b"/client/api")


class RealProcessTests(SynchronousTestCase):
    """`twistd -n cloudd` as a real process: its log file and its listening sockets."""

    def start(self, daemon: CloudDaemon | None = None) -> CloudDaemon:
        daemon = daemon or CloudDaemon(os.path.abspath(self.mktemp()))
        daemon.start()
        self.addCleanup(daemon.stop)
        return daemon

    def test_canary_absent_from_log_file(self) -> None:
        """Passwords, secret keys, signatures and session keys sent in succeeding and failing calls
        never reach the twistd log file (access log lines included)."""
        d = self.start()
        creds = d.credentials()
        url = d.endpoint
        c = CANARY
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        def get(params: dict[str, str]) -> int:
            return http(url + "?" + urllib.parse.urlencode(params)).status

        def post(params: dict[str, str] | list[tuple[str, str]]) -> Any:
            return http(url, data=urllib.parse.urlencode(params).encode(), headers=form)

        def signed(command: str, **params: str) -> dict[str, str]:
            return v1_params(command, creds["apikey"], creds["secretkey"], **params)

        user = {"firstname": "f", "lastname": "l", "email": "e@example.com"}
        create = signed("createAccount", username="ivan", password=c + "1", accounttype="0", **user)
        self.assertEqual(get(create), 200)
        secrets = [create["signature"]]
        ivan = json.loads(http(url + "?" + urllib.parse.urlencode(
            signed("listUsers", username="ivan", listall="true"))).body)["listusersresponse"]["user"][0]["id"]
        update = signed("updateUser", id=ivan, userapikey="ivan-key", usersecretkey=c + "2")
        self.assertEqual(get(update), 200)
        secrets.append(update["signature"])
        self.assertEqual(get({"command": "login", "username": "ivan", "password": c + "1", "response": "json"}), 405)
        self.assertEqual(post({"command": "login", "username": "ivan", "password": c + "x", "response": "json"})
                         .status, 531)
        self.assertEqual(post([("command", "login"), ("username", "ivan"), ("password", c + "3"),
                               ("password", c + "4"), ("response", "json")]).status, 431)
        self.assertEqual(get({"command": "login", "username": "ivan", "password": c + "5", "Password": c + "6"}),
                         431)
        r = post({"command": "login", "username": "ivan", "password": c + "1", "response": "json"})
        self.assertEqual(r.status, 200)
        key = json.loads(r.body)["loginresponse"]["sessionkey"]
        secrets.append(key)
        cookie = "; ".join(h.split(";")[0] for h in r.cookies)
        r = http(url + "?" + urllib.parse.urlencode({"command": "listEvents", "response": "json",
                                                      "sessionkey": key}), headers={"Cookie": cookie})
        self.assertEqual(r.status, 200)
        self.assertEqual(get({"command": "listUsers", "apiKey": creds["apikey"], "signature": c + "7"}), 401)
        self.assertEqual(get(signed("createAccount", username="judy", password=c + "8", **user)), 431)
        self.assertEqual(get(signed("updateUser", id=ivan, usersecretkey=c + "9")), 431)
        self.assertEqual(http(url + "?" + urllib.parse.urlencode({"command": "listUsers", "password": c + "a"}),
                              method="PUT").status, 405)
        d.stop()
        log = d.log()
        self.assertIn("command=login", log, "the access log is written")
        self.assertIn("password=***", log)
        self.assertNotIn(c, log)
        for secret in [*secrets, creds["secretkey"], creds["password"]]:
            self.assertNotIn(secret, log)
            self.assertNotIn(urllib.parse.quote(secret, safe=""), log)

    def test_only_the_api_port_listens(self) -> None:
        """With integration.api.port 0 (the default) or negative, the process listens on exactly
        one TCP port, the API's, and holds no UDP socket (CVE-2024-39864)."""
        if not os.path.exists("/proc/self/net/tcp"):
            self.skipTest("needs Linux /proc")
        d = self.start()
        self.assertEqual(self.listening(d), ({d.port}, set()))
        creds = d.credentials()
        p = v1_params("updateConfiguration", creds["apikey"], creds["secretkey"], name="integration.api.port",
                      value="-1")
        self.assertEqual(http(d.endpoint + "?" + urllib.parse.urlencode(p)).status, 200)
        d.stop()
        self.start(d)
        self.assertEqual(self.listening(d), ({d.port}, set()))

    def test_enabled_integration_port(self) -> None:
        """When an operator sets integration.api.port, after a restart that port (and only it, besides
        the API's) listens on 127.0.0.1, and answers unsigned commands as the system account."""
        if not os.path.exists("/proc/self/net/tcp"):
            self.skipTest("needs Linux /proc")
        d = self.start()
        creds = d.credentials()
        port = free_port()
        p = v1_params("updateConfiguration", creds["apikey"], creds["secretkey"], name="integration.api.port",
                      value=str(port))
        self.assertEqual(http(d.endpoint + "?" + urllib.parse.urlencode(p)).status, 200)
        d.stop()
        self.start(d)
        self.assertEqual(self.listening(d), ({d.port, port}, set()))
        r = http(f"http://127.0.0.1:{port}/client/api?command=listAccounts&name=system&response=json")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.inner()["account"][0]["name"], "system")
        r = http(f"http://127.0.0.1:{port}/client/api?command=createDomain&name=via-integration&response=json")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.inner()["domain"]["name"], "via-integration")
        # the main endpoint still wants a signature
        self.assertEqual(http(d.endpoint + "?command=listAccounts&response=json").status, 401)

    @staticmethod
    def listening(d: CloudDaemon) -> tuple[set[int], set[int]]:
        """(TCP ports in LISTEN, UDP ports bound) of the sockets the daemon process holds."""
        assert d.proc is not None
        pid = d.proc.pid
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m:
                inodes.add(m.group(1))

        def ports(kind: str, listen_only: bool) -> set[int]:
            found = set()
            for name in (kind, kind + "6"):
                try:
                    with open(f"/proc/{pid}/net/{name}") as f:
                        lines = f.read().splitlines()[1:]
                except FileNotFoundError:
                    continue
                for line in lines:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if inode in inodes and (state == "0A" or not listen_only):
                        found.add(int(local.rsplit(":", 1)[1], 16))
            return found

        return ports("tcp", True), ports("udp", False)


# --- throttling and forwarded addresses (security.md §6.4, §6.9; api.md §7) -------------------------

class ThrottlingTests(SynchronousTestCase):
    """Per-account, per-address and failed-login limits answer 429 with Retry-After."""

    def setUp(self) -> None:
        self.cloud = new_cloud(self)
        self.user = make_user(self.cloud, "kim")
        self.peer = make_user(self.cloud, "lee")

    def call(self, who: dict[str, str], command: str = "listEvents", client: str = "127.0.0.1") -> Response:
        return self.cloud.request(v1_params(command, who["apikey"], who["secretkey"]), client=client)

    def assertThrottled(self, r: Response, name: str = "listeventsresponse") -> None:  # noqa: N802
        self.assertEqual(r.status, 429, r.body)
        self.assertEqual(list(r.json()), [name])
        body = r.inner()
        self.assertEqual(body["errorcode"], 429)
        self.assertEqual(body["cserrorcode"], 9999)
        self.assertRegex(body["errortext"], r"^The given user has reached his/her account api limit, please retry "
                                            r"after \[\d+\] ms\.$")
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)

    def test_account_limit(self) -> None:
        """Beyond api.throttling.max in one window a user gets 429; the next window resets; another
        account is counted separately; the root admin is never throttled by the account counter."""
        set_config(self.cloud, "api.throttling.max", "3")
        set_config(self.cloud, "api.throttling.interval", "10")
        set_config(self.cloud, "api.throttling.enabled", "true")
        for _ in range(3):
            self.assertEqual(self.call(self.user).status, 200)
        r = self.call(self.user)
        self.assertThrottled(r)
        self.assertIn("[10000] ms", r.inner()["errortext"])
        self.assertEqual(r.headers["retry-after"], "10")
        self.assertThrottled(self.call(self.user, "listAccounts"), "listaccountsresponse")
        self.assertEqual(self.call(self.peer).status, 200)
        for _ in range(20):
            self.assertEqual(self.cloud.signed("listEvents").status, 200)
        self.cloud.reactor.advance(4)
        r = self.call(self.user)
        self.assertThrottled(r)
        self.assertEqual(r.headers["retry-after"], "6")
        self.cloud.reactor.advance(6)
        self.assertEqual(self.call(self.user).status, 200)

    def test_throttled_call_changes_nothing(self) -> None:
        """A throttled state-changing call is refused before it runs."""
        set_config(self.cloud, "api.throttling.max", "1")
        set_config(self.cloud, "api.throttling.enabled", "true")
        self.assertEqual(self.call(self.user).status, 200)
        before = snapshot(self.cloud)
        r = self.cloud.request(v1_params("updateUser", self.user["apikey"], self.user["secretkey"],
                                         id=self.user["user_id"], firstname="changed"))
        self.assertThrottled(r, "updateuserresponse")
        self.assertEqual(snapshot(self.cloud), before)

    def test_address_limit(self) -> None:
        """Beyond api.throttling.address.max requests from one address get 429, even unauthenticated
        ones and the root admin's; other addresses are not affected."""
        set_config(self.cloud, "api.throttling.address.max", "4")
        set_config(self.cloud, "api.throttling.enabled", "true")
        anonymous = {"command": "listEvents", "response": "json"}
        self.assertEqual(self.cloud.request(anonymous, client="192.0.2.10").status, 401)
        for _ in range(3):
            self.assertEqual(self.call(self.user, client="192.0.2.10").status, 200)
        self.assertThrottled(self.call(self.user, client="192.0.2.10"))
        self.assertEqual(self.cloud.request(anonymous, client="192.0.2.10").status, 429)
        r = self.cloud.request(v1_params("listEvents", self.cloud.admin.apikey, self.cloud.admin.secretkey),
                               client="192.0.2.10")
        self.assertEqual(r.status, 429)
        self.assertEqual(self.call(self.peer, client="192.0.2.11").status, 200)
        self.cloud.reactor.advance(1)
        self.assertEqual(self.call(self.user, client="192.0.2.10").status, 200)

    def test_failed_logins(self) -> None:
        """After api.login.failures.max failed logins a user gets 429, even with the right password,
        until the window passes; other users can still log in."""
        set_config(self.cloud, "api.login.failures.max", "3")
        set_config(self.cloud, "api.login.failures.window", "60")
        for _ in range(3):
            self.assertEqual(login(self.cloud, "kim", "wrong").status, 531)
        r = login(self.cloud, "kim", self.user["password"])
        self.assertThrottled(r, "loginresponse")
        self.assertNotIn("set-cookie", r.headers)
        self.assertEqual(login(self.cloud, "lee", self.peer["password"]).status, 200)
        self.cloud.reactor.advance(59)
        self.assertEqual(login(self.cloud, "kim", self.user["password"]).status, 429)
        self.cloud.reactor.advance(2)
        self.assertEqual(login(self.cloud, "kim", self.user["password"]).status, 200)

    def test_failed_logins_per_address(self) -> None:
        """Failed logins from one address against many user names are limited per address too."""
        set_config(self.cloud, "api.login.failures.max", "2")
        for i in range(20):
            self.assertEqual(login(self.cloud, f"nobody{i}", "x", client="198.51.100.7").status, 531)
        self.assertEqual(login(self.cloud, "kim", self.user["password"], client="198.51.100.7").status, 429)
        self.assertEqual(login(self.cloud, "kim", self.user["password"], client="198.51.100.8").status, 200)


class ForwardedForTests(SynchronousTestCase):
    """X-Forwarded-For counts only from a trusted proxy (CVE-2024-29006)."""

    def setUp(self) -> None:
        self.cloud = new_cloud(self)
        set_config(self.cloud, "api.throttling.address.max", "2")
        set_config(self.cloud, "api.throttling.enabled", "true")

    def call(self, peer: str, forwarded: str) -> Response:
        return self.cloud.request({"command": "listEvents", "response": "json"},
                                  headers={"X-Forwarded-For": forwarded}, client=peer)

    def test_untrusted_peer_header_ignored(self) -> None:
        """From a peer outside proxy.cidr the header is ignored: the limiter counts the real peer,
        whatever addresses the header claims, and a log event notes it."""
        set_config(self.cloud, "proxy.header.verify", "true")
        set_config(self.cloud, "proxy.cidr", "10.0.0.0/8")
        with captured_logs() as logs:
            self.assertEqual(self.call("192.0.2.1", "10.1.1.1").status, 401)
            self.assertEqual(self.call("192.0.2.1", "10.1.1.2").status, 401)
            self.assertEqual(self.call("192.0.2.1", "10.1.1.3").status, 429)
        self.assertIn("ignored a forwarded-for header from untrusted peer 192.0.2.1", logs.text())
        self.assertEqual(self.call("192.0.2.2", "10.1.1.3").status, 401)

    def test_header_ignored_when_verification_is_off(self) -> None:
        """With proxy.header.verify=false even a peer inside proxy.cidr is counted as itself."""
        set_config(self.cloud, "proxy.cidr", "192.0.2.0/24")
        for i in range(2):
            self.assertEqual(self.call("192.0.2.1", f"203.0.113.{i}").status, 401)
        self.assertEqual(self.call("192.0.2.1", "203.0.113.9").status, 429)

    def test_trusted_proxy(self) -> None:
        """From a trusted proxy the forwarded client address is used, so clients behind one proxy are
        counted apart; entries the client wrote itself (left of the proxy's) are not believed."""
        set_config(self.cloud, "proxy.header.verify", "true")
        set_config(self.cloud, "proxy.cidr", "192.0.2.0/24, 198.51.100.0/24")
        for _ in range(2):
            self.assertEqual(self.call("192.0.2.1", "203.0.113.5").status, 401)
        self.assertEqual(self.call("192.0.2.1", "203.0.113.5").status, 429)
        self.assertEqual(self.call("192.0.2.1", "203.0.113.6").status, 401)
        # a spoofed first entry does not escape the limit of the real client
        self.assertEqual(self.call("192.0.2.1", "6.6.6.6, 203.0.113.5").status, 429)
        # two trusted proxies in a row: the client is the first untrusted hop from the right
        self.assertEqual(self.call("192.0.2.1", "6.6.6.7, 203.0.113.5, 198.51.100.3").status, 429)
        self.assertEqual(self.call("192.0.2.1", "203.0.113.7, 198.51.100.3").status, 401)
        self.assertEqual(self.call("192.0.2.1", "not-an-address").status, 401)
        self.assertEqual(self.call("192.0.2.1", "not-an-address").status, 401)
        self.assertEqual(self.call("192.0.2.1", "not-an-address").status, 429)

    def test_login_event_records_forwarded_address(self) -> None:
        """The USER.LOGIN event names the address the trusted proxy forwarded, not the proxy's."""
        set_config(self.cloud, "api.throttling.enabled", "false")
        set_config(self.cloud, "proxy.header.verify", "true")
        set_config(self.cloud, "proxy.cidr", "192.0.2.0/24")
        r = self.cloud.request({}, "POST", body={"command": "login", "username": "admin", "response": "json",
                                                 "password": self.cloud.admin.password},
                               headers={"X-Forwarded-For": "203.0.113.44"}, client="192.0.2.1")
        self.assertEqual(r.status, 200, r.body)
        events = self.cloud.signed("listEvents", type="USER.LOGIN").inner()["event"]
        self.assertIn("203.0.113.44", events[0]["description"])
