"""The router's control API: in process over fake requests, and as a real `twistd -n routervm`
process driven by cloudd's `RouterClient` and by curl over mutual TLS."""

from __future__ import annotations

import copy
import datetime
import json
import os
from io import BytesIO
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest

from appliance.files import atomic_write
from appliance.messages.common import Health
from appliance.messages.records import VmRecord
from appliance.messages.router import DeleteAnswer, PasswordAnswer, RouterState, UpdateAnswer
from appliance.tls import TlsMaterial
from cloudd.agents.control import ControlError
from cloudd.agents.router import RouterClient
from cloudd.pki import CertificateAuthority
from routervm.state import StateKeeper
from routervm.web.control import ControlApi
from tests.routervm.test_state import SECRET, USER_DATA, UUID1, UUID2, state, vm
from tests.util.appliance import RouterAppliance


def _request(method: bytes, path: str, body: Any = None, args: dict[bytes, list[bytes]] | None = None
             ) -> DummyRequest:
    request = DummyRequest([p.encode() for p in path.strip("/").split("/")])
    request.method = method
    request.content = BytesIO(b"" if body is None else json.dumps(body).encode())
    request.args = args or {}
    return request


class ApiTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.keeper = StateKeeper(os.path.join(self.directory, "state.json"), Clock(), b"k" * 32)
        self.api = ControlApi(self.keeper).resource()

    def tearDown(self) -> None:
        self.keeper.passwords.clear()

    def call(self, method: str, path: str, body: Any = None,
             args: dict[bytes, list[bytes]] | None = None) -> tuple[int, Any]:
        request = _request(method.encode(), path, body, args)
        self.api.render(request)
        self.assertTrue(request.finished)
        held = request.responseHeaders.getRawHeaders(b"router-generation")
        self.assertEqual(held, [str(self.keeper.generation).encode()], (method, path))
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def test_health(self) -> None:
        self.assertEqual(self.call("GET", "/health"),
                         (200, {"service": "routervm", "status": "ok", "generation": 0}))

    def test_empty_state(self) -> None:
        self.assertEqual(self.call("GET", "/v1/state"),
                         (200, {"generation": 0, "network": None, "rules": None, "vms": []}))

    def test_full_sync_and_get(self) -> None:
        """PUT /v1/state applies; GET /v1/state shows the records without user data or passwords."""
        self.assertEqual(self.call("PUT", "/v1/state", state(4)), (200, {"generation": 4, "applied": True}))
        self.assertEqual(self.call("PUT", "/v1/state", state(4)), (200, {"generation": 4, "applied": False}))
        self.assertEqual(self.call("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET}),
                         (200, {"generation": 4, "pending": True}))
        code, answer = self.call("GET", "/v1/state")
        self.assertEqual((code, answer["generation"]), (200, 4))
        self.assertEqual(answer["network"]["cidr"], "10.1.1.0/24")
        self.assertEqual(answer["rules"]["guest_network"]["router_ip"], "10.1.1.1")
        first = answer["vms"][[v["uuid"] for v in answer["vms"]].index(UUID1)]
        self.assertNotIn("user_data", first)
        self.assertEqual((first["has_user_data"], first["password_pending"]), (True, True))
        self.assertEqual(len(first["user_data_sha256"]), 64)
        text = json.dumps(answer)
        self.assertNotIn(SECRET, text)
        self.assertNotIn(USER_DATA, text)

    def test_vm_updates(self) -> None:
        """PUT and DELETE of one VM, by query or body generation."""
        self.call("PUT", "/v1/state", state(1, vms=[vm()]))
        second = vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")
        self.assertEqual(self.call("PUT", f"/v1/vms/{UUID2}", {"generation": 2, "vm": second}),
                         (200, {"generation": 2, "applied": True}))
        self.assertEqual(self.call("DELETE", f"/v1/vms/{UUID2}", args={b"generation": [b"3"]}),
                         (200, {"generation": 3, "deleted": True}))
        self.assertEqual(self.call("DELETE", f"/v1/vms/{UUID2}", {"generation": 3}),
                         (200, {"generation": 3, "deleted": False}))
        self.assertEqual([v["uuid"] for v in self.call("GET", "/v1/state")[1]["vms"]], [UUID1])

    def test_rules(self) -> None:
        self.call("PUT", "/v1/state", state(1, rules=None))
        rules = state()["rules"]
        self.assertEqual(self.call("PUT", "/v1/rules", {"generation": 2, "rules": rules}),
                         (200, {"generation": 2, "applied": True}))
        self.assertEqual(self.call("GET", "/v1/state")[1]["rules"]["public_addresses"][0]["ip"], "203.0.113.10")
        self.assertEqual(self.call("PUT", "/v1/rules", {"generation": 3, "rules": None})[0], 200)
        self.assertIsNone(self.call("GET", "/v1/state")[1]["rules"])

    def test_errors(self) -> None:
        """400 for bad input, 409 for a stale generation or no state yet, 404 for an unknown VM;
        no error text repeats a password."""
        record = vm()
        self.assertEqual(self.call("PUT", f"/v1/vms/{UUID1}", {"generation": 1, "vm": record})[0], 409)
        self.assertEqual(self.call("PUT", "/v1/rules", {"generation": 1, "rules": None})[0], 409)
        self.call("PUT", "/v1/state", state(5))
        other = vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")
        cases: list[tuple[str, str, Any, dict[bytes, list[bytes]] | None, int]] = [
            ("PUT", "/v1/state", state(4), None, 409),
            ("PUT", "/v1/state", state(5, vms=[]), None, 409),
            ("PUT", "/v1/state", state(6, network={}), None, 400),
            ("PUT", "/v1/state", [1], None, 400),
            ("PUT", f"/v1/vms/{UUID1}", {"generation": 5, "vm": dict(record, hostname="x")}, None, 409),
            ("PUT", f"/v1/vms/{UUID1}", {"generation": 4, "vm": record}, None, 409),
            ("PUT", f"/v1/vms/{UUID1}", {"generation": 6, "vm": other}, None, 400),
            ("PUT", f"/v1/vms/{UUID1}", {"generation": 6}, None, 400),
            ("PUT", f"/v1/vms/{UUID1}", {"generation": "6", "vm": record}, None, 400),
            ("PUT", f"/v1/vms/{UUID1}", {"generation": 6, "vm": {"uuid": UUID1}}, None, 400),
            ("DELETE", "/v1/vms/nobody", None, {b"generation": [b"6"]}, 404),
            ("DELETE", f"/v1/vms/{UUID1}", None, {b"generation": [b"x"]}, 400),
            ("DELETE", f"/v1/vms/{UUID1}", None, None, 400),
            ("DELETE", f"/v1/vms/{UUID1}", None, {b"generation": [b"2"]}, 409),
            ("PUT", "/v1/vms/nobody/password", {"password": SECRET}, None, 404),
            ("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET, "generation": 2}, None, 409),
            ("PUT", f"/v1/vms/{UUID1}/password", {"password": 7}, None, 400),
            ("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET + "\n"}, None, 400),
            ("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET, "other": 1}, None, 400),
            ("PUT", "/v1/rules", {"generation": 6, "rules": {"public_addresses": 3}}, None, 400),
            ("PUT", "/v1/rules", {"generation": 4, "rules": None}, None, 409),
        ]
        for method, path, body, args, want in cases:
            code, answer = self.call(method, path, body, args)
            self.assertEqual(code, want, (method, path, body, answer))
            self.assertIn(answer["error"]["code"], {400: "bad_request", 404: "not_found", 409: "conflict"}[want])
            self.assertNotIn(SECRET, json.dumps(answer))
        self.assertEqual(self.keeper.generation, 5)


class GatedWriter:
    """A `FileWriter` whose writes wait until `release`, then land for real or fail with `error`."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, Any, int, Deferred[None]]] = []
        self.error: OSError | None = None

    def write(self, path: str, content: Any, mode: int = 0o600) -> Deferred[None]:
        written: Deferred[None] = Deferred()
        self.queue.append((path, content, mode, written))
        return written

    def release(self) -> None:
        queue, self.queue = self.queue, []
        for path, content, mode, written in queue:
            if self.error is not None:
                written.errback(self.error)
            else:
                atomic_write(path, content() if callable(content) else content, mode)
                written.callback(None)


class StorageTests(SynchronousTestCase):
    """The control API answers once the change is on disk; guests are served it at once; a write
    that fails gets 503 and a repeated request stores it."""

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.writer = GatedWriter()
        self.path = os.path.join(self.directory, "state.json")
        self.keeper = StateKeeper(self.path, Clock(), b"k" * 32, writer=self.writer)
        self.addCleanup(self.keeper.passwords.clear)
        self.api = ControlApi(self.keeper).resource()
        self.served: list[int] = []
        self.keeper.subscribe(lambda snapshot: self.served.append(snapshot.generation))

    def start(self, method: str, path: str, body: Any = None) -> DummyRequest:
        request = _request(method.encode(), path, body)
        self.api.render(request)
        return request

    def answer(self, request: DummyRequest) -> tuple[int, Any]:
        self.assertTrue(request.finished)
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def stored(self) -> int | None:
        if not os.path.exists(self.path):
            return None
        with open(self.path, "rb") as f:
            return int(json.load(f)["state"]["generation"])

    def test_answer_after_the_write(self) -> None:
        request = self.start("PUT", "/v1/state", state(1))
        self.assertFalse(request.finished)
        self.assertEqual(self.served, [1])  # served before it is stored
        self.assertIsNone(self.stored())
        self.writer.release()
        self.assertEqual(self.answer(request), (200, {"generation": 1, "applied": True}))
        self.assertEqual(self.stored(), 1)

    def test_failed_write_then_retry(self) -> None:
        self.writer.error = OSError(28, "No space left on device")
        request = self.start("PUT", "/v1/state", state(1))
        self.writer.release()
        status, body = self.answer(request)
        self.assertEqual(status, 503)
        self.assertEqual(body["error"]["code"], "not_stored")
        self.assertIn("No space left on device", body["error"]["message"])
        self.assertEqual((self.keeper.generation, self.stored()), (1, None))
        self.flushLoggedErrors()
        # the same request again: nothing new to apply, but the state is written this time
        self.writer.error = None
        request = self.start("PUT", "/v1/state", state(1))
        self.writer.release()
        self.assertEqual(self.answer(request), (200, {"generation": 1, "applied": False}))
        self.assertEqual(self.stored(), 1)

    def test_password_stored_sealed_before_the_answer(self) -> None:
        request = self.start("PUT", "/v1/state", state(1))
        self.writer.release()
        self.answer(request)
        self.writer.error = OSError(13, "Permission denied")
        request = self.start("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET})
        self.assertFalse(request.finished)
        self.writer.release()
        self.assertEqual(self.answer(request)[0], 503)
        self.assertEqual(self.keeper.passwords.fetch(UUID1), SECRET)  # pending all the same
        self.assertFalse(os.path.exists(self.keeper.passwords_path))
        self.writer.error = None
        request = self.start("PUT", f"/v1/vms/{UUID1}/password", {"password": SECRET})
        self.writer.release()
        self.assertEqual(self.answer(request), (200, {"generation": 1, "pending": True}))
        with open(self.keeper.passwords_path, "rb") as f:
            sealed = f.read()
        self.assertNotIn(SECRET.encode(), sealed)
        self.assertGreater(len(sealed), len(SECRET))


class ProcessTests(TestCase):
    """The real appliance, driven by cloudd's client and by curl."""

    timeout = 120

    def setUp(self) -> Deferred[None]:
        self.basedir = self.mktemp()
        self.app = self.start()
        return ensureDeferred(self._ready())

    def start(self) -> RouterAppliance:
        app = RouterAppliance(self.basedir, settings="[passwords]\nttl = 3600\n")
        self.addCleanup(app.stop)
        app.start(timeout=60)
        client = RouterClient(reactor, app.control_url, TlsMaterial.from_directory(app.client_dir))
        self.addCleanup(lambda: ensureDeferred(client.close()))
        self.client = client
        return app

    async def _ready(self) -> None:
        self.assertEqual(await self.client.health(), Health(service="routervm", status="ok", generation=0))

    def test_sync_update_restart(self) -> Deferred[None]:
        """Full sync, a single-VM update, a stale generation (409), then a restart: the same
        generation and records are served at once, and no file holds the password in clear."""
        return ensureDeferred(self._sync_update_restart())

    async def _sync_update_restart(self) -> None:
        self.assertEqual(await self.client.put_state(RouterState.from_json(state(1, vms=[vm(user_data=USER_DATA)]))),
                         UpdateAnswer(generation=1, applied=True))
        second = vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")
        self.assertEqual(await self.client.put_vm(VmRecord.from_json(second), 2),
                         UpdateAnswer(generation=2, applied=True))
        self.assertEqual(await self.client.set_password(UUID1, SECRET, 2), PasswordAnswer(generation=2, pending=True))
        with self.assertRaises(ControlError) as caught:
            await self.client.put_vm(VmRecord.from_json(dict(second, hostname="late")), 1)
        self.assertEqual((caught.exception.status, caught.exception.code), (409, "conflict"))
        with self.assertRaises(ControlError) as caught:
            await self.client.delete_vm("nobody", 3)
        self.assertEqual(caught.exception.status, 404)
        before = await self.client.get_state()
        self.assertEqual((before.generation, [v.record.uuid for v in before.vms]), (2, sorted([UUID1, UUID2])))

        await self.client.close()
        self.app.stop()
        self.app = self.start()
        after = await self.client.get_state()
        self.assertEqual(after, before)
        self.assertTrue(next(v for v in after.vms if v.record.uuid == UUID1).password_pending)
        for folder, _dirs, files in os.walk(self.app.basedir):
            for name in files:
                with open(os.path.join(folder, name), "rb") as f:
                    self.assertNotIn(SECRET.encode(), f.read(), name)
        self.assertEqual(await self.client.delete_vm(UUID2, 3), DeleteAnswer(generation=3, deleted=True))

    def test_curl(self) -> None:
        """curl with cloudd's client certificate: full sync, single-VM update, stale generation;
        without a certificate or with a foreign one the handshake fails and nothing is applied."""
        app = self.app
        rc, status, body = app.curl("PUT", "/v1/state", state(3))
        self.assertEqual((rc, status, json.loads(body)), (0, 200, {"generation": 3, "applied": True}))
        changed = copy.deepcopy(vm(hostname="renamed"))
        rc, status, body = app.curl("PUT", f"/v1/vms/{UUID1}", {"generation": 4, "vm": changed})
        self.assertEqual((rc, status, json.loads(body)["generation"]), (0, 200, 4))
        rc, status, body = app.curl("PUT", "/v1/state", state(2))
        self.assertEqual((status, json.loads(body)["error"]["code"]), (409, "conflict"))
        rc, status, body = app.curl("DELETE", f"/v1/vms/{UUID2}?generation=5")
        self.assertEqual((status, json.loads(body)), (200, {"generation": 5, "deleted": True}))

        now = datetime.datetime.now(datetime.UTC)
        foreign = os.path.join(app.basedir, "foreign")
        CertificateAuthority.create(now).issue_client("cloudd", now).write(foreign)
        for cert_dir in (None, foreign, app.tls_dir):
            rc, status, _ = app.curl("PUT", "/v1/state", state(9, vms=[]), cert_dir=cert_dir)
            self.assertNotEqual(rc, 0, cert_dir)
            self.assertIsNone(status, cert_dir)
        rc, status, body = app.curl("GET", "/v1/state")
        answer = json.loads(body)
        self.assertEqual((status, answer["generation"], [v["hostname"] for v in answer["vms"]]),
                         (200, 5, ["renamed"]))
