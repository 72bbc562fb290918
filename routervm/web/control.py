"""The control API cloudd drives over mutually authenticated TLS (DESIGN.md §4).

| Method and path                 | Body                                  | Does                                     |
|---------------------------------|---------------------------------------|------------------------------------------|
| GET /health                     |                                       | service name, status, generation held    |
| GET /v1/state                   |                                       | the state held, without secrets          |
| PUT /v1/state                   | the whole `RouterState` JSON          | full sync                                |
| PUT /v1/vms/{uuid}              | {"generation": N, "vm": <VmRecord>}   | add or replace one VM                    |
| DELETE /v1/vms/{uuid}           | ?generation=N, or {"generation": N}   | remove one VM and its pending password   |
| PUT /v1/vms/{uuid}/password     | {"password": "...", "generation"?: N} | set the VM's pending password            |
| PUT /v1/rules                   | {"generation": N, "rules": {...}|null}| replace the public addresses and rules   |

Every answer carries the generation held, in the JSON (`generation`) and in the `Router-Generation`
header (error answers too).  Updates answer `{"generation": N, "applied": bool}`; `applied` is false
when the update was applied already (same generation, same content).  `DELETE` answers
`{"generation": N, "deleted": bool}`.

`GET /v1/state` answers `{"generation": N, "network": <network JSON> | null, "rules": <rules JSON> |
null, "vms": [...]}`, where each VM is its record JSON *without* `user_data`, plus
`has_user_data` (bool), `user_data_sha256` (hex or null) and `password_pending` (bool).  Neither
user data nor passwords are ever answered.

Bodies are read, and answers built, with the control message models (`appliance.messages.router`),
which cloudd uses too.  Errors use the appliance envelope: 400 `bad_request` (malformed input), 409 `conflict` (a stale
generation, the same generation with other content, or an update before the first full state),
404 `not_found` (unknown VM).
"""

from __future__ import annotations

from typing import Any

from twisted.web import http
from twisted.web.server import Request

from appliance.messages.base import MessageError
from appliance.messages.common import Health
from appliance.messages.router import (
    DeleteAnswer,
    PasswordAnswer,
    PasswordUpdate,
    RulesUpdate,
    StateView,
    UpdateAnswer,
    VmDeletion,
    VmUpdate,
    VmView,
)
from appliance.web import ApiError, JsonApi, bad_request, conflict, not_found, read_json, route
from routervm.records import VmRecord
from routervm.state import StaleGeneration, StateError, StateKeeper, UnknownVm, decode_state

GENERATION_HEADER = b"Router-Generation"


def _read(model: Any, request: Request, *args: Any) -> Any:
    """The request's JSON body read with the message model (a 400 naming the field otherwise)."""
    try:
        return model.from_json(read_json(request), *args)
    except MessageError as exc:
        raise bad_request(str(exc)) from None


def vm_view(record: VmRecord, password_pending: bool) -> dict[str, Any]:
    """A record as `GET /v1/state` shows it: no user data body, no password."""
    view: dict[str, Any] = VmView.of(record, password_pending).to_json()
    return view


class ControlApi:
    """The handlers over one `StateKeeper`."""

    def __init__(self, keeper: StateKeeper) -> None:
        self.keeper = keeper

    def resource(self) -> JsonApi:
        return JsonApi([
            route("GET", "/health", self.health),
            route("GET", "/v1/state", self.get_state),
            route("PUT", "/v1/state", self.put_state),
            route("PUT", "/v1/vms/{uuid}", self.put_vm),
            route("DELETE", "/v1/vms/{uuid}", self.delete_vm),
            route("PUT", "/v1/vms/{uuid}/password", self.put_password),
            route("PUT", "/v1/rules", self.put_rules),
        ])

    def _held(self, request: Request) -> int:
        generation = self.keeper.generation
        request.responseHeaders.setRawHeaders(GENERATION_HEADER, [str(generation).encode()])
        return generation

    def _apply(self, request: Request, change: Any, *args: Any) -> bool:
        self._held(request)
        try:
            applied: bool = change(*args)
        except StaleGeneration as exc:
            self._held(request)
            raise conflict(str(exc)) from None
        except UnknownVm as exc:
            raise not_found(str(exc)) from None
        except MessageError as exc:
            raise bad_request(str(exc)) from None
        self._held(request)
        return applied

    async def _stored(self) -> None:
        """Wait until the change is on disk; 503 when it could not be stored (it is served all the
        same, and a repeated request stores it)."""
        try:
            await self.keeper.flushed()
        except Exception as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ApiError(http.SERVICE_UNAVAILABLE, "not_stored",
                           f"the change is served but could not be stored: {why}; send it again") from None

    async def health(self, request: Request) -> Any:
        return Health(service="routervm", status="ok", generation=self._held(request)).to_json()

    async def get_state(self, request: Request) -> Any:
        generation = self._held(request)
        snapshot = self.keeper.snapshot
        if snapshot is None:
            return StateView(generation=generation).to_json()
        passwords = self.keeper.passwords
        state = snapshot.state
        return StateView(generation=generation, network=state.network, rules=state.rules,
                         vms=tuple(VmView.of(r, r.uuid in passwords) for r in state.vms)).to_json()

    async def put_state(self, request: Request) -> Any:
        self._held(request)
        assert request.content is not None
        request.content.seek(0)
        raw = request.content.read()
        if not raw:
            raise bad_request("a JSON object body is needed")
        try:
            state = decode_state(raw)  # VM by VM: the records are all that stays (routervm.state)
        except StateError as exc:
            raise bad_request(str(exc)) from None
        except ValueError:
            raise bad_request("the body is not valid JSON") from None
        finally:
            del raw
        applied = self._apply(request, self.keeper.replace, state)
        await self._stored()
        return UpdateAnswer(generation=self.keeper.generation, applied=applied).to_json()

    async def put_vm(self, request: Request, uuid: str) -> Any:
        self._held(request)
        update: VmUpdate = _read(VmUpdate, request)
        if update.vm.uuid != uuid:
            raise bad_request("vm.uuid: the record's uuid is not the one in the path")
        applied = self._apply(request, self.keeper.put_vm, update.vm, update.generation)
        await self._stored()
        return UpdateAnswer(generation=self.keeper.generation, applied=applied).to_json()

    async def delete_vm(self, request: Request, uuid: str) -> Any:
        self._held(request)
        given = (request.args or {}).get(b"generation")
        if given:
            try:
                deletion = VmDeletion.from_query(given)
            except MessageError as exc:
                raise bad_request(str(exc)) from None
        else:
            deletion = _read(VmDeletion, request)
        deleted = self._apply(request, self.keeper.delete_vm, uuid, deletion.generation)
        await self._stored()
        return DeleteAnswer(generation=self.keeper.generation, deleted=deleted).to_json()

    async def put_password(self, request: Request, uuid: str) -> Any:
        self._held(request)
        update: PasswordUpdate = _read(PasswordUpdate, request)

        def set_password() -> bool:
            self.keeper.set_password(uuid, update.password, update.generation)
            return True
        self._apply(request, set_password)
        await self._stored()
        return PasswordAnswer(generation=self.keeper.generation, pending=True).to_json()

    async def put_rules(self, request: Request) -> Any:
        self._held(request)
        body = read_json(request)
        snapshot = self.keeper.snapshot
        try:
            if snapshot is None:
                # a malformed update is a 400 all the same; the rules need the network to be read
                RulesUpdate.from_json({**body, "rules": None} if "rules" in body else body)
                raise conflict("no full state is held yet: send the whole state first")
            update = RulesUpdate.from_json(body, snapshot.network)
        except MessageError as exc:
            raise bad_request(str(exc)) from None
        applied = self._apply(request, self.keeper.put_rules, update.rules, update.generation)
        await self._stored()
        return UpdateAnswer(generation=self.keeper.generation, applied=applied).to_json()
