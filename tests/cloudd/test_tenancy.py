"""Cross-tenant isolation of the query API (spec/security.md §1.2 and §6 items 10–11; api.md §4.2, §6).

Two domains A and B and a sub-domain A/sub each hold a domain admin and a user (`Tenants`); a
domain admin of ROOT and a second root admin stand above them. Every list command, with every
combination of the scoping parameters, must show a caller nothing outside its own scope; every
command that takes an account, user, domain or job id must refuse ids outside it and change
nothing; `domainid` never falls back to a parent; no caller acts on a user of a higher role.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.api.registry import USER
from tests.util.cloud import Response, make_cloud
from tests.util.tenants import Party, Tenants, fast_hashing, set_config, snapshot, v1_params

NOW = 1_700_000_000.0
LISTS = ["listAccounts", "listUsers", "listDomains", "listDomainChildren", "listEvents", "listAsyncJobs", "listRoles"]
OWNED_LISTS = ["listAccounts", "listUsers", "listEvents", "listAsyncJobs"]
REFUSED = {431, 531, 432}


def ids_of(*parties: Party) -> set[str]:
    return {i for p in parties for i in (p.user_id, p.account_id)}


class TenancyTests(SynchronousTestCase):
    """Callers of tenant A (its user, its domain admin, the domain admin of A/sub) against B and
    against everything above their own subtree."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(NOW)
        t = self.t = Tenants(self.cloud)
        # a finished job in B and one in A (run by A's domain admin), plus their events
        r = t.call("b_admin", "disableUser", id=t["b_user"].user_id)
        self.assertEqual(r.status, 200, r.body)
        self.b_job = r.inner()["jobid"]
        self.assertEqual(t.call("b_admin", "enableUser", id=t["b_user"].user_id).status, 200)
        r = t.call("a_admin", "disableUser", id=t["a_user2"].user_id)
        self.assertEqual(r.status, 200, r.body)
        self.a_job = r.inner()["jobid"]
        self.assertEqual(t.call("a_admin", "enableUser", id=t["a_user2"].user_id).status, 200)
        self.admin = self.cloud.signed("listUsers", username="admin").inner()["user"][0]
        self.b_ids = ids_of(t["b_admin"], t["b_user"]) | {t.b, self.b_job}
        self.root_ids = ids_of(t["root2"], t["root_dadmin"]) | {self.admin["id"], self.admin["accountid"]}
        self.a_ids = ids_of(t["a_admin"], t["a_user"], t["a_user2"]) | {self.a_job}
        # what each caller must never see
        self.forbidden = {
            "a_admin": self.b_ids | self.root_ids,
            "sub_admin": self.b_ids | self.root_ids | self.a_ids,
            "a_user": self.b_ids | self.root_ids | ids_of(t["a_admin"], t["sub_admin"], t["sub_user"]) | {self.a_job},
        }

    def variants(self, caller: str) -> list[dict[str, str]]:
        t = self.t
        b_user = t["b_user"]
        out: list[dict[str, str]] = [
            {}, {"listall": "true"}, {"isrecursive": "true"}, {"listall": "true", "isrecursive": "true"},
            {"keyword": "b"}, {"keyword": "tenant"}, {"name": "tenant-b"}, {"username": "b_user"},
            {"domainid": t.b}, {"domainid": t.b, "isrecursive": "true"}, {"domainid": t.b, "listall": "true"},
            {"domainid": t.root_id, "listall": "true", "isrecursive": "true"},
            {"account": b_user.account}, {"account": b_user.account, "domainid": t.b},
            {"account": t["root2"].account, "domainid": t.root_id},
            {"accountid": b_user.account_id}, {"accountid": t["root2"].account_id},
            {"type": "USER.DISABLE", "listall": "true"},
        ]
        for target in sorted(self.forbidden[caller]):
            out.append({"id": target})
            out.append({"id": target, "listall": "true"})
        if caller == "sub_admin":
            out += [{"domainid": t.a}, {"domainid": t.a, "isrecursive": "true"}, {"id": t.a}]
        return out

    def leaks(self, caller: str, r: Response) -> set[str]:
        return {i for i in self.forbidden[caller] if i.encode() in r.body}

    def test_lists_show_nothing_outside_the_scope(self) -> None:
        """No list command, with any listall/isrecursive/domainid/account/id combination, shows a
        caller anything of B or above its own subtree; refusals are 431, 531 or 432."""
        problems = []
        for caller in self.forbidden:
            for cmd in LISTS:
                for params in self.variants(caller):
                    r = self.t.call(caller, cmd, **params)
                    if r.status != 200 and r.status not in REFUSED:
                        problems.append((caller, cmd, params, r.status, r.body[:200]))
                    leaked = self.leaks(caller, r)
                    if r.status != 200:
                        leaked -= set(params.values())  # an error text may echo the id it was given
                    if leaked:
                        problems.append((caller, cmd, params, "leaks", leaked))
        self.assertEqual(problems, [])

    def test_lists_do_show_the_own_scope(self) -> None:
        """The lists are not merely empty: each caller sees its own subtree (positive control)."""
        t = self.t

        def listed(caller: str, cmd: str, **params: str) -> bytes:
            r = t.call(caller, cmd, **params)
            self.assertEqual(r.status, 200, r.body)
            return r.body

        body = listed("a_admin", "listAccounts", listall="true")
        for party in ("a_admin", "a_user", "sub_admin", "sub_user"):
            self.assertIn(t[party].account_id.encode(), body)
        body = listed("a_admin", "listUsers", domainid=t.sub)
        self.assertIn(t["sub_user"].user_id.encode(), body)
        self.assertIn(self.a_job.encode(), listed("a_admin", "listAsyncJobs"))
        self.assertIn(t.sub.encode(), listed("a_admin", "listDomainChildren"))
        self.assertIn(t["sub_user"].account_id.encode(), listed("sub_admin", "listAccounts", listall="true"))
        self.assertIn(t["a_user2"].user_id.encode(), listed("a_user", "listAccounts"))
        self.assertIn(b"USER.DISABLE", listed("a_user", "listEvents"))

    def test_foreign_domainid_is_refused(self) -> None:
        """domainid of B, of ROOT, or (for A/sub's admin) of A gets 531/431 on every owner-scoped list,
        never a fallback to the caller's own, a parent or the ROOT domain."""
        t = self.t
        targets = {"a_user": [t.b, t.root_id, t.sub], "a_admin": [t.b, t.root_id], "sub_admin": [t.b, t.root_id, t.a]}
        problems = []
        for caller, domains in targets.items():
            for cmd in OWNED_LISTS:
                if caller == "a_user" and cmd == "listUsers":
                    continue  # not a user's command at all (432)
                for domain in domains:
                    for extra in ({}, {"isrecursive": "true"}, {"listall": "true"}, {"account": t["b_user"].account},
                                  {"account": t[caller].account}):
                        r = t.call(caller, cmd, domainid=domain, **extra)
                        if r.status not in (431, 531) or self.leaks(caller, r):
                            problems.append((caller, cmd, domain, extra, r.status, r.body[:160]))
        self.assertEqual(problems, [])

    def id_commands(self, user: Party, other_admin: Party, domain: str, job: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            ("updateAccount", {"id": user.account_id, "newname": "renamed"}),
            ("updateAccount", {"account": user.account, "domainid": domain, "newname": "renamed"}),
            ("disableAccount", {"id": user.account_id, "lock": "false"}),
            ("disableAccount", {"account": user.account, "domainid": domain, "lock": "true"}),
            ("enableAccount", {"id": user.account_id}),
            ("lockAccount", {"account": user.account, "domainid": domain}),
            ("deleteAccount", {"id": user.account_id}),
            ("deleteAccount", {"id": other_admin.account_id}),
            ("updateUser", {"id": user.user_id, "firstname": "renamed"}),
            ("updateUser", {"id": user.user_id, "password": "taken-over"}),
            ("updateUser", {"id": other_admin.user_id, "password": "taken-over"}),
            ("disableUser", {"id": user.user_id}),
            ("enableUser", {"id": user.user_id}),
            ("lockUser", {"id": user.user_id}),
            ("deleteUser", {"id": user.user_id}),
            ("getUserKeys", {"id": user.user_id}),
            ("getUserKeys", {"id": other_admin.user_id}),
            ("registerUserKeys", {"id": user.user_id}),
            ("registerUserKeys", {"id": other_admin.user_id}),
            ("getUser", {"userapikey": user.apikey}),
            ("queryAsyncJobResult", {"jobid": job}),
            ("updateDomain", {"id": domain, "name": "renamed"}),
            ("deleteDomain", {"id": domain, "cleanup": "true"}),
            ("listDomainChildren", {"id": domain}),
            ("listDomainChildren", {"id": domain, "isrecursive": "true"}),
            ("createUser", {"account": user.account, "domainid": domain, "username": "intruder", "password": "p",
                            "firstname": "f", "lastname": "l", "email": "e"}),
            ("createAccount", {"domainid": domain, "username": "intruder", "password": "p", "firstname": "f",
                               "lastname": "l", "email": "e", "accounttype": "0"}),
            ("createDomain", {"name": "intruder", "parentdomainid": domain}),
        ]

    def assert_refused_unchanged(self, runs: list[tuple[str, str, dict[str, Any]]]) -> None:
        problems = []
        for caller, cmd, params in runs:
            before = snapshot(self.cloud)
            r = self.t.call(caller, cmd, **params)
            self.cloud.reactor.advance(1)  # let any job that was wrongly accepted run
            after = snapshot(self.cloud)
            changed = sorted(k for k in before if before[k] != after[k])
            if r.status not in REFUSED or changed or self.leaks(caller, r) - set(params.values()):
                problems.append((caller, cmd, params, r.status, changed, r.body[:160]))
        self.assertEqual(problems, [])

    def test_other_tenants_ids_are_refused(self) -> None:
        """Every id-taking command with B's ids (and, for A/sub's admin, A's) is refused and changes
        nothing, verified on every table."""
        t = self.t
        runs = []
        for caller in self.forbidden:
            for cmd, params in self.id_commands(t["b_user"], t["b_admin"], t.b, self.b_job):
                runs.append((caller, cmd, params))
        for cmd, params in self.id_commands(t["a_user"], t["a_admin"], t.a, self.a_job):
            runs.append(("sub_admin", cmd, params))
        self.assert_refused_unchanged(runs)

    def test_a_uuid_is_no_oracle(self) -> None:
        """Another tenant's id gets the very answer an id that does not exist gets."""
        t = self.t
        for cmd, name, value in [("getUserKeys", "id", t["b_user"].user_id), ("updateUser", "id", t["b_user"].user_id),
                                 ("deleteAccount", "id", t["b_user"].account_id),
                                 ("updateAccount", "id", t["b_admin"].account_id),
                                 ("queryAsyncJobResult", "jobid", self.b_job)]:
            unknown = str(uuid.uuid4())
            real = t.call("a_admin", cmd, **{name: value})
            fake = t.call("a_admin", cmd, **{name: unknown})
            self.assertEqual((real.status, real.body.replace(value.encode(), b"X")),
                             (fake.status, fake.body.replace(unknown.encode(), b"X")), cmd)

    def test_root_domain_admin_cannot_touch_root_admins(self) -> None:
        """A domain admin of ROOT can neither read nor regenerate the keys of, set the password of,
        disable, lock or delete a root admin (CVE-2024-42062, CVE-2025-47713/47849)."""
        t = self.t
        runs = []
        for user_id, account_id in [(t["root2"].user_id, t["root2"].account_id),
                                    (self.admin["id"], self.admin["accountid"])]:
            for cmd, params in [("getUserKeys", {}), ("registerUserKeys", {}), ("updateUser", {"password": "x"}),
                                ("updateUser", {"firstname": "x"}), ("updateUser", {"email": "evil@example.com"}),
                                ("disableUser", {}), ("lockUser", {}), ("deleteUser", {}), ("enableUser", {})]:
                runs.append(("root_dadmin", cmd, {"id": user_id, **params}))
            for cmd, params in [("updateAccount", {"newname": "x"}), ("disableAccount", {"lock": "false"}),
                                ("disableAccount", {"lock": "true"}), ("deleteAccount", {}), ("enableAccount", {})]:
                runs.append(("root_dadmin", cmd, {"id": account_id, **params}))
        runs.append(("root_dadmin", "lockAccount", {"account": t["root2"].account, "domainid": t.root_id}))
        self.forbidden["root_dadmin"] = set()
        self.assert_refused_unchanged(runs)
        # the listing shows root admins' users without any secret
        r = t.call("root_dadmin", "listUsers", listall="true")
        self.assertEqual(r.status, 200)
        self.assertNotIn(b"secretkey", r.body)
        self.assertNotIn(self.cloud.admin.secretkey.encode(), r.body)
        self.assertNotIn(t["root2"].secretkey.encode(), r.body)

    def test_no_escalation(self) -> None:
        """Domain admins cannot create or promote accounts to a higher role, nor create domains."""
        t = self.t
        roles = {r["name"]: r["id"] for r in self.cloud.signed("listRoles").inner()["role"]}
        user = {"password": "p", "firstname": "f", "lastname": "l", "email": "e"}
        runs = [
            ("root_dadmin", "createAccount", {"username": "esc1", "accounttype": "1", **user}),
            ("root_dadmin", "createAccount", {"username": "esc2", "roleid": roles["Root Admin"], **user}),
            ("root_dadmin", "createAccount", {"username": "esc3", "roleid": roles["Resource Admin"], **user}),
            ("a_admin", "createAccount", {"username": "esc4", "accounttype": "1", "domainid": t.a, **user}),
            ("a_admin", "updateAccount", {"id": t["a_user"].account_id, "roleid": roles["Root Admin"]}),
            ("a_admin", "updateAccount", {"id": t["a_user"].account_id, "roleid": roles["Domain Admin"]}),
            ("a_admin", "createDomain", {"name": "mine", "parentdomainid": t.a}),
            ("a_admin", "updateConfiguration", {"name": "api.throttling.enabled", "value": "false"}),
            ("a_admin", "createRole", {"name": "mine", "type": "Admin"}),
            ("a_admin", "createUser", {"account": t["root2"].account, "domainid": t.root_id, "username": "esc5",
                                       **user}),
            ("a_user", "updateUser", {"id": t["a_user"].user_id, "userapikey": "mine", "usersecretkey": "mine"}),
        ]
        self.forbidden["root_dadmin"] = set()
        self.assert_refused_unchanged(runs)

    def test_keys_of_self_and_peers(self) -> None:
        """A user reads and regenerates its own keys, never those of another user of its account;
        an admin may act on a peer in its account only while allow.operations.on.users.in.same.account
        is true (CVE-2016-6813)."""
        t = self.t
        me, peer = t["a_user"], t["a_user2"]
        self.assert_refused_unchanged([
            ("a_user", "getUserKeys", {"id": peer.user_id}),
            ("a_user", "registerUserKeys", {"id": peer.user_id}),
            ("a_user", "updateUser", {"id": peer.user_id, "password": "x"}),
            ("a_user", "updateUser", {"id": peer.user_id, "firstname": "x"}),
        ])
        r = t.call("a_user", "getUserKeys", id=me.user_id)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.inner()["userkeys"], {"apikey": me.apikey, "secretkey": me.secretkey})
        r = t.call("a_user", "registerUserKeys", id=me.user_id)
        self.assertEqual(r.status, 200, r.body)
        self.assertNotEqual(r.inner()["userkeys"]["apikey"], me.apikey)
        self.assertEqual(t.call("a_user", "listEvents").status, 401)  # the old keys are gone
        # a second user in the domain admin's account
        created = self.cloud.signed("createUser", account=t["a_admin"].account, domainid=t.a, username="a_admin2",
                                    password="p", firstname="f", lastname="l", email="e").inner()["user"]
        self.assertEqual(t.call("a_admin", "getUserKeys", id=created["id"]).status, 200)
        set_config(self.cloud, "allow.operations.on.users.in.same.account", "false")
        self.assert_refused_unchanged([
            ("a_admin", "getUserKeys", {"id": created["id"]}),
            ("a_admin", "registerUserKeys", {"id": created["id"]}),
            ("a_admin", "updateUser", {"id": created["id"], "password": "x"}),
            ("a_admin", "disableUser", {"id": created["id"]}),
        ])
        self.assertEqual(t.call("a_admin", "getUserKeys", id=t["a_admin"].user_id).status, 200)

    def test_roles_above_the_caller_are_not_listed(self) -> None:
        """A domain admin's listRoles shows roles of its own type and below; never an admin-type role."""
        r = self.t.call("a_admin", "listRoles")
        self.assertEqual(r.status, 200, r.body)
        types = {role["type"] for role in r.inner()["role"]}
        self.assertEqual(types, {"DomainAdmin", "User"})
        root_role = self.cloud.signed("listRoles", name="Root Admin").inner()["role"][0]["id"]
        self.assertEqual(self.t.call("a_admin", "listRoles", id=root_role).inner(), {})

    def test_users_cannot_call_admin_commands(self) -> None:
        """Every command not granted to users answers a user 432 `errorresponse`; every root-only
        command answers a domain admin the same; nothing changes."""
        t = self.t
        before = snapshot(self.cloud)
        problems = []
        for cmd in self.cloud.api.registry:
            if cmd.authenticator:
                continue
            callers = [] if USER in cmd.roles else ["a_user"]
            if cmd.roles == frozenset({"Admin"}):
                callers += ["a_admin", "root_dadmin"]
            for caller in callers:
                r = t.call(caller, cmd.name, id=t["b_user"].user_id, name="x")
                expected = (f"The API [{cmd.name}] does not exist or is not available for the account "
                            f"{t[caller].account}.")
                if r.status != 432 or list(r.json()) != ["errorresponse"] or r.inner()["errortext"] != expected:
                    problems.append((caller, cmd.name, r.status, r.body[:160]))
        self.assertEqual(problems, [])
        self.assertEqual(snapshot(self.cloud), before)


class RecycledDomainTests(SynchronousTestCase):
    """A domain deleted and created again under the same name is a new tenant: its admin sees
    nothing of the old one's accounts, events or jobs (the old rows keep the same path)."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(NOW)

    def ok(self, r: Response) -> Any:
        self.assertEqual(r.status, 200, r.body)
        return r.inner()

    def tenant(self, name: str) -> tuple[str, Party]:
        """A new domain `recycled` with a domain admin `name` holding API keys."""
        cloud = self.cloud
        fast_hashing(cloud)
        domain = self.ok(cloud.signed("createDomain", name="recycled"))["domain"]["id"]
        account = self.ok(cloud.signed("createAccount", username=name, password="p", firstname="f", lastname="l",
                                       email="e", accounttype=2, domainid=domain))["account"]
        user = account["user"][0]
        keys = self.ok(cloud.signed("registerUserKeys", id=user["id"]))["userkeys"]
        return domain, Party(name, name, "p", user["id"], account["id"], account["name"], domain, keys["apikey"],
                             keys["secretkey"])

    def call(self, who: Party, command: str, **params: Any) -> Response:
        return self.cloud.request(v1_params(command, who.apikey, who.secretkey, **params))

    def test_recycled_domain_name(self) -> None:
        """Events and jobs of the deleted domain stay invisible to the new domain's admin."""
        old_domain, old = self.tenant("old-admin")
        created = self.ok(self.call(old, "createAccount", username="old-user", password="p", firstname="f",
                                    lastname="l", email="e", accounttype=0))["account"]
        old_job = self.ok(self.call(old, "disableAccount", id=created["id"], lock="false"))["jobid"]
        old_events = self.ok(self.call(old, "listEvents", listall="true"))["event"]
        self.ok(self.cloud.signed("deleteDomain", id=old_domain, cleanup="true"))
        _, new = self.tenant("new-admin")
        secrets = {old_job, old.account_id, old.user_id, created["id"]} | {e["id"] for e in old_events}
        problems = []
        for command, params in [("listEvents", {}), ("listEvents", {"listall": "true"}),
                                ("listEvents", {"listall": "true", "keyword": "old"}),
                                ("listAsyncJobs", {"listall": "true"}), ("listAsyncJobs", {"id": old_job}),
                                ("listAccounts", {"listall": "true"}), ("listUsers", {"listall": "true"}),
                                ("queryAsyncJobResult", {"jobid": old_job}),
                                *[("listEvents", {"id": e["id"]}) for e in old_events]]:
            r = self.call(new, command, **params)
            body = r.body.decode()
            leaked = {i for i in secrets if i in body} - set(params.values())
            if leaked or "old-" in body.replace(f"value={old_job}", ""):
                problems.append((command, params, r.status, leaked, body[:200]))
        self.assertEqual(problems, [])
        self.assertIn(b"new-admin", self.call(new, "listEvents", listall="true").body)
