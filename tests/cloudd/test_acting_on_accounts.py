"""Acting on another account needs every API permission that account has (spec/api.md §6.2;
CVE-2025-47713/47849; CloudStack's `AccountManagerImpl.checkRoleEscalation`).

A domain admin outranks a user, but a role can take permissions away from a domain admin or give a
user ones a domain admin lacks. Changing such an account's users (their keys above all) would hand
the caller the permissions it lacks, so every account and user operation on it is refused with
CloudStack's permission error (531, cserrorcode 4365) and changes nothing, while the same caller may
still act on accounts whose permissions it covers.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.api.errors import CS_PERMISSION_DENIED
from tests.util.cloud import Cloud, Response, make_cloud
from tests.util.tenants import fast_hashing, snapshot, v1_params

NOW = 1_700_000_000.0


class Party:
    """A user with API keys in its own account."""

    def __init__(self, cloud: Cloud, name: str, domain_id: str, role_id: str) -> None:
        r = cloud.signed("createAccount", username=name, password=f"pw-{name}", firstname="f", lastname="l",
                         email="e@example.com", roleid=role_id, domainid=domain_id, account=f"acct-{name}")
        assert r.status == 200, r.body
        account = r.inner()["account"]
        self.cloud = cloud
        self.account = account["name"]
        self.account_id = account["id"]
        self.user_id = account["user"][0]["id"]
        keys = cloud.signed("registerUserKeys", id=self.user_id).inner()["userkeys"]
        self.apikey, self.secretkey = keys["apikey"], keys["secretkey"]

    def call(self, command: str, **params: Any) -> Response:
        return self.cloud.request(v1_params(command, self.apikey, self.secretkey, **params))


class ActingOnAccountsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(NOW)
        fast_hashing(self.cloud)
        self.domain = self.ok(self.cloud.signed("createDomain", name="acting"))["domain"]["id"]
        roles = {r["name"]: r["id"] for r in self.ok(self.cloud.signed("listRoles"))["role"]}
        self.user_role, self.domain_admin_role = roles["User"], roles["Domain Admin"]

    def ok(self, r: Response) -> Any:
        self.assertEqual(r.status, 200, r.body)
        return r.inner()

    def role(self, name: str, role_type: str, rules: list[tuple[str, str]]) -> tuple[str, list[str]]:
        """A custom role and the ids of its rules."""
        role_id = self.ok(self.cloud.signed("createRole", name=name, type=role_type))["role"]["id"]
        rule_ids = [self.ok(self.cloud.signed("createRolePermission", roleid=role_id, rule=rule,
                                              permission=permission))["rolepermission"]["id"]
                    for rule, permission in rules]
        return role_id, rule_ids

    def operations(self, target: Party) -> list[tuple[str, dict[str, str]]]:
        """Account and user operations a domain admin may otherwise perform on a user's account."""
        return [
            ("getUserKeys", {"id": target.user_id}),
            ("registerUserKeys", {"id": target.user_id}),
            ("updateUser", {"id": target.user_id, "firstname": "changed"}),
            ("updateUser", {"id": target.user_id, "password": "taken-over"}),
            ("disableUser", {"id": target.user_id}),
            ("lockUser", {"id": target.user_id}),
            ("updateAccount", {"id": target.account_id, "newname": "renamed"}),
            ("disableAccount", {"id": target.account_id, "lock": "true"}),
            ("deleteAccount", {"id": target.account_id}),
        ]

    def assert_refused(self, caller: Party, target: Party) -> None:
        """Every operation on `target` is refused with CloudStack's permission error and changes nothing."""
        expected = (f"Account {caller.account} does not have permission to operate within account "
                    f"{target.account} in domain acting")
        problems = []
        for command, params in self.operations(target):
            before = snapshot(self.cloud)
            r = caller.call(command, **params)
            self.cloud.reactor.advance(1)  # a job wrongly accepted would run now
            body = r.inner()
            if (r.status, body.get("errorcode"), body.get("cserrorcode"), body.get("errortext")) != (
                    531, 531, CS_PERMISSION_DENIED, expected) or snapshot(self.cloud) != before:
                problems.append((command, params, r.status, r.body[:200]))
        self.assertEqual(problems, [])

    def test_domain_admin_lacking_a_permission_of_the_target(self) -> None:
        """A domain admin whose role denies listEvents may not act on a user whose role allows it, and
        may once the rule is gone; on a user whose role denies it too, it always may."""
        admin_role, (deny,) = self.role("dadmin-without-events", "DomainAdmin", [("listEvents", "deny")])
        admin = Party(self.cloud, "limited-admin", self.domain, admin_role)
        target = Party(self.cloud, "ordinary-user", self.domain, self.user_role)
        self.assertEqual(target.call("listEvents").status, 200)  # the permission the admin lacks
        self.assertNotEqual(admin.call("listEvents").status, 200)

        self.assert_refused(admin, target)

        # A user without that permission either is fair game for the same admin.
        user_role, _ = self.role("user-without-events", "User", [("listEvents", "deny")])
        covered = Party(self.cloud, "covered-user", self.domain, user_role)
        self.ok(admin.call("updateUser", id=covered.user_id, firstname="changed"))
        self.ok(admin.call("getUserKeys", id=covered.user_id))

        # Without the rule the admin's role covers the target's again.
        self.ok(self.cloud.signed("deleteRolePermission", id=deny))
        self.ok(admin.call("updateUser", id=target.user_id, firstname="changed"))
        self.assertEqual(self.ok(admin.call("getUserKeys", id=target.user_id))["userkeys"]["apikey"], target.apikey)

    def test_user_granted_more_than_the_domain_admin(self) -> None:
        """A user whose role grants createDomain (which domain admins may not call) is out of reach of
        the default domain admin, though a domain admin outranks a user."""
        powered_role, _ = self.role("user-with-domains", "User", [("createDomain", "allow")])
        admin = Party(self.cloud, "default-admin", self.domain, self.domain_admin_role)
        target = Party(self.cloud, "powered-user", self.domain, powered_role)
        plain = Party(self.cloud, "plain-user", self.domain, self.user_role)
        self.assertNotEqual(admin.call("createDomain", name="not-mine").status, 200)

        self.assert_refused(admin, target)

        self.ok(admin.call("updateUser", id=plain.user_id, firstname="changed"))
        self.ok(admin.call("getUserKeys", id=plain.user_id))
