"""The server's canonical strings against an independent model of CloudStack's Java code, and the
constant-time comparison of signatures (spec/api.md §2.2, spec/security.md §6.3).

The model below is written from CloudStack's ``ApiServer.verifyRequest`` and the JDK's
``java.net.URLEncoder.encode(String, Charset)``, never from ``cloudd.web.signing``:

* the parameter names (``Map.keySet()``) are sorted by ``Collections.sort``, i.e. ``String.compareTo``,
  which compares UTF-16 code units;
* the parameter named ``signature`` in any case is left out; every other one is written as
  ``name + "=" + URLEncoder.encode(value, UTF_8).replaceAll("\\+", "%20")``, joined by ``&``;
* ``URLEncoder`` walks the string's UTF-16 chars: ``a-z A-Z 0-9 - _ . *`` are copied, a space becomes
  ``+``, and each maximal run of other chars (a high surrogate taking the low one after it) is
  turned into bytes by ``String.getBytes(UTF_8)``, which writes ``?`` for an unpaired surrogate,
  each byte as ``%`` and two upper-case hex digits;
* the whole string is lower-cased with ``String.toLowerCase()``.

The client variants the server also accepts (README, "Signatures") are modelled from what each
client does to the same values: ``cs`` and cmk leave ``~`` raw, cloudstack-go also sends ``*`` as
``%2A``, libcloud orders the names by their lower-cased form (Python's ``sorted``) and, in newer
versions, leaves ``[`` and ``]`` raw, older ones ``*`` as ``%2A``; the server further accepts each of
those tolerances on its own. The property is that the set of strings the server accepts a signature
over is exactly the set the model produces, Java's form first.

The parameter sets come from ``random.Random`` with a fixed seed rather than hypothesis: 100,000
hypothesis examples would take minutes, the seeded generator a few seconds. Names are drawn from
CloudStack's own parameter names, random ASCII names and a few non-ASCII letters whose lower case
is the same in Java and Python (a BMP letter above U+E000 and a supplementary one among them, so the
UTF-16 order is exercised); values from every Unicode plane, with the characters where encoders
disagree over-represented.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import hmac
import inspect
import random
import re
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from cloudd.web import signing
from cloudd.web.signing import canonical_string, canonical_variants, sign, verify_signature
from tests.util.cloud import make_cloud
from tests.util.tenants import v3_params

SEED = 20_261_202
PARAMETER_SETS = 100_000

# --- the model ------------------------------------------------------------------------------------

# java.net.URLEncoder's dontNeedEncoding (a space is in it too: it becomes "+").
_DONT_NEED_ENCODING = frozenset(
    [*range(ord("a"), ord("z") + 1), *range(ord("A"), ord("Z") + 1), *range(ord("0"), ord("9") + 1),
     ord(" "), ord("-"), ord("_"), ord("."), ord("*")])
_UPPER_HEX = "0123456789ABCDEF"

# Character.toLowerCase for the letters the generator puts into names (ASCII is handled apart).
_JAVA_LOWER = {"É": "é", "Ü": "ü", "Ж": "ж", "Ａ": "ａ", "\U00010400": "\U00010428"}
_NAME_EXTRA_LETTERS = "éÉüÜжЖａＡ雲\U00010400\U00010428ｱ"


def java_chars(s: str) -> list[int]:
    """The UTF-16 code units of *s*, as Java's ``String.charAt`` sees them."""
    data = s.encode("utf-16-be", "surrogatepass")
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def java_get_bytes_utf8(chars: list[int]) -> bytes:
    """``new String(chars).getBytes(UTF_8)``: a surrogate pair is one code point, an unpaired
    surrogate is replaced by ``?``."""
    out = bytearray()
    i = 0
    while i < len(chars):
        c = chars[i]
        if 0xD800 <= c <= 0xDBFF and i + 1 < len(chars) and 0xDC00 <= chars[i + 1] <= 0xDFFF:
            out += chr(0x10000 + ((c - 0xD800) << 10) + (chars[i + 1] - 0xDC00)).encode("utf-8")
            i += 2
        elif 0xD800 <= c <= 0xDFFF:
            out += b"?"
            i += 1
        else:
            out += chr(c).encode("utf-8")
            i += 1
    return bytes(out)


def java_url_encode_walk(value: str) -> str:
    """``URLEncoder.encode(value, StandardCharsets.UTF_8)``, walking the chars as the JDK does."""
    chars = java_chars(value)
    out: list[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c in _DONT_NEED_ENCODING:
            out.append("+" if c == 0x20 else chr(c))
            i += 1
            continue
        run: list[int] = []
        while True:
            run.append(c)
            if 0xD800 <= c <= 0xDBFF and i + 1 < len(chars) and 0xDC00 <= chars[i + 1] <= 0xDFFF:
                run.append(chars[i + 1])
                i += 1
            i += 1
            if i >= len(chars) or chars[i] in _DONT_NEED_ENCODING:
                break
            c = chars[i]
        for byte in java_get_bytes_utf8(run):
            out.append("%" + _UPPER_HEX[byte >> 4] + _UPPER_HEX[byte & 0xF])
    return "".join(out)


# The same, faster, for the 100,000 sets (checked against the walk in ModelSelfTests): a run of
# chars that need encoding is well-formed UTF-16 unless the Python string holds a lone surrogate,
# and then getBytes is plain UTF-8.
_NEEDS_ENCODING_RUN = re.compile(r"[^a-zA-Z0-9 \-_.*]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTE = tuple("%" + _UPPER_HEX[b >> 4] + _UPPER_HEX[b & 0xF] for b in range(256))


def _escape_run(match: re.Match[str]) -> str:
    run = match[0]
    data = java_get_bytes_utf8(java_chars(run)) if _LONE_SURROGATE.search(run) else run.encode("utf-8")
    return "".join([_ESCAPED_BYTE[b] for b in data])


@functools.lru_cache(maxsize=4096)  # the common values recur
def java_url_encode(value: str) -> str:
    """``URLEncoder.encode(value, StandardCharsets.UTF_8)``."""
    return _NEEDS_ENCODING_RUN.sub(_escape_run, value).replace(" ", "+")


_JAVA_LOWER_TABLE = {**{c: c + 32 for c in range(ord("A"), ord("Z") + 1)},
                     **{ord(upper): ord(lower) for upper, lower in _JAVA_LOWER.items()}}


def java_lower(s: str) -> str:
    """``String.toLowerCase()`` for the characters this test uses (any other is unchanged by it)."""
    return s.lower() if s.isascii() else s.translate(_JAVA_LOWER_TABLE)


def java_order(names: list[str]) -> list[str]:
    """``Collections.sort`` of Java strings: by UTF-16 code units (big-endian UTF-16 bytes compare
    the same way)."""
    return sorted(names, key=lambda name: name.encode("utf-16-be", "surrogatepass"))


def libcloud_order(names: list[str]) -> list[str]:
    """libcloud: ``[(k.lower(), v) ...].sort(key=lambda x: x[0])``, Python's order of lower-cased names."""
    return sorted(names, key=str.lower)


# A client variant: (name order, how each Java-encoded value is changed).
Variant = tuple[Callable[[list[str]], list[str]], Callable[[str], str]]


def _same(encoded: str) -> str:
    return encoded


def _tilde_raw(encoded: str) -> str:
    # "%7E" in URLEncoder output is always the escape of "~": "%" itself is written "%25".
    return encoded.replace("%7E", "~")


def _star_escaped(encoded: str) -> str:
    return encoded.replace("*", "%2A")


def _brackets_raw(encoded: str) -> str:
    return encoded.replace("%5B", "[").replace("%5D", "]")


def _go(encoded: str) -> str:
    return _star_escaped(_tilde_raw(encoded))


def _libcloud(encoded: str) -> str:
    return _brackets_raw(_tilde_raw(encoded))


VARIANTS: dict[str, Variant] = {
    "java": (java_order, _same),
    "cs, cmk (~ raw)": (java_order, _tilde_raw),
    "cloudstack-go (~ raw, * as %2A)": (java_order, _go),
    "libcloud (lower-cased order, ~ [ ] raw)": (libcloud_order, _libcloud),
    "old libcloud (lower-cased order, ~ raw, * as %2A)": (libcloud_order, _go),
    "lower-cased order only": (libcloud_order, _same),
    "* as %2A only": (java_order, _star_escaped),
    "[ ] raw only": (java_order, _brackets_raw),
}


def model_strings(params: Mapping[str, str]) -> dict[str, str]:
    """The canonical string of every client variant, by variant name (Java's first)."""
    names = [name for name in params if name.lower() != "signature"]
    # replaceAll("\\+", "%20") on each encoded value; no client variant adds or removes a "+".
    encoded = {name: java_url_encode(params[name]).replace("+", "%20") for name in names}
    orders = {java_order: java_order(names), libcloud_order: libcloud_order(names)}
    # Where no value holds a "~", "*", "[" or "]", every change is the identity: only the order counts.
    joined = "".join(encoded.values())
    changes_matter = "%7E" in joined or "*" in joined or "%5B" in joined or "%5D" in joined
    built: dict[tuple[Callable[[list[str]], list[str]], Callable[[str], str]], str] = {}
    out = {}
    for label, (order, change) in VARIANTS.items():
        key = (order, change if changes_matter else _same)
        if key not in built:
            built[key] = java_lower("&".join([name + "=" + key[1](encoded[name]) for name in orders[order]]))
        out[label] = built[key]
    return out


# --- the generator ----------------------------------------------------------------------------------

CLOUDSTACK_NAMES = [
    "command", "response", "apiKey", "apikey", "signatureVersion", "signatureversion", "expires", "name",
    "displayName", "displayname", "zoneId", "zoneid", "templateId", "templatefilter", "serviceOfferingId",
    "id", "ids", "keyword", "listAll", "listall", "isrecursive", "page", "pageSize", "pagesize", "account",
    "domainId", "domainid", "userdata", "tags[0].key", "tags[0].value", "details[0].cpuNumber",
    "details[1].memory", "_", "sessionkey", "description", "parentdomainid", "networkDomain",
]
SIGNATURE_NAMES = ["signature", "Signature", "SIGNATURE", "signaTure"]
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.[]-"
# Where Java's encoder and the clients' differ, and where UTF-8 needs care.
AWKWARD = " ~*[]+%&=/?:#@!$'(),;\"<>\\^`{|}\t\r\nÿéü€\u00a0\u2028\ufeff\ufffd雲ｱ\U0001f680\U00010400\U0001d11e"
LONE_SURROGATES = "\udc80\udfff"
EXPIRES_VALUES = ["2030-01-01T00:00:00+0000", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+05:30",
                  "2024-05-01T12:00:00Z+0000"]


def random_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return rng.choice(CLOUDSTACK_NAMES)
    if roll < 0.93:
        return "".join(rng.choices(NAME_ALPHABET, k=rng.randint(1, 12)))
    alphabet = NAME_ALPHABET + _NAME_EXTRA_LETTERS
    return "".join(rng.choices(alphabet, k=rng.randint(1, 6)))


def random_char(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return chr(rng.randint(0x20, 0x7E))
    if roll < 0.8:
        return rng.choice(AWKWARD)
    if roll < 0.81:
        return rng.choice(LONE_SURROGATES)
    if roll < 0.92:
        return chr(rng.randint(0x80, 0xD7FF))
    if roll < 0.96:
        return chr(rng.randint(0xE000, 0xFFFF))
    return chr(rng.randint(0x10000, 0x10FFFF))


PLAIN_VALUES = ["json", "xml", "true", "false", "3", "1", "500", "listVirtualMachines", "deployVirtualMachine",
                "6e0a1a6c-2a7d-4b3c-9f2e-1d2c3b4a5f60", "my vm", "web-01.example.com", *EXPIRES_VALUES]


class ParameterSets:
    """Seeded parameter maps as the wire layer hands them over: no two names equal but for case.

    Names and value characters are drawn from pools made by `random_name` and `random_char` and
    renewed every thousand sets, which is much cheaper than a fresh draw each time and still
    covers every plane.
    """

    COUNTS = (1, 2, 2, 3, 3, 4)

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.made = 0
        self.names: list[str] = []
        self.chars: list[str] = []

    def value(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            return ""
        if roll < 0.5:
            return PLAIN_VALUES[int(rng.random() * len(PLAIN_VALUES))]
        return "".join(rng.choices(self.chars, k=1 + int(rng.random() * 8)))

    def __next__(self) -> dict[str, str]:
        rng = self.rng
        if self.made % 1000 == 0:
            self.names = [random_name(rng) for _ in range(500)]
            self.chars = [random_char(rng) for _ in range(2000)]
        self.made += 1
        params: dict[str, str] = {}
        folded: set[str] = set()
        for _ in range(self.COUNTS[int(rng.random() * len(self.COUNTS))]):
            name = self.names[int(rng.random() * len(self.names))]
            if name.lower() in folded or name.lower() == "signature":
                continue
            folded.add(name.lower())
            params[name] = self.value()
        if rng.random() < 0.3:
            params[SIGNATURE_NAMES[int(rng.random() * len(SIGNATURE_NAMES))]] = "c2lnbmF0dXJl+/="
        return params


# --- the tests ----------------------------------------------------------------------------------------

def hmac_b64(secret: str, message: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha1).digest()).decode()


class ModelSelfTests(SynchronousTestCase):
    """The model reproduces the published vectors and the JDK's documented behaviour."""

    def test_developer_guide_vector(self) -> None:
        key = "plgWJfZK4gyS3mOMTVmjUVg-X-jlWlnfaUJ9GAbBbf9EdM-kAYMmAiLqzzq1ElZLYq_u38zCm0bewzGUdP66mg"
        secret = "VDaACYb0LV9eNjTetIOElcVQkvJck_J_QljX_FcHRj87ZKiy0z0ty0ZsYBkoXkY9b7eq1EhwJaw7FF3akA3KBQ"
        java = model_strings({"apikey": key, "command": "listUsers", "response": "json"})["java"]
        self.assertEqual(hmac_b64(secret, java), "TTpdDq/7j/J58XCRHomKoQXEQds=")

    def test_ordering_quirk_vector(self) -> None:
        params = {"command": "deployVirtualMachine", "zoneId": "abc", "templateId": "t", "templatefilter": "x",
                  "apiKey": "KEY", "displayname": "my vm*~+", "response": "json", "signatureVersion": "3",
                  "expires": "2030-01-01T00:00:00+0000"}
        java = model_strings(params)["java"]
        self.assertEqual(java, "apikey=key&command=deployvirtualmachine&displayname=my%20vm*%7e%2b"
                               "&expires=2030-01-01t00%3a00%3a00%2b0000&response=json&signatureversion=3"
                               "&templateid=t&templatefilter=x&zoneid=abc")
        self.assertEqual(hmac_b64("SECRET", java), "AgxzbbUEcPLu1OYSLibDxJj0x7A=")

    def test_url_encoder(self) -> None:
        """URLEncoder's documented examples, surrogate pairs and unpaired surrogates."""
        for encode in [java_url_encode, java_url_encode_walk]:
            self.assertEqual(encode("The string ü@foo-bar"), "The+string+%C3%BC%40foo-bar")
            self.assertEqual(encode("a*b.c_d-e~"), "a*b.c_d-e%7E")
            self.assertEqual(encode("\U0001f680x"), "%F0%9F%9A%80x")
            self.assertEqual(encode("\udc80x\udfff"), "%3Fx%3F")
            self.assertEqual(encode("\ud83d\ude80\ud83d"), "%F0%9F%9A%80%3F")

    def test_fast_encoder_is_the_walk(self) -> None:
        """The encoder the property test uses gives what the JDK's char-by-char walk gives."""
        sets = ParameterSets(SEED + 2)
        values = [value for _ in range(5000) for value in next(sets).values()]
        for value in values:
            self.assertEqual(java_url_encode(value), java_url_encode_walk(value), ascii(value))

    def test_java_sort_is_by_utf16_units(self) -> None:
        """U+10400 is stored as D801 DC00, so Java sorts it before U+FF71, which Python puts first."""
        self.assertEqual(java_order(["\uff71", "\U00010400"]), ["\U00010400", "\uff71"])
        self.assertEqual(sorted(["\uff71", "\U00010400"]), ["\uff71", "\U00010400"])


class CanonicalStringPropertyTests(SynchronousTestCase):
    def test_server_matches_the_java_model(self) -> None:
        """Over 100,000 seeded parameter sets: canonical_string is Java's string, and canonical_variants
        is exactly the model's set of client strings with Java's first."""
        sets = ParameterSets(SEED)
        mismatches: list[tuple[dict[str, str], Any, Any]] = []
        variant_hits = dict.fromkeys(VARIANTS, 0)
        for n in range(PARAMETER_SETS):
            params = next(sets)
            model = model_strings(params)
            server = canonical_variants(params)
            java = model["java"]
            if canonical_string(params) != java or server[0] != java:
                mismatches.append((params, java, canonical_string(params)))
            elif set(server) != set(model.values()) or len(server) != len(set(server)):
                mismatches.append((params, sorted(set(model.values())), server))
            else:
                for label, text in model.items():
                    variant_hits[label] += text != java
            if len(mismatches) >= 5:
                break
            if n % 1000 == 0 and not mismatches:
                # Now and then the whole path: a signature over any model string verifies.
                for text in set(model.values()):
                    self.assertTrue(verify_signature(params, "s3cret", hmac_b64("s3cret", text)), (params, text))
        self.assertEqual(mismatches, [])
        # Every tolerance was exercised where it makes a difference, many times over.
        self.assertTrue(all(hits > 1000 for label, hits in variant_hits.items() if label != "java"), variant_hits)

    def test_sign_is_the_java_form(self) -> None:
        """What `sign` produces is HMAC-SHA1 over the model's Java string."""
        sets = ParameterSets(SEED + 1)
        for _ in range(2000):
            params = next(sets)
            self.assertEqual(sign(params, "k3y"), hmac_b64("k3y", model_strings(params)["java"]))


class ConstantTimeComparisonTests(SynchronousTestCase):
    """`verify_signature` decides by `hmac.compare_digest` alone, on every candidate, every time."""

    PARAMS = {"command": "listDomains", "response": "json", "apiKey": "KEY", "name": "a~b *[c]",
              "Zone": "z"}
    SECRET = "SECRET"

    def recording(self, answer: bool | None = None) -> list[tuple[bytes, bytes]]:
        """Replace `hmac.compare_digest` with a wrapper that records its arguments and returns the real
        answer, or `answer` when given."""
        real = hmac.compare_digest
        calls: list[tuple[bytes, bytes]] = []

        def compare(a: Any, b: Any) -> bool:
            calls.append((a, b))
            return real(a, b) if answer is None else answer

        self.patch(hmac, "compare_digest", compare)
        return calls

    def test_every_candidate_is_compared_with_compare_digest(self) -> None:
        """Right or wrong, the signature is compared with every accepted variant (and its space-for-plus
        form), by `compare_digest`, with the computed digest and the received one as bytes."""
        variants = canonical_variants(self.PARAMS)
        self.assertGreater(len(variants), 3)
        for index in [0, len(variants) - 1]:
            good = hmac_b64(self.SECRET, variants[index])
            for received, expected in [(good, True), ("AAAA" + good[4:], False)]:
                calls = self.recording()
                self.assertIs(verify_signature(self.PARAMS, self.SECRET, received), expected)
                self.assertEqual([b for _, b in calls], [received.encode()] * len(variants))
                self.assertEqual([a for a, _ in calls], [hmac_b64(self.SECRET, v).encode() for v in variants])
        with_space = hmac_b64(self.SECRET, variants[0]).replace("+", " ")
        if " " in with_space:
            calls = self.recording()
            self.assertTrue(verify_signature(self.PARAMS, self.SECRET, with_space))
            self.assertEqual(len(calls), 2 * len(variants))

    def test_compare_digest_decides(self) -> None:
        """With `compare_digest` answering False, the right signature is refused; answering True, a
        wrong one is accepted: no other comparison can accept or refuse on its own."""
        good = sign(self.PARAMS, self.SECRET)
        self.recording(answer=False)
        self.assertFalse(verify_signature(self.PARAMS, self.SECRET, good))
        self.recording(answer=True)
        self.assertTrue(verify_signature(self.PARAMS, self.SECRET, "not even base64"))

    def test_no_plain_comparison_of_signatures(self) -> None:
        """`verify_signature` contains no ==, !=, `in` or `is` comparison: nothing but `compare_digest`
        looks at the signature's bytes."""
        tree = ast.parse(textwrap.dedent(inspect.getsource(signing.verify_signature)))
        compares = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Compare)]
        # The one allowed test is whether the received signature contains a space (not secret).
        self.assertEqual([c for c in compares if c != "' ' in signature"], [])
        calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        self.assertIn("hmac.compare_digest", calls)

    def test_the_api_decides_by_compare_digest(self) -> None:
        """Through the query API too: with `compare_digest` answering False a correctly signed request
        gets 401, answering True a wrongly signed one is served; the received signature is what it saw."""
        cloud = make_cloud()
        self.addCleanup(cloud.stop)
        cloud.reactor.advance(1_700_000_000)
        good = v3_params(cloud, "listDomains")
        wrong = {**good, "signature": sign(good, "not-the-secret")}
        self.assertEqual(cloud.request(good).status, 200)
        self.assertEqual(cloud.request(wrong).status, 401)
        calls = self.recording(answer=False)
        self.assertEqual(cloud.request(good).status, 401)
        self.assertIn(good["signature"].encode(), [b for _, b in calls])
        calls = self.recording(answer=True)
        self.assertEqual(cloud.request(wrong).status, 200)
        self.assertIn(wrong["signature"].encode(), [b for _, b in calls])
