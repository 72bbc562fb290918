"""Parameter binding: types, lengths, maps and CloudStack's error texts (spec/api.md §1.4–§1.5)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from cloudd.api.binding import bind, parse_date
from cloudd.api.errors import ApiError
from cloudd.api.registry import Param, command

P = Param


async def _noop(ctx: object) -> None:
    return None


CMD = command("listThings", description="test", listing=True, params=[
    P("name"), P("id", "uuid"), P("count", "integer"), P("big", "long"), P("small", "short"),
    P("flag", "boolean"), P("ids", "list", element="uuid"), P("tags", "map"), P("day", "date"),
    P("startdate", "date", with_time=True), P("enddate", "date", with_time=True),
    P("userdata", length=10, field="userData"), P("password", secret=True),
    P("needed", required=True),
])(_noop)


class BindingTests(SynchronousTestCase):
    def bind(self, **raw: str) -> dict[str, object]:
        raw.setdefault("needed", "x")
        return bind(CMD, raw)

    def error(self, **raw: str) -> ApiError:
        raw.setdefault("needed", "x")
        try:
            bind(CMD, raw)
        except ApiError as err:
            return err
        self.fail("no error raised")

    def test_names_are_case_insensitive_and_unknown_ignored(self) -> None:
        """`NaMe` binds to `name`; parameters nobody declared are ignored."""
        out = self.bind(NaMe="a", listall="true", _="123")
        self.assertEqual(out["name"], "a")
        self.assertNotIn("listall", out)

    def test_missing_required(self) -> None:
        """A missing required parameter is 431 with the command's short name."""
        with self.assertRaises(ApiError) as cm:
            bind(CMD, {})
        self.assertEqual(cm.exception.code, 431)
        self.assertEqual(cm.exception.text, "Unable to execute API command listthings due to missing parameter needed")

    def test_booleans_never_fail(self) -> None:
        """`true` in any case is true; anything else is false, with no error."""
        self.assertIs(self.bind(flag="TRUE")["flag"], True)
        self.assertIs(self.bind(flag="yes")["flag"], False)

    def test_integers(self) -> None:
        """Integers parse with ranges per type; garbage is 431 naming value and parameter; blank is absent."""
        self.assertEqual(self.bind(count="42", big="9000000000", small="-3")["count"], 42)
        err = self.error(count="4x")
        self.assertEqual((err.code, err.text),
                         (431, "Unable to execute API command listthings due to invalid value 4x for parameter count"))
        self.assertEqual(self.error(small="40000").code, 431)
        self.assertNotIn("count", self.bind(count=""))

    def test_uuids(self) -> None:
        """Lower-case UUIDs and -1 pass; upper-case and garbage are refused with the long text."""
        u = "0f8fad5b-d9cb-469f-a165-70867728950e"
        self.assertEqual(self.bind(id=u)["id"], u)
        self.assertEqual(self.bind(id="-1")["id"], "-1")
        err = self.error(id=u.upper())
        self.assertEqual(err.code, 431)
        self.assertIn("Invalid parameter id value=", err.text)
        self.assertEqual(self.bind(ids=f"{u},,{u}")["ids"], [u, u])
        self.assertEqual(self.error(ids=f"{u},nope").code, 431)

    def test_length(self) -> None:
        """Values longer than the declared length are refused naming the Java field name."""
        err = self.error(userdata="x" * 11)
        self.assertEqual(err.text, "Value greater than max allowed length 10 for param: userData")
        self.assertEqual(self.error(name="x" * 256).code, 431)

    def test_secret_values_never_in_errors(self) -> None:
        """A too-long secret is refused without its value in the text."""
        err = self.error(password="CANARY" * 100)
        self.assertNotIn("CANARY", err.text)

    def test_maps(self) -> None:
        """`tags[i].field` groups by index; the field keeps its case; a bad key is 430."""
        out = self.bind(**{"tags[1].key": "k1", "TAGS[1].value": "v1", "tags[0].Key": "k0"})
        self.assertEqual(out["tags"], {0: {"Key": "k0"}, 1: {"key": "k1", "value": "v1"}})
        err = self.error(**{"details[0]": "x"})
        self.assertEqual(err.code, 430)
        self.assertIn("Unable to decode parameter details[0]", err.text)

    def test_dates(self) -> None:
        """Dates are yyyy-MM-dd; some also take a time; a bare end date ends at 23:59:59."""
        self.assertEqual(self.bind(day="2024-05-01")["day"], 1714521600.0)
        self.assertEqual(self.bind(startdate="2024-05-01 12:00:00")["startdate"], 1714564800.0)
        self.assertEqual(self.bind(enddate="2024-05-01")["enddate"], 1714521600.0 + 86399)
        err = self.error(day="2024-05-01 12:00:00")
        self.assertEqual(err.code, 431)
        self.assertIn("Unable to parse date", err.text)
        self.assertIsNone(parse_date("01/05/2024", True))

    def test_list_params_are_declared(self) -> None:
        """List commands get keyword, page and pagesize."""
        self.assertEqual(self.bind(page="2", pagesize="10", keyword="k"),
                         {"page": 2, "pagesize": 10, "keyword": "k", "needed": "x"})
