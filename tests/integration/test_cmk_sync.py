"""`cmk sync`: listApis as cloudmonkey requests it and loads it into its cache (spec/api.md §5)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import requests

import cloudd.api
from cloudd.api.registry import Registry
from tests.integration.support import DaemonCase, cmk_signed, unique


def split_api_name(name: str) -> tuple[str, str]:
    """cmk's UpdateCache: the verb is the leading lower-case letters, the noun the rest, lower-cased."""
    idx = 0
    for ch in name:
        if not ch.islower():
            break
        idx += 1
    return name[:idx], name[idx:].lower()


class CmkSyncTests(DaemonCase):
    """listApis carries every field cmk reads with unchecked Go type assertions."""

    def sync(self, key: str, secret: str) -> dict[str, Any]:
        """What `cmk sync` sends (listall=true is not a listApis parameter), and the object it caches."""
        query = cmk_signed("listApis", key, secret, {"listall": "true"})
        response = requests.get(f"{self.endpoint}?{query}", timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        data = response.json()
        self.assertEqual(list(data), ["listapisresponse"])
        inner: dict[str, Any] = data["listapisresponse"]
        return inner

    def check_cache_schema(self, cache: dict[str, Any]) -> None:
        self.assertEqual(set(cache), {"count", "api"})
        self.assertIsInstance(cache["count"], int)
        self.assertEqual(cache["count"], len(cache["api"]))
        for api in cache["api"]:
            name = api["name"]
            self.assertIsInstance(name, str)
            self.assertIsInstance(api["isasync"], bool, name)
            self.assertIsInstance(api["description"], str, name)
            self.assertIsInstance(api["params"], list, name)
            self.assertIsInstance(api["response"], list, name)
            if "related" in api:
                self.assertIsInstance(api["related"], str, name)
            for param in api["params"]:
                self.assertIsInstance(param["name"], str, name)
                self.assertIsInstance(param["type"], str, name)
                self.assertIsInstance(param["required"], bool, name)
                self.assertIsInstance(param["description"], str, name)
                if "related" in param:
                    self.assertIsInstance(param["related"], str, name)
                    for related in param["related"].split(","):
                        self.assertRegex(related, r"^[a-z]+[A-Za-z]*$", name)
            for field in api["response"]:
                self.assertIsInstance(field["name"], str, name)
            verb, noun = split_api_name(name)
            self.assertTrue(re.fullmatch(r"[a-z]+", verb), name)
            self.assertEqual(verb + noun, name.lower())
        lowered = [api["name"].lower() for api in cache["api"]]
        self.assertEqual(len(lowered), len(set(lowered)), "cmk keys its cache by lower-cased name")

    def test_root_admin_sees_every_registered_command(self) -> None:
        """For the root admin listApis lists exactly the commands the daemon registers, well typed."""
        registry = Registry.scan(cloudd.api)
        cache = self.sync(self.creds["apikey"], self.creds["secretkey"])
        self.check_cache_schema(cache)
        by_name = {api["name"]: api for api in cache["api"]}
        self.assertEqual(set(by_name), {c.name for c in registry})
        for cmd in registry:
            api = by_name[cmd.name]
            self.assertEqual(api["isasync"], cmd.is_async, cmd.name)
            self.assertEqual({p["name"] for p in api["params"]}, {p.name for p in cmd.params}, cmd.name)
            required = {p["name"] for p in api["params"] if p["required"]}
            self.assertEqual(required, {p.name for p in cmd.params if p.required}, cmd.name)
        self.assertTrue(by_name["deleteDomain"]["isasync"])
        self.assertEqual(split_api_name("queryAsyncJobResult"), ("query", "asyncjobresult"))
        self.assertLessEqual({"success", "jobid"}, {f["name"] for f in by_name["deleteAccount"]["response"]})

    def test_normal_user_sees_only_permitted_commands(self) -> None:
        """A normal user's listApis lists only what its role may call, and those calls work."""
        registry = Registry.scan(cloudd.api)
        domain = self.admin.createDomain(name=unique("syncdom"))["domain"]
        account = self.admin.createAccount(accounttype=0, username=unique("syncuser"), password="pw-Secret-1",
                                           firstname="F", lastname="L", email="s@example.com",
                                           domainid=domain["id"])["account"]
        keys = self.admin.registerUserKeys(id=account["user"][0]["id"])["userkeys"]
        cache = self.sync(keys["apikey"], keys["secretkey"])
        self.check_cache_schema(cache)
        names = {api["name"] for api in cache["api"]}
        expected = {c.name for c in registry if "User" in c.roles or c.authenticator}
        self.assertEqual(names, expected)
        for name in ("listApis", "listAccounts", "queryAsyncJobResult", "registerUserKeys", "login", "logout"):
            self.assertIn(name, names)
        for name in ("createDomain", "listConfigurations", "updateConfiguration", "createAccount", "listUsers"):
            self.assertNotIn(name, names)
        self.assertLess(cache["count"], len(registry))

        def call(command: str, **args: str) -> requests.Response:
            query = cmk_signed(command, keys["apikey"], keys["secretkey"], args)
            return requests.get(f"{self.endpoint}?{query}", timeout=30)

        self.assertEqual(call("listAccounts").json()["listaccountsresponse"]["account"][0]["id"], account["id"])
        refused = call("listConfigurations")
        self.assertEqual(refused.status_code, 432)
        self.assertEqual(refused.json(), {"errorresponse": {
            "uuidList": [], "errorcode": 432, "cserrorcode": 9999,
            "errortext": f"The API [listConfigurations] does not exist or is not available for the account "
                         f"{account['name']}."}})
        hidden = call("listApis", name="createDomain")
        self.assertEqual(hidden.status_code, 530)
        self.assertEqual(hidden.json()["listapisresponse"]["errortext"],
                         "Api Discovery plugin was unable to find an api by that name or process any apis")
        one = call("listApis", name="listAccounts").json()["listapisresponse"]
        self.assertEqual((one["count"], [a["name"] for a in one["api"]]), (1, ["listAccounts"]))

    def test_sync_over_a_login_session(self) -> None:
        """A username/password profile syncs through its session and gets the same API list."""
        jar = requests.Session()
        self.addCleanup(jar.close)
        login = jar.post(self.endpoint, timeout=30, data={
            "command": "login", "username": self.creds["username"], "password": self.creds["password"],
            "domain": "/", "response": "json"})
        key = login.cookies["sessionkey"]
        query = urllib.parse.urlencode({"command": "listApis", "listall": "true", "response": "json",
                                        "sessionkey": key})
        over_session = jar.get(f"{self.endpoint}?{query}", timeout=30).json()["listapisresponse"]
        signed = self.sync(self.creds["apikey"], self.creds["secretkey"])
        self.assertEqual(over_session["count"], signed["count"])
        self.assertEqual(sorted(a["name"] for a in over_session["api"]), sorted(a["name"] for a in signed["api"]))
