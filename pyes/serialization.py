"""Lossless JSON for event data.

:func:`encode` turns Python values into JSON-compatible data (``Decimal`` as its exact string,
times as ISO 8601 with their offset, ...); :func:`decode` turns that data back, driven by a type
hint. ``decode(encode(x), type(x)) == x`` for every supported value. :func:`dumps` can be
passed to ``EventStore(json_dumps=...)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = ["SerializationError", "decode", "dumps", "encode"]


class SerializationError(ValueError):
    """A value has no lossless JSON form, or JSON data does not fit its type hint. The message
    starts with the path of the offending value, such as ``data.items[2].price``."""


# -- encoding ------------------------------------------------------------------------------


def encode(value: Any, *, path: str = "value") -> Any:
    """``value`` as JSON-compatible data (dicts, lists, str, int, float, bool, None), losslessly.

    ``path`` names ``value`` in error messages."""
    if value is None or type(value) in _AS_IS_ENCODED:
        return value
    if isinstance(value, Enum):
        return encode(value.value, path=path)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"{path}: the float {value!r} has no JSON form")
        return float(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None:
            raise SerializationError(f"{path}: the datetime {value.isoformat()} is naive; give it a time zone")
        if offset.microseconds:
            # datetime.fromisoformat (3.11) drops such offsets; no real time zone has them.
            raise SerializationError(f"{path}: the UTC offset {offset} of {value!r} has a fraction of a second")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        if value.tzinfo is not None and value.utcoffset() is None:
            raise SerializationError(f"{path}: the time zone of {value!r} has no fixed UTC offset")
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode_dataclass(value, path)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{path}: the key {key!r} is a {_type_name(key)}; JSON object keys must be strings"
                )
            key = str.__str__(key)  # a str subclass (such as a str-valued Enum) as a plain str
            out[key] = encode(item, path=f"{path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [encode(item, path=f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [encode(item, path=f"{path}[{i}]") for i, item in enumerate(value)]
        return sorted(items, key=_canonical)  # the same set gives the same JSON text
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    raise SerializationError(f"{path}: cannot encode a value of type {_type_name(value)}")


def encode_dataclass(value: Any, path: str) -> dict[str, Any]:
    """:func:`encode` of a dataclass instance: an object of its fields. A field of a plain str,
    int or bool, or None, is taken as it is without the call (most event fields are)."""
    out: dict[str, Any] = {}
    for name in _field_names(type(value)):
        item = getattr(value, name)
        out[name] = item if item is None or type(item) in _AS_IS_ENCODED else encode(item, path=f"{path}.{name}")
    return out


_AS_IS_ENCODED = (str, int, bool)  # what encode returns unchanged, checked first there too
_FIELD_NAMES: weakref.WeakKeyDictionary[type[Any], tuple[str, ...]] = weakref.WeakKeyDictionary()


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def dumps(value: Any) -> str:
    """Compact JSON text of :func:`encode` (``value``); usable as ``EventStore(json_dumps=dumps)``."""
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False)


def _canonical(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False)


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# -- decoding ------------------------------------------------------------------------------


def decode(value: Any, hint: Any, *, path: str = "value") -> Any:
    """JSON data ``value`` (as :func:`encode` makes it) back as an instance of the type ``hint``.

    ``path`` names ``value`` in error messages."""
    if hint is Any or hint is object:
        return value
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise _mismatch(path, "null", value)
    if type(hint) is type and dataclasses.is_dataclass(hint):  # an event class: the common case first
        return decode_dataclass(value, hint, path)
    origin = get_origin(hint)
    if origin is not None:
        return _decode_generic(value, hint, origin, get_args(hint), path)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return _decode_enum(value, hint, path)
        if dataclasses.is_dataclass(hint):
            return decode_dataclass(value, hint, path)
        scalar = _SCALARS.get(hint)
        if scalar is not None:
            return scalar(value, path)
        if hint in (list, tuple, set, frozenset, dict):  # unparameterised: items are Any
            return _decode_generic(value, hint, hint, None, path)
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return decode(value, supertype, path=path)
    raise SerializationError(f"{path}: cannot decode into the type {hint!r}")


def _decode_generic(value: Any, hint: Any, origin: Any, args: tuple[Any, ...] | None, path: str) -> Any:
    """``list[X]``, ``tuple[...]``, ``set[X]``, ``frozenset[X]``, ``dict[K, V]``, unions, ``Literal``,
    ``Annotated``. ``args`` is None for a bare container."""
    if origin is Union or origin is types.UnionType:
        return _decode_union(value, hint, args or (), path)
    if origin is Literal:
        for choice in args or ():
            wanted = choice.value if isinstance(choice, Enum) else choice
            if type(value) is type(wanted) and value == wanted:
                return choice
        raise _mismatch(path, f"one of {list(args or ())!r}", value)
    if origin is Annotated:
        return decode(value, (args or (Any,))[0], path=path)
    if origin is dict:
        key_hint, item_hint = args or (str, Any)
        if not isinstance(value, Mapping):
            raise _mismatch(path, "an object", value)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _mismatch(f"{path}[{key!r}]", "a string key", key)
            try:
                out[decode(key, key_hint, path=f"{path}[{key!r}]")] = decode(item, item_hint, path=f"{path}[{key!r}]")
            except TypeError as error:
                raise SerializationError(f"{path}[{key!r}]: the key is not hashable: {error}") from error
        return out
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            raise _mismatch(path, "an array", value)
        if origin is tuple and args is not None and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise SerializationError(f"{path}: expected an array of {len(args)} items, got {len(value)}")
            return tuple(decode(item, arg, path=f"{path}[{i}]") for i, (item, arg) in enumerate(zip(value, args)))
        item_hint = args[0] if args else Any
        items = [decode(item, item_hint, path=f"{path}[{i}]") for i, item in enumerate(value)]
        if origin is list:
            return items
        if origin is tuple:
            return tuple(items)
        try:
            return set(items) if origin is set else frozenset(items)
        except TypeError as error:
            raise SerializationError(f"{path}: the items of a set must be hashable: {error}") from error
    raise SerializationError(f"{path}: cannot decode into the type {hint!r}")


def _decode_union(value: Any, hint: Any, members: tuple[Any, ...], path: str) -> Any:
    """None first (if the union allows it), then each member in order: the first that fits."""
    if value is None and type(None) in members:
        return None
    problems = []
    for member in members:
        if member is type(None):
            continue
        try:
            return decode(value, member, path=path)
        except SerializationError as error:
            problems.append(str(error))
    raise SerializationError(f"{path}: {_describe(value)} fits no member of {hint!r} ({'; '.join(problems)})")


def _decode_enum(value: Any, cls: type[Enum], path: str) -> Enum:
    """The member of ``cls`` whose encoded value is ``value``."""
    if not isinstance(value, bool) or any(isinstance(m.value, bool) for m in cls):  # True is no IntEnum 1
        try:
            return cls(value)
        except (ValueError, TypeError):
            pass
        for member in cls:
            if encode(member.value) == value:
                return member
    raise _mismatch(path, f"a value of {cls.__qualname__} ({[encode(m.value) for m in cls]!r})", value)


def decode_dataclass(value: Any, cls: type[Any], path: str) -> Any:
    """``cls`` (a dataclass) from a JSON object, field by field: a missing field takes its
    default, unknown keys are ignored. The same as :func:`decode` with ``cls`` as the hint,
    without its dispatch on the hint, which cost a quarter of the decoding of a typical event."""
    if not isinstance(value, Mapping):
        raise _mismatch(path, f"an object for {cls.__qualname__}", value)
    kwargs: dict[str, Any] = {}
    for name, decode_field, required, exact in _dataclass_plan(cls, path):
        item = value.get(name, _MISSING)
        if item is _MISSING:
            if required:
                raise SerializationError(f"{path}.{name}: the required field of {cls.__qualname__} is missing")
        elif type(item) is exact:
            kwargs[name] = item  # what the scalar decoder would return, without the call
        else:
            kwargs[name] = decode_field(item, f"{path}.{name}")
    try:
        return cls(**kwargs)
    except SerializationError:
        raise
    except (TypeError, ValueError) as error:
        raise SerializationError(f"{path}: {cls.__qualname__} refused the data: {error}") from error


_MISSING = object()
# Field types whose JSON value, when of exactly that Python type, is the decoded value as is
# (the scalar decoders return it unchanged): the plan marks them so that the common case
# skips the call. bool is not an int here: type(True) is bool.
_AS_IS = (str, int, float, bool)

_FieldPlan = list[tuple[str, Callable[[Any, str], Any], bool, type[Any] | None]]
_PLANS: weakref.WeakKeyDictionary[type[Any], _FieldPlan] = weakref.WeakKeyDictionary()


def _dataclass_plan(cls: type[Any], path: str) -> _FieldPlan:
    """How to decode each init field of ``cls``: (name, decoder, required, the type a value may
    have to be taken as is), worked out once per class. A field of a scalar type gets its scalar
    decoder directly, skipping the dispatch of :func:`decode` (most event fields are scalars,
    and aggregates decode thousands of events)."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = _field_hints(cls, path)
        plan = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            hint = hints[f.name]
            scalar = _SCALARS.get(hint) if isinstance(hint, type) else None
            decoder = scalar if scalar is not None else _field_decoder(hint)
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            plan.append((f.name, decoder, required, hint if hint in _AS_IS else None))
        _PLANS[cls] = plan
    return plan


def _field_decoder(hint: Any) -> Callable[[Any, str], Any]:
    def _decode_field(value: Any, path: str) -> Any:
        return decode(value, hint, path=path)

    return _decode_field


_HINTS: weakref.WeakKeyDictionary[type[Any], dict[str, Any]] = weakref.WeakKeyDictionary()


def _field_hints(cls: type[Any], path: str) -> dict[str, Any]:
    """The resolved field types of ``cls``; string annotations (``from __future__ import
    annotations``) must name something in the class's module."""
    hints = _HINTS.get(cls)
    if hints is not None:
        return hints
    try:
        hints = _HINTS[cls] = get_type_hints(cls)
        return hints
    except NameError as error:
        raise SerializationError(f"{path}: cannot resolve the field types of {cls.__qualname__}: {error}") from error


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{_type_name(value)} {text if len(text) <= 60 else text[:57] + '...'}"


def _mismatch(path: str, expected: str, value: Any) -> SerializationError:
    return SerializationError(f"{path}: expected {expected}, got {_describe(value)}")


def _str(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    raise _mismatch(path, "a string", value)


def _int(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _mismatch(path, "an integer", value)


def _float(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError as error:
            raise SerializationError(f"{path}: the integer is too large for a float") from error
    raise _mismatch(path, "a number", value)


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _mismatch(path, "true or false", value)


def _decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise _mismatch(path, "a decimal number as a string", value) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise _mismatch(path, "a decimal as a string such as \"10.10\" (a float would not be exact)", value)


def _iso(parse: Callable[[str], Any], what: str) -> Callable[[Any, str], Any]:
    def _decode(value: Any, path: str) -> Any:
        if isinstance(value, str):
            try:
                return parse(value)
            except ValueError:
                pass
        raise _mismatch(path, what, value)

    return _decode


def _datetime(value: Any, path: str) -> datetime:
    result: datetime = _iso(datetime.fromisoformat, "an ISO 8601 date and time with a UTC offset")(value, path)
    if result.utcoffset() is None:
        raise _mismatch(path, "an ISO 8601 date and time with a UTC offset", value)
    return result


_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    Decimal: _decimal,
    datetime: _datetime,
    date: _iso(date.fromisoformat, "an ISO 8601 date"),
    time: _iso(time.fromisoformat, "an ISO 8601 time"),
    uuid.UUID: _iso(uuid.UUID, "a UUID as a string"),
}
