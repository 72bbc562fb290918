"""Tests for cloudd.web.wire: form decoding, merging, control characters, cookies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cloudd.web.wire import (
    CONTROL_CHARS,
    DuplicateParameter,
    first_control_char_param,
    merge_params,
    parse_cookies,
    parse_pairs,
)


class ParsePairsTests(SynchronousTestCase):
    """parse_pairs decodes application/x-www-form-urlencoded bytes."""

    def test_plain_pairs_in_order(self) -> None:
        """Pairs come back decoded and in the order received."""
        self.assertEqual(
            parse_pairs(b"command=listZones&response=json&apiKey=K"),
            [("command", "listZones"), ("response", "json"), ("apiKey", "K")],
        )

    def test_plus_is_space_and_percent_decoded(self) -> None:
        """``+`` means space; ``%2B`` is a literal plus; escapes decode in names too."""
        self.assertEqual(
            parse_pairs(b"name=my+vm%2B1&sig=ab%2Fc%3D&tags%5B0%5D.key=k"),
            [("name", "my vm+1"), ("sig", "ab/c="), ("tags[0].key", "k")],
        )

    def test_utf8(self) -> None:
        """Percent-encoded and raw UTF-8 both decode to the same text."""
        self.assertEqual(
            parse_pairs(b"a=Gr%C3%BC%C3%9Fe&b=" + "Grüße".encode()),
            [("a", "Grüße"), ("b", "Grüße")],
        )

    def test_first_equals_splits(self) -> None:
        """Only the first ``=`` separates name and value."""
        self.assertEqual(parse_pairs(b"userdata=YQ==&x=a=b"), [("userdata", "YQ=="), ("x", "a=b")])

    def test_missing_equals_gives_empty_value(self) -> None:
        """A piece without ``=`` is a name with an empty value."""
        self.assertEqual(parse_pairs(b"listall&x="), [("listall", ""), ("x", "")])

    def test_empty_pieces_skipped(self) -> None:
        """Leading, trailing and doubled ``&`` produce nothing; empty input gives no pairs."""
        self.assertEqual(parse_pairs(b"&&a=1&&b=2&"), [("a", "1"), ("b", "2")])
        self.assertEqual(parse_pairs(b""), [])

    def test_invalid_percent_escapes_kept(self) -> None:
        """Malformed escapes are kept literally instead of raising."""
        self.assertEqual(parse_pairs(b"a=%zz&b=100%&c=%4"), [("a", "%zz"), ("b", "100%"), ("c", "%4")])

    def test_invalid_utf8_replaced(self) -> None:
        """Bytes that are not UTF-8 become U+FFFD instead of raising."""
        self.assertEqual(parse_pairs(b"a=%FF%FE&b=\xc3"), [("a", "\ufffd\ufffd"), ("b", "\ufffd")])

    @settings(max_examples=200, database=None)
    @given(raw=st.binary(max_size=64))
    def test_never_raises(self, raw: bytes) -> None:
        """Any bytes at all parse into a list of str pairs."""
        for name, value in parse_pairs(raw):
            self.assertIsInstance(name, str)
            self.assertIsInstance(value, str)


class MergeParamsTests(SynchronousTestCase):
    """merge_params joins query and body and refuses duplicate names."""

    def test_merge_keeps_case(self) -> None:
        """Names from both sources are kept with their original case."""
        self.assertEqual(
            merge_params(
                [("command", "login"), ("response", "json")], [("userName", "u"), ("Password", "p")]
            ),
            {"command": "login", "response": "json", "userName": "u", "Password": "p"},
        )

    def assert_duplicate(self, query: list[tuple[str, str]], body: list[tuple[str, str]], name: str) -> None:
        """Assert that merging raises DuplicateParameter for *name* without leaking values."""
        error = self.assertRaises(DuplicateParameter, merge_params, query, body)
        self.assertIsInstance(error, ValueError)
        self.assertEqual(error.name, name)
        self.assertIn(name, str(error))
        for _, value in [*query, *body]:
            self.assertNotIn(value, str(error))

    def test_duplicate_same_case(self) -> None:
        """The same name twice in the query string is refused."""
        self.assert_duplicate([("password", "s3cret-one"), ("password", "s3cret-two")], [], "password")

    def test_duplicate_different_case(self) -> None:
        """Names differing only in case bind to the same parameter, so they are refused."""
        self.assert_duplicate([("password", "s3cret-one"), ("Password", "s3cret-two")], [], "Password")

    def test_duplicate_across_query_and_body(self) -> None:
        """A name in the query string and again in the body is refused."""
        self.assert_duplicate([("apiKey", "key-value-1")], [("APIKEY", "key-value-2")], "APIKEY")

    def test_duplicate_in_body(self) -> None:
        """The same name twice in the body is refused."""
        self.assert_duplicate([], [("userdata", "payload-1"), ("userdata", "payload-2")], "userdata")


class ControlCharTests(SynchronousTestCase):
    """first_control_char_param finds values CloudStack rejects with 431."""

    def test_control_char_set(self) -> None:
        """The set is exactly 0-9, 11, 12, 14-31 and 127."""
        self.assertEqual(
            sorted(ord(char) for char in CONTROL_CHARS), [*range(0, 10), 11, 12, *range(14, 32), 127]
        )

    def test_clean_values(self) -> None:
        """Printable values, CR and LF pass."""
        self.assertIsNone(first_control_char_param({"a": "plain", "b": "line1\r\nline2\n", "c": "é"}))

    def test_tab_rejected(self) -> None:
        """A tab (9) is rejected, unlike in most servers."""
        self.assertEqual(first_control_char_param({"name": "a\tb"}), "name")

    def test_delete_and_nul_rejected(self) -> None:
        """DEL (127) and NUL (0) are rejected."""
        self.assertEqual(first_control_char_param({"x": "\x7f"}), "x")
        self.assertEqual(first_control_char_param({"y": "a\x00"}), "y")

    def test_first_in_sorted_order(self) -> None:
        """With several offenders, the first name in sorted order is reported."""
        self.assertEqual(first_control_char_param({"zeta": "\x01", "Alpha": "\x02", "beta": "ok"}), "Alpha")

    def test_activationrule_exempt(self) -> None:
        """``activationrule`` (any case) is exempt, as in CloudStack; the exemption is a parameter."""
        self.assertIsNone(first_control_char_param({"activationRule": "if (x)\t{ y }"}))
        self.assertEqual(first_control_char_param({"activationRule": "\t"}, exempt=()), "activationRule")


class ParseCookiesTests(SynchronousTestCase):
    """parse_cookies reads a Cookie header tolerantly."""

    def test_none_and_empty(self) -> None:
        """No header or an empty one gives no cookies."""
        self.assertEqual(parse_cookies(None), {})
        self.assertEqual(parse_cookies(b""), {})

    def test_pairs(self) -> None:
        """Pairs separated by ``;`` with optional spaces are read; values keep ``=``."""
        self.assertEqual(
            parse_cookies(b"JSESSIONID=abc123; sessionkey=k/x==;userid=1"),
            {"JSESSIONID": "abc123", "sessionkey": "k/x==", "userid": "1"},
        )

    def test_quoted_value(self) -> None:
        """Double quotes around a value are removed."""
        self.assertEqual(parse_cookies(b'a="quoted value"'), {"a": "quoted value"})

    def test_garbage_ignored(self) -> None:
        """Pieces without ``=`` or without a name are skipped; the first duplicate wins."""
        self.assertEqual(parse_cookies(b"junk; =x; ;a=1; a=2; \xff=\xfe"), {"a": "1", "\ufffd": "\ufffd"})

    @settings(max_examples=200, database=None)
    @given(raw=st.binary(max_size=64))
    def test_never_raises(self, raw: bytes) -> None:
        """Any bytes at all give a dict of str."""
        for name, value in parse_cookies(raw).items():
            self.assertIsInstance(name, str)
            self.assertIsInstance(value, str)
