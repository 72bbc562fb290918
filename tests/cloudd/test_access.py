"""Role rules, settings and rate limiting: the pure parts of access decisions."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import cloudd.api
from cloudd.api.access import role_allows, rule_decision
from cloudd.api.errors import ApiError
from cloudd.api.ratelimit import FixedWindowLimiter
from cloudd.api.registry import ALL, ROOT, Registry
from cloudd.settings import BY_NAME, InvalidSettingValue, Settings, parse_value


class RuleTests(SynchronousTestCase):
    def test_first_matching_rule_wins(self) -> None:
        """Rules are evaluated in order; `*` is a wildcard; no match means no decision."""
        rules = [("listUsers", "deny"), ("list*", "allow"), ("*", "deny")]
        self.assertIs(rule_decision(rules, "listUsers"), False)
        self.assertIs(rule_decision(rules, "listAccounts"), True)
        self.assertIs(rule_decision(rules, "createDomain"), False)
        self.assertIsNone(rule_decision([("get*", "allow")], "listUsers"))
        self.assertIsNone(rule_decision([("list", "allow")], "listUsers"))

    def test_fallback_to_declared_roles(self) -> None:
        """Without a matching rule the command's declared role types decide; root admin is always allowed."""
        reg = Registry.scan(cloudd.api)
        create_domain = reg.get("createDomain")
        list_accounts = reg.get("listAccounts")
        assert create_domain is not None and list_accounts is not None
        self.assertEqual(create_domain.roles, ROOT)
        self.assertEqual(list_accounts.roles, ALL)
        self.assertFalse(role_allows("DomainAdmin", False, [], create_domain))
        self.assertTrue(role_allows("DomainAdmin", False, [("createDomain", "allow")], create_domain))
        self.assertTrue(role_allows("Admin", True, [("*", "deny")], create_domain))
        self.assertFalse(role_allows("User", False, [("list*", "deny")], list_accounts))


class RegistryTests(SynchronousTestCase):
    def test_every_command_is_documented(self) -> None:
        """Each command has a description, a response name, and every parameter a type and a description."""
        reg = Registry.scan(cloudd.api)
        self.assertGreaterEqual(len(reg), 40)
        for cmd in reg:
            self.assertTrue(cmd.description, cmd.name)
            self.assertTrue(cmd.response_name.endswith("response"))
            for p in cmd.params:
                self.assertIn(p.type, {"string", "boolean", "integer", "long", "short", "uuid", "list", "map",
                                       "date", "tzdate", "float", "double"}, (cmd.name, p.name))
                self.assertTrue(p.description, (cmd.name, p.name))
            if cmd.is_async:
                self.assertIsNotNone(cmd.run, cmd.name)
            if not cmd.name.startswith(("list", "get", "query", "login", "logout")):
                self.assertIsNotNone(cmd.event, f"{cmd.name} records no event")

    def test_issue_commands_exist(self) -> None:
        """Every command the foundation promises is declared."""
        reg = Registry.scan(cloudd.api)
        for name in ("createDomain listDomains listDomainChildren updateDomain deleteDomain createAccount "
                     "listAccounts updateAccount disableAccount enableAccount lockAccount deleteAccount createUser "
                     "listUsers updateUser disableUser enableUser lockUser deleteUser getUser registerUserKeys "
                     "getUserKeys listRoles createRole updateRole deleteRole listRolePermissions "
                     "createRolePermission deleteRolePermission login logout listCapabilities listApis "
                     "listConfigurations updateConfiguration listEvents listEventTypes queryAsyncJobResult "
                     "listAsyncJobs").split():
            self.assertIsNotNone(reg.get(name), name)
        for name in ("deleteAccount", "deleteDomain", "disableAccount", "disableUser"):
            cmd = reg.get(name)
            assert cmd is not None
            self.assertTrue(cmd.is_async, name)


class SettingsTests(SynchronousTestCase):
    def test_typed_values_and_defaults(self) -> None:
        """Stored values override defaults; unparsable stored values fall back to the default."""
        s = Settings({"default.page.size": "20", "api.throttling.enabled": "TRUE", "api.throttling.max": "x"})
        self.assertEqual(s.int("default.page.size"), 20)
        self.assertIs(s.bool("api.throttling.enabled"), True)
        self.assertEqual(s.int("api.throttling.max"), 25)
        self.assertEqual(s.raw("api.throttling.enabled"), "true")
        self.assertEqual(Settings().int("integration.api.port"), 0)

    def test_invalid_values(self) -> None:
        """Booleans must be true/false and integers numbers."""
        with self.assertRaises(InvalidSettingValue):
            parse_value(BY_NAME["api.throttling.enabled"], "maybe")
        with self.assertRaises(InvalidSettingValue):
            parse_value(BY_NAME["default.page.size"], "lots")

    def test_spec_settings_exist(self) -> None:
        """The settings the specifications name are all declared."""
        for name in ("default.page.size", "integration.api.port", "enforce.post.requests.and.timestamps",
                     "api.throttling.enabled", "api.throttling.interval", "api.throttling.max",
                     "api.throttling.cachesize", "job.expire.minutes", "job.cancel.threshold.minutes",
                     "proxy.header.verify", "proxy.header.names", "proxy.cidr", "vm.userdata.max.length",
                     "max.template.iso.size", "api.sessionkey.check.locations", "log.hide.password",
                     "cluster.heartbeat.interval", "cluster.heartbeat.threshold", "api.key.access",
                     "role.types.allowed.for.operations.on.accounts.of.same.role.type",
                     "allow.operations.on.users.in.same.account", "json.content.type",
                     "secstorage.allowed.internal.sites", "vm.configdrive.label"):
            self.assertIn(name, BY_NAME)


class LimiterTests(SynchronousTestCase):
    def test_fixed_window(self) -> None:
        """The hit over the limit is refused with the time left; a new window starts after the interval."""
        clock = Clock()
        limiter = FixedWindowLimiter(clock)
        limiter.hit("a", 2, 1.0)
        limiter.hit("a", 2, 1.0)
        clock.advance(0.25)
        with self.assertRaises(ApiError) as cm:
            limiter.hit("a", 2, 1.0)
        self.assertEqual(cm.exception.code, 429)
        self.assertIn("[750] ms", cm.exception.text)
        limiter.hit("b", 2, 1.0)
        clock.advance(0.75)
        limiter.hit("a", 2, 1.0)

    def test_cache_size_bounds_memory(self) -> None:
        """Only `cachesize` counters are kept."""
        limiter = FixedWindowLimiter(Clock())
        for i in range(10):
            limiter.hit(str(i), 5, 1.0, cachesize=3)
        self.assertEqual(len(limiter._windows), 3)
