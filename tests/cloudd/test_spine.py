"""The spine of the management server (DESIGN.md §3.1): state machines applied by compare-and-set,
entity-typed parameters resolved and access-checked by the binder, response objects declared once,
and job bodies that run with a job context and no API caller."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Any

import sqlalchemy as sa
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from cloudd.api.context import CallContext
from cloudd.api.entities import Entity
from cloudd.api.objects import Out, ResponseObject, UndeclaredField, check_declared
from cloudd.api.registry import ALL, Param, command
from cloudd.api.results import ListResult, ObjectResult, Result
from cloudd.db import model
from cloudd.db.base import NotFound
from cloudd.errors import CloudError
from cloudd.jobs import recovery
from cloudd.jobs.runner import JobSpec
from cloudd.orchestration.context import Actor, EventInfo, JobContext
from cloudd.orchestration.states import InvalidTransition, StateMachine
from tests.util.cloud import make_cloud
from tests.util.tenants import Tenants

EPOCH = 1_750_000_000


class Light(Enum):
    OFF = "Off"
    ON = "On"
    BROKEN = "Broken"


LIGHT = StateMachine("Light", Light, {
    (Light.OFF, "switch on"): Light.ON,
    (Light.ON, "switch off"): Light.OFF,
    (Light.ON, "break"): Light.BROKEN,
    (Light.OFF, "break"): Light.BROKEN,
})


class StateMachineTests(SynchronousTestCase):
    """Transitions follow the table; applied in the database, of two racing writers one wins."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        db = self.cloud.db
        zone = db.pool.do_sync(lambda c: c.execute(model.zones.insert().values(
            uuid="z", name="z", network_type="Advanced", allocation_state="Enabled", created=0)).inserted_primary_key[0])
        self.host = db.pool.do_sync(lambda c: c.execute(model.hosts.insert().values(
            uuid="h", name="h", type="Routing", zone_id=zone, url="test:///default", state="Off",
            resource_state="Enabled", created=0)).inserted_primary_key[0])

    def cas(self, row_id: int, expected: Any, new: str) -> Deferred[bool]:
        return self.cloud.db.infra.cas_state(model.hosts, row_id, expected, new)

    def stored(self) -> str:
        return str(self.cloud.db.pool.do_sync(lambda c: c.execute(
            sa.select(model.hosts.c.state).where(model.hosts.c.id == self.host)).scalar_one()))

    def test_table(self) -> None:
        """next() follows the table and refuses what it does not list with a 431 naming the state."""
        self.assertEqual(LIGHT.next("Off", "switch on"), Light.ON)
        self.assertEqual(LIGHT.sources("break"), {Light.ON, Light.OFF})
        err = self.assertRaises(InvalidTransition, LIGHT.next, Light.BROKEN, "switch on")
        self.assertEqual((err.code, err.text), (431, "Unable to switch on the light: it is in state Broken"))
        self.assertIn(("Off", "switch on", "On"), LIGHT.table())

    def test_bad_table_refused(self) -> None:
        self.assertRaises(ValueError, StateMachine, "X", Light, {(Light.OFF, ""): Light.ON})
        self.assertRaises(ValueError, StateMachine, "X", Light, {("Off", "go"): Light.ON})

    def test_apply_sets_the_row(self) -> None:
        d = Deferred.fromCoroutine(LIGHT.apply(self.cas, self.host, "Off", "switch on"))
        self.assertEqual(self.successResultOf(d), Light.ON)
        self.assertEqual(self.stored(), "On")

    def test_race_one_wins(self) -> None:
        """Two writers both read Off; the first to apply wins, the second gets 530 and the row keeps the
        winner's state."""
        first = Deferred.fromCoroutine(LIGHT.apply(self.cas, self.host, "Off", "switch on"))
        second = Deferred.fromCoroutine(LIGHT.apply(self.cas, self.host, "Off", "break"))
        self.assertEqual(self.successResultOf(first), Light.ON)
        err = self.failureResultOf(second, CloudError).value
        self.assertEqual(err.code, 530)
        self.assertEqual(self.stored(), "On")

    def test_apply_any(self) -> None:
        """apply_any moves the row from any source of the event, and reports when it was in none."""
        d = Deferred.fromCoroutine(LIGHT.apply_any(self.cas, self.host, "break"))
        self.assertEqual(self.successResultOf(d), Light.BROKEN)
        d = Deferred.fromCoroutine(LIGHT.apply_any(self.cas, self.host, "break"))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.stored(), "Broken")


THING = ResponseObject(
    "thing",
    Out("id", "the id", source="uuid"),
    Out("name", "the name"),
    Out("created", "when", "date"),
    Out("enabled", "on or off", "boolean",
        source=lambda t: (t.get("state") if isinstance(t, dict) else getattr(t, "state", None)) == "on"),
    Out("owner", "the owning account's name", source="owner.name"),
)


class ResponseObjectTests(SynchronousTestCase):
    """One declaration renders the object and documents it."""

    def test_render(self) -> None:
        obj = {"uuid": "u-1", "name": "n", "created": EPOCH, "state": "on", "owner": {"name": "alice"}}
        self.assertEqual(THING.render(obj), {"id": "u-1", "name": "n", "created": "2025-06-15T15:06:40+0000",
                                             "enabled": True, "owner": "alice"})

    def test_objects_of_several_types(self) -> None:
        """Objects are read by attribute (all plain fields at once, per type); a type without one of the
        attributes renders without that field, and a dict of the same fields renders alike."""
        from dataclasses import dataclass as dc

        @dc(frozen=True)
        class Full:
            uuid: str
            name: str
            created: int
            state: str

        @dc(frozen=True)
        class NoName:
            uuid: str
            created: int

        self.assertEqual(THING.render(Full("u", "n", EPOCH, "on")),
                         {"id": "u", "name": "n", "created": "2025-06-15T15:06:40+0000", "enabled": True})
        self.assertEqual(THING.render(NoName("v", EPOCH)), {"id": "v", "created": "2025-06-15T15:06:40+0000",
                                                             "enabled": False})
        self.assertEqual(THING.render(Full("w", "m", EPOCH, "on"))["name"], "m")
        self.assertEqual(THING.render({"uuid": "x", "name": "d"}), {"id": "x", "name": "d", "enabled": False})

    def test_none_left_out_and_overrides(self) -> None:
        self.assertEqual(THING.render({"uuid": "u"}, name="given"), {"id": "u", "name": "given", "enabled": False})

    def test_nested_none_left_out_once(self) -> None:
        """A rendered object carries no None at any depth (a nested mapping given by the caller is cleaned
        as it is rendered), so the JSON writer does not walk it again and still writes no null field."""
        from cloudd.api.objects import Rendered
        from cloudd.web.render import render_json

        nested = ResponseObject("n", Out("details", "a map", "map"), Out("items", "a list", "list"))
        out = nested.render({"details": {"a": 1, "b": None, "c": {"d": None}}, "items": [{"x": None}, None]})
        self.assertIsInstance(out, Rendered)
        self.assertEqual(out, {"details": {"a": 1, "c": {}}, "items": [{}, None]})
        self.assertEqual(render_json("r", {"n": out}), b'{"r":{"n":{"details":{"a":1,"c":{}},"items":[{},null]}}}')

    def test_undeclared_refused(self) -> None:
        self.assertRaises(UndeclaredField, THING.render, {"uuid": "u"}, colour="red")
        self.assertRaises(UndeclaredField, check_declared, THING.doc(), {"id": "u", "colour": "red"})
        check_declared(THING.doc(), {"id": "u", "name": "n"})

    def test_doc(self) -> None:
        doc = THING.doc()
        self.assertEqual(doc.object_name, "thing")
        self.assertEqual([(f.name, f.type) for f in doc.fields][:3], [("id", "string"), ("name", "string"),
                                                                       ("created", "date")])

    def test_twice_declared(self) -> None:
        self.assertRaises(ValueError, ResponseObject, "x", Out("a"), Out("a"))


async def _load_account(services: Any, uuid: str) -> Any:
    return await services.db.accounts.get_account_by_uuid(uuid)


def _own_only(caller: Any, account: Any) -> bool:
    return caller.is_root_admin or caller.account.id == account.id


ACCOUNT_ENTITY = Entity("Account", _load_account, _own_only)
PROBE = ResponseObject("probe", Out("name", "the account's name"), Out("names", "names", "list"))


class EntityParameterTests(SynchronousTestCase):
    """`P(name, ENTITY)`: the handler receives the object; a UUID that names nothing, or something the
    caller may not see, is refused with one and the same 431 text."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(EPOCH)

        @command("probeAccount", description="test only", roles=ALL, response=PROBE,
                 params=[Param("accountid", ACCOUNT_ENTITY, "an account"),
                         Param("accountids", "list", "accounts", element=ACCOUNT_ENTITY)])
        async def probe(ctx: CallContext) -> Result:
            if ctx.get("accountids") is not None:
                return ObjectResult("probe", PROBE.render({}, names=[a.name for a in ctx.get("accountids")]))
            return ObjectResult("probe", PROBE.render(ctx.get("accountid")))

        self.cloud.api.registry.add(probe)
        self.tenants = Tenants(self.cloud)

    def test_resolved(self) -> None:
        admin = self.cloud.db.pool.do_sync(lambda c: c.execute(sa.select(model.accounts.c.uuid).where(
            model.accounts.c.name == "admin")).scalar_one())
        res = self.cloud.signed("probeAccount", accountid=admin)
        self.assertEqual((res.status, res.inner()), (200, {"probe": {"name": "admin"}}))
        res = self.cloud.signed("probeAccount", accountids=f"{admin},{admin}")
        self.assertEqual(res.inner(), {"probe": {"names": ["admin", "admin"]}})

    def test_unknown_and_invisible_answer_alike(self) -> None:
        admin = self.cloud.db.pool.do_sync(lambda c: c.execute(sa.select(model.accounts.c.uuid).where(
            model.accounts.c.name == "admin")).scalar_one())
        unknown = "00000000-0000-4000-8000-000000000000"
        answers = []
        for uuid in (unknown, admin):
            res = self.tenants.call("a_user", "probeAccount", accountid=uuid, response="json")
            self.assertEqual(res.status, 431, res.body)
            answers.append(res.inner()["errortext"].replace(uuid, "X"))
        self.assertEqual(answers[0], answers[1])
        self.assertIn("Invalid parameter accountid value=X", answers[0])


class UndeclaredKeyTests(SynchronousTestCase):
    """In tests every command's rendered keys are checked against its declaration."""

    def test_undeclared_key_fails_the_call(self) -> None:
        cloud = make_cloud()
        self.addCleanup(cloud.stop)

        @command("leakyList", description="test only", roles=ALL, response=PROBE, listing=True)
        async def leaky(ctx: CallContext) -> Result:
            return ListResult("probe", [{"name": "a", "secret": "b"}], 1)

        cloud.api.registry.add(leaky)
        res = cloud.signed("leakyList")
        self.assertEqual(res.status, 530)
        self.flushLoggedErrors(UndeclaredField)


class JobBodyTests(SynchronousTestCase):
    """A job body runs from a JobSpec with a job context: no API caller, events for the actor."""

    def setUp(self) -> None:
        self.cloud = make_cloud()
        self.addCleanup(self.cloud.stop)
        self.cloud.reactor.advance(EPOCH)

    def test_body_without_caller(self) -> None:
        services = self.cloud.api.services
        seen: list[JobContext] = []

        async def body(jc: JobContext) -> dict[str, Any]:
            seen.append(jc)
            jc.announce(EventInfo("did the thing", "Thing", "t-1", "thing"))
            return {"thing": {"done": True}}

        actor = self.successResultOf(Deferred.fromCoroutine(services.system_actor()))
        spec = JobSpec(command="doThing", cmd_class="org.cloudd.DoThingCmd", cmd_info="{}", actor=actor,
                       body=body, params={"x": 1}, event="THING.DO", instance_type="Thing", instance_uuid="t-1",
                       sync_object="Thing:1")
        job_uuid = self.successResultOf(Deferred.fromCoroutine(self.cloud.jobs.submit(spec)))
        self.assertEqual(len(seen), 1)
        self.assertEqual((seen[0].actor, seen[0].get("x"), seen[0].job_uuid), (actor, 1, job_uuid))
        job = self.successResultOf(self.cloud.db.jobs.get_by_uuid(job_uuid))
        self.assertEqual((job.status, job.result), (1, '{"thing": {"done": true}}'))
        events = self.cloud.db.pool.do_sync(lambda c: c.execute(
            sa.select(model.events.c.state, model.events.c.description, model.events.c.account_id)
            .where(model.events.c.type == "THING.DO").order_by(model.events.c.id)).all())
        self.assertEqual([(e[0], e[1]) for e in events], [("Scheduled", "doThing is scheduled"),
                                                          ("Started", "doThing has started"),
                                                          ("Completed", "did the thing")])
        self.assertEqual({e[2] for e in events}, {actor.account_id})

    def test_failure_and_recovery_hooks_get_services(self) -> None:
        """A body that raises a CloudError fails the job with its code; recovery hooks receive the
        services (never an API caller)."""
        services = self.cloud.api.services

        async def body(jc: JobContext) -> dict[str, Any]:
            raise CloudError(536, "in use", 4375)

        spec = JobSpec(command="doThing", cmd_class="c", cmd_info="{}", actor=Actor(1, 1, 1), body=body)
        job_uuid = self.successResultOf(Deferred.fromCoroutine(self.cloud.jobs.submit(spec)))
        job = self.successResultOf(self.cloud.db.jobs.get_by_uuid(job_uuid))
        self.assertEqual((job.status, job.result_code), (2, 536))
        got: list[Any] = []

        async def hook(s: Any, j: Any) -> None:
            got.append(s)

        self.patch(recovery, "HOOKS", {"Thing": hook})
        self.successResultOf(Deferred.fromCoroutine(recovery.recover(services, replace(job, instance_type="Thing"))))
        self.assertIs(got[0], services)

    def test_lookup_miss(self) -> None:
        """Components raise NotFound for a missing row (the binder turns it into the 431 text)."""
        self.failureResultOf(self.cloud.db.infra.get_zone(99), NotFound)


class StateDocsTests(SynchronousTestCase):
    """docs/states.md is the tables of the state machines the code applies."""

    def test_docs_match(self) -> None:
        import os

        from cloudd.orchestration import machines

        path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "states.md")
        with open(path) as f:
            self.assertEqual(f.read(), machines.render(),
                             "docs/states.md is stale: python -m cloudd.orchestration.machines > docs/states.md")
        self.assertGreaterEqual(len(machines.machines()), 4)
