"""Which `signatureVersion` and `expires` combinations a signed request may carry (spec/api.md §2.4).

`signatureVersion` is absent or exactly `3`; anything else, the empty value included, gets 401. An
`expires` that is present is enforced whatever the version (past, unparseable or further ahead than
`api.request.expires.max.seconds` → 401). Version 3 needs an `expires`. Requests with neither are
accepted, counted and logged by default. Every combination below is correctly signed with the
admin's keys, so the verdict is about the version and the expiry alone.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from cloudd.web.signing import sign
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.tenants import iso, set_config, snapshot

SIGNATURE_FAILED = "unable to verify user credentials and/or request signature"
NOW = 1_700_000_000.0

ABSENT = None

# signatureVersion values: absent, the one version there is, and the ones that are not it.
OTHER_VERSIONS = ["", "4", "3.0", "2", "1", " 3", "3 ", "03", "v3", "three", "3\n"]


def expires_values(cap: int) -> dict[str, str | None]:
    """`expires` values by what they are, relative to the fake clock's NOW."""
    return {
        "absent": ABSENT,
        "valid": iso(NOW + 600),
        "valid, at the cap": iso(NOW + cap),
        "past": iso(NOW - 1),
        "long past": "2001-01-01T00:00:00Z",
        "beyond the cap": iso(NOW + cap + 60),
        "years ahead": iso(NOW + 10 * 365 * 86400),
        "empty": "",
        "garbage": "tomorrow",
        "no zone": "2023-11-14T22:23:20",
        "epoch seconds": str(int(NOW + 600)),
    }


class VersionExpiryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud: Cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(NOW)
        self.cap = self.cloud.api.settings.int("api.request.expires.max.seconds")
        self.expires = expires_values(self.cap)

    def send(self, version: str | None, expires: str | None, command: str = "listDomains",
             version_name: str = "signatureVersion", expires_name: str = "expires", **extra: str) -> Response:
        p = {"command": command, "response": "json", "apiKey": self.cloud.admin.apikey, **extra}
        if version is not None:
            p[version_name] = version
        if expires is not None:
            p[expires_name] = expires
        p["signature"] = sign(p, self.cloud.admin.secretkey)
        return self.cloud.request(p)

    def verdict(self, r: Response) -> str:
        if r.status == 200:
            return "accepted"
        self.assertEqual(r.status, 401, r.body)
        self.assertEqual(r.inner()["errorcode"], 401)
        self.assertEqual(r.inner()["errortext"], SIGNATURE_FAILED)
        return "refused"

    def test_every_combination(self) -> None:
        """Each version (absent, 3, others) with each kind of expires gets the documented verdict."""
        expected: dict[tuple[str, str], str] = {}
        got: dict[tuple[str, str], str] = {}
        good_expiry = {"valid", "valid, at the cap"}
        for version in [ABSENT, "3", *OTHER_VERSIONS]:
            for kind, expires in self.expires.items():
                if version is ABSENT:
                    want = "accepted" if kind == "absent" or kind in good_expiry else "refused"
                elif version == "3":
                    want = "accepted" if kind in good_expiry else "refused"
                else:
                    want = "refused"
                expected[(repr(version), kind)] = want
                got[(repr(version), kind)] = self.verdict(self.send(version, expires))
        self.assertEqual(got, expected)

    def test_names_in_any_case(self) -> None:
        """The rules hold however the client spells the two names (cmk writes `signatureversion`)."""
        for version_name in ["signatureVersion", "signatureversion", "SIGNATUREVERSION"]:
            for expires_name in ["expires", "Expires", "EXPIRES"]:
                names = {"version_name": version_name, "expires_name": expires_name}
                self.assertEqual(self.send("3", self.expires["valid"], **names).status, 200, names)
                self.assertEqual(self.send("4", self.expires["valid"], **names).status, 401, names)
                self.assertEqual(self.send(ABSENT, self.expires["past"], **names).status, 401, names)
                self.assertEqual(self.send(ABSENT, self.expires["beyond the cap"], **names).status, 401, names)
                self.assertEqual(self.send("3", ABSENT, **names).status, 401, names)

    def test_refused_requests_change_nothing(self) -> None:
        """A state-changing command refused for its version or expiry leaves every table as it was."""
        before = snapshot(self.cloud)
        for n, (version, expires) in enumerate([
            ("", self.expires["valid"]), ("4", self.expires["valid"]), ("3.0", ABSENT), ("", ABSENT),
            (ABSENT, self.expires["past"]), (ABSENT, self.expires["years ahead"]), (ABSENT, "garbage"),
            (ABSENT, ""),
        ]):
            r = self.send(version, expires, command="createDomain", name=f"refused-{n}")
            self.assertEqual(self.verdict(r), "refused", (version, expires))
            self.assertEqual(list(r.json()), ["createdomainresponse"])
        self.assertEqual(snapshot(self.cloud), before)

    def test_expiry_without_version_expires(self) -> None:
        """A request that carries expires without a version works until then, and is refused after."""
        p_expires = iso(NOW + 60)
        self.assertEqual(self.send(ABSENT, p_expires).status, 200)
        self.cloud.reactor.advance(61)
        self.assertEqual(self.verdict(self.send(ABSENT, p_expires)), "refused")

    def test_cap_follows_the_setting(self) -> None:
        """Lowering api.request.expires.max.seconds refuses an expiry that was fine, with or without a version."""
        for version in [ABSENT, "3"]:
            self.assertEqual(self.send(version, iso(NOW + 120)).status, 200)
        set_config(self.cloud, "api.request.expires.max.seconds", "60")
        for version in [ABSENT, "3"]:
            self.assertEqual(self.verdict(self.send(version, iso(NOW + 120))), "refused")
            self.assertEqual(self.send(version, iso(NOW + 30)).status, 200)

    def test_only_requests_without_expiry_are_counted(self) -> None:
        """The count of unexpiring requests grows for a request with no expires, and for no other."""
        auth = self.cloud.auth
        start = auth.unexpiring_accepted
        self.assertEqual(self.send(ABSENT, ABSENT).status, 200)
        self.assertEqual(auth.unexpiring_accepted, start + 1)
        self.assertEqual(self.send(ABSENT, self.expires["valid"]).status, 200)
        self.assertEqual(self.send("3", self.expires["valid"]).status, 200)
        for version, expires in [("4", ABSENT), ("", ABSENT), (ABSENT, "garbage")]:
            self.assertEqual(self.send(version, expires).status, 401)
        self.assertEqual(auth.unexpiring_accepted, start + 1)

    def test_version3_required_refuses_expiry_without_version(self) -> None:
        """api.signature.version3.required refuses every request that is not version 3, even one with a
        valid expires; version 3 with a valid expires still works."""
        set_config(self.cloud, "api.signature.version3.required", "true")
        self.assertEqual(self.verdict(self.send(ABSENT, ABSENT)), "refused")
        self.assertEqual(self.verdict(self.send(ABSENT, self.expires["valid"])), "refused")
        self.assertEqual(self.verdict(self.send("", self.expires["valid"])), "refused")
        self.assertEqual(self.send("3", self.expires["valid"]).status, 200)
