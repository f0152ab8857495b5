"""Schema evolution from Python (docs/schema-evolution.md): the JSON Schema of typed event
classes, and registering schemas and upcasters in the database.

.. code-block:: python

    @event("AccountBalanceDeposited", version=2)
    @dataclass(frozen=True)
    class AccountBalanceDeposited:
        amount: Decimal
        currency: str = "EUR"

    register_sql_upcaster(conn, "AccountBalanceDeposited", 1, "bank.deposited_v1_to_v2(jsonb)")
    register_schemas(conn)        # every class of the registry, and its Python upcasters
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, Union

import psycopg
from psycopg.types.json import Jsonb

from .errors import translate
from .typed import EventRegistry
from .typed import registry as default_registry

__all__ = ["json_schema", "register_schemas", "register_sql_upcaster"]

Conn = psycopg.Connection[Any]

_ANY: frozenset[str] = frozenset()  # no constraint
_SCALARS: dict[Any, frozenset[str]] = {
    str: frozenset({"string"}),
    int: frozenset({"integer"}),
    float: frozenset({"number"}),
    bool: frozenset({"boolean"}),
    # What pyes.serialization encodes (a string) and also accepts (an integer).
    Decimal: frozenset({"string", "integer"}),
    datetime: frozenset({"string"}),
    date: frozenset({"string"}),
    time: frozenset({"string"}),
    uuid.UUID: frozenset({"string"}),
    dict: frozenset({"object"}),
    list: frozenset({"array"}),
    tuple: frozenset({"array"}),
    set: frozenset({"array"}),
    frozenset: frozenset({"array"}),
    type(None): frozenset({"null"}),
}


def _json_types(hint: Any) -> frozenset[str]:
    """The JSON types a value of ``hint`` is encoded as (empty: any)."""
    if hint is Any or hint is object:
        return _ANY
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _json_types(typing.get_args(hint)[0])
    if origin is Union or origin is types.UnionType:
        parts = [_json_types(arg) for arg in typing.get_args(hint)]
        return _ANY if any(not p for p in parts) else frozenset().union(*parts)
    if origin is Literal:
        return frozenset().union(*(_value_types(v) for v in typing.get_args(hint)))
    if origin is not None:
        return _json_types(origin)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return frozenset().union(*(_value_types(m.value) for m in hint))
        if dataclasses.is_dataclass(hint) or issubclass(hint, Mapping):
            return frozenset({"object"})
        if hint in _SCALARS:
            return _SCALARS[hint]
        for base, names in _SCALARS.items():  # str and int subclasses, ...
            if base is not type(None) and issubclass(hint, base):
                return names
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:
        return _json_types(supertype)
    return _ANY


def _value_types(value: Any) -> frozenset[str]:
    value = value.value if isinstance(value, Enum) else value
    if isinstance(value, bool):
        return frozenset({"boolean"})
    return _json_types(type(value))


def json_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON Schema (the subset pyes enforces) of a typed event class: its fields as
    properties with their JSON types, the fields without a default as required."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        names = _json_types(hints.get(f.name, Any))
        properties[f.name] = {} if not names else {"type": min(names) if len(names) == 1 else sorted(names)}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {"type": "object", "required": required, "properties": properties}


def register_schemas(conn: Conn, registry: EventRegistry = default_registry, *, replace: bool = False) -> list[str]:
    """Register the schema of every class of ``registry`` (source 'python') and declare its
    Python upcasters (language 'python') in the database, in the caller's transaction. Returns
    what changed ("Type vN schema", "Type vN upcaster"). A registered version whose shape
    differs raises :class:`~pyes.errors.SchemaConflict` (PE608) unless ``replace``: a changed
    class needs a new version."""
    changed: list[str] = []
    try:
        for (name, version), cls in sorted(registry.classes().items()):
            row = conn.execute("SELECT pyes.register_event_schema(%s, %s, %s, 'python', %s)",
                               (name, version, Jsonb(json_schema(cls)), replace)).fetchone()
            if row and row[0]:
                changed.append(f"{name} v{version} schema")
        for (name, from_version), (to_type, _fn) in sorted(registry.upcasters().items()):
            row = conn.execute("SELECT pyes.register_upcaster(%s, %s, NULL, %s, 'python', %s)",
                               (name, from_version, to_type, replace)).fetchone()
            if row and row[0]:
                changed.append(f"{name} v{from_version} upcaster")
    except psycopg.Error as error:
        raise translate(error) from error
    return changed


def register_sql_upcaster(conn: Conn, type: str, from_version: int, function: str | None, *,
                          to_type: str | None = None, replace: bool = False) -> bool:
    """Register an SQL upcaster: ``function`` is a signature such as
    ``"bank.deposited_v1_to_v2(jsonb)"`` (None: a pure rename to ``to_type``)."""
    try:
        row = conn.execute("SELECT pyes.register_upcaster(%s, %s, %s::regprocedure, %s, 'sql', %s)",
                           (type, from_version, function, to_type, replace)).fetchone()
    except psycopg.Error as error:
        raise translate(error) from error
    return bool(row and row[0])
