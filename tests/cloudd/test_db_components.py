"""Tests for the per-table DB components and the DB thread pool, with real data on a real database.

Every test runs on in-memory SQLite and, when CLOUDD_TEST_DB_URL names one, on that server database
(`tests.util.db.make_db` switches). The pool runs synchronously on the fake reactor, so each
component call has fired by the time it returns.
"""

from __future__ import annotations

import os
import threading
from typing import Any, TypeVar
from unittest import SkipTest

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from cloudd import bootstrap
from cloudd.api.views import display_path
from cloudd.db import migrate, model
from cloudd.db.accounts import Account, User
from cloudd.db.base import Conflict, NotFound, Page, Scope
from cloudd.db.connector import DBConnector
from cloudd.db.domains import Domain
from cloudd.db.enginestrategy import db_now
from cloudd.db.events import NewEvent
from cloudd.db.jobs import FAILED, PENDING, SUCCEEDED, Job
from tests.util.db import make_db, test_db_url, using_server_db, wipe
from tests.util.reactor import FakeReactor

T = TypeVar("T")
EPOCH = 1_700_000_000


class DBTestCase(SynchronousTestCase):
    """A fresh, migrated, bootstrapped database per test (ROOT, default roles, system and admin)."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(EPOCH)
        self.db = make_db(self.reactor)
        self.addCleanup(self.db.pool.stop)
        creds = self.db.pool.do_sync(lambda conn: bootstrap.thd_bootstrap(self.db, conn))
        assert creds is not None
        self.creds = creds
        self.root = self.ok(self.db.domains.get_by_path("/"))
        self.admin_role = self.ok(self.db.roles.default_for_type("Admin"))
        self.user_role = self.ok(self.db.roles.default_for_type("User"))
        self.admin = self.ok(self.db.accounts.get_user_by_api_key(creds.apikey))

    def ok(self, d: Deferred[T]) -> T:
        return self.successResultOf(d)

    def fails(self, d: Deferred[Any], exc: type[BaseException]) -> BaseException:
        return self.failureResultOf(d, exc).value

    def sql(self, fn: Any) -> Any:
        return self.db.pool.do_sync(fn)

    # --- fixtures -------------------------------------------------------------------------------

    def domain(self, name: str, parent: Domain | None = None) -> Domain:
        return self.ok(self.db.domains.create(name, parent or self.root, None))

    def account(self, name: str, domain: Domain | None = None, username: str | None = None,
                account_type: int = 0, role_id: int | None = None, email: str = "u@example.org") -> Account:
        d = domain or self.root
        return self.ok(self.db.accounts.create_account(
            name=name, account_type=account_type, role_id=role_id or self.user_role.id, domain_id=d.id,
            network_domain=None, account_uuid=None, username=username or name, password_hash="h:" + name,
            firstname="First " + name, lastname="Last", email=email, timezone=None, user_uuid=None))

    def user_of(self, account: Account) -> User:
        return self.ok(self.db.accounts.users_of_accounts([account.id]))[account.id][0]


class DomainsTests(DBTestCase):
    """DomainsComponent: the tree, its paths and its uniqueness rules."""

    def test_root(self) -> None:
        """Bootstrap makes exactly one ROOT at path / and level 0 with no parent."""
        self.assertEqual((self.root.name, self.root.path, self.root.level, self.root.parent_id),
                         ("ROOT", "/", 0, None))
        self.assertEqual(display_path(self.root.path), "ROOT")
        self.assertEqual(self.root.state, "Active")
        self.assertEqual(self.root.created, EPOCH)

    def test_create_and_get(self) -> None:
        """A child gets its parent's path plus its name, level + 1, and is found by id, uuid and path."""
        a = self.domain("a")
        b = self.ok(self.db.domains.create("b", a, "b.example.org"))
        self.assertEqual((b.path, b.level, b.parent_id, b.parent_uuid, b.parent_name), ("/a/b/", 2, a.id, a.uuid, "a"))
        self.assertEqual(b.network_domain, "b.example.org")
        self.assertEqual(display_path(b.path), "ROOT/a/b")
        self.assertEqual(self.ok(self.db.domains.get(b.id)), b)
        self.assertEqual(self.ok(self.db.domains.get_by_uuid(b.uuid)), b)
        self.assertEqual(self.ok(self.db.domains.get_by_path("/a/b/")), b)
        self.assertTrue(self.ok(self.db.domains.get(a.id)).has_child)
        self.assertFalse(b.has_child)

    def test_create_with_uuid(self) -> None:
        """A caller-given uuid is kept; the same uuid twice is a Conflict."""
        uuid = "0b7c2f4e-1111-4a1a-9b9b-123456789abc"
        a = self.ok(self.db.domains.create("a", self.root, None, uuid))
        self.assertEqual(a.uuid, uuid)
        self.fails(self.db.domains.create("b", self.root, None, uuid), Conflict)

    def test_duplicate_name_refused(self) -> None:
        """A sibling with the same name, in any case, is a Conflict; the same name elsewhere is fine."""
        a = self.domain("a")
        err = self.fails(self.db.domains.create("A", self.root, None), Conflict)
        self.assertIn("already exists", str(err))
        self.domain("a", a)
        total, _ = self.ok(self.db.domains.search(name="a"))
        self.assertEqual(total, 2)

    def test_missing(self) -> None:
        """Unknown ids, uuids and paths raise NotFound."""
        self.fails(self.db.domains.get(9999), NotFound)
        self.fails(self.db.domains.get_by_uuid("nope"), NotFound)
        self.fails(self.db.domains.get_by_path("/nope/"), NotFound)

    def _tree(self) -> dict[str, Domain]:
        a = self.domain("a")
        ab = self.domain("b", a)
        abc = self.domain("c", ab)
        a2 = self.domain("a2")
        return {"a": a, "ab": ab, "abc": abc, "a2": a2}

    def test_search_subtree_below_parent(self) -> None:
        """`subtree` includes the domain itself, `below` only descendants, `parent_id` only children."""
        t = self._tree()

        def names(**kw: Any) -> list[str]:
            return [d.path for d in self.ok(self.db.domains.search(**kw))[1]]

        self.assertEqual(names(subtree="/a/"), ["/a/", "/a/b/", "/a/b/c/"])
        self.assertEqual(names(below="/a/"), ["/a/b/", "/a/b/c/"])
        self.assertEqual(names(parent_id=t["a"].id), ["/a/b/"])
        self.assertEqual(names(parent_id=self.root.id), ["/a/", "/a2/"])
        self.assertEqual(names(subtree="/"), ["/", "/a/", "/a/b/", "/a/b/c/", "/a2/"])
        self.assertEqual(names(level=2), ["/a/b/"])
        self.assertEqual(names(exact_id=t["abc"].id), ["/a/b/c/"])
        self.assertEqual(names(keyword="a"), ["/", "/a/", "/a2/"][1:])
        self.assertEqual(names(name="c"), ["/a/b/c/"])

    def test_search_paging_and_total(self) -> None:
        """A page holds at most `limit` domains, ordered by path; the total counts every match."""
        for i in range(5):
            self.domain(f"d{i}")
        total, page = self.ok(self.db.domains.search(below="/", page=Page(offset=2, limit=2)))
        self.assertEqual(total, 5)
        self.assertEqual([d.name for d in page], ["d2", "d3"])

    def test_like_wildcards_are_literal(self) -> None:
        """`_` and `%` in names match only themselves in subtree and keyword searches."""
        under = self.domain("a_b")
        self.domain("aXb")
        pct = self.domain("50%")
        self.domain("50x")
        self.domain("child", under)
        self.assertEqual([d.path for d in self.ok(self.db.domains.search(subtree="/a_b/"))[1]],
                         ["/a_b/", "/a_b/child/"])
        self.assertEqual([d.name for d in self.ok(self.db.domains.search(keyword="_"))[1]], ["a_b"])
        self.assertEqual([d.id for d in self.ok(self.db.domains.search(keyword="%"))[1]], [pct.id])

    def test_rename_moves_subtree(self) -> None:
        """Renaming a domain rewrites its path and every descendant's path, and nothing else."""
        t = self._tree()
        renamed = self.ok(self.db.domains.update(t["a"], "z", None))
        self.assertEqual((renamed.name, renamed.path), ("z", "/z/"))
        self.assertEqual(self.ok(self.db.domains.get(t["ab"].id)).path, "/z/b/")
        self.assertEqual(self.ok(self.db.domains.get(t["abc"].id)).path, "/z/b/c/")
        self.assertEqual(self.ok(self.db.domains.get(t["a2"].id)).path, "/a2/")
        # a middle node too
        self.ok(self.db.domains.update(self.ok(self.db.domains.get(t["ab"].id)), "y", None))
        self.assertEqual(self.ok(self.db.domains.get(t["abc"].id)).path, "/z/y/c/")
        self.fails(self.db.domains.get_by_path("/a/b/c/"), NotFound)

    def test_rename_refusals(self) -> None:
        """ROOT cannot be renamed; a rename onto a sibling's name (any case) is a Conflict."""
        t = self._tree()
        self.fails(self.db.domains.update(self.root, "other", None), Conflict)
        self.fails(self.db.domains.update(t["a2"], "A", None), Conflict)
        self.assertEqual(self.ok(self.db.domains.get(t["a2"].id)).path, "/a2/")

    def test_update_network_domain_only(self) -> None:
        """Updating only the network domain keeps name and path."""
        a = self.domain("a")
        out = self.ok(self.db.domains.update(a, None, "net.example"))
        self.assertEqual((out.name, out.path, out.network_domain), ("a", "/a/", "net.example"))

    def test_state_and_remove(self) -> None:
        """set_state changes the state; a removed domain disappears and its name can be reused."""
        a = self.domain("a")
        self.ok(self.db.domains.set_state(a.id, "Inactive"))
        self.assertEqual(self.ok(self.db.domains.get(a.id)).state, "Inactive")
        self.ok(self.db.domains.remove(a.id))
        self.fails(self.db.domains.get(a.id), NotFound)
        self.assertFalse(self.ok(self.db.domains.get(self.root.id)).has_child)
        again = self.domain("a")
        self.assertNotEqual(again.id, a.id)


class RolesTests(DBTestCase):
    """RolesComponent: roles, their ordered rules, copies and deletion."""

    def test_defaults(self) -> None:
        """Bootstrap creates one default role per role type."""
        total, roles = self.ok(self.db.roles.search())
        self.assertEqual(total, 4)
        self.assertEqual({r.role_type for r in roles}, {"Admin", "ResourceAdmin", "DomainAdmin", "User"})
        self.assertTrue(all(r.is_default for r in roles))
        self.fails(self.db.roles.default_for_type("Nobody"), NotFound)

    def test_rules_in_order(self) -> None:
        """Rules come back in insertion order; all_rules gives (rule, permission) per role in that order."""
        role = self.ok(self.db.roles.create("ops", "User", "operators"))
        for rule, perm in (("list*", "allow"), ("deleteDomain", "deny"), ("*", "allow")):
            self.ok(self.db.roles.add_rule(role, rule, perm, None))
        rules = self.ok(self.db.roles.rules(role.id))
        self.assertEqual([(r.rule, r.permission, r.sort_order) for r in rules],
                         [("list*", "allow", 1), ("deleteDomain", "deny", 2), ("*", "allow", 3)])
        self.assertEqual({(r.role_uuid, r.role_name) for r in rules}, {(role.uuid, "ops")})
        self.assertEqual(self.ok(self.db.roles.all_rules())[role.id],
                         [("list*", "allow"), ("deleteDomain", "deny"), ("*", "allow")])
        self.fails(self.db.roles.add_rule(role, "list*", "deny", None), Conflict)

    def test_reorder_update_delete_rule(self) -> None:
        """reorder_rules needs every rule exactly once; update and delete act on one rule."""
        role = self.ok(self.db.roles.create("ops", "User", None))
        a = self.ok(self.db.roles.add_rule(role, "a", "allow", None))
        b = self.ok(self.db.roles.add_rule(role, "b", "allow", "bee"))
        c = self.ok(self.db.roles.add_rule(role, "c", "allow", None))
        self.fails(self.db.roles.reorder_rules(role, [c.uuid, a.uuid]), Conflict)
        self.ok(self.db.roles.reorder_rules(role, [c.uuid, a.uuid, b.uuid]))
        self.assertEqual([r.rule for r in self.ok(self.db.roles.rules(role.id))], ["c", "a", "b"])
        self.assertEqual(self.ok(self.db.roles.update_rule(b, "deny")).permission, "deny")
        self.assertEqual(self.ok(self.db.roles.get_rule(b.uuid)).description, "bee")
        self.ok(self.db.roles.delete_rule(a.id))
        self.assertEqual([r.rule for r in self.ok(self.db.roles.rules(role.id))], ["c", "b"])
        self.fails(self.db.roles.get_rule(a.uuid), NotFound)

    def test_create_with_copy(self) -> None:
        """A copy gets its own rules with the source's rules, permissions and order."""
        src = self.ok(self.db.roles.create("src", "User", None))
        for rule in ("z", "a", "m"):
            self.ok(self.db.roles.add_rule(src, rule, "deny" if rule == "a" else "allow", rule.upper()))
        copy = self.ok(self.db.roles.create("copy", "DomainAdmin", "copied", copy_from=src))
        self.assertEqual((copy.name, copy.role_type, copy.description, copy.is_default),
                         ("copy", "DomainAdmin", "copied", False))
        src_rules = self.ok(self.db.roles.rules(src.id))
        copy_rules = self.ok(self.db.roles.rules(copy.id))
        self.assertEqual([(r.rule, r.permission, r.description) for r in copy_rules],
                         [(r.rule, r.permission, r.description) for r in src_rules])
        self.assertTrue({r.uuid for r in copy_rules}.isdisjoint({r.uuid for r in src_rules}))
        # the copy is independent
        self.ok(self.db.roles.delete_rule(copy_rules[0].id))
        self.assertEqual(len(self.ok(self.db.roles.rules(src.id))), 3)

    def test_duplicate_name_refused(self) -> None:
        """Role names are unique among live roles, on create and on rename."""
        self.ok(self.db.roles.create("ops", "User", None))
        other = self.ok(self.db.roles.create("dev", "User", None))
        self.fails(self.db.roles.create("ops", "Admin", None), Conflict)
        self.fails(self.db.roles.update(other, "ops", None, None), Conflict)
        renamed = self.ok(self.db.roles.update(other, "qa", "testers", "DomainAdmin"))
        self.assertEqual((renamed.name, renamed.description, renamed.role_type), ("qa", "testers", "DomainAdmin"))

    def test_search(self) -> None:
        """search filters by uuid, name, type and keyword, and pages with a total."""
        ops = self.ok(self.db.roles.create("ops team", "User", None))
        self.assertEqual(self.ok(self.db.roles.search(uuid=ops.uuid))[1], [ops])
        self.assertEqual(self.ok(self.db.roles.search(name="ops team"))[1], [ops])
        self.assertEqual(self.ok(self.db.roles.search(role_type="User"))[0], 2)
        self.assertEqual([r.name for r in self.ok(self.db.roles.search(keyword="team"))[1]], ["ops team"])
        total, page = self.ok(self.db.roles.search(page=Page(offset=1, limit=2)))
        self.assertEqual((total, len(page)), (5, 2))

    def test_delete_in_use_refused(self) -> None:
        """A role used by a live account cannot be deleted; once unused it can, with its rules."""
        role = self.ok(self.db.roles.create("ops", "User", None))
        self.ok(self.db.roles.add_rule(role, "list*", "allow", None))
        acct = self.account("alice", role_id=role.id)
        err = self.fails(self.db.roles.delete(role), Conflict)
        self.assertIn("in use", str(err))
        self.ok(self.db.roles.get(role.id))
        self.ok(self.db.accounts.remove_account(acct.id))
        self.ok(self.db.roles.delete(role))
        self.fails(self.db.roles.get(role.id), NotFound)
        self.fails(self.db.roles.get_by_uuid(role.uuid), NotFound)
        self.assertNotIn(role.id, self.ok(self.db.roles.all_rules()))
        # the name is free again
        self.ok(self.db.roles.create("ops", "User", None))


class AccountsTests(DBTestCase):
    """AccountsComponent: accounts and users, their uniqueness, listing and state changes."""

    def test_create_account_with_first_user(self) -> None:
        """create_account makes the account and its first user, joined with role and domain."""
        d = self.domain("eng")
        a = self.account("alice", d)
        self.assertEqual((a.name, a.account_type, a.state, a.domain_id, a.domain_path, a.role_type),
                         ("alice", 0, "enabled", d.id, "/eng/", "User"))
        users = self.ok(self.db.accounts.users_of_accounts([a.id]))[a.id]
        self.assertEqual([u.username for u in users], ["alice"])
        self.assertEqual(users[0].account, a)
        self.assertEqual(self.ok(self.db.accounts.find_account("alice", d.id)), a)
        self.assertEqual(self.ok(self.db.accounts.get_account_by_uuid(a.uuid)), a)
        self.assertEqual(self.ok(self.db.accounts.get_account(a.id)), a)

    def test_create_account_is_one_transaction(self) -> None:
        """When the first user cannot be created, the account is not created either."""
        self.account("alice", username="shared")
        self.fails(self.db.accounts.create_account(
            name="bob", account_type=0, role_id=self.user_role.id, domain_id=self.root.id, network_domain=None,
            account_uuid=None, username="shared", password_hash="h", firstname="f", lastname="l", email="e",
            timezone=None, user_uuid=None), Conflict)
        self.fails(self.db.accounts.find_account("bob", self.root.id), NotFound)

    def test_account_name_unique_per_domain(self) -> None:
        """The same account name may exist in two domains, never twice in one (create and rename)."""
        d = self.domain("eng")
        self.account("alice")
        self.account("alice", d, username="alice2")
        err = self.fails(self.db.accounts.create_account(
            name="alice", account_type=0, role_id=self.user_role.id, domain_id=d.id, network_domain=None,
            account_uuid=None, username="alice3", password_hash="h", firstname="f", lastname="l", email="e",
            timezone=None, user_uuid=None), Conflict)
        self.assertIn("already exists", str(err))
        bob = self.account("bob", d)
        self.fails(self.db.accounts.update_account(bob, name="alice"), Conflict)
        renamed = self.ok(self.db.accounts.update_account(bob, name="robert", network_domain="n.example"))
        self.assertEqual((renamed.name, renamed.network_domain), ("robert", "n.example"))

    def test_username_unique_per_domain(self) -> None:
        """A username is unique within a domain across its accounts, but may repeat in another domain."""
        d = self.domain("eng")
        alice = self.account("alice")
        self.account("bob")
        self.fails(self.db.accounts.create_user(alice, username="bob", password_hash="h", firstname="f",
                                                lastname="l", email="e", timezone=None, uuid=None), Conflict)
        other = self.account("carol", d, username="bob")
        self.assertEqual(self.user_of(other).username, "bob")
        second = self.ok(self.db.accounts.create_user(alice, username="alice.2", password_hash="h", firstname="f",
                                                      lastname="l", email="e", timezone="UTC", uuid=None))
        self.fails(self.db.accounts.update_user(second, {"username": "bob"}), Conflict)
        self.assertEqual(self.ok(self.db.accounts.update_user(second, {"username": "al"})).username, "al")

    def test_list_accounts_scopes(self) -> None:
        """list_accounts honours every Scope field: accounts, exact domain, domain subtree, everything."""
        eng = self.domain("eng")
        web = self.domain("web", eng)
        a = self.account("a", eng)
        b = self.account("b", web)
        c = self.account("c")

        def names(scope: Scope, **kw: Any) -> list[str]:
            return [x.name for x in self.ok(self.db.accounts.list_accounts(scope, **kw))[1]]

        self.assertEqual(names(Scope()), ["system", "admin", "a", "b", "c"])
        self.assertEqual(names(Scope(account_ids=(a.id, c.id))), ["a", "c"])
        self.assertEqual(names(Scope(domain_id=eng.id)), ["a"])
        self.assertEqual(names(Scope(domain_path="/eng/")), ["a", "b"])
        self.assertEqual(names(Scope(domain_path="/eng/", account_ids=(b.id, c.id))), ["b"])
        self.assertEqual(names(Scope(account_ids=())), [])
        self.assertEqual(names(Scope(), account_type=1), ["system", "admin"])
        self.assertEqual(names(Scope(), uuid=b.uuid), ["b"])
        self.assertEqual(names(Scope(), name="c"), ["c"])

    def test_list_accounts_keyword_paging_state(self) -> None:
        """Keyword matches part of the name; a page carries the total of all matches."""
        for i in range(5):
            self.account(f"team-{i}")
        total, page = self.ok(self.db.accounts.list_accounts(Scope(), keyword="team", page=Page(offset=3, limit=10)))
        self.assertEqual((total, [x.name for x in page]), (5, ["team-3", "team-4"]))
        acct = self.ok(self.db.accounts.find_account("team-0", self.root.id))
        self.ok(self.db.accounts.set_account_state(acct.id, "disabled"))
        self.assertEqual([x.name for x in self.ok(self.db.accounts.list_accounts(Scope(), state="disabled"))[1]],
                         ["team-0"])

    def test_list_users(self) -> None:
        """list_users scopes like accounts and searches usernames, names, emails and account names."""
        eng = self.domain("eng")
        a = self.account("a", eng, username="ann", email="ann@corp.example")
        self.account("b", username="bill")
        self.ok(self.db.accounts.create_user(a, username="andy", password_hash="h", firstname="Andrew",
                                             lastname="Smith", email="andy@x.example", timezone=None, uuid=None))

        def names(scope: Scope, **kw: Any) -> list[str]:
            return [u.username for u in self.ok(self.db.accounts.list_users(scope, **kw))[1]]

        self.assertEqual(names(Scope(domain_path="/eng/")), ["ann", "andy"])
        self.assertEqual(names(Scope(), keyword="corp"), ["ann"])
        self.assertEqual(names(Scope(), keyword="Smith"), ["andy"])
        self.assertEqual(names(Scope(), keyword="bill"), ["bill"])
        self.assertEqual(names(Scope(), account_id=a.id), ["ann", "andy"])
        self.assertEqual(names(Scope(), account_type=1), ["system", "admin"])
        total, page = self.ok(self.db.accounts.list_users(Scope(), page=Page(offset=0, limit=2)))
        self.assertEqual((total, len(page)), (5, 2))

    def test_credentials(self) -> None:
        """Credentials are found by API key and by (username, domain), and carry the secret and hash."""
        creds = self.ok(self.db.accounts.credentials_by_api_key(self.creds.apikey))
        self.assertEqual((creds.user.username, creds.secret_key), ("admin", self.creds.secretkey))
        login = self.ok(self.db.accounts.credentials_for_login("admin", self.root.id))
        self.assertEqual(login.user.id, creds.user.id)
        self.assertEqual(login.password_hash, creds.password_hash)
        self.assertEqual(self.ok(self.db.accounts.password_hash(creds.user.id)), creds.password_hash)
        self.fails(self.db.accounts.credentials_by_api_key("nope"), NotFound)
        eng = self.domain("eng")
        self.fails(self.db.accounts.credentials_for_login("admin", eng.id), NotFound)
        self.fails(self.db.accounts.password_hash(9999), NotFound)
        self.assertEqual(self.ok(self.db.accounts.get_user_by_uuid(self.admin.uuid)), self.admin)
        self.assertEqual(self.ok(self.db.accounts.get_user(self.admin.id)), self.admin)

    def test_api_key_unique(self) -> None:
        """Setting another user's API key is a Conflict; a fresh key is stored and found."""
        bob = self.user_of(self.account("bob"))
        self.fails(self.db.accounts.update_user(bob, {"api_key": self.creds.apikey}), Conflict)
        self.ok(self.db.accounts.update_user(bob, {"api_key": "K-bob", "secret_key": "S-bob"}))
        self.assertEqual(self.ok(self.db.accounts.credentials_by_api_key("K-bob")).secret_key, "S-bob")

    def _session(self, user: User, sid: str) -> None:
        self.ok(self.db.sessions.create(sid, "key-" + sid, user.id, 600))

    def _sessions(self) -> set[str]:
        return set(self.sql(lambda conn: [r[0] for r in conn.execute(sa.select(model.sessions.c.id))]))

    def test_state_changes_delete_sessions(self) -> None:
        """Disabling or locking a user, or disabling its account, ends its sessions; enabling does not."""
        acct = self.account("bob")
        bob = self.user_of(acct)
        other = self.ok(self.db.accounts.create_user(acct, username="bob2", password_hash="h", firstname="f",
                                                     lastname="l", email="e", timezone=None, uuid=None))
        self._session(bob, "s1")
        self._session(other, "s2")
        self._session(self.admin, "s3")
        self.assertEqual(self.ok(self.db.accounts.set_user_state(bob.id, "locked")).state, "locked")
        self.assertEqual(self._sessions(), {"s2", "s3"})
        self.ok(self.db.accounts.set_user_state(bob.id, "enabled"))
        self._session(bob, "s4")
        self.ok(self.db.accounts.set_account_state(acct.id, "enabled"))
        self.assertEqual(self._sessions(), {"s2", "s3", "s4"})
        self.assertEqual(self.ok(self.db.accounts.set_account_state(acct.id, "disabled")).state, "disabled")
        self.assertEqual(self._sessions(), {"s3"})

    def test_password_change_deletes_sessions(self) -> None:
        """A new password hash ends the user's sessions."""
        bob = self.user_of(self.account("bob"))
        self._session(bob, "s1")
        self.ok(self.db.accounts.update_user(bob, {"firstname": "Robert"}))
        self.assertEqual(self._sessions(), {"s1"})
        self.ok(self.db.accounts.update_user(bob, {"password_hash": "new"}))
        self.assertEqual(self._sessions(), set())
        self.assertEqual(self.ok(self.db.accounts.password_hash(bob.id)), "new")

    def test_remove_account_clears_keys(self) -> None:
        """Removing an account removes its users, clears their keys and ends their sessions."""
        acct = self.account("bob")
        bob = self.user_of(acct)
        self.ok(self.db.accounts.update_user(bob, {"api_key": "K-bob", "secret_key": "S-bob"}))
        self._session(bob, "s1")
        self.ok(self.db.accounts.remove_account(acct.id))
        self.fails(self.db.accounts.credentials_by_api_key("K-bob"), NotFound)
        self.fails(self.db.accounts.get_account(acct.id), NotFound)
        self.fails(self.db.accounts.get_user(bob.id), NotFound)
        self.assertEqual(self._sessions(), set())
        row = self.sql(lambda conn: conn.execute(sa.select(model.users.c.api_key, model.users.c.secret_key,
                                                           model.users.c.removed)
                                                 .where(model.users.c.id == bob.id)).one()[:])
        self.assertEqual(row, (None, None, EPOCH))
        # the name and the username are free again
        self.account("bob")

    def test_remove_last_user_refused(self) -> None:
        """The last user of an account cannot be removed; another one can, with its keys."""
        acct = self.account("bob")
        bob = self.user_of(acct)
        err = self.fails(self.db.accounts.remove_user(bob), Conflict)
        self.assertIn("last user", str(err))
        second = self.ok(self.db.accounts.create_user(acct, username="bob2", password_hash="h", firstname="f",
                                                      lastname="l", email="e", timezone=None, uuid=None))
        self.ok(self.db.accounts.update_user(second, {"api_key": "K2", "secret_key": "S2"}))
        self.ok(self.db.accounts.remove_user(second))
        self.fails(self.db.accounts.credentials_by_api_key("K2"), NotFound)
        self.fails(self.db.accounts.remove_user(bob), Conflict)

    def test_domain_helpers(self) -> None:
        """account_ids_in_domain lists one domain; count_accounts_in_subtree counts a subtree."""
        eng = self.domain("eng")
        web = self.domain("web", eng)
        a = self.account("a", eng)
        self.account("b", web)
        self.assertEqual(self.ok(self.db.accounts.account_ids_in_domain(eng.id)), [a.id])
        self.assertEqual(self.ok(self.db.accounts.count_accounts_in_subtree("/eng/")), 2)
        self.assertEqual(self.ok(self.db.accounts.count_accounts_in_subtree("/eng/web/")), 1)

    def test_bulk_users(self) -> None:
        """thd_insert_users_bulk inserts many enabled users of one account."""
        acct = self.account("bulk")
        self.sql(lambda conn: self.db.accounts.thd_insert_users_bulk(
            conn, acct.id, [{"username": f"u{i}", "password_hash": "h"} for i in range(3)]))
        users = self.ok(self.db.accounts.users_of_accounts([acct.id]))[acct.id]
        self.assertEqual([(u.username, u.state) for u in users],
                         [("bulk", "enabled"), ("u0", "enabled"), ("u1", "enabled"), ("u2", "enabled")])
        self.assertEqual(self.ok(self.db.accounts.users_of_accounts([])), {})


class SessionsTests(DBTestCase):
    """SessionsComponent: sessions expire by inactivity measured on the injected clock."""

    def test_touch_and_expiry(self) -> None:
        """Each touch renews a session; after `timeout` idle seconds it is gone."""
        s = self.ok(self.db.sessions.create("sid", "skey", self.admin.id, 100))
        self.assertEqual((s.created, s.last_access, s.timeout), (EPOCH, EPOCH, 100))
        self.reactor.advance(90)
        touched = self.ok(self.db.sessions.touch("sid"))
        assert touched is not None
        self.assertEqual(touched.last_access, EPOCH + 90)
        self.assertTrue(self.db.sessions.key_matches(touched, "skey"))
        self.assertFalse(self.db.sessions.key_matches(touched, "skeY"))
        self.reactor.advance(100)
        self.assertIsNotNone(self.ok(self.db.sessions.touch("sid")))
        self.reactor.advance(101)
        self.assertIsNone(self.ok(self.db.sessions.touch("sid")))
        # the expired session was deleted, not just refused
        self.reactor.advance(-200)
        self.assertIsNone(self.ok(self.db.sessions.touch("sid")))

    def test_delete_and_bulk_expire(self) -> None:
        """delete ends one session; expire removes only sessions idle for longer than their timeout."""
        self.ok(self.db.sessions.create("short", "k1", self.admin.id, 10))
        self.ok(self.db.sessions.create("long", "k2", self.admin.id, 1000))
        self.ok(self.db.sessions.create("gone", "k3", self.admin.id, 1000))
        self.ok(self.db.sessions.delete("gone"))
        self.assertIsNone(self.ok(self.db.sessions.touch("gone")))
        self.reactor.advance(11)
        self.assertEqual(self.ok(self.db.sessions.expire()), 1)
        self.assertIsNone(self.ok(self.db.sessions.touch("short")))
        self.assertIsNotNone(self.ok(self.db.sessions.touch("long")))
        self.assertIsNone(self.ok(self.db.sessions.touch("unknown")))


class ConfigurationTests(DBTestCase):
    """ConfigurationComponent: stored values override defaults; reset removes them."""

    def test_set_update_reset(self) -> None:
        """set inserts then updates (also to the same value, or to None); reset deletes."""
        self.assertEqual(self.ok(self.db.configuration.all()), {})
        self.ok(self.db.configuration.set("a.b", "1"))
        self.ok(self.db.configuration.set("a.b", "1"))
        self.ok(self.db.configuration.set("c", None))
        self.assertEqual(self.ok(self.db.configuration.all()), {"a.b": "1", "c": None})
        self.reactor.advance(5)
        self.ok(self.db.configuration.set("a.b", "2"))
        self.assertEqual(self.ok(self.db.configuration.all())["a.b"], "2")
        updated = self.sql(lambda conn: conn.execute(sa.select(model.configuration.c.updated).where(
            model.configuration.c.name == "a.b")).scalar_one())
        self.assertEqual(updated, EPOCH + 5)
        self.ok(self.db.configuration.reset("a.b"))
        self.ok(self.db.configuration.reset("never-set"))
        self.assertEqual(self.ok(self.db.configuration.all()), {"c": None})


class EventsTests(DBTestCase):
    """EventsComponent: recording and every search filter."""

    def _event(self, account: Account, type: str = "USER.LOGIN", state: str = "Completed", level: str = "INFO",
               description: str = "done", resource_uuid: str | None = None, start_id: int | None = None,
               user_id: int | None = None) -> int:
        return self.ok(self.db.events.record(NewEvent(
            type=type, state=state, level=level, description=description, user_id=user_id,
            account_id=account.id, domain_id=account.domain_id, resource_type="Domain" if resource_uuid else None,
            resource_uuid=resource_uuid, resource_name="r" if resource_uuid else None, start_id=start_id)))

    def test_record_and_fields(self) -> None:
        """A recorded event comes back joined with account, domain, user and its parent event."""
        acct = self.admin.account
        first = self._event(acct, state="Scheduled", user_id=self.admin.id, resource_uuid="res-1")
        second = self._event(acct, state="Started", start_id=first, user_id=self.admin.id)
        _, events = self.ok(self.db.events.search(Scope()))
        self.assertEqual([e.id for e in events], [second, first])
        top, child = events[1], events[0]
        self.assertEqual((top.username, top.account_name, top.domain_path, top.domain_uuid, top.created),
                         ("admin", "admin", "/", self.root.uuid, EPOCH))
        self.assertEqual((top.resource_type, top.resource_uuid, top.resource_name), ("Domain", "res-1", "r"))
        self.assertEqual((child.start_id, child.parent_uuid), (first, top.uuid))
        self.assertIsNone(top.parent_uuid)
        self.assertFalse(top.archived)

    def test_scope(self) -> None:
        """Events are scoped by account ids, exact domain and domain subtree."""
        eng = self.domain("eng")
        web = self.domain("web", eng)
        a = self.account("a", eng)
        b = self.account("b", web)
        self._event(a)
        self._event(b)
        self._event(self.admin.account)

        def owners(scope: Scope) -> list[str]:
            return [e.account_name for e in self.ok(self.db.events.search(scope))[1]]

        self.assertEqual(owners(Scope()), ["admin", "b", "a"])
        self.assertEqual(owners(Scope(account_ids=(a.id,))), ["a"])
        self.assertEqual(owners(Scope(domain_id=eng.id)), ["a"])
        self.assertEqual(owners(Scope(domain_path="/eng/")), ["b", "a"])

    def test_filters_and_dates(self) -> None:
        """type, level, keyword, resource, date range and start_uuid each narrow the result."""
        acct = self.admin.account
        e1 = self._event(acct, type="DOMAIN.CREATE", description="made eng")
        self.reactor.advance(100)
        e2 = self._event(acct, type="DOMAIN.DELETE", level="ERROR", description="could not", resource_uuid="d-1")
        self.reactor.advance(100)
        e3 = self._event(acct, type="DOMAIN.DELETE", state="Completed", start_id=e2)

        def ids(**kw: Any) -> list[int]:
            return [e.id for e in self.ok(self.db.events.search(Scope(), **kw))[1]]

        self.assertEqual(ids(type="DOMAIN.DELETE"), [e3, e2])
        self.assertEqual(ids(level="ERROR"), [e2])
        self.assertEqual(ids(keyword="eng"), [e1])
        self.assertEqual(ids(keyword="error"), [e2])
        self.assertEqual(ids(resource_uuid="d-1"), [e2])
        self.assertEqual(ids(resource_type="Domain"), [e2])
        self.assertEqual(ids(start=EPOCH + 100), [e3, e2])
        self.assertEqual(ids(end=EPOCH + 100), [e2, e1])
        self.assertEqual(ids(start=EPOCH + 50, end=EPOCH + 150), [e2])
        uuid2 = self.ok(self.db.events.search(Scope(), level="ERROR"))[1][0].uuid
        self.assertEqual(ids(start_uuid=uuid2), [e3, e2])
        self.assertEqual(ids(uuid=uuid2), [e2])
        self.assertEqual(ids(archived=True), [])
        total, page = self.ok(self.db.events.search(Scope(), page=Page(offset=1, limit=1)))
        self.assertEqual((total, [e.id for e in page]), (3, [e2]))


class JobsTests(DBTestCase):
    """JobsComponent: creation, exactly-once completion, search, expunge and orphan failing."""

    def setUp(self) -> None:
        super().setUp()
        self.ms = self.ok(self.db.jobs.register_mshost("ms-uuid", "host-1", "run-1"))

    def _job(self, account: Account | None = None, user: User | None = None, command: str = "deleteDomain",
             sync_object: str | None = "Domain:1", msid: int | None = None) -> Job:
        acct = account or self.admin.account
        usr = user or self.admin
        return self.ok(self.db.jobs.create(
            user_id=usr.id, account_id=acct.id, domain_id=acct.domain_id, command=command,
            cmd="org.apache.cloudstack.api.command.admin.domain.DeleteDomainCmd", cmd_info='{"id": "x"}',
            instance_type="Domain", instance_uuid="inst-1", sync_object=sync_object,
            msid=self.ms.id if msid is None else msid))

    def test_create(self) -> None:
        """A new job is pending, owned by its server, with every stored field joined back."""
        job = self._job()
        self.assertEqual((job.status, job.proc_status, job.result_code, job.result, job.completed),
                         (PENDING, 0, 0, None, None))
        self.assertEqual((job.user_uuid, job.account_uuid, job.account_name, job.domain_uuid, job.domain_path),
                         (self.admin.uuid, self.admin.account.uuid, "admin", self.root.uuid, "/"))
        self.assertEqual((job.msid, job.ms_uuid, job.ms_name, job.created), (self.ms.id, "ms-uuid", "host-1", EPOCH))
        self.assertEqual((job.instance_type, job.instance_uuid, job.sync_object), ("Domain", "inst-1", "Domain:1"))
        self.assertEqual(self.ok(self.db.jobs.get_by_uuid(job.uuid)), job)
        self.fails(self.db.jobs.get_by_uuid("nope"), NotFound)
        later = self._job()
        self.assertEqual(self.ok(self.db.jobs.waiting_behind(later.id, "Domain:1")), 1)
        self.assertEqual(self.ok(self.db.jobs.waiting_behind(job.id, "Domain:1")), 0)
        self.assertEqual(self.ok(self.db.jobs.waiting_behind(later.id, "Domain:2")), 0)

    def test_complete_exactly_once(self) -> None:
        """The first completion wins; a second one (another status) returns False and changes nothing."""
        job = self._job()
        self.reactor.advance(7)
        self.assertTrue(self.ok(self.db.jobs.complete(job.id, SUCCEEDED, 0, '{"success": true}')))
        done = self.ok(self.db.jobs.get_by_uuid(job.uuid))
        self.assertEqual((done.status, done.result_code, done.result, done.completed),
                         (SUCCEEDED, 0, '{"success": true}', EPOCH + 7))
        self.reactor.advance(7)
        self.assertFalse(self.ok(self.db.jobs.complete(job.id, FAILED, 530, '{"errorcode": 530}')))
        self.assertEqual(self.ok(self.db.jobs.get_by_uuid(job.uuid)), done)
        self.assertEqual(self.ok(self.db.jobs.waiting_behind(job.id + 1, "Domain:1")), 0)

    def test_search(self) -> None:
        """search scopes like the other lists and filters by uuid, start time and keyword; newest first."""
        eng = self.domain("eng")
        acct = self.account("a", eng)
        usr = self.user_of(acct)
        j1 = self._job()
        self.reactor.advance(60)
        j2 = self._job(acct, usr, command="updateAccount")

        def ids(scope: Scope, **kw: Any) -> list[int]:
            return [j.id for j in self.ok(self.db.jobs.search(scope, **kw))[1]]

        self.assertEqual(ids(Scope()), [j2.id, j1.id])
        self.assertEqual(ids(Scope(account_ids=(acct.id,))), [j2.id])
        self.assertEqual(ids(Scope(domain_path="/eng/")), [j2.id])
        self.assertEqual(ids(Scope(domain_id=self.root.id)), [j1.id])
        self.assertEqual(ids(Scope(), uuid=j1.uuid), [j1.id])
        self.assertEqual(ids(Scope(), start=EPOCH + 1), [j2.id])
        self.assertEqual(ids(Scope(), keyword="account"), [j2.id])
        self.assertEqual(ids(Scope(), keyword="DeleteDomainCmd"), [j2.id, j1.id])
        total, page = self.ok(self.db.jobs.search(Scope(), page=Page(offset=1, limit=5)))
        self.assertEqual((total, [j.id for j in page]), (2, [j1.id]))

    def test_expunge(self) -> None:
        """Only finished jobs created before the cutoff are expunged; pending ones stay."""
        old_done = self._job()
        old_pending = self._job()
        self.ok(self.db.jobs.complete(old_done.id, FAILED, 530, None))
        self.reactor.advance(100)
        new_done = self._job()
        self.ok(self.db.jobs.complete(new_done.id, SUCCEEDED, 0, None))
        self.assertEqual(self.ok(self.db.jobs.expunge_older_than(EPOCH + 50)), 1)
        self.fails(self.db.jobs.get_by_uuid(old_done.uuid), NotFound)
        self.ok(self.db.jobs.get_by_uuid(old_pending.uuid))
        self.ok(self.db.jobs.get_by_uuid(new_done.uuid))

    def test_expunge_expired_by_database_clock(self) -> None:
        """expunge_expired judges age by the database's clock, not the process's: jobs stamped on this
        test's fake clock (mid-2025) are older than a day by the database's clock, younger than a
        century; pending ones always stay."""
        done = self._job()
        pending = self._job()
        self.ok(self.db.jobs.complete(done.id, SUCCEEDED, 0, None))
        self.assertEqual(self.ok(self.db.jobs.expunge_expired(100 * 365 * 86400)), 0)
        self.assertEqual(self.ok(self.db.jobs.expunge_expired(86400)), 1)
        self.fails(self.db.jobs.get_by_uuid(done.uuid), NotFound)
        self.ok(self.db.jobs.get_by_uuid(pending.uuid))

    def test_mshosts(self) -> None:
        """Registering the same server uuid again reuses its row with the new run id; heartbeats carry the
        database's time (in SQL), never the local clock's."""
        again = self.ok(self.db.jobs.register_mshost("ms-uuid", "host-1b", "run-2"))
        self.assertEqual((again.id, again.name, again.runid), (self.ms.id, "host-1b", "run-2"))
        peer = self.ok(self.db.jobs.register_mshost("peer", "host-2", "run-9"))
        self.assertNotEqual(peer.id, self.ms.id)
        self.reactor.advance(30)
        beat = self.ok(self.db.jobs.heartbeat(peer.id))
        self.assertLessEqual(abs(beat - self.ok(self.db.jobs.db_time())), 2)
        self.ok(self.db.jobs.mark_down(self.ms.id))
        rows = self.sql(lambda conn: {r.uuid: (r.state, r.last_heartbeat) for r in conn.execute(
            sa.select(model.mshosts.c.uuid, model.mshosts.c.state, model.mshosts.c.last_heartbeat))})
        self.assertEqual(rows["peer"], ("Up", beat))
        self.assertEqual(rows["ms-uuid"][0], "Down")
        self.assertLessEqual(abs(rows["ms-uuid"][1] - beat), 2)

    def test_fail_orphans(self) -> None:
        """Pending jobs of this server, of a stale or Down peer, or of no server fail with 530; others stay."""
        live = self.ok(self.db.jobs.register_mshost("live", "h2", "r"))
        stale = self.ok(self.db.jobs.register_mshost("stale", "h3", "r"))
        down = self.ok(self.db.jobs.register_mshost("down", "h4", "r"))
        self.ok(self.db.jobs.mark_down(down.id))
        own_job = self._job(msid=self.ms.id)
        done_job = self._job(msid=self.ms.id)
        self.ok(self.db.jobs.complete(done_job.id, SUCCEEDED, 0, '{"success": true}'))
        stale_job = self._job(msid=stale.id)
        down_job = self._job(msid=down.id)
        live_job = self._job(msid=live.id)
        self.reactor.advance(200)
        # 150 s without a heartbeat, by the database's clock
        self.sql(lambda conn: conn.execute(model.mshosts.update().where(model.mshosts.c.id == stale.id).values(
            last_heartbeat=db_now() - 150)).rowcount)
        self.ok(self.db.jobs.heartbeat(live.id))
        self.ok(self.db.jobs.heartbeat(down.id))
        self.sql(lambda conn: conn.execute(model.async_jobs.update().where(
            model.async_jobs.c.id == down_job.id).values(msid=None)).rowcount)
        text = 'cancelled "because" of restart'
        failed = self.ok(self.db.jobs.fail_orphans(self.ms.id, 100, text))
        self.assertEqual(sorted(j.id for j in failed), sorted([own_job.id, stale_job.id, down_job.id]))
        self.assertTrue(all(j.status == PENDING for j in failed))
        import json

        for job in (own_job, stale_job, down_job):
            now = self.ok(self.db.jobs.get_by_uuid(job.uuid))
            self.assertEqual((now.status, now.result_code, now.completed), (FAILED, 530, EPOCH + 200))
            assert now.result is not None
            self.assertEqual(json.loads(now.result), {"errorcode": 530, "errortext": text})
        self.assertEqual(self.ok(self.db.jobs.get_by_uuid(live_job.uuid)).status, PENDING)
        self.assertEqual(self.ok(self.db.jobs.get_by_uuid(done_job.uuid)).status, SUCCEEDED)
        # a second pass finds nothing new
        self.assertEqual(self.ok(self.db.jobs.fail_orphans(self.ms.id, EPOCH + 100, text)), [])


class _Retryable(Exception):
    """Stands in for a driver error: MySQL's deadlock code as its first argument."""


class _ThreadReactor:
    """Enough of a reactor for deferToThreadPool on real threads: results are delivered on the worker."""

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:  # noqa: N802
        f(*args, **kw)


class RealThreadsTests(SynchronousTestCase):
    """The pool's own thread pool with real threads (no reactor, no sockets, no sleeping)."""

    def test_memory_sqlite_transactions_do_not_interleave(self) -> None:
        """In-memory SQLite is one connection shared by all threads, so its transactions run one at a time:
        many concurrent inserts all commit, and none fails."""
        db = DBConnector("sqlite://", ".", _ThreadReactor(), FakeReactor())  # type: ignore[arg-type]
        migrate.upgrade(db.engine)
        db.pool.start()
        results: list[Any] = []
        for i in range(400):
            def thd(conn: Connection, i: int = i) -> int:
                conn.execute(model.configuration.insert().values(name=f"k{i}", value="v", updated=0))
                return int(conn.execute(sa.select(sa.func.count()).select_from(model.configuration)).scalar_one())

            db.pool.do(thd).addBoth(results.append)
        db.pool.stop()  # joins the workers: every call has finished
        self.assertEqual([r for r in results if not isinstance(r, int)], [])
        self.assertEqual(len(results), 400)
        self.assertEqual(max(results), 400)
        self.assertEqual(db.pool.threadpool.max, 1)
        self.assertEqual(DBConnector("sqlite:////nowhere/x.sqlite", ".", _ThreadReactor(),  # type: ignore[arg-type]
                                     FakeReactor()).pool.threadpool.max, 5)


class ConcurrentNamesTests(SynchronousTestCase):
    """Concurrent creations of one name in one domain, each in its own transaction on its own thread:
    exactly one wins, on a SQLite file and on the server database when CLOUDD_TEST_DB_URL names one."""

    def race(self, url: str, basedir: str, attempts: int = 5) -> list[Any]:
        db = DBConnector(url, basedir, _ThreadReactor(), FakeReactor())  # type: ignore[arg-type]
        migrate.upgrade(db.engine)
        db.pool.do_sync(lambda conn: bootstrap.thd_bootstrap(db, conn, basedir))
        root = db.pool.do_sync(lambda conn: conn.execute(
            sa.select(model.domains.c.id).where(model.domains.c.parent_id.is_(None))).scalar_one())
        role = db.pool.do_sync(lambda conn: conn.execute(
            sa.select(model.roles.c.id).where(model.roles.c.role_type == "User")).scalar_one())
        db.pool.threadpool.adjustPoolsize(attempts, attempts)
        db.pool.start()
        barrier = threading.Barrier(attempts, timeout=10)
        local = threading.local()
        outcomes: list[Any] = []

        def thd(conn: Connection) -> int:
            if not getattr(local, "waited", False):  # retries after a lock conflict do not wait again
                local.waited = True
                conn.execute(sa.select(sa.literal(1)))
                barrier.wait()
            return db.accounts.thd_create_account(conn, name="same", account_type=0, role_id=role, domain_id=root)

        for _ in range(attempts):
            db.pool.do(thd).addCallbacks(outcomes.append, lambda f: outcomes.append(f.value))
        db.pool.stop()  # joins the workers
        engine = sa.create_engine(db.engine.url)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(model.accounts).where(
                model.accounts.c.name == "same")).scalar_one()
        engine.dispose()
        self.assertEqual(rows, 1, outcomes)
        return outcomes

    def check(self, outcomes: list[Any]) -> None:
        self.assertEqual(len([o for o in outcomes if isinstance(o, int)]), 1, outcomes)
        self.assertEqual(len([o for o in outcomes if isinstance(o, Conflict)]), len(outcomes) - 1, outcomes)

    def test_sqlite_file(self) -> None:
        """On a SQLite file, concurrent writers are serialised by SQLite and retried by the pool."""
        basedir = self.mktemp()
        os.makedirs(basedir)
        self.check(self.race("sqlite:///%(basedir)s/race.sqlite", basedir))

    def test_server_database(self) -> None:
        """On MariaDB/MySQL the domain's row is locked while the name is checked and taken."""
        if not using_server_db():
            raise SkipTest("CLOUDD_TEST_DB_URL names no server database")
        url = test_db_url()
        wipe(url)
        basedir = self.mktemp()
        os.makedirs(basedir)
        self.check(self.race(url, basedir))


class PoolTests(DBTestCase):
    """DBThreadPool: plain data only, and retries of retryable operational errors."""

    def test_row_refused(self) -> None:
        """Returning a Row from a pool function fails with TypeError."""
        d = self.db.pool.do(lambda conn: conn.execute(sa.select(model.domains.c.id)).first())
        err = self.fails(d, TypeError)
        self.assertIn("Row", str(err))

    def test_result_refused(self) -> None:
        """Returning a Result from a pool function fails with TypeError."""
        self.fails(self.db.pool.do(lambda conn: conn.execute(sa.select(model.domains.c.id))), TypeError)

    def test_plain_data_passes(self) -> None:
        """Plain values come back unchanged, through do and do_with_engine."""
        self.assertEqual(self.ok(self.db.pool.do(lambda conn: conn.execute(sa.select(sa.literal(3))).scalar_one())), 3)
        self.assertIn("domains", self.ok(self.db.pool.do_with_engine(lambda e: sa.inspect(e).get_table_names())))

    def _flaky(self, failures: int, exc: Exception) -> tuple[list[int], Any]:
        calls: list[int] = []

        def thd(conn: Connection) -> str:
            calls.append(1)
            conn.execute(model.configuration.insert().values(name=f"try{len(calls)}", value="x", updated=0))
            if len(calls) <= failures:
                raise exc
            return "done"

        return calls, thd

    @staticmethod
    def _operational(orig: Exception) -> sa.exc.OperationalError:
        return sa.exc.OperationalError("UPDATE x", {}, orig)

    def test_retryable_error_retried(self) -> None:
        """A deadlock or 'database is locked' raised once is retried in a fresh transaction and succeeds."""
        for orig in (_Retryable(1213, "Deadlock found"), Exception("database is locked")):
            self.ok(self.db.configuration.reset("try1"))
            calls, thd = self._flaky(1, self._operational(orig))
            d = self.db.pool.do(thd)
            self.assertEqual(len(calls), 1)
            self.reactor.advance(self.db.pool.backoff_start)
            self.assertEqual(self.ok(d), "done")
            self.assertEqual(len(calls), 2)
            # the failed attempt was rolled back
            self.assertEqual(set(self.ok(self.db.configuration.all())), {"try2"})
            self.ok(self.db.configuration.reset("try2"))

    def test_other_errors_not_retried(self) -> None:
        """A non-retryable error fails at once; a retryable one fails once its backoff is spent."""
        calls, thd = self._flaky(10, self._operational(_Retryable(1054, "Unknown column")))
        self.fails(self.db.pool.do(thd), sa.exc.OperationalError)
        self.assertEqual(len(calls), 1)
        calls, thd = self._flaky(100, self._operational(_Retryable(1205, "Lock wait timeout")))
        d = self.db.pool.do(thd)
        self.reactor.pump(self.db.pool.backoff())
        self.fails(d, sa.exc.OperationalError)
        self.assertEqual(len(calls), len(self.db.pool.backoff()) + 1)
        calls, thd = self._flaky(1, ValueError("bug"))
        self.fails(self.db.pool.do(thd), ValueError)
        self.assertEqual(len(calls), 1)
        self.assertEqual(self.ok(self.db.configuration.all()), {})
