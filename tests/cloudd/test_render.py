"""Tests for cloudd.web.render: JSON and XML envelopes and the date format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree

from twisted.trial.unittest import SynchronousTestCase

from cloudd.web.render import (
    JSON_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    format_date,
    render_json,
    render_xml,
)

PROLOGUE = b'<?xml version="1.0" encoding="UTF-8"?>'


class RenderJsonTests(SynchronousTestCase):
    """render_json writes Gson-like compact UTF-8 JSON."""

    def test_compact_envelope(self) -> None:
        """The body sits under the response name, with no whitespace at all."""
        self.assertEqual(
            render_json(
                "listzonesresponse", {"count": 1, "zone": [{"id": "z1", "securitygroupsenabled": False}]}
            ),
            b'{"listzonesresponse":{"count":1,"zone":[{"id":"z1","securitygroupsenabled":false}]}}',
        )

    def test_raw_characters_not_escaped(self) -> None:
        """``<>&='`` and non-ASCII text are written raw, as UTF-8."""
        body = render_json("r", {"text": "<a href='x'>&=</a> Grüße 世界"})
        self.assertEqual(body, '{"r":{"text":"<a href=\'x\'>&=</a> Grüße 世界"}}'.encode())

    def test_none_omitted_recursively(self) -> None:
        """``None`` fields vanish at every depth, including in objects inside lists."""
        body = {
            "a": None,
            "b": {"c": None, "d": 1},
            "e": [{"f": None, "g": "x"}],
            "h": 0,
            "i": "",
            "j": False,
        }
        self.assertEqual(
            json.loads(render_json("r", body)),
            {"r": {"b": {"d": 1}, "e": [{"g": "x"}], "h": 0, "i": "", "j": False}},
        )

    def test_empty_list_kept(self) -> None:
        """An empty list stays ``[]`` and an empty body is ``{}``."""
        self.assertEqual(render_json("r", {"tags": []}), b'{"r":{"tags":[]}}')
        self.assertEqual(render_json("listzonesresponse", {}), b'{"listzonesresponse":{}}')

    def test_error_envelope(self) -> None:
        """An error body renders exactly like CloudStack's example in spec §3.5."""
        self.assertEqual(
            render_json(
                "listzonesresponse",
                {
                    "uuidList": [],
                    "errorcode": 401,
                    "errortext": "unable to verify user credentials and/or request signature",
                },
            ),
            b'{"listzonesresponse":{"uuidList":[],"errorcode":401,'
            b'"errortext":"unable to verify user credentials and/or request signature"}}',
        )

    def test_non_finite_float_refused(self) -> None:
        """NaN cannot be written as valid JSON, so it raises instead of emitting ``NaN``."""
        self.assertRaises(ValueError, render_json, "r", {"x": float("nan")})

    def test_content_type(self) -> None:
        """The JSON content type is the one ``cs`` accepts."""
        self.assertEqual(JSON_CONTENT_TYPE, b"application/json; charset=UTF-8")


class RenderXmlTests(SynchronousTestCase):
    """render_xml writes the XML envelope of spec §3.3."""

    def test_prologue_and_root(self) -> None:
        """The prologue is followed by the root element carrying the server version."""
        self.assertEqual(
            render_xml("listzonesresponse", {}, "4.19.1.0"),
            PROLOGUE + b'<listzonesresponse cloud-stack-version="4.19.1.0"></listzonesresponse>',
        )

    def test_nested_objects_and_scalars(self) -> None:
        """Mappings become nested elements; booleans are ``true``/``false``; numbers are text."""
        body = {
            "virtualmachine": {"id": "v1", "haenable": True, "cpunumber": 2, "memory": None, "cpuused": 1.5}
        }
        self.assertEqual(
            render_xml("deployvirtualmachineresponse", body, "4.19.1.0"),
            PROLOGUE + b'<deployvirtualmachineresponse cloud-stack-version="4.19.1.0">'
            b"<virtualmachine><id>v1</id><haenable>true</haenable><cpunumber>2</cpunumber>"
            b"<cpuused>1.5</cpuused></virtualmachine></deployvirtualmachineresponse>",
        )

    def test_list_repeats_element(self) -> None:
        """A list repeats its element per item; scalars are text, mappings are children."""
        body = {
            "count": 2,
            "zone": [{"id": "a", "tags": []}, {"id": "b", "name": ["x", "y"]}],
        }
        self.assertEqual(
            render_xml("listzonesresponse", body, "4.19.1.0"),
            PROLOGUE + b'<listzonesresponse cloud-stack-version="4.19.1.0"><count>2</count>'
            b"<zone><id>a</id></zone><zone><id>b</id><name>x</name><name>y</name></zone></listzonesresponse>",
        )

    def test_escaping(self) -> None:
        """Text escapes ``" ' < > &`` and keeps non-ASCII; the result parses as XML."""
        body = {"errortext": "a \"b\" 'c' <d> & é"}
        rendered = render_xml("errorresponse", body, "4.19.1.0")
        self.assertIn(
            "<errortext>a &quot;b&quot; &apos;c&apos; &lt;d&gt; &amp; é</errortext>".encode(), rendered
        )
        self.assertEqual(ElementTree.fromstring(rendered).findtext("errortext"), body["errortext"])

    def test_uuid_list(self) -> None:
        """Each uuidList entry becomes ``<uuidList><uuid/><uuidProperty/></uuidList>``."""
        body = {
            "uuidList": [
                {"uuid": "u1", "uuidProperty": "vmId"},
                {"uuidProperty": "zoneId", "uuid": "u2"},
            ],
            "errorcode": 431,
            "cserrorcode": 4350,
            "errortext": "bad",
        }
        self.assertEqual(
            render_xml("deployvirtualmachineresponse", body, "4.19.1.0"),
            PROLOGUE + b'<deployvirtualmachineresponse cloud-stack-version="4.19.1.0">'
            b"<uuidList><uuid>u1</uuid><uuidProperty>vmId</uuidProperty></uuidList>"
            b"<uuidList><uuid>u2</uuid><uuidProperty>zoneId</uuidProperty></uuidList>"
            b"<errorcode>431</errorcode><cserrorcode>4350</cserrorcode><errortext>bad</errortext>"
            b"</deployvirtualmachineresponse>",
        )

    def test_empty_uuid_list(self) -> None:
        """An empty uuidList renders nothing."""
        self.assertEqual(
            render_xml("errorresponse", {"uuidList": [], "errorcode": 432}, "4.19.1.0"),
            PROLOGUE
            + b'<errorresponse cloud-stack-version="4.19.1.0"><errorcode>432</errorcode></errorresponse>',
        )

    def test_invalid_element_name_refused(self) -> None:
        """A key that cannot be an element name raises rather than producing broken XML."""
        self.assertRaises(ValueError, render_xml, "r", {"details": {"a<b": "x"}}, "4.19.1.0")
        self.assertRaises(ValueError, render_xml, "r", {"1abc": "x"}, "4.19.1.0")

    def test_content_type(self) -> None:
        """The XML content type is the one ``cs`` accepts."""
        self.assertEqual(XML_CONTENT_TYPE, b"text/xml; charset=UTF-8")


class FormatDateTests(SynchronousTestCase):
    """format_date writes CloudStack's ``yyyy-MM-dd'T'HH:mm:ssZ`` in UTC."""

    def test_format(self) -> None:
        """An instant is formatted in UTC with a ``+0000`` offset."""
        noon = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
        self.assertEqual(format_date(noon), "2024-05-01T12:00:00+0000")
        self.assertEqual(format_date(0), "1970-01-01T00:00:00+0000")

    def test_fraction_dropped(self) -> None:
        """Fractions of a second are truncated, never rounded up."""
        noon = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
        self.assertEqual(format_date(noon + 0.999), "2024-05-01T12:00:00+0000")
