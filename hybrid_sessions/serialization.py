"""Session data as JSON, written and read with orjson where that means what ``json`` means.

Django's default ``SESSION_SERIALIZER``, ``django.core.signing.JSONSerializer``,
is the standard library's ``json``. orjson is several times faster, but it does
not mean the same thing everywhere: it writes ``UUID``, ``Enum`` members and
``orjson.Fragment`` that ``json`` refuses, turns NaN and the infinities into
``null``, reads integers beyond 64 bits as floats, and refuses lone surrogates,
``NaN`` literals and non-``str`` dict keys that ``json`` accepts. So orjson only
takes what it handles exactly as ``json`` does, and everything else is left to
the standard library, which then gives ``json``'s result or ``json``'s error:

- On the way out, ``marshal.dumps`` (C, about twice orjson's own cost, a
  fraction of ``json``'s) accepts only objects built of the exact built-in
  types: no subclass, ``UUID``, ``Enum``, ``datetime`` or class of the site's.
  orjson then refuses the built-ins JSON has no form for (``bytes``, ``set``,
  ``complex``...), non-``str`` keys, ints beyond 64 bits, lone surrogates and
  nesting past 255 levels; a ``null`` in its output is checked for a NaN or
  infinity that it stands for.
- On the way in, orjson reads anything it accepts as ``json`` would, except an
  integer beyond 64 bits: text with a run of 19 digits is read by ``json``.

What :func:`dumps` writes is ASCII, as Django's serializer writes it, so a
reader of that format (Django's ``JSONSerializer``, or a subclass a site
switches ``SESSION_SERIALIZER`` to later) reads it identically; :func:`loads`
reads both. :func:`dumps_utf8` writes non-ASCII text as UTF-8, for cookie
claims, where it is shorter.
"""

from __future__ import annotations

import json
import marshal
import math
from typing import Any, Protocol

import orjson
from django.conf import settings
from django.core import signing
from django.utils.module_loading import import_string

__all__ = [
    "JSONSerializer",
    "Serializer",
    "dumps",
    "dumps_utf8",
    "loads",
    "session_serializer",
    "writes_json",
]

#: A date, a dataclass or a subclass of a built-in is refused rather than
#: converted: a second line behind the ``marshal`` guard, at no cost.
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
#: Digits become ``0``, everything else a space: a run of 19 zeros is a number
#: (or part of a string) that orjson might read past 64 bits.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_NUMBER = b"0" * 19

_json_ascii = json.JSONEncoder(separators=(",", ":")).encode
_json_utf8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json_decode = json.JSONDecoder().decode
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_OrjsonDecodeError = orjson.JSONDecodeError
_marshal = marshal.dumps
_isfinite = math.isfinite


def _all_finite(obj: Any) -> bool:
    """No float in ``obj`` is NaN or infinite (orjson writes ``null`` for them).

    Only called on what orjson accepted: exact built-in containers, at most 255
    levels deep, no cycles.
    """
    if type(obj) is float:
        return _isfinite(obj)
    if type(obj) is dict:
        return all(map(_all_finite, obj.values()))
    if type(obj) is list or type(obj) is tuple:
        return all(map(_all_finite, obj))
    return True


def dumps(obj: Any) -> bytes:
    """``obj`` as Django's ``JSONSerializer`` would store it: ASCII JSON.

    Raises what ``json.dumps`` raises for what it refuses: ``TypeError`` for a
    type JSON has no form for, ``ValueError`` for a circular reference,
    ``RecursionError`` for nesting too deep.
    """
    try:
        _marshal(obj)  # ValueError: not made of the exact built-in types only
        out = _orjson_dumps(obj, option=_OPTIONS)  # TypeError: not JSON as orjson sees it
    except Exception:  # whatever either objects to, json decides
        return _json_ascii(obj).encode("ascii")
    if out.isascii() and (b"null" not in out or _all_finite(obj)):
        return out
    return _json_ascii(obj).encode("ascii")


def dumps_utf8(obj: Any) -> bytes:
    """``obj`` as compact JSON with non-ASCII text as UTF-8 (shorter in a cookie).

    A lone surrogate, which has no UTF-8 form, is written as the ``\\u`` escape
    ``json.dumps`` would write. Refuses what :func:`dumps` refuses.
    """
    try:
        _marshal(obj)
        out = _orjson_dumps(obj, option=_OPTIONS)
    except Exception:
        out = None
    if out is not None and (b"null" not in out or _all_finite(obj)):
        return out
    # Outside strings JSON is ASCII, so a lone surrogate can only sit inside
    # one, where backslashreplace writes exactly the escape json would.
    return _json_utf8(obj).encode("utf-8", "backslashreplace")


def loads(blob: bytes) -> Any:
    """The object JSON text (UTF-8, or ASCII as :func:`dumps` writes it) stands for.

    What ``json.loads`` returns, ``NaN``/``Infinity`` literals and integers of
    any size included; raises ``ValueError`` (``json.JSONDecodeError``, or
    ``UnicodeDecodeError`` for bytes that are not UTF-8) or ``RecursionError``
    where it would.
    """
    if _LONG_NUMBER not in blob.translate(_DIGITS):
        try:
            return _orjson_loads(blob)
        except _OrjsonDecodeError:
            pass  # perhaps json's own extensions: let json decide
    return _json_decode(blob.decode())


class Serializer(Protocol):
    """What ``SESSION_SERIALIZER`` names: a class whose instances dump and load."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JSONSerializer:
    """Django's ``JSONSerializer``, accelerated: the same JSON, the same refusals."""

    def dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def loads(self, data: bytes) -> Any:
        return loads(data)


def session_serializer(configured: type[Any] | None = None) -> type[Serializer]:
    """The serializer class for session data.

    ``configured`` (by default the class ``SESSION_SERIALIZER`` names), except
    Django's own ``JSONSerializer``, exactly that class, which is replaced by
    :class:`JSONSerializer`. A subclass of it, or any other class, is the
    site's choice and is returned as it is.
    """
    if configured is None:
        configured = import_string(settings.SESSION_SERIALIZER)
    if configured is signing.JSONSerializer:
        return JSONSerializer
    chosen: type[Serializer] = configured
    return chosen


def writes_json(serializer: type[Any]) -> bool:
    """Whether ``serializer`` is one whose output is this module's (or Django's) JSON."""
    return serializer is JSONSerializer or serializer is signing.JSONSerializer
