"""Typed events: dataclasses registered under an event type name and schema version.

.. code-block:: python

    from pyes.typed import event, registry

    @event()                                  # type "Deposited", schema version 1
    @dataclass(frozen=True)
    class Deposited:
        amount: Decimal

    store.append("account-1", [registry.to_new_event(Deposited(Decimal("10.10")))])
    [registry.decode(e) for e in store.read_stream("account-1")]   # [Deposited(amount=Decimal('10.10'))]
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .records import NewEvent, RecordedEvent
from .serialization import decode_dataclass, encode, encode_dataclass

__all__ = ["EventRegistry", "GenericEvent", "MissingUpcaster", "UnknownEventClass", "event", "registry", "upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_C = TypeVar("_C", bound=type[Any])

# What pyes.append accepts as an event type (sql/functions/030_validate.sql), and its largest
# schema_version (nine digits).
_TYPE_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_.:/$-]*")
_MAX_TYPE_LENGTH = 255
_MAX_VERSION = 999_999_999


class UnknownEventClass(LookupError):
    """The class is not registered as an event."""


class MissingUpcaster(LookupError):
    """Data of an older schema version has no upcaster to the next version, and no class is
    registered for the version it stopped at (see docs/schema-evolution.md)."""


@dataclass(frozen=True)
class GenericEvent:
    """An event whose (type, schema version) has no registered class: its data as stored."""

    type: str
    schema_version: int
    data: dict[str, Any]


class EventRegistry:
    """Maps event classes (dataclasses) to (type name, schema version), and back."""

    def __init__(self) -> None:
        self._classes: dict[tuple[str, int], type[Any]] = {}
        self._keys: dict[type[Any], tuple[str, int]] = {}
        # (type, from_version) -> (new type name or None, function): Python upcasters.
        self._upcasters: dict[tuple[str, int], tuple[str | None, Upcaster]] = {}
        self._lock = threading.Lock()

    def register(self, cls: _C, *, name: str | None = None, version: int = 1) -> _C:
        """Register the dataclass ``cls`` as event type ``name`` (default: the class's name) at
        schema ``version``. Registering the same class the same way again does nothing."""
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"{cls!r} is not a dataclass; put @event above @dataclass")
        name = cls.__name__ if name is None else name
        if not (isinstance(name, str) and len(name) <= _MAX_TYPE_LENGTH and _TYPE_NAME.fullmatch(name)):
            raise ValueError(
                f"invalid event type name {name!r}: 1 to 255 characters, a letter, _ or $, "
                "then letters, digits or _ . : / $ -"
            )
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= _MAX_VERSION:
            raise ValueError(f"invalid schema version {version!r}: a whole number from 1 to {_MAX_VERSION}")
        key = (name, version)
        with self._lock:
            bound = self._classes.get(key)
            if bound is not None and bound is not cls:
                raise ValueError(f"event type {name!r} version {version} is already bound to {bound.__qualname__}")
            known = self._keys.get(cls)
            if known is not None and known != key:
                raise ValueError(f"{cls.__qualname__} is already registered as {known[0]!r} version {known[1]}")
            self._classes[key] = cls
            self._keys[cls] = key
        return cls

    @overload
    def event(self, name: _C, /) -> _C: ...

    @overload
    def event(self, name: str | None = None, *, version: int = 1) -> Callable[[_C], _C]: ...

    def event(self, name: str | type[Any] | None = None, *, version: int = 1) -> Any:
        """Class decorator that registers the dataclass below it: ``@registry.event()``,
        ``@registry.event("Deposited", version=2)``, or bare ``@registry.event``."""
        if isinstance(name, type):
            return self.register(name)

        def decorate(cls: _C) -> _C:
            return self.register(cls, name=name, version=version)

        return decorate

    def upcaster(self, type: str, *, from_version: int, to_type: str | None = None) -> Callable[[Upcaster], Upcaster]:
        """Function decorator: the function turns the data (a dict) of ``type`` at
        ``from_version`` into the data of ``from_version + 1`` (of ``to_type`` if given: a
        rename). Python upcasters run after the SQL ones, when events are decoded."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.register_upcaster(type, from_version, fn, to_type=to_type)
            return fn

        return decorate

    def register_upcaster(self, type: str, from_version: int, fn: Upcaster, *, to_type: str | None = None) -> None:
        if isinstance(from_version, bool) or not isinstance(from_version, int) or not 1 <= from_version < _MAX_VERSION:
            raise ValueError(f"invalid schema version {from_version!r}: a whole number from 1 to {_MAX_VERSION - 1}")
        if to_type == type:
            raise ValueError(f"the upcaster of {type!r} v{from_version} renames the type to itself")
        key = (type, from_version)
        with self._lock:
            known = self._upcasters.get(key)
            if known is not None and known != (to_type, fn):
                raise ValueError(f"{type!r} version {from_version} already has the upcaster {known[1].__qualname__}")
            self._upcasters[key] = (to_type, fn)

    def upcasters(self) -> dict[tuple[str, int], tuple[str | None, Upcaster]]:
        """A copy of the Python upcasters: (type, from_version) -> (new type or None, function)."""
        with self._lock:
            return dict(self._upcasters)

    def current_version(self, type: str) -> int | None:
        """The highest schema version of ``type`` that the code knows: of a registered class or
        produced by a Python upcaster (None: neither)."""
        versions = [v for (t, v) in self._classes if t == type]
        versions += [v + 1 for (t, v), (to, _fn) in self._upcasters.items() if (to or t) == type]
        return max(versions, default=None)

    def upcast(self, type: str, schema_version: int, data: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]]:
        """Apply the Python upcasters from (``type``, ``schema_version``) on: the type,
        version and data they lead to (unchanged when there is none)."""
        current = dict(data)
        while True:
            step = self._upcasters.get((type, schema_version))
            if step is None:
                return type, schema_version, current
            to_type, fn = step
            current = fn(dict(current))
            if not isinstance(current, dict):
                raise TypeError(f"the upcaster {fn.__qualname__} of {type!r} v{schema_version} returned "
                                f"{current!r}, not a dict")
            type, schema_version = to_type or type, schema_version + 1

    def type_of(self, cls_or_instance: Any) -> tuple[str, int]:
        """(type name, schema version) of a registered class or of an instance of one."""
        cls = cls_or_instance if isinstance(cls_or_instance, type) else type(cls_or_instance)
        try:
            return self._keys[cls]
        except KeyError:
            raise UnknownEventClass(f"{cls.__qualname__} is not a registered event class") from None

    def to_new_event(
        self,
        instance: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> NewEvent:
        """The :class:`~pyes.records.NewEvent` to append for ``instance`` (an instance of a
        registered class). Its data and metadata are :func:`~pyes.serialization.encode`-d."""
        if isinstance(instance, type):
            raise TypeError(f"to_new_event takes an instance, not the class {instance.__qualname__}")
        name, version = self.type_of(instance)
        return NewEvent(
            type=name,
            data=encode_dataclass(instance, "data"),  # registered classes are dataclasses
            metadata=encode(dict(metadata), path="metadata") if metadata is not None else {},
            id=uuid.uuid4() if id is None else id,
            schema_version=version,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )

    def decode(self, recorded: RecordedEvent) -> Any:
        """The registered class for the event's (type, schema version), built from its data,
        after the Python upcasters (:meth:`upcaster`) took it as far as they go; a
        :class:`GenericEvent` when no class is registered. Raises
        :class:`~pyes.serialization.SerializationError` if the data does not fit the class, and
        :class:`MissingUpcaster` if the data stops below the current version with no class for it."""
        return self.decode_data(recorded.type, recorded.schema_version, recorded.data)

    def decode_data(self, type: str, schema_version: int, data: Mapping[str, Any]) -> Any:
        """:meth:`decode` from the three fields it needs (for readers that fetch no more)."""
        if self._upcasters:
            type, schema_version, data = self.upcast(type, schema_version, data)
        cls = self._classes.get((type, schema_version))
        if cls is None:
            current = self.current_version(type) if self._upcasters or self._classes else None
            if current is not None and schema_version < current:
                raise MissingUpcaster(
                    f"{type!r} version {schema_version} cannot be decoded: no upcaster to version "
                    f"{schema_version + 1} (the code knows up to version {current}) and no class for version {schema_version}"
                )
            return GenericEvent(type, schema_version, dict(data))
        return decode_dataclass(data, cls, "data")  # registered classes are dataclasses

    def classes(self) -> dict[tuple[str, int], type[Any]]:
        """A copy of the registrations: (type name, schema version) -> class."""
        with self._lock:
            return dict(self._classes)

    def __contains__(self, cls_or_instance: object) -> bool:
        cls = cls_or_instance if isinstance(cls_or_instance, type) else type(cls_or_instance)
        return cls in self._keys


registry = EventRegistry()
"""The default registry."""

event = registry.event
"""Register a dataclass in the default registry: ``@event()`` or ``@event("Name", version=2)``."""

upcaster = registry.upcaster
"""Register a Python upcaster in the default registry: ``@upcaster("Name", from_version=1)``."""
