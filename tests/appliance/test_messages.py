"""The control messages shared by cloudd and the appliances (`appliance.messages`): every model reads
back what it writes, every refusal names its field, the route tables of both appliances have a
model for every body and JSON answer (and the appliances really answer in those shapes), and
cloudd's clients send and read the models."""

from __future__ import annotations

import ast
import base64
import json
import os
import sys
from io import BytesIO
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest

from appliance.messages import MessageError
from appliance.messages.checksum import parse_checksum
from appliance.messages.common import Deleted, Health
from appliance.messages.configdrive import ConfigDrive
from appliance.messages.records import VmRecord
from appliance.messages.router import (
    DeleteAnswer,
    NetworkSettings,
    PasswordAnswer,
    PasswordUpdate,
    RouterState,
    RulesUpdate,
    StateView,
    UpdateAnswer,
    VmDeletion,
    VmUpdate,
    VmView,
)
from appliance.messages.routes import ROUTER_ROUTES, SSVM_ROUTES, RouteMessages
from appliance.messages.rules import RouterRules
from appliance.messages.ssvm import (
    DOWNLOAD_STATES,
    IMAGE_FORMATS,
    ConfigDriveStored,
    DownloadList,
    DownloadRequest,
    DownloadStatus,
    ImageEntry,
    ImageList,
    SignedUrl,
    SignUrlRequest,
    StorageAnswer,
)
from appliance.web import JsonApi
from cloudd.agents.control import BAD_ANSWER, ControlError
from cloudd.agents.router import RouterClient
from cloudd.agents.ssvm import StorageClient
from routervm.state import StateKeeper
from routervm.web.control import ControlApi as RouterApi
from ssvm.download.sniff import FORMATS
from ssvm.download.state import DownloadState
from ssvm.web.control import ControlApi as StorageApi
from tests.routervm.test_state import SECRET, UUID1, UUID2, state, vm
from tests.ssvm.configdrive_helpers import minimal, typical

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -------------------------------------------------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda w: w[0] != "-")
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30).filter(
    lambda t: bool(t.strip()))
_COUNT = st.integers(0, 2**40)
_ID = st.integers(1, 2**63 - 1)
_HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_DOWNLOAD_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
_GENERATION = st.integers(1, 2**40)

health = st.builds(Health, service=_WORD, status=_WORD, generation=st.none() | st.integers(0, 2**40))
deleted = st.builds(Deleted, deleted=st.booleans())
download_request = st.builds(
    DownloadRequest, url=_WORD.map(lambda w: f"https://images.example/{w}.img"),
    format=st.sampled_from(IMAGE_FORMATS), account_id=_ID, template_id=_ID, unique_name=_TEXT,
    checksum=st.none() | _HEX64.map(lambda h: f"{{SHA-256}}{h}"), name=st.none() | _TEXT,
    description=st.none() | _TEXT, hvm=st.booleans(), max_size=st.none() | st.integers(1, 2**50))
download_status = st.builds(
    DownloadStatus, id=_DOWNLOAD_ID, state=st.sampled_from(DOWNLOAD_STATES), percent=st.integers(0, 100),
    bytes=_COUNT, format=st.sampled_from(IMAGE_FORMATS), url=_WORD.map(lambda w: f"http://h/{w}"),
    total=st.none() | _COUNT, error=st.none() | _TEXT, install_path=st.none() | _WORD,
    physical_size=st.none() | _COUNT, virtual_size=st.none() | _COUNT,
    checksum=st.none() | _HEX64.map(lambda h: f"{{SHA-256}}{h}"))
image_entry = st.builds(ImageEntry, id=_ID, account_id=_ID, install_path=_WORD, format=_WORD,
                        physical_size=_COUNT, virtual_size=_COUNT, unique_name=_TEXT)
storage_answer = st.builds(StorageAnswer, total=_COUNT, free=_COUNT, used_by_store=_COUNT)
sign_url_request = st.builds(SignUrlRequest, path=_WORD, ttl=st.integers(-10, 10**6))
signed_url = st.builds(SignedUrl, url=_WORD.map(lambda w: f"https://s/images/{w}"), expires=_COUNT)
config_drive_stored = st.builds(ConfigDriveStored, instance_name=_WORD, path=_WORD, size=_COUNT,
                                sha256=_HEX64, location=st.just("SECONDARY"))


@st.composite
def config_drives(draw: st.DrawFn) -> ConfigDrive:
    description: dict[str, Any] = draw(st.sampled_from([minimal, typical]))()
    description["hostname"] = draw(_WORD.filter(lambda w: not w.endswith("-")))
    if draw(st.booleans()):
        description["metadata"] = {f"k{i}-{key}": value for i, (key, value)
                                   in enumerate(draw(st.dictionaries(_WORD, _WORD, max_size=3)).items())}
    if draw(st.booleans()):
        description["user_data"] = base64.b64encode(draw(st.binary(min_size=1, max_size=64))).decode()
    if draw(st.booleans()):
        description["vendor_data"] = {"cloud-init": "#cloud-config\n", "n": draw(st.integers(-5, 5))}
    description["windows"] = draw(st.booleans())
    return ConfigDrive.from_json(description)


@st.composite
def vm_records(draw: st.DrawFn, index: int = 0) -> VmRecord:
    record = vm(f"uuid-{index}", f"02:00:4c:5e:01:{index:02x}", f"10.1.1.{50 + index}",
                draw(_WORD.filter(lambda w: not w.endswith("-"))))
    if draw(st.booleans()):
        record["user_data"] = base64.b64encode(draw(st.binary(min_size=1, max_size=40))).decode()
    if draw(st.booleans()):
        record["extra"] = {f"x-{k}": v for k, v in draw(st.dictionaries(_WORD, _WORD, max_size=2)).items()}
    if draw(st.booleans()):
        record["public_keys"] = ["ssh-ed25519 AAAAC3Nza key@host"]
    record["service_offering"] = draw(st.none() | _TEXT)
    return VmRecord.from_json(record)


@st.composite
def router_states(draw: st.DrawFn) -> RouterState:
    count = draw(st.integers(0, 3))
    records = [draw(vm_records(i)) for i in range(count)]
    document = state(draw(_GENERATION), vms=[r.to_json() for r in records])
    if draw(st.booleans()):
        document["rules"] = None
    if count == 0 and document["rules"] is not None:
        document["rules"]["port_forwards"] = []
    return RouterState.from_json(document)


network = st.just(NetworkSettings.from_json(state()["network"]))
rules = st.none() | st.just(RouterState.from_json(state()).rules)
vm_update = st.builds(VmUpdate, generation=_GENERATION, vm=vm_records())
vm_deletion = st.builds(VmDeletion, generation=_GENERATION)
password_update = st.builds(PasswordUpdate, password=_TEXT.filter(str.isprintable),
                            generation=st.none() | _GENERATION)
rules_update = st.builds(RulesUpdate, generation=_GENERATION, rules=rules)
update_answer = st.builds(UpdateAnswer, generation=st.integers(0, 2**40), applied=st.booleans())
delete_answer = st.builds(DeleteAnswer, generation=st.integers(0, 2**40), deleted=st.booleans())
password_answer = st.builds(PasswordAnswer, generation=st.integers(0, 2**40), pending=st.booleans())
vm_view = st.builds(VmView.of, vm_records(), st.booleans())


@st.composite
def state_views(draw: st.DrawFn) -> StateView:
    if draw(st.booleans()):
        return StateView(generation=0)
    held = draw(router_states())
    return StateView(generation=held.generation, network=held.network, rules=held.rules,
                     vms=tuple(VmView.of(r, draw(st.booleans())) for r in held.vms))


#: A strategy for every model: those of the route tables and the ones they are made of.
STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Health: health, Deleted: deleted, DownloadRequest: download_request, DownloadStatus: download_status,
    DownloadList: st.builds(DownloadList, downloads=st.lists(download_status, max_size=3).map(tuple)),
    ImageEntry: image_entry,
    ImageList: st.builds(ImageList, images=st.lists(image_entry, max_size=3).map(tuple)),
    StorageAnswer: storage_answer, SignUrlRequest: sign_url_request, SignedUrl: signed_url,
    ConfigDriveStored: config_drive_stored, ConfigDrive: config_drives(),
    VmRecord: vm_records(), RouterState: router_states(), VmUpdate: vm_update, VmDeletion: vm_deletion,
    PasswordUpdate: password_update, RulesUpdate: rules_update, UpdateAnswer: update_answer,
    DeleteAnswer: delete_answer, PasswordAnswer: password_answer, VmView: vm_view, StateView: state_views(),
    NetworkSettings: network,
}


def _route_models() -> set[type]:
    tables: list[dict[tuple[str, str], RouteMessages]] = [SSVM_ROUTES, ROUTER_ROUTES]
    return {model for table in tables for route in table.values() for model in (route.body, route.answer)
            if model is not None}


class RoundTripTests(SynchronousTestCase):
    def test_every_route_model_has_a_strategy(self) -> None:
        """The round trips below cover every model a route reads or answers."""
        self.assertEqual(_route_models() - set(STRATEGIES), set())

    @SETTINGS
    @given(st.data())
    def test_round_trip(self, data: st.DataObject) -> None:
        """`from_json(to_json(m)) == m` for every model, through real JSON text."""
        for model, strategy in STRATEGIES.items():
            message = data.draw(strategy, label=model.__name__)
            text = json.dumps(message.to_json())
            self.assertEqual(model.from_json(json.loads(text)), message, model.__name__)

    def test_answers_of_the_appliances_read_back(self) -> None:
        """Examples the appliances' own tests use read as models and write back the same JSON."""
        for model, example in [
            (ConfigDrive, typical()), (RouterState, state(3)),
            (Health, {"service": "routervm", "status": "ok", "generation": 0}),
            (StateView, {"generation": 0, "network": None, "rules": None, "vms": []}),
        ]:
            once = model.from_json(example).to_json()
            self.assertEqual(model.from_json(once).to_json(), once)

    def test_lists_match_the_appliance(self) -> None:
        """The message's image formats and download states are the storage appliance's."""
        self.assertEqual(IMAGE_FORMATS, FORMATS)
        self.assertEqual(DOWNLOAD_STATES, tuple(s.value for s in DownloadState))


class DependencyTests(SynchronousTestCase):
    def test_messages_import_only_the_standard_library(self) -> None:
        """The models are shared by both appliances and cloudd: they import nothing but the standard
        library and each other (not Twisted, not an appliance, not cloudd)."""
        import appliance.messages as package

        folder = os.path.dirname(package.__file__)
        names = [name for name in os.listdir(folder) if name.endswith(".py")]
        self.assertIn("router.py", names)
        for name in names:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    self.assertTrue(module.startswith("appliance.messages") or top in sys.stdlib_module_names
                                    or top == "__future__", f"{name} imports {module}")


# -- validation errors ------------------------------------------------------------------------------

GOOD_DOWNLOAD = {"url": "http://h/a.qcow2", "format": "qcow2", "account_id": 2, "template_id": 5,
                 "unique_name": "u"}
GOOD_STATUS = {"id": "d1", "state": "DOWNLOADING", "percent": 5, "bytes": 10, "format": "qcow2",
               "url": "http://h/a"}


class ValidationTests(SynchronousTestCase):
    def check(self, model: Any, value: Any, field: str, *args: Any) -> MessageError:
        with self.assertRaises(MessageError, msg=f"{model.__name__} {value!r}") as caught:
            model.from_json(value, *args)
        self.assertIn(field, str(caught.exception), model.__name__)
        return caught.exception

    def test_errors_name_the_field(self) -> None:
        """Each refusal says which field is wrong, by its JSON path where it has one."""
        cases: list[tuple[Any, Any, str]] = [
            (Health, {"service": "x"}, "status"),
            (Health, {"service": "x", "status": 1}, "status"),
            (Deleted, {"deleted": "yes"}, "deleted"),
            (DownloadRequest, {**GOOD_DOWNLOAD, "format": "vmdk"}, "format"),
            (DownloadRequest, {**GOOD_DOWNLOAD, "account_id": 0}, "account_id"),
            (DownloadRequest, {**GOOD_DOWNLOAD, "checksum": "{SHA-256}ab"}, "checksum"),
            (DownloadRequest, {**GOOD_DOWNLOAD, "max_size": -1}, "max_size"),
            (DownloadRequest, {**GOOD_DOWNLOAD, "colour": "red"}, "colour"),
            (DownloadRequest, {k: v for k, v in GOOD_DOWNLOAD.items() if k != "url"}, "url"),
            (DownloadStatus, {**GOOD_STATUS, "state": "RUNNING"}, "state"),
            (DownloadStatus, {**GOOD_STATUS, "percent": 101}, "percent"),
            (DownloadStatus, {**GOOD_STATUS, "id": "../x"}, "id"),
            (DownloadList, {"downloads": [GOOD_STATUS, {**GOOD_STATUS, "bytes": -1}]}, "downloads[1]: bytes"),
            (ImageList, {"images": [{"id": 1}]}, "images[0]"),
            (StorageAnswer, {"total": 1, "free": 1}, "used_by_store"),
            (SignUrlRequest, {"path": 3}, "path"),
            (SignUrlRequest, {"path": "a", "ttl": "1h"}, "ttl"),
            (SignedUrl, {"url": "u", "expires": -1}, "expires"),
            (ConfigDriveStored, {"instance_name": "i", "path": "p", "size": 1, "sha256": "x",
                                 "location": "SECONDARY"}, "sha256"),
            (ConfigDrive, {**typical(), "hostname": "-bad-"}, "hostname"),
            (ConfigDrive, {**typical(), "network": {"nics": [{"mac": "zz", "device_id": 0}]}},
             "network.nics[0].mac"),
            (VmUpdate, {"generation": 0, "vm": vm()}, "generation"),
            (VmUpdate, {"generation": 1, "vm": {**vm(), "nics": []}}, "vm"),
            (VmUpdate, {"generation": 1}, "vm"),
            (VmDeletion, {"generation": "3"}, "generation"),
            (PasswordUpdate, {"password": ""}, "password"),
            (PasswordUpdate, {"password": "a\nb"}, "password"),
            (RulesUpdate, {"generation": 2, "rules": {"public_addresses": "x"}}, "rules"),
            (UpdateAnswer, {"generation": 2, "applied": "no"}, "applied"),
            (DeleteAnswer, {"generation": -1, "deleted": True}, "generation"),
            (PasswordAnswer, {"generation": 1}, "pending"),
            (RouterState, state(1, network={"cidr": "10.0.0.0/24"}), "interface"),
            (RouterState, state(1, vms=[{**vm(), "nics": [{"mac": "x", "ip": "10.1.1.5", "default": True,
                                                           "interface": "eth0"}]}]), "vms[0]: mac"),
            (VmView, {**vm(), "has_user_data": True, "user_data_sha256": "no", "password_pending": False},
             "user_data_sha256"),
            (VmView, {**vm(), "user_data": "eA==", "has_user_data": True, "user_data_sha256": None,
                      "password_pending": False}, "user_data"),
            (StateView, {"generation": 1, "network": None, "rules": None, "vms": [{"uuid": "u"}]}, "vms[0]"),
        ]
        for model, value, field in cases:
            self.check(model, value, field)

    def test_error_path(self) -> None:
        """The error carries the field's path apart from the text."""
        error = self.check(ConfigDrive, {**typical(), "network": {"nics": [{"mac": "zz", "device_id": 0}]}},
                           "mac")
        self.assertEqual(error.path, "network.nics[0].mac")
        self.assertEqual(self.check(DownloadStatus, {**GOOD_STATUS, "percent": -1}, "percent").path, "percent")
        self.assertEqual(str(self.check(DownloadRequest, {**GOOD_DOWNLOAD, "hvm": 1}, "hvm")),
                         "hvm must be true or false")

    def test_rules_need_the_network_only_when_they_leave_it_out(self) -> None:
        """Rules without `guest_network` are read against the router's network; with it, alone."""
        raw = dict(state()["rules"])
        held = NetworkSettings.from_json(state()["network"])
        filled = RulesUpdate.from_json({"generation": 2, "rules": raw}, held)
        assert filled.rules is not None
        self.assertEqual(filled.rules.guest.to_json(), held.guest_network_json())
        self.check(RulesUpdate, {"generation": 2, "rules": raw}, "guest_network")
        self.assertEqual(RulesUpdate.from_json(filled.to_json()), filled)
        other = NetworkSettings.from_json({**state()["network"], "interface": "eth9"})
        self.check(RulesUpdate, filled.to_json(), "guest_network", other)

    def test_secrets_are_not_repeated(self) -> None:
        """Neither a password nor user data appears in an error or a repr."""
        secret = "s3cret\x07pass"
        error = self.check(PasswordUpdate, {"password": secret}, "password")
        self.assertNotIn("s3cret", str(error))
        self.assertNotIn(SECRET, repr(PasswordUpdate(password=SECRET)))

    def test_download_request_defaults(self) -> None:
        """Defaults are the appliance's: hvm true, no checksum, no cap of its own; names canonical."""
        request = DownloadRequest.from_json({**GOOD_DOWNLOAD, "format": "QCOW2", "checksum": "ab" * 16})
        self.assertEqual((request.format, request.checksum, request.hvm, request.max_size),
                         ("qcow2", str(parse_checksum("ab" * 16)), True, None))


# -- the route tables -------------------------------------------------------------------------------


def _table(api: JsonApi) -> set[tuple[str, str]]:
    return {(r.method.decode(), "/" + "/".join(r.pattern)) for r in api._routes}


def _request(method: str, path: str, body: Any = None, args: dict[bytes, list[bytes]] | None = None
             ) -> DummyRequest:
    request = DummyRequest([p.encode() for p in path.strip("/").split("/")])
    request.method = method.encode()
    request.content = BytesIO(b"" if body is None else json.dumps(body).encode())
    request.args = args or {}
    return request


def _answer(api: JsonApi, method: str, path: str, body: Any = None,
            args: dict[bytes, list[bytes]] | None = None) -> tuple[int, Any]:
    request = _request(method, path, body, args)
    api.render(request)
    assert request.finished, (method, path)
    return request.responseCode or 200, json.loads(b"".join(request.written))


class FakeDrives:
    def __init__(self) -> None:
        self.put_with: list[tuple[str, ConfigDrive]] = []

    async def put(self, name: str, drive: ConfigDrive) -> dict[str, Any]:
        self.put_with.append((name, drive))
        return {"instance_name": name, "path": f"configdrive/{name}.iso", "size": 2048,
                "sha256": "0" * 64, "location": "SECONDARY"}

    def path_of(self, name: str) -> str | None:
        return None

    async def delete(self, name: str) -> bool:
        return True


class FakeDownloads:
    def __init__(self) -> None:
        self.started: list[tuple[str, Any]] = []

    def status(self, download_id: str) -> dict[str, Any]:
        return {**GOOD_STATUS, "id": download_id, "total": None, "error": None, "install_path": None,
                "physical_size": None, "virtual_size": None, "checksum": None}

    def start(self, download_id: str, request: Any) -> dict[str, Any]:
        self.started.append((download_id, request))
        return self.status(download_id)

    cancel = status

    def list(self) -> list[dict[str, Any]]:
        return [self.status("d1")]

    async def delete(self, download_id: str) -> bool:
        return False

    def images(self) -> list[dict[str, Any]]:
        return [{"id": 5, "account_id": 2, "install_path": "template/tmpl/2/5/a.qcow2", "format": "qcow2",
                 "physical_size": 10, "virtual_size": 20, "unique_name": "u"}]

    async def capacity(self) -> dict[str, int]:
        return {"total": 100, "free": 50, "used_by_store": 10}


class FakeSigner:
    def sign(self, path: str, ttl: int) -> tuple[str, int]:
        return f"{path}?expires=9&signature=x", 9


class RouteTableTests(SynchronousTestCase):
    """Every route of both appliances has its models, and each JSON answer reads as its model."""

    def setUp(self) -> None:
        self.store = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.store, "template"))
        with open(os.path.join(self.store, "template", "a.qcow2"), "wb"):
            pass
        self.drives, self.downloads = FakeDrives(), FakeDownloads()
        self.storage = StorageApi(cast(Any, self.drives), cast(Any, self.downloads), cast(Any, FakeSigner()),
                                  self.store, "https://ssvm.example").resource()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.keeper = StateKeeper(os.path.join(directory, "state.json"), Clock(), b"k" * 32)
        self.addCleanup(self.keeper.passwords.clear)
        self.router = RouterApi(self.keeper).resource()

    def test_tables_match(self) -> None:
        """The registry lists exactly the routes each appliance serves; only the ISO is not JSON."""
        self.assertEqual(_table(self.storage), set(SSVM_ROUTES))
        self.assertEqual(_table(self.router), set(ROUTER_ROUTES))
        without_answer = [key for table in (SSVM_ROUTES, ROUTER_ROUTES) for key, route in table.items()
                          if route.answer is None]
        self.assertEqual(without_answer, [("GET", "/v1/configdrives/{instance}")])

    def test_storage_answers_are_the_models(self) -> None:
        """Driven through every JSON route, the storage appliance answers what the registry says,
        and hands the bodies it read as models to its stores."""
        calls: list[tuple[str, str, str, Any]] = [
            ("GET", "/health", "/health", None),
            ("PUT", "/v1/configdrives/{instance}", "/v1/configdrives/i-2-5-VM", typical()),
            ("DELETE", "/v1/configdrives/{instance}", "/v1/configdrives/i-2-5-VM", None),
            ("GET", "/v1/downloads", "/v1/downloads", None),
            ("PUT", "/v1/downloads/{download_id}", "/v1/downloads/d1", GOOD_DOWNLOAD),
            ("GET", "/v1/downloads/{download_id}", "/v1/downloads/d1", None),
            ("POST", "/v1/downloads/{download_id}/cancel", "/v1/downloads/d1/cancel", {}),
            ("DELETE", "/v1/downloads/{download_id}", "/v1/downloads/d1", None),
            ("GET", "/v1/images", "/v1/images", None),
            ("GET", "/v1/storage", "/v1/storage", None),
            ("POST", "/v1/urls", "/v1/urls", {"path": "template/a.qcow2", "ttl": 60}),
        ]
        self.assertEqual({(m, p) for m, p, _, _ in calls}, {k for k, r in SSVM_ROUTES.items() if r.answer})
        for method, pattern, path, body in calls:
            status, answer = _answer(self.storage, method, path, body)
            self.assertIn(status, (200, 202), (path, answer))
            model = SSVM_ROUTES[(method, pattern)].answer
            assert model is not None
            self.assertEqual(model.from_json(answer).to_json(), answer, path)
        self.assertEqual(self.drives.put_with, [("i-2-5-VM", ConfigDrive.from_json(typical()))])
        self.assertEqual(self.downloads.started, [("d1", GOOD_DOWNLOAD)])

    def test_storage_refusals(self) -> None:
        """A body the model refuses is a 400 `bad_request` naming the field, and reaches no store."""
        for path, method, body, field in [
            ("/v1/configdrives/i-2-5-VM", "PUT", {**typical(), "uuid": "x"}, "uuid"),
            ("/v1/urls", "POST", {"path": "a", "ttl": True}, "ttl"),
            ("/v1/urls", "POST", {"path": "a", "expires": 3}, "expires"),
        ]:
            status, answer = _answer(self.storage, method, path, body)
            self.assertEqual((status, answer["error"]["code"]), (400, "bad_request"))
            self.assertIn(field, answer["error"]["message"])
        self.assertEqual(self.drives.put_with, [])

    def test_router_answers_are_the_models(self) -> None:
        """Driven through every route, the router answers what the registry says."""
        second = vm(UUID2, "02:00:4c:5e:00:03", "10.1.1.51", "web2")
        calls: list[tuple[str, str, str, Any, dict[bytes, list[bytes]] | None]] = [
            ("GET", "/health", "/health", None, None),
            ("GET", "/v1/state", "/v1/state", None, None),
            ("PUT", "/v1/state", "/v1/state", state(1, vms=[vm()]), None),
            ("PUT", "/v1/vms/{uuid}", f"/v1/vms/{UUID2}", {"generation": 2, "vm": second}, None),
            ("PUT", "/v1/vms/{uuid}/password", f"/v1/vms/{UUID1}/password", {"password": SECRET}, None),
            ("PUT", "/v1/rules", "/v1/rules", {"generation": 3, "rules": state()["rules"]}, None),
            ("GET", "/v1/state", "/v1/state", None, None),
            ("DELETE", "/v1/vms/{uuid}", f"/v1/vms/{UUID2}", None, {b"generation": [b"4"]}),
            ("DELETE", "/v1/vms/{uuid}", f"/v1/vms/{UUID2}", {"generation": 4}, None),
        ]
        self.assertEqual({(m, p) for m, p, _, _, _ in calls}, set(ROUTER_ROUTES))
        for method, pattern, path, body, args in calls:
            status, answer = _answer(self.router, method, path, body, args)
            self.assertEqual(status, 200, (path, answer))
            model = ROUTER_ROUTES[(method, pattern)].answer
            assert model is not None
            self.assertEqual(model.from_json(answer).to_json(), answer, path)
        view = StateView.from_json(_answer(self.router, "GET", "/v1/state")[1])
        self.assertEqual([(v.record.uuid, v.has_user_data, v.password_pending) for v in view.vms],
                         [(UUID1, False, True)])

    def test_router_refusals(self) -> None:
        """A body the model refuses is a 400 naming the field; before any state, a well-formed rules
        update is a 409 and a malformed one still a 400."""
        self.assertEqual(_answer(self.router, "PUT", "/v1/rules", {"generation": 1, "rules": None})[0], 409)
        status, answer = _answer(self.router, "PUT", "/v1/rules", {"generation": "1", "rules": None})
        self.assertEqual((status, answer["error"]["code"]), (400, "bad_request"))
        self.assertIn("generation", answer["error"]["message"])
        self.assertEqual(_answer(self.router, "PUT", "/v1/rules", {"generation": 1})[0], 400)
        _answer(self.router, "PUT", "/v1/state", state(1, vms=[vm()]))
        for path, body, field in [
            (f"/v1/vms/{UUID1}", {"generation": 2, "vm": {**vm(), "hostname": 5}}, "vm"),
            (f"/v1/vms/{UUID2}", {"generation": 2, "vm": vm()}, "uuid"),
            (f"/v1/vms/{UUID1}/password", {"password": 7}, "password"),
        ]:
            status, answer = _answer(self.router, "PUT", path, body)
            self.assertEqual((status, answer["error"]["code"]), (400, "bad_request"), path)
            self.assertIn(field, answer["error"]["message"])
        status, answer = _answer(self.router, "DELETE", f"/v1/vms/{UUID1}", None, {b"generation": [b"x"]})
        self.assertEqual((status, answer["error"]["code"]), (400, "bad_request"))
        self.assertEqual(self.keeper.generation, 1)


# -- cloudd's clients -------------------------------------------------------------------------------


class FakeClientMixin:
    """A client whose requests are recorded and answered from a list, without a connection."""

    sent: list[tuple[str, str, Any]]
    replies: list[tuple[int, Any]]

    def raw(self, method: str, path: str, body: Any = None) -> Deferred[tuple[int, Headers, bytes]]:
        self.sent.append((method, path, body))
        status, value = self.replies.pop(0)
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        return succeed((status, Headers(), data))


class FakeStorageClient(FakeClientMixin, StorageClient):
    def __init__(self, *replies: tuple[int, Any]) -> None:
        self.sent, self.replies = [], list(replies)


class FakeRouterClient(FakeClientMixin, RouterClient):
    def __init__(self, *replies: tuple[int, Any]) -> None:
        self.sent, self.replies = [], list(replies)


def run(coroutine: Any) -> Any:
    results: list[Any] = []
    failures: list[Any] = []
    ensureDeferred(coroutine).addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    return results[0]


class ClientTests(SynchronousTestCase):
    def test_storage_client(self) -> None:
        """Each method sends the model's JSON to its route and reads the answer as its model."""
        request = DownloadRequest.from_json(GOOD_DOWNLOAD)
        status = DownloadStatus.from_json(FakeDownloads().status("d1"))
        drive = ConfigDrive.from_json(typical())
        stored = {"instance_name": "i-1", "path": "configdrive/i-1.iso", "size": 1, "sha256": "a" * 64,
                  "location": "SECONDARY"}
        client = FakeStorageClient((202, status.to_json()), (200, status.to_json()), (200, status.to_json()),
                                   (200, {"deleted": True}), (200, {"downloads": [status.to_json()]}),
                                   (200, {"images": FakeDownloads().images()}),
                                   (200, {"total": 3, "free": 2, "used_by_store": 1}),
                                   (200, {"url": "https://s/i", "expires": 9}), (200, stored),
                                   (200, {"deleted": False}), (200, {"service": "ssvm", "status": "ok"}))
        self.assertEqual(run(client.start_download("d1", request)), status)
        self.assertEqual(run(client.download_status("d1")), status)
        self.assertEqual(run(client.cancel_download("d1")), status)
        self.assertTrue(run(client.delete_download("d1")))
        self.assertEqual(run(client.downloads()), [status])
        self.assertEqual(run(client.images()), [ImageEntry.from_json(FakeDownloads().images()[0])])
        self.assertEqual(run(client.storage()), StorageAnswer(3, 2, 1))
        self.assertEqual(run(client.sign_url(SignUrlRequest("template/a", 60))), SignedUrl("https://s/i", 9))
        self.assertEqual(run(client.put_config_drive("i-1", drive)), ConfigDriveStored.from_json(stored))
        self.assertFalse(run(client.delete_config_drive("i-1")))
        self.assertEqual(run(client.health()), Health("ssvm", "ok"))
        self.assertEqual(client.sent, [
            ("PUT", "/v1/downloads/d1", request.to_json()), ("GET", "/v1/downloads/d1", None),
            ("POST", "/v1/downloads/d1/cancel", {}), ("DELETE", "/v1/downloads/d1", None),
            ("GET", "/v1/downloads", None), ("GET", "/v1/images", None), ("GET", "/v1/storage", None),
            ("POST", "/v1/urls", {"path": "template/a", "ttl": 60}),
            ("PUT", "/v1/configdrives/i-1", drive.to_json()), ("DELETE", "/v1/configdrives/i-1", None),
            ("GET", "/health", None)])

    def test_router_client(self) -> None:
        """Each method sends the model's JSON to its route and reads the answer as its model."""
        held = RouterState.from_json(state(4))
        record = VmRecord.from_json(vm())
        rules_held = held.rules
        client = FakeRouterClient((200, {"generation": 4, "applied": True}), (200, {"generation": 5, "applied": True}),
                                  (200, {"generation": 6, "deleted": True}), (200, {"generation": 6, "pending": True}),
                                  (200, {"generation": 7, "applied": False}),
                                  (200, {"generation": 0, "network": None, "rules": None, "vms": []}),
                                  (200, {"service": "routervm", "status": "ok", "generation": 7}))
        self.assertEqual(run(client.put_state(held)), UpdateAnswer(4, True))
        self.assertEqual(run(client.put_vm(record, 5)), UpdateAnswer(5, True))
        self.assertEqual(run(client.delete_vm(UUID2, 6)), DeleteAnswer(6, True))
        self.assertEqual(run(client.set_password(UUID1, SECRET)), PasswordAnswer(6, True))
        self.assertEqual(run(client.put_rules(rules_held, 7)), UpdateAnswer(7, False))
        self.assertEqual(run(client.get_state()), StateView(generation=0))
        self.assertEqual(run(client.generation()), 7)
        self.assertEqual([(m, p) for m, p, _ in client.sent], [
            ("PUT", "/v1/state"), ("PUT", f"/v1/vms/{UUID1}"), ("DELETE", f"/v1/vms/{UUID2}?generation=6"),
            ("PUT", f"/v1/vms/{UUID1}/password"), ("PUT", "/v1/rules"), ("GET", "/v1/state"), ("GET", "/health")])
        self.assertEqual(RouterState.from_json(client.sent[0][2]), held)
        self.assertEqual(client.sent[1][2], {"generation": 5, "vm": record.to_json()})
        self.assertEqual(client.sent[3][2], {"password": SECRET})
        assert rules_held is not None
        self.assertEqual(client.sent[4][2], {"generation": 7, "rules": rules_held.to_json()})

    def test_bad_answer(self) -> None:
        """An answer its model refuses is `ControlError(status, "bad_answer", ...)` naming the field."""
        client = FakeStorageClient((200, {"id": "d1", "state": "LOST"}))
        with self.assertRaises(ControlError) as caught:
            run(client.download_status("d1"))
        self.assertEqual((caught.exception.status, caught.exception.code), (200, BAD_ANSWER))
        self.assertIn("DownloadStatus", caught.exception.message)
        router = FakeRouterClient((200, {"generation": 2, "applied": "yes"}))
        with self.assertRaises(ControlError) as caught:
            run(router.put_vm(VmRecord.from_json(vm()), 2))
        self.assertEqual(caught.exception.code, BAD_ANSWER)
        self.assertIn("applied", caught.exception.message)

    def test_errors_and_refusals_before_sending(self) -> None:
        """The appliance's error envelope is a `ControlError`; a message that the appliance would
        refuse is refused before anything is sent."""
        client = FakeStorageClient((400, {"error": {"code": "bad_request", "message": "url: no"}}))
        with self.assertRaises(ControlError) as caught:
            run(client.start_download("d1", DownloadRequest.from_json(GOOD_DOWNLOAD)))
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "bad_request"))
        for attempt in [
            client.start_download("d1", DownloadRequest(url="u", format="vmdk", account_id=1, template_id=1,
                                                        unique_name="u")),
            client.start_download("../x", DownloadRequest.from_json(GOOD_DOWNLOAD)),
            client.sign_url(SignUrlRequest(path=cast(Any, 3))),
        ]:
            with self.assertRaises(MessageError):
                run(attempt)
        router = FakeRouterClient()
        for bad in [router.put_vm(VmRecord.from_json(vm()), 0), router.delete_vm(UUID1, -2),
                    router.set_password(UUID1, "")]:
            with self.assertRaises(MessageError):
                run(bad)
        self.assertEqual((client.sent[1:], router.sent), ([], []))

    def test_rules_of_another_network(self) -> None:
        """Rules are sent with their guest network, which the router checks against its own."""
        held = RouterState.from_json(state(4))
        assert held.rules is not None
        self.assertIsInstance(held.rules, RouterRules)
        self.assertIn("guest_network", RulesUpdate(5, held.rules).to_json()["rules"])
