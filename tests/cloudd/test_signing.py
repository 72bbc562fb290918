"""Tests for cloudd.web.signing: canonical strings, signatures of real clients, expires."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cloudd.web.signing import (
    canonical_string,
    canonical_variants,
    java_urlencode,
    parse_expires,
    sign,
    verify_signature,
)

GUIDE_API_KEY = "plgWJfZK4gyS3mOMTVmjUVg-X-jlWlnfaUJ9GAbBbf9EdM-kAYMmAiLqzzq1ElZLYq_u38zCm0bewzGUdP66mg"
GUIDE_SECRET = "VDaACYb0LV9eNjTetIOElcVQkvJck_J_QljX_FcHRj87ZKiy0z0ty0ZsYBkoXkY9b7eq1EhwJaw7FF3akA3KBQ"

QUIRK_PARAMS = {
    "command": "deployVirtualMachine",
    "zoneId": "abc",
    "templateId": "t",
    "templatefilter": "x",
    "apiKey": "KEY",
    "displayname": "my vm*~+",
    "response": "json",
    "signatureVersion": "3",
    "expires": "2030-01-01T00:00:00+0000",
}

# Values on which the clients' encoders and Java's URLEncoder disagree, or nearly do.
AWKWARD_VALUES = [
    "a~b",
    "~",
    "two words",
    "1+1=2",
    "/path/to?x=y&z",
    "per%cent",
    "star*",
    "[brackets]",
    "Grüße, 世界 🚀",
    "!'()",
    "",
]

HYPOTHESIS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

param_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_[].", min_size=1, max_size=12
).filter(lambda name: name.lower() != "signature")
param_values = st.text(max_size=20)
param_maps = st.dictionaries(param_names, param_values, min_size=1, max_size=8)
secrets = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=40
)


def hmac_b64(secret: str, message: str) -> str:
    """Sign *message* the way every client does once it has built its string."""
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def client_string(
    params: Mapping[str, str], encode: Callable[[str], str], *, lower_order: bool = False
) -> str:
    """Build a client's canonical string: ``name=encode(value)`` joined by ``&``, lower-cased."""
    if lower_order:
        names = sorted(params, key=str.lower)
    else:
        names = sorted(params)
    return "&".join(f"{name}={encode(params[name])}" for name in names).lower()


def go_query_escape(value: str) -> str:
    """Go's ``url.QueryEscape``: unreserved ``A-Za-z0-9-_.~`` kept, space as ``+``."""
    return quote_plus(value, safe="~")


def cloudstack_go_encode(value: str) -> str:
    """cloudstack-go: ``QueryEscape`` then ``+`` to ``%20`` (``*`` stays ``%2A``)."""
    return go_query_escape(value).replace("+", "%20")


def cloudmonkey_encode(value: str) -> str:
    """cloudmonkey: ``QueryEscape``, ``+`` to ``%20``, ``%2A`` back to ``*``."""
    return go_query_escape(value).replace("+", "%20").replace("%2A", "*")


class JavaUrlencodeTests(SynchronousTestCase):
    """java_urlencode matches java.net.URLEncoder.encode(value, "UTF-8")."""

    def test_safe_characters_kept(self) -> None:
        """Letters, digits and ``. - * _`` pass through unchanged."""
        safe = "ABCXYZabcxyz0189.-*_"
        self.assertEqual(java_urlencode(safe), safe)

    def test_space_is_plus(self) -> None:
        """A space becomes ``+``, as in an HTML form."""
        self.assertEqual(java_urlencode("a b"), "a+b")

    def test_everything_else_is_upper_case_hex(self) -> None:
        """Other ASCII characters and every UTF-8 byte become ``%XX`` with upper-case hex."""
        self.assertEqual(java_urlencode("~+/:=[,"), "%7E%2B%2F%3A%3D%5B%2C")
        self.assertEqual(java_urlencode("é€"), "%C3%A9%E2%82%AC")

    def test_lone_surrogate_does_not_raise(self) -> None:
        """An unpaired surrogate is encoded as ``?``, like Java's UTF-8 encoder does."""
        self.assertEqual(java_urlencode("a\ud800b"), "a%3Fb")


class CanonicalStringTests(SynchronousTestCase):
    """canonical_string and canonical_variants build the strings of spec §2.2."""

    def test_developer_guide_vector(self) -> None:
        """The developer guide's example gives its string and signature exactly."""
        params = {"apikey": GUIDE_API_KEY, "command": "listUsers", "response": "json"}
        self.assertEqual(
            canonical_string(params),
            "apikey=plgwjfzk4gys3momtvmjuvg-x-jlwlnfauj9gabbbf9edm-kaymmailqzzq1elzlyq_u38zcm0bewzgudp66mg"
            "&command=listusers&response=json",
        )
        self.assertEqual(sign(params, GUIDE_SECRET), "TTpdDq/7j/J58XCRHomKoQXEQds=")
        self.assertTrue(verify_signature(params, GUIDE_SECRET, "TTpdDq/7j/J58XCRHomKoQXEQds="))

    def test_ordering_quirk_vector(self) -> None:
        """Names sort in their original case, so ``templateId`` precedes ``templatefilter``."""
        self.assertEqual(
            canonical_string(QUIRK_PARAMS),
            "apikey=key&command=deployvirtualmachine&displayname=my%20vm*%7e%2b"
            "&expires=2030-01-01t00%3a00%3a00%2b0000&response=json&signatureversion=3"
            "&templateid=t&templatefilter=x&zoneid=abc",
        )
        self.assertEqual(sign(QUIRK_PARAMS, "SECRET"), "AgxzbbUEcPLu1OYSLibDxJj0x7A=")

    def test_names_sort_by_utf16_code_unit(self) -> None:
        """As Java's ``String.compareTo``: U+10400 (stored as D801 DC00) sorts before U+FF71."""
        params = {"\uff71": "a", "\U00010400": "b", "z": "c"}
        self.assertEqual(canonical_string(params), "z=c&\U00010428=b&\uff71=a")
        # the first variant is Java's; libcloud's order of lower-cased names is Python's, the other
        self.assertEqual(canonical_variants(params), ["z=c&\U00010428=b&\uff71=a", "z=c&\uff71=a&\U00010428=b"])

    def test_signature_parameter_skipped_in_any_case(self) -> None:
        """``signature`` is left out whatever its case; everything else is kept."""
        params = {"command": "listZones", "Signature": "x", "_": "", "apiKey": "k"}
        self.assertEqual(canonical_string(params), "_=&apikey=k&command=listzones")

    def test_java_form_first(self) -> None:
        """The first variant is always the Java form."""
        self.assertEqual(canonical_variants(QUIRK_PARAMS)[0], canonical_string(QUIRK_PARAMS))

    def test_variants_deduplicated(self) -> None:
        """Plain lower-case parameters have a single canonical string."""
        self.assertEqual(
            canonical_variants({"command": "listzones", "response": "json"}),
            ["command=listzones&response=json"],
        )

    def test_variants_few_and_distinct(self) -> None:
        """Even a request touching every tolerance yields a small list without repeats."""
        params = {"B": "x~*[]", "a": "y"}
        variants = canonical_variants(params)
        self.assertLessEqual(len(variants), 8)
        self.assertEqual(len(variants), len(set(variants)))
        self.assertIn("a=y&b=x~*[]", variants)
        self.assertIn("b=x~%2a%5b%5d&a=y", variants)


class ClientSignatureTests(SynchronousTestCase):
    """Signatures computed the way each real client computes them are accepted."""

    def test_cs_client(self) -> None:
        """The ``cs`` package's own signing code produces signatures we verify."""
        from cs.client import CloudStack, transform

        client = CloudStack(endpoint="http://cloudd.invalid/client/api", key="KEY", secret="SECRET")
        for value in AWKWARD_VALUES:
            _, params = client._prepare_request("deployVirtualMachine", displayName=value, zoneId="z~1")
            transform(params)
            client._sign(params)
            signature = params.pop("signature")
            self.assertIn("expires", params)
            self.assertTrue(verify_signature(params, "SECRET", signature), value)
            self.assertFalse(verify_signature(params, "OTHER", signature), value)

    def test_cs_method(self) -> None:
        """cs's documented method (original-case sort, ``quote(value, safe="*")``) verifies."""
        for value in AWKWARD_VALUES:
            params = {"command": "createTags", "apiKey": "KEY", "value": value, "Name": "n"}
            signature = hmac_b64("SECRET", client_string(params, lambda v: quote(v, safe="*")))
            self.assertTrue(verify_signature(params, "SECRET", signature), value)
            # Only the tolerant variants accept "~"; the Java form alone would not.
            self.assertEqual(signature == sign(params, "SECRET"), "~" not in value, value)

    def test_libcloud_client(self) -> None:
        """libcloud's own ``_make_signature`` produces signatures we verify."""
        from libcloud.common.cloudstack import CloudStackConnection

        connection = CloudStackConnection("KEY", "SECRET")
        for value in [*AWKWARD_VALUES, "tags[0]", "a[b]c"]:
            params = {"command": "listTemplates", "templateId": "t", "templatefilter": value, "apiKey": "KEY"}
            signature = connection._make_signature(params).decode("ascii")
            self.assertTrue(verify_signature(params, "SECRET", signature), value)

    def test_libcloud_method(self) -> None:
        """libcloud's method (lower-cased name sort, ``quote(value, safe="[]*")``) verifies."""
        params = {"zoneId": "z", "templateId": "t", "templatefilter": "[all]", "apiKey": "KEY", "name": "a~b"}
        self.assertNotEqual(sorted(params), sorted(params, key=str.lower))
        signature = hmac_b64(
            "SECRET", client_string(params, lambda v: quote(v, safe="[]*"), lower_order=True)
        )
        self.assertNotEqual(signature, sign(params, "SECRET"))
        self.assertTrue(verify_signature(params, "SECRET", signature))

    def test_old_libcloud_method(self) -> None:
        """Old libcloud (lower-cased sort, ``urlencode``, ``+`` to ``%20``) verifies."""
        params = {"zoneId": "z", "templateId": "t", "templatefilter": "a b*~", "apiKey": "KEY"}
        signature = hmac_b64(
            "SECRET", client_string(params, lambda v: quote_plus(v).replace("+", "%20"), lower_order=True)
        )
        self.assertTrue(verify_signature(params, "SECRET", signature))

    def test_cloudstack_go_method(self) -> None:
        """cloudstack-go (Go ``QueryEscape``: ``~`` raw, ``*`` as ``%2a``) verifies."""
        for value in AWKWARD_VALUES:
            params = {"command": "deployVirtualMachine", "apiKey": "KEY", "response": "json", "name": value}
            signature = hmac_b64("SECRET", client_string(params, cloudstack_go_encode))
            self.assertTrue(verify_signature(params, "SECRET", signature), value)
            self.assertEqual(signature == sign(params, "SECRET"), not {"~", "*"} & set(value), value)

    def test_cloudmonkey_method(self) -> None:
        """cloudmonkey (``QueryEscape``, ``%2A`` back to ``*``) verifies, ``expires`` included."""
        for value in AWKWARD_VALUES:
            params = {
                "command": "listVirtualMachines",
                "apiKey": "KEY",
                "response": "json",
                "signatureversion": "3",
                "expires": "2024-05-01T12:00:00Z",
                "keyword": value,
            }
            signature = hmac_b64("SECRET", client_string(params, cloudmonkey_encode))
            self.assertTrue(verify_signature(params, "SECRET", signature), value)

    def test_unknown_encoding_rejected(self) -> None:
        """A signature over a string no accepted variant produces is refused."""
        params = {"command": "listZones", "name": "it's"}
        signature = hmac_b64("SECRET", client_string(params, lambda v: quote(v, safe="'")))
        self.assertFalse(verify_signature(params, "SECRET", signature))

    def test_non_ascii_signature_rejected(self) -> None:
        """A signature that is not base64 at all is refused without raising."""
        self.assertFalse(verify_signature({"command": "listZones"}, "SECRET", "é€\ud800"))
        self.assertFalse(verify_signature({"command": "listZones"}, "SECRET", ""))


class SignaturePropertyTests(SynchronousTestCase):
    """Properties of sign and verify_signature over random requests."""

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets)
    def test_sign_then_verify(self, params: dict[str, str], secret: str) -> None:
        """Whatever the parameters, our own signature verifies."""
        self.assertTrue(verify_signature(params, secret, sign(params, secret)))

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets, data=st.data())
    def test_changed_value_character_rejected(
        self, params: dict[str, str], secret: str, data: st.DataObject
    ) -> None:
        """Changing one character of one value (other than its ASCII case) breaks the signature."""
        name = data.draw(st.sampled_from(sorted(params)))
        value = params[name]
        assume(value)
        index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
        old = value[index]
        new = data.draw(st.characters(exclude_categories=["Cs"]))
        assume(new != old and not (new.isascii() and old.isascii() and new.lower() == old.lower()))
        signature = sign(params, secret)
        changed = {**params, name: value[:index] + new + value[index + 1 :]}
        self.assertFalse(verify_signature(changed, secret, signature))

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets, other=secrets)
    def test_changed_secret_rejected(self, params: dict[str, str], secret: str, other: str) -> None:
        """A different secret never verifies."""
        assume(other != secret)
        self.assertFalse(verify_signature(params, other, sign(params, secret)))

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets, name=param_names, value=param_values)
    def test_added_parameter_rejected(
        self, params: dict[str, str], secret: str, name: str, value: str
    ) -> None:
        """A parameter added after signing breaks the signature."""
        assume(name not in params)
        signature = sign(params, secret)
        self.assertFalse(verify_signature({**params, name: value}, secret, signature))

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets, data=st.data())
    def test_value_case_is_not_signed(self, params: dict[str, str], secret: str, data: st.DataObject) -> None:
        """Changing the ASCII case of a value still verifies: the signed string is lower-cased.

        This is CloudStack's scheme, not a choice of ours; it is pinned here so that nobody
        mistakes it for a bug and "fixes" the server into rejecting real clients.
        """
        name = data.draw(st.sampled_from(sorted(params)))
        signature = sign(params, secret)
        swapped = "".join(char.swapcase() if char.isascii() else char for char in params[name])
        self.assertTrue(verify_signature({**params, name: swapped}, secret, signature))

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets, data=st.data())
    def test_key_order_irrelevant(self, params: dict[str, str], secret: str, data: st.DataObject) -> None:
        """The order in which parameters arrive changes neither signature nor verdict."""
        shuffled = dict(data.draw(st.permutations(list(params.items()))))
        signature = sign(params, secret)
        self.assertEqual(sign(shuffled, secret), signature)
        self.assertTrue(verify_signature(shuffled, secret, signature))

    @HYPOTHESIS
    @given(params=param_maps, secret=secrets)
    def test_plus_received_as_space(self, params: dict[str, str], secret: str) -> None:
        """A signature whose ``+`` was decoded to a space still verifies."""
        received = sign(params, secret).replace("+", " ")
        self.assertTrue(verify_signature(params, secret, received))

    def test_plus_received_as_space_example(self) -> None:
        """A concrete signature that contains ``+`` verifies with spaces instead, not mangled."""
        counter = 0
        while "+" not in sign({"command": "listZones", "n": str(counter)}, "SECRET"):
            counter += 1
        params = {"command": "listZones", "n": str(counter)}
        signature = sign(params, "SECRET")
        self.assertTrue(verify_signature(params, "SECRET", signature.replace("+", " ")))
        self.assertFalse(verify_signature(params, "SECRET", signature.replace("+", "-")))


class ParseExpiresTests(SynchronousTestCase):
    """parse_expires accepts the ISO-8601 forms of spec §2.4 and nothing else."""

    NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()

    def test_accepted_forms(self) -> None:
        """Every accepted form gives the right UTC instant."""
        cases = {
            "2024-05-01T12:00:00Z": self.NOON,
            "2024-05-01T12:00:00+0000": self.NOON,
            "2024-05-01T17:30:00+05:30": self.NOON,
            "2024-05-01T17:30:00+0530": self.NOON,
            "2024-05-01T11:00:00-0100": self.NOON,
            "2024-05-01T11:00:00-01:00": self.NOON,
            "2024-05-01T14:00:00+02": self.NOON,
            "2024-05-01T12:00:00.123Z": self.NOON + 0.123,
            "2024-05-01T12:00:00.123456Z": self.NOON + 0.123456,
            "2024-05-01T17:30:00.123456+0530": self.NOON + 0.123456,
            "2024-05-01T17:30:00.123+05:30": self.NOON + 0.123,
            "2024-05-01T12:00:00Z+0000": self.NOON,
            "2024-05-01T17:30:00Z+0530": self.NOON,
            "2024-05-01t12:00:00z": self.NOON,
            "2030-01-01T00:00:00+0000": datetime(2030, 1, 1, tzinfo=UTC).timestamp(),
        }
        for text, expected in cases.items():
            result = parse_expires(text)
            assert result is not None, text
            self.assertAlmostEqual(result, expected, places=6, msg=text)

    def test_rejected_forms(self) -> None:
        """Values without a zone, malformed or out of range give None."""
        for text in [
            "",
            "garbage",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.123",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00Z",
            "2024-05-01T12:00:00+5:30",
            "2024-05-01T12:00:00+05:3",
            "2024-05-01T12:00:00+0560",
            "2024-05-01T12:00:00+2400",
            "2024-13-01T12:00:00Z",
            "2024-02-30T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "0000-01-01T00:00:00Z",
            "2024-05-01T12:00:00Z\n",
            " 2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00 0000",
            "2024-05-01T12:00:00ZZ",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567890Z",
            "２０２４-05-01T12:00:00Z",
            "1714564800",
        ]:
            self.assertIsNone(parse_expires(text), text)


class NonAsciiNameTests(SynchronousTestCase):
    def test_non_ascii_parameter_name_signs_and_verifies(self) -> None:
        """Names are signed as received; a non-ASCII name is hashed as UTF-8 instead of raising."""
        params = {"command": "listUsers", "apiKey": "k", "nämé": "x"}
        signature = sign(params, "secret")
        self.assertTrue(verify_signature(params, "secret", signature))
        self.assertFalse(verify_signature({**params, "nämé": "y"}, "secret", signature))
