"""The drift check (``pyes check``, docs/schema-evolution.md): does every stored and every
declared event version reach its type's current version, does every handler handle the
current versions, and is any projection built from older versions?

:func:`check` returns a :class:`CheckReport`; ``pyes check`` prints it and exits 1 when it
has problems. The database side is ``pyes.schema_drift()``; the code side (typed event
classes, Python upcasters, aggregates and Python projections or subscriptions with typed
handlers) comes from the registry and the modules given.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import psycopg

from .errors import translate
from .evolution import json_schema, register_schemas
from .store import EventStore
from .typed import EventRegistry, UnknownEventClass
from .typed import registry as default_registry

__all__ = ["CheckReport", "Problem", "check", "handlers_in"]


@dataclass(frozen=True)
class Problem:
    """One finding: its kind (docs/schema-evolution.md lists them), what it is about, and why."""

    kind: str
    subject: str
    detail: str


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    #: What was looked at: {"stored versions": n, "event classes": n, ...}.
    checked: dict[str, int] = field(default_factory=dict)
    #: Type -> current version (database and code together).
    current: dict[str, int] = field(default_factory=dict)
    #: What --register changed in the database.
    registered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        """The report as plain text (what ``pyes check`` prints, without colours)."""
        lines = [f"checked: {', '.join(f'{n} {what}' for what, n in self.checked.items())}"]
        if self.registered:
            lines.append(f"registered: {', '.join(self.registered)}")
        if self.current:
            lines.append("current versions: " + ", ".join(f"{t} v{v}" for t, v in sorted(self.current.items())))
        if self.ok:
            lines.append("no problems")
        else:
            lines.append(f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}:")
            lines += [f"  {p.kind}: {p.subject}: {p.detail}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Handler:
    name: str
    declared: tuple[str, ...] | None
    handled: tuple[type[Any], ...]


def handlers_in(module: ModuleType) -> list[Any]:
    """What in ``module`` declares typed handlers: aggregates, Python projections and any class
    or object with ``@handles`` methods (and, optionally, ``event_types`` or ``types``)."""
    found: list[Any] = []
    for value in vars(module).values():
        if inspect.isclass(value):
            if value.__module__ != module.__name__:
                continue
            target = value
        elif inspect.ismodule(value) or inspect.isroutine(value):
            continue
        else:
            target = type(value)
        if any(getattr(member, "_pyes_handles", None) is not None for _name, member in inspect.getmembers(target)):
            found.append(value)
    return found


def _describe(holder: Any) -> _Handler:
    cls = holder if inspect.isclass(holder) else type(holder)
    handled = tuple(member._pyes_handles for _name, member in inspect.getmembers(cls)
                    if getattr(member, "_pyes_handles", None) is not None)
    declared = getattr(holder, "event_types", None) or getattr(holder, "types", None)
    name = getattr(holder, "name", None)
    label = f"{cls.__name__}" + (f" ({name})" if isinstance(name, str) else "")
    return _Handler(label, tuple(declared) if declared else None, handled)


def check(
    source: EventStore | str | psycopg.Connection[Any],
    *,
    registry: EventRegistry = default_registry,
    modules: Sequence[str | ModuleType] = (),
    handlers: Iterable[Any] = (),
    register: bool = False,
) -> CheckReport:
    """Check the database behind ``source`` against the code: the classes and Python upcasters
    of ``registry``, the typed handlers found in ``modules`` (imported by name) and those in
    ``handlers``. With ``register``, first register the registry's schemas and Python upcasters
    (pyes.evolution.register_schemas) and commit."""
    holders = list(handlers)
    for module in modules:
        loaded = importlib.import_module(module) if isinstance(module, str) else module
        holders += handlers_in(loaded)
    if isinstance(source, psycopg.Connection):
        return _check(source, registry, holders, register)
    if isinstance(source, EventStore):
        with source.connection() as conn:
            return _check(conn, registry, holders, register)
    with psycopg.connect(source, autocommit=True) as conn:
        return _check(conn, registry, holders, register)


def _check(conn: psycopg.Connection[Any], registry: EventRegistry, holders: list[Any], register: bool) -> CheckReport:
    try:
        return _run(conn, registry, holders, register)
    except psycopg.Error as error:
        raise translate(error) from error


def _run(conn: psycopg.Connection[Any], registry: EventRegistry, holders: list[Any], register: bool) -> CheckReport:
    report = CheckReport()
    if register:
        with conn.transaction():
            report.registered = register_schemas(conn, registry)
    classes = registry.classes()
    py_steps = registry.upcasters()
    db_steps = {(t, v): (to, lang, fn) for t, v, to, lang, fn in conn.execute(
        "SELECT type, from_version, to_type, language, function::text FROM pyes.event_upcasters").fetchall()}
    db_current = dict(conn.execute(
        "SELECT type, current_version FROM pyes.event_type_versions WHERE current_version > 0").fetchall())
    db_schemas = {(t, v): s for t, v, s in conn.execute("SELECT type, version, schema FROM pyes.event_schemas").fetchall()}
    stored = conn.execute("SELECT type, schema_version, count(*) FROM pyes.events GROUP BY 1, 2 ORDER BY 1, 2").fetchall()

    types = set(db_current) | {t for t, _v in classes} | {to or t for (t, _v), (to, _f) in py_steps.items()}
    current: dict[str, int] = {}
    for t in sorted(types):
        versions = [v for v in (db_current.get(t), registry.current_version(t)) if v]
        if versions:
            current[t] = max(versions)
    report.current = current

    def path_problem(t: str, v: int) -> str | None:
        start = (t, v)
        python_at: str | None = None
        while True:
            db = db_steps.get((t, v))
            py = py_steps.get((t, v))
            if db is None and py is None:
                break
            if db is not None and db[1] == "sql":
                if python_at is not None and db[2] is not None:
                    return (f"the SQL upcaster {db[2]} ({t} v{v} -> v{v + 1}) comes after the Python step from "
                            f"{python_at}: Python clients cannot run it")
                to = db[0]
            else:
                python_at = python_at or f"{t} v{v}"
                if py is None:
                    return f"the database declares a Python upcaster for {t} v{v} -> v{v + 1}, and the code has none"
                to = py[0]
            t, v = to or t, v + 1
        reached = "" if (t, v) == start else f", reached from {start[0]} v{start[1]}"
        cur = current.get(t)
        if cur is not None and v < cur:
            return f"no upcaster from {t} v{v} to v{v + 1} (the current version is {cur}){reached}"
        if cur is not None and v > cur:
            return f"{t} v{v} is newer than the current version {cur}: no schema, class or upcaster knows it{reached}"
        return None

    # 1. Stored and declared versions must reach the current version.
    for t, v, count in stored:
        why = path_problem(t, v)
        if why:
            report.problems.append(Problem("no_upcast_path", f"{t} v{v}", f"{why}; {count} stored event{'s' if count != 1 else ''}"))
    for (t, v), cls in sorted(classes.items()):
        why = path_problem(t, v)
        if why:
            report.problems.append(Problem("no_upcast_path", f"{t} v{v}", f"{why}; declared in code by {cls.__qualname__}"))
    # The code and the database agree on schemas and Python steps.
    for (t, v), cls in sorted(classes.items()):
        registered = db_schemas.get((t, v))
        if registered is None:
            report.problems.append(Problem("schema_not_registered", f"{t} v{v}",
                                           f"{cls.__qualname__} is not registered in the database (appends are not "
                                           "checked, SQL readers do not know this version): pyes check --register"))
        elif registered != json_schema(cls):
            report.problems.append(Problem("schema_differs", f"{t} v{v}",
                                           f"{cls.__qualname__} has the fields {json_schema(cls)['properties']}, the database "
                                           f"{registered.get('properties')}: a changed event is a new version "
                                           f"(@event({t!r}, version={v + 1}) and an upcaster from {v})"))
    for (t, v), (to, fn) in sorted(py_steps.items()):
        if (t, v) not in db_steps:
            report.problems.append(Problem("upcaster_not_registered", f"{t} v{v}",
                                           f"the Python upcaster {fn.__qualname__} is not declared in the database (SQL "
                                           "readers report its step as missing): pyes check --register"))
    # 2. Handlers of a type handle its current version.
    declared_count = 0
    for holder in holders:
        info = _describe(holder)
        handled: dict[str, set[int]] = {}
        for cls in info.handled:
            try:
                t, v = registry.type_of(cls)
            except UnknownEventClass:
                continue
            handled.setdefault(t, set()).add(v)
        for t in info.declared if info.declared is not None else tuple(handled):
            declared_count += 1
            cur = current.get(t)
            if cur is not None and cur not in handled.get(t, set()):
                have = ", ".join(f"v{v}" for v in sorted(handled.get(t, set()))) or "no version"
                report.problems.append(Problem("no_handler_for_current", info.name,
                                               f"it handles {t} ({have}) but not its current version {cur}"))
    # 3. The database side: renamed types in projection filters, stale projections.
    for kind, subject, detail in conn.execute(
            "SELECT problem, subject, detail FROM pyes.schema_drift() WHERE problem <> 'no_upcast_path'").fetchall():
        report.problems.append(Problem(kind, subject, detail))
    projections = conn.execute("SELECT count(*) FROM pyes.projections").fetchone()
    report.checked = {
        "stored versions": len(stored),
        "event classes": len(classes),
        "upcasters": len(set(db_steps) | set(py_steps)),
        "handlers": len(holders),
        "declared types": declared_count,
        "projections": int(projections[0]) if projections else 0,
    }
    return report

