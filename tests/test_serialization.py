"""The JSON serializer: orjson's speed, the standard library's meaning.

Every test compares with Django's own ``JSONSerializer`` (the standard library's
``json``): the same objects come back, the same values are refused with the same
error type, and whatever the old path wrote reads back identically. A generated
corpus (hypothesis) covers what the tables below do not think of.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.core import signing
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_sessions.serialization import (
    JSONSerializer,
    dumps,
    dumps_utf8,
    loads,
    session_serializer,
    writes_json,
)

DJANGO = signing.JSONSerializer()
NAN, INF = float("nan"), float("inf")
corpus = settings(max_examples=300, deadline=None)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down: 1 is not 1.0, NaN is NaN, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


def outcome(function: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, the type of what it raised)``."""
    try:
        return True, function(*args)
    except Exception as exc:
        return False, type(exc)


def django_round_trip(obj: Any) -> Any:
    return DJANGO.loads(DJANGO.dumps(obj))


def utf8_round_trip(obj: Any) -> Any:
    """What the token codec did before: ``json`` with ``ensure_ascii=False``."""
    return json.loads(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


# -- values: what JSON can carry, and what it cannot ----------------------------------------


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    INFO = 20


class Mode(enum.StrEnum):
    DARK = "dark"


class Text(str):
    pass


class Number(int):
    pass


class Ratio(float):
    pass


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Cart:
    items: int = 1


class Custom:
    pass


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def circular_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


text = st.text(st.characters(codec=None, exclude_categories=()))  # lone surrogates included
scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: beyond 64 bits too
    | st.integers(-(2**64), 2**64)
    | st.floats()  # NaN, infinities, -0.0, subnormals
    | text
)
keys = text | st.integers() | st.floats() | st.booleans() | st.none()
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.lists(children, max_size=6).map(tuple)
        | st.dictionaries(text, children, max_size=6)
        | st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=40,
)
#: Values that ``json`` writes its own way, or refuses: orjson writes some of them.
exotic = (
    st.datetimes()
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.uuids()
    | st.decimals()
    | st.fractions()
    | st.binary(max_size=8)
    | st.binary(max_size=8).map(bytearray)
    | st.complex_numbers()
    | st.sets(st.integers(), max_size=3)
    | st.frozensets(st.integers(), max_size=3)
    | st.sampled_from([Colour.RED, Level.INFO, Mode.DARK, Custom(), Cart(), Ellipsis])
    | st.builds(Text, text)
    | st.builds(Number, st.integers())
    | st.builds(Ratio, st.floats())
    | st.builds(Point, scalars, scalars)
    | st.just(b"1").map(orjson.Fragment)
)
any_values = st.recursive(
    scalars | exotic,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(text, children, max_size=5)
        | st.dictionaries(keys, children, max_size=5)
        | st.dictionaries(st.tuples(st.integers()) | st.frozensets(st.integers()), children)
        | st.dictionaries(text, children, max_size=5).map(collections.OrderedDict)
    ),
    max_leaves=30,
)


# -- the generated corpus -----------------------------------------------------------------


@corpus
@given(any_values)
def test_dumps_means_what_djangos_json_serializer_means_or_refuses_alike(obj: Any) -> None:
    expected = outcome(django_round_trip, obj)
    written = outcome(dumps, obj)
    if not expected[0]:
        assert written == expected, "refused by json with another error type, or accepted"
        return
    ok, blob = written
    assert ok, f"json accepts this, dumps raised {blob}"
    assert blob.isascii()
    assert same(DJANGO.loads(blob), expected[1])  # what Django's own reader makes of it
    assert same(loads(blob), expected[1])


@corpus
@given(any_values)
def test_dumps_utf8_means_what_json_without_ascii_escapes_means(obj: Any) -> None:
    expected = outcome(utf8_round_trip, obj)
    written = outcome(dumps_utf8, obj)
    if not expected[0]:
        assert written == expected
        return
    ok, blob = written
    assert ok, f"json accepts this, dumps_utf8 raised {blob}"
    assert same(json.loads(blob.decode("utf-8")), expected[1])  # valid UTF-8, always
    assert same(loads(blob), expected[1])


floats_and_nulls = st.recursive(
    st.none() | st.floats(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=12,
)


@corpus
@given(floats_and_nulls)
def test_nan_and_infinities_are_never_written_as_null(obj: Any) -> None:
    expected = django_round_trip(obj)
    assert same(DJANGO.loads(dumps(obj)), expected)
    assert same(loads(dumps_utf8(obj)), expected)


@corpus
@given(json_values)
def test_what_the_old_path_wrote_loads_identically(obj: Any) -> None:
    stored = DJANGO.dumps(obj)
    assert same(loads(stored), DJANGO.loads(stored))
    # The token codec's claims before: UTF-8, lone surrogates as \u escapes.
    claims = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    assert same(loads(claims.encode("utf-8", "backslashreplace")), json.loads(claims))


def json_texts() -> st.SearchStrategy[bytes]:
    """JSON as any writer might format it, numbers as text, and bytes that are not JSON."""
    formatted = st.builds(
        lambda obj, indent, separators: json.dumps(
            obj, indent=indent, separators=separators, ensure_ascii=False
        ).encode("utf-8", "backslashreplace"),
        json_values,
        st.none() | st.integers(0, 3),
        st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]),
    )
    numbers = st.from_regex(
        r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z"
    ).map(str.encode)
    return (
        formatted
        | numbers
        | st.binary(max_size=20)
        | text.map(lambda s: s.encode("utf-8", "surrogatepass"))
    )


@corpus
@given(json_texts())
def test_any_text_loads_as_json_loads_it_or_is_refused_alike(blob: bytes) -> None:
    expected = outcome(lambda b: json.loads(b.decode("utf-8")), blob)
    got = outcome(loads, blob)
    assert got[0] == expected[0]
    if expected[0]:
        assert same(got[1], expected[1])
    else:
        assert issubclass(got[1], ValueError)
        assert issubclass(expected[1], ValueError)
    if blob.isascii():  # what Django's serializer reads: it decodes latin-1, the same for ASCII
        django = outcome(DJANGO.loads, blob)
        assert django[0] == got[0]
        if django[0]:
            assert same(got[1], django[1])


# -- the table of edge cases -----------------------------------------------------------------

ACCEPTED: list[tuple[str, Any, Any]] = [
    ("ascii", {"a": 1, "b": [True, None]}, {"a": 1, "b": [True, None]}),
    ("non-ascii text", {"é": "ü 東京 😀"}, {"é": "ü 東京 😀"}),
    ("lone high surrogate", "\ud800", "\ud800"),
    ("lone low surrogate in a key", {"\udc00x": 1}, {"\udc00x": 1}),
    ("an escaped pair is one character", ["\ud83d\ude00"], ["😀"]),
    ("control characters and DEL", "\x00\x1f\x7f\u2028", "\x00\x1f\x7f\u2028"),
    ("largest unsigned 64-bit int", 2**64 - 1, 2**64 - 1),
    ("int past 64 bits", 2**64, 2**64),
    ("negative int past 64 bits", -(2**63) - 1, -(2**63) - 1),
    ("30-digit int", 10**30, 10**30),
    ("NaN", NAN, NAN),
    ("infinities", [INF, -INF], [INF, -INF]),
    ("NaN beside None", [None, NAN, {"x": None}], [None, NAN, {"x": None}]),
    ("NaN in a dict beside None", {"x": None, "y": NAN}, {"x": None, "y": NAN}),
    ("infinity deep in a tuple", ({"a": [(-INF,)]}, None), [{"a": [[-INF]]}, None]),
    ("negative zero", -0.0, -0.0),
    ("smallest subnormal", 5e-324, 5e-324),
    ("1e16", 1e16, 1e16),
    ("tuples become lists", (1, (2, 3)), [1, [2, 3]]),
    ("nested containers", {"a": [{"b": [{}, []]}]}, {"a": [{"b": [{}, []]}]}),
    ("int key", {1: "a"}, {"1": "a"}),
    ("float key", {1.5: "a"}, {"1.5": "a"}),
    ("bool and None keys", {True: 1, False: 0, None: 2}, {"true": 1, "false": 0, "null": 2}),
    ("NaN key", {NAN: 1}, {"NaN": 1}),
    ("a key json writes twice", {1: "a", "1": "b"}, {"1": "b"}),
    ("IntEnum is an int to json", Level.INFO, 20),
    ("StrEnum is a str to json", Mode.DARK, "dark"),
    ("str subclass", Text("x"), "x"),
    ("int subclass", Number(7), 7),
    ("float subclass", Ratio(0.5), 0.5),
    ("OrderedDict", collections.OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
    ("namedtuple", Point(1, 2), [1, 2]),
    ("nesting deeper than orjson's 255 levels", nested(300), nested(300)),
]
REFUSED: list[tuple[str, Any, type[Exception]]] = [
    ("datetime", datetime.datetime(2025, 1, 2, 3, 4, 5), TypeError),
    ("date", datetime.date(2025, 1, 2), TypeError),
    ("time", datetime.time(3, 4), TypeError),
    ("timedelta", datetime.timedelta(1), TypeError),
    ("UUID", uuid.UUID(int=1), TypeError),
    ("Decimal", decimal.Decimal("1.5"), TypeError),
    ("Fraction", fractions.Fraction(1, 3), TypeError),
    ("set", {1, 2}, TypeError),
    ("frozenset", frozenset({1}), TypeError),
    ("bytes", b"x", TypeError),
    ("bytearray", bytearray(b"x"), TypeError),
    ("memoryview", memoryview(b"x"), TypeError),
    ("array", array.array("d", [NAN]), TypeError),
    ("complex", 1j, TypeError),
    ("Enum", Colour.RED, TypeError),
    ("dataclass", Cart(), TypeError),
    ("custom object", Custom(), TypeError),
    ("Ellipsis", ..., TypeError),
    ("orjson.Fragment", orjson.Fragment(b"1"), TypeError),
    ("UUID deep inside", {"a": [{"b": (uuid.UUID(int=1),)}]}, TypeError),
    ("tuple key", {(1, 2): "a"}, TypeError),
    ("frozenset key", {frozenset(): "a"}, TypeError),
    ("circular list", circular_list(), ValueError),
    ("circular dict", circular_dict(), ValueError),
    ("nesting past the recursion limit", nested(100_000), RecursionError),
]


@pytest.mark.parametrize(
    ("value", "expected"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_what_json_accepts_round_trips_to_what_json_makes_of_it(value: Any, expected: Any) -> None:
    assert same(django_round_trip(value), expected)  # the table says what json does
    assert dumps(value).isascii()
    assert same(DJANGO.loads(dumps(value)), expected)
    assert same(loads(dumps(value)), expected)
    assert same(loads(dumps_utf8(value)), expected)


@pytest.mark.parametrize(("value", "error"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_json_refuses_is_refused_with_the_same_error_type(
    value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error) as by_json:
        DJANGO.dumps(value)
    for function in (dumps, dumps_utf8):
        with pytest.raises(error) as ours:
            function(value)
        assert type(ours.value) is type(by_json.value)


OLD_BYTES: list[tuple[str, bytes, Any]] = [
    ("\\u escapes", b'{"\\u00e9":"\\ud83d\\ude00 \\u6771"}', {"é": "😀 東"}),
    ("NaN and infinity literals", b"[NaN,Infinity,-Infinity]", [NAN, INF, -INF]),
    ("lone surrogate escape", b'"\\ud800"', "\ud800"),
    ("30-digit int", b"123456789012345678901234567890", 123456789012345678901234567890),
    ("int just past signed 64 bits", b"[-9223372036854775809]", [-9223372036854775809]),
    ("int just past unsigned 64 bits", b"18446744073709551616", 18446744073709551616),
    ("number too large for a float", b"1e400", INF),
    ("duplicate key: the last wins", b'{"a":1,"b":2,"a":3}', {"a": 3, "b": 2}),
    ("python's float repr", b"[1e+16,1e-05,-0.0]", [1e16, 1e-05, -0.0]),
]


@pytest.mark.parametrize(
    ("blob", "expected"), [o[1:] for o in OLD_BYTES], ids=[o[0] for o in OLD_BYTES]
)
def test_bytes_written_by_the_old_path_load_to_the_identical_object(
    blob: bytes, expected: Any
) -> None:
    assert same(DJANGO.loads(blob), expected)
    assert same(loads(blob), expected)


@pytest.mark.parametrize(
    "blob", [b"", b"{", b"[1,]", b"nul", b'"\\x"', b"\xff", b'{"a" 1}', b"\xef\xbb\xbf{}"]
)
def test_what_is_not_json_is_refused_with_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        DJANGO.loads(blob)
    with pytest.raises(ValueError):
        loads(blob)


def test_orjson_does_the_common_case() -> None:
    """Not a fallback in disguise: plain session data is orjson's own output."""
    data = {"_auth_user_id": "42", "cart": [{"sku": "A1", "qty": 2, "price": 9.5}], "x": None}
    assert dumps(data) == orjson.dumps(data)
    assert dumps({"é": 1}) == json.dumps({"é": 1}, separators=(",", ":")).encode()
    assert dumps_utf8({"é": 1}) == orjson.dumps({"é": 1})


# -- which serializer a session engine uses -----------------------------------------------


class SiteJSONSerializer(signing.JSONSerializer):
    """A site's subclass of Django's serializer: its choice, honoured as it is."""


class SitePickleSerializer:
    """A site's own serializer (the shape of Django's removed PickleSerializer)."""

    def dumps(self, obj: Any) -> bytes:
        return repr(obj).encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()


def test_djangos_default_json_serializer_gets_the_fast_path() -> None:
    assert session_serializer() is JSONSerializer
    assert session_serializer(signing.JSONSerializer) is JSONSerializer


@pytest.mark.parametrize("serializer", [SiteJSONSerializer, SitePickleSerializer])
def test_a_sites_own_serializer_is_honoured(serializer: type[Any]) -> None:
    path = f"{__name__}.{serializer.__name__}"
    with override_settings(SESSION_SERIALIZER=path):
        assert session_serializer() is serializer
    assert session_serializer(serializer) is serializer
    assert not writes_json(serializer)


def test_the_fast_serializer_is_a_drop_in_for_djangos_in_signing() -> None:
    value = {"é": [1, 2**70, NAN]}
    signed = signing.dumps(value, serializer=JSONSerializer)
    assert same(signing.loads(signed, serializer=signing.JSONSerializer), {"é": [1, 2**70, NAN]})
    old = signing.dumps(value, serializer=signing.JSONSerializer)
    assert same(signing.loads(old, serializer=JSONSerializer), {"é": [1, 2**70, NAN]})
    assert writes_json(JSONSerializer)
    assert writes_json(signing.JSONSerializer)
