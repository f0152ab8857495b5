"""Commands that write and read events: ``append``, ``read``, ``tail``, ``event show``,
``trace``, ``streams`` and ``stats``.

Every command opens one connection of its own (autocommit: each call is one statement with a
fresh snapshot) and passes it to the :class:`~pyes.EventStore` methods. A direct connection,
rather than the store's pool, makes an unreachable server fail at once with libpq's own
message instead of the pool's timeout. pyes errors and psycopg errors propagate: the group
(``pyes.cli.PyesGroup``) prints them in one line with their exit code.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import IO, Any, LiteralString

import click
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ..errors import InvalidEvent, InvalidEventId, translate
from ..records import NewEvent, RecordedEvent
from ..store import EventStore
from .common import EXIT_FAILURE, dsn_option, emit, format_option, resolve

#: The most events one call asks the server for (pyes.read_* accept up to 100000).
PAGE = 1000
#: The columns of an event in table output.
EVENT_COLUMNS = ("position", "stream_id", "version", "type", "recorded_at", "data")


# -- plumbing ------------------------------------------------------------------------------


@dataclass
class Session:
    """One connection for the whole command, and a store whose methods run on it."""

    conn: psycopg.Connection[Any]
    store: EventStore

    def query(self, sql: LiteralString, params: dict[str, Any] | Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of an ad-hoc query on the documented tables, as dicts; errors as pyes's."""
        try:
            with self.conn.cursor(row_factory=dict_row) as cur:
                return cur.execute(sql, params).fetchall()
        except psycopg.Error as error:
            raise translate(error) from error


@contextmanager
def session(dsn: str | None) -> Iterator[Session]:
    conninfo = resolve(dsn)
    # The store needs a pool; this one is never opened, since every call passes ``conn``.
    with psycopg.connect(conninfo, autocommit=True) as conn, EventStore(ConnectionPool(conninfo, open=False)) as store:
        yield Session(conn, store)


class NotFound(click.ClickException):
    """Nothing has this id: one line on stderr, exit code 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"pyes: {self.format_message()}", err=True)


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object given on the command line or stdin; anything else is invalid input."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidEvent(f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidEvent(f"{what} must be a JSON object, not {type(value).__name__}: {_clip(text)}")
    return value


def parse_uuid(text: str | None, what: str) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidEventId(f"{what} is not a uuid: {_clip(text)}") from None


def _clip(text: str, width: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def parse_timestamp(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 moment (an option callback); without an offset it is local time."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 timestamp (such as 2026-11-26T07:07:12+00:00)",
                                 ctx, param) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def plain(value: Any) -> Any:
    """A value as JSON has it: uuids as strings, moments and days in ISO 8601."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def event_json(event: RecordedEvent) -> dict[str, Any]:
    """Every field of the event, checkpoint included, as JSON values."""
    return {f.name: plain(getattr(event, f.name)) for f in fields(RecordedEvent)}


def json_default(value: Any) -> Any:
    return plain(value) if isinstance(value, (uuid.UUID, date)) else str(value)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=json_default)


def moment(value: datetime) -> str:
    """A moment as a table shows it: to the second, with its offset."""
    return value.isoformat(sep=" ", timespec="seconds")


def table_cells(row: dict[str, Any]) -> dict[str, Any]:
    return {k: moment(v) if isinstance(v, datetime) else plain(v) for k, v in row.items()}


def event_row(event: RecordedEvent) -> dict[str, Any]:
    """The event as a row of a table (EVENT_COLUMNS)."""
    return {
        "position": event.position,
        "stream_id": event.stream_id,
        "version": event.version,
        "type": event.type,
        "recorded_at": moment(event.recorded_at),
        "data": compact(event.data),
    }


def emit_events(events: Sequence[RecordedEvent], fmt: str, title: str | None = None) -> None:
    if fmt == "table":
        emit([event_row(e) for e in events], fmt, columns=EVENT_COLUMNS, title=title)
    else:
        emit([event_json(e) for e in events], fmt)


def emit_object(obj: dict[str, Any], fmt: str) -> None:
    """One JSON document: indented (json) or on one line (jsonl)."""
    if fmt == "json":
        click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=json_default))
    else:
        click.echo(json.dumps(obj, ensure_ascii=False, default=json_default))


def key_value_rows(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"field": key, "value": compact(value) if isinstance(value, (dict, list)) else plain(value)}
            for key, value in obj.items()]


def limit_option(default: int, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--limit", type=click.IntRange(min=1), default=default, show_default=True, help=help)


def type_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--type", "types", multiple=True, metavar="TYPE", help=help)


# -- append --------------------------------------------------------------------------------


@click.command()
@dsn_option
@format_option
@click.argument("stream")
@click.argument("event_type", metavar="TYPE")
@click.argument("data", required=False)
@click.option("--expected-version", default="any", show_default=True, metavar="any|no_stream|stream_exists|N",
              help="Append only if the stream is in this state; N: at exactly version N (0: no stream).")
@click.option("--metadata", help="The event's metadata: a JSON object.")
@click.option("--id", "event_id", metavar="UUID", help="The event's id (default: a new one). Appending the "
              "same event with the same id again is an idempotent retry.")
@click.option("--correlation-id", metavar="UUID", help="The request or saga the event belongs to.")
@click.option("--causation-id", metavar="UUID", help="The event or command that caused this one.")
def append(dsn: str | None, fmt: str, stream: str, event_type: str, data: str | None, expected_version: str,
           metadata: str | None, event_id: str | None, correlation_id: str | None,
           causation_id: str | None) -> None:
    """Append one event of type TYPE to STREAM.

    DATA is the event's payload, a JSON object; without DATA, or with "-", it is read from
    stdin. Prints the stream's new version and the event's global position.
    """
    if data is None or data == "-":
        if sys.stdin.isatty():
            click.echo("pyes: reading DATA from stdin (end it with Ctrl-D)", err=True)
        data = sys.stdin.read()
    new = NewEvent(
        type=event_type,
        data=parse_json_object(data, "DATA"),
        metadata=parse_json_object(metadata, "--metadata") if metadata is not None else {},
        id=parse_uuid(event_id, "--id") or uuid.uuid4(),
        correlation_id=parse_uuid(correlation_id, "--correlation-id"),
        causation_id=parse_uuid(causation_id, "--causation-id"),
    )
    expected: str | int = int(expected_version) if expected_version.isdigit() else expected_version
    with session(dsn) as s:
        result = s.store.append(stream, [new], expected, conn=s.conn)
    out = {"stream_id": stream, "stream_version": result.stream_version, "positions": list(result.positions)}
    if fmt == "table":
        emit([{**out, "positions": ", ".join(map(str, result.positions))}], fmt,
             columns=("stream_id", "stream_version", "positions"))
    else:
        emit_object(out, fmt)


# -- read ----------------------------------------------------------------------------------


@click.group()
def read() -> None:
    """Read events: of one stream, of every stream, or of one category."""


@read.command("stream")
@dsn_option
@format_option
@click.argument("stream")
@click.option("--from", "from_version", type=click.IntRange(min=0), metavar="VERSION",
              help="First version to read (forward; default 1) or last (backward; default the newest).")
@limit_option(1000, "At most this many events.")
@click.option("--backward", is_flag=True, help="Newest first.")
@type_option("Only events of this type (repeat for several).")
@click.option("--since", callback=parse_timestamp, metavar="TIMESTAMP", help="Only events recorded at or after this moment (ISO 8601; without an offset: local time).")
@click.option("--until", callback=parse_timestamp, metavar="TIMESTAMP", help="Only events recorded at or before this moment (ISO 8601; without an offset: local time).")
def read_stream(dsn: str | None, fmt: str, stream: str, from_version: int | None, limit: int, backward: bool,
                types: tuple[str, ...], since: datetime | None, until: datetime | None) -> None:
    """Events of STREAM in version order."""
    if backward and (since is not None or until is not None):
        raise click.UsageError("--backward cannot be combined with --since or --until")
    wanted = set(types)
    found: list[RecordedEvent] = []
    with session(dsn) as s:
        position = from_version
        while len(found) < limit:
            count = PAGE if wanted else min(PAGE, limit - len(found))
            if since is not None or until is not None:
                page = s.store.read_stream_between(stream, since=since, until=until, from_version=position,
                                                   max_count=count, conn=s.conn)
            else:
                page = s.store.read_stream(stream, from_version=position, max_count=count, backward=backward,
                                           conn=s.conn)
            found.extend(e for e in page if not wanted or e.type in wanted)
            if len(page) < count:
                break
            position = page[-1].version - 1 if backward else page[-1].version + 1
            if position < 1:
                break
    emit_events(found[:limit], fmt, title=stream)


def _read_global(session_: Session, category: str | None, after: str | None, limit: int,
                 types: Sequence[str]) -> list[RecordedEvent]:
    found: list[RecordedEvent] = []
    while len(found) < limit:
        count = min(PAGE, limit - len(found))
        page = _page(session_, category, after, count, types)
        found.extend(page)
        if len(page) < count:
            break
        after = page[-1].checkpoint
    return found


def _page(s: Session, category: str | None, after: str | None, count: int,
          types: Sequence[str]) -> list[RecordedEvent]:
    filter_ = list(types) or None
    if category is None:
        return s.store.read_all(after=after, max_count=count, types=filter_, conn=s.conn)
    return s.store.read_category(category, after=after, max_count=count, types=filter_, conn=s.conn)


def _emit_page(events: Sequence[RecordedEvent], fmt: str, after: str | None, title: str) -> None:
    emit_events(events, fmt, title=title)
    if fmt == "table":
        if events:
            last = events[-1].checkpoint
            click.echo(f"last checkpoint: {last} (continue with --after {last})", err=True)
        else:
            click.echo(f"no events after {after}" if after else "no events", err=True)


@read.command("all")
@dsn_option
@format_option
@click.option("--after", metavar="CHECKPOINT", help="Start after this checkpoint (that of the last event you got).")
@limit_option(1000, "At most this many events.")
@type_option("Only events of this type (repeat for several).")
def read_all(dsn: str | None, fmt: str, after: str | None, limit: int, types: tuple[str, ...]) -> None:
    """Every event, in the global order that never skips a late commit.

    In table format the last checkpoint is printed on stderr: pass it to --after to go on.
    """
    with session(dsn) as s:
        events = _read_global(s, None, after, limit, types)
    _emit_page(events, fmt, after, "all events")


@read.command("category")
@dsn_option
@format_option
@click.argument("category")
@click.option("--after", metavar="CHECKPOINT", help="Start after this checkpoint (that of the last event you got).")
@limit_option(1000, "At most this many events.")
@type_option("Only events of this type (repeat for several).")
def read_category(dsn: str | None, fmt: str, category: str, after: str | None, limit: int,
                  types: tuple[str, ...]) -> None:
    """The events of CATEGORY (the part of stream ids before the first '-'), in the global
    order. In table format the last checkpoint is printed on stderr."""
    with session(dsn) as s:
        events = _read_global(s, category, after, limit, types)
    _emit_page(events, fmt, after, f"category {category}")


# -- tail ----------------------------------------------------------------------------------


def event_line(event: RecordedEvent) -> str:
    row = event_row(event)
    return "\t".join(str(row[column]) for column in EVENT_COLUMNS)


@click.command()
@dsn_option
@format_option
@click.option("--category", help="Only this category's events.")
@type_option("Only events of this type (repeat for several).")
@click.option("--from-start", is_flag=True, help="Print every stored event first (default: only new ones).")
@click.option("--interval", type=click.FloatRange(min=0.0), default=0.5, show_default=True,
              help="Seconds between polls when there is nothing new.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
def tail(dsn: str | None, fmt: str, category: str | None, types: tuple[str, ...], from_start: bool,
         interval: float, count: int | None) -> None:
    """Follow new events as they commit, until Ctrl-C (or --count events).

    One event per line: tab-separated columns (table) or one JSON object (json, jsonl).
    It pages by checkpoint, so an event whose transaction commits late is not skipped.
    """
    printed = 0
    try:
        with session(dsn) as s:
            after = None if from_start else s.store.head_checkpoint(conn=s.conn)
            while count is None or printed < count:
                page = _page(s, category, after, PAGE, types)
                for event in page:
                    if fmt == "table":
                        click.echo(event_line(event))
                    else:
                        click.echo(json.dumps(event_json(event), ensure_ascii=False))
                    printed += 1
                    if count is not None and printed >= count:
                        return
                if page:
                    after = page[-1].checkpoint
                if len(page) < PAGE:
                    time.sleep(interval)
    except KeyboardInterrupt:
        return


# -- event show ----------------------------------------------------------------------------


@click.group()
def event() -> None:
    """Look at one event."""


@event.command("show")
@dsn_option
@format_option
@click.argument("event_id", metavar="ID")
def event_show(dsn: str | None, fmt: str, event_id: str) -> None:
    """Every field of the event whose id is ID."""
    wanted = parse_uuid(event_id, "ID")
    assert wanted is not None
    with session(dsn) as s:
        found = s.store.get_event(wanted, conn=s.conn)
    if found is None:
        raise NotFound(f"no event with id {wanted}")
    obj = event_json(found)
    if fmt == "table":
        emit(key_value_rows(obj), fmt, columns=("field", "value"), title=f"event {wanted}")
    else:
        emit_object(obj, fmt)


# -- trace ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """An event of the trace, or a command/message that is not one of its events (then
    ``event`` is None and ``message_id`` names it)."""

    event: RecordedEvent | None
    message_id: uuid.UUID | None = None
    children: list[Node] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.event is None:
            out["message_id"] = str(self.message_id)
        out["event"] = None if self.event is None else event_json(self.event)
        out["children"] = [child.to_json() for child in self.children]
        return out


def causation_tree(events: Sequence[RecordedEvent]) -> list[Node]:
    """The events of one correlation id as a forest, in read order.

    An event whose causation id is another event of the set is that event's child. Events
    caused by something outside the set (a command: pyes's command handler sets the causation
    id to the command id) are grouped under one node per message; events with no causation id
    are roots. An event that cannot be reached from a root (its causes form a cycle) becomes
    a root itself, so that every event is shown once and the tree is finite.
    """
    nodes = {e.event_id: Node(e) for e in events}
    roots: list[Node] = []
    messages: dict[uuid.UUID, Node] = {}
    for e in events:
        cause = e.causation_id
        if cause is None:
            roots.append(nodes[e.event_id])
        elif cause in nodes:
            nodes[cause].children.append(nodes[e.event_id])
        else:
            if cause not in messages:
                messages[cause] = Node(None, message_id=cause)
                roots.append(messages[cause])
            messages[cause].children.append(nodes[e.event_id])
    seen: set[uuid.UUID] = set()

    def visit(node: Node) -> None:
        if node.event is not None:
            seen.add(node.event.event_id)
        for child in node.children:
            visit(child)

    for root in roots:
        visit(root)
    for e in events:
        if e.event_id not in seen:
            node = nodes[e.event_id]
            parent = nodes[e.causation_id] if e.causation_id is not None else None
            if parent is not None and node in parent.children:  # the edge that closes the cycle
                parent.children.remove(node)
            roots.append(node)
            visit(node)
    return roots


def _label(node: Node) -> Any:
    from rich.text import Text

    if node.event is None:
        text = Text(f"command/message {node.message_id}", style="bold")
        first = node.children[0].event if node.children else None
        meta = first.metadata if first is not None else {}
        if meta.get("command_id") == str(node.message_id):
            extra = " ".join(str(meta[k]) for k in ("command_type", "actor") if meta.get(k))
            if extra:
                text.append(f" ({extra})", style="dim")
        return text
    e = node.event
    text = Text()
    text.append(e.type, style="bold")
    text.append(f"  {e.stream_id}@{e.version}")
    text.append(f"  {e.event_id}", style="dim")
    text.append(f"  {moment(e.recorded_at)}", style="dim")
    return text


@click.command()
@dsn_option
@format_option
@click.argument("correlation_id", metavar="CORRELATION_ID")
def trace(dsn: str | None, fmt: str, correlation_id: str) -> None:
    """The events of one request (CORRELATION_ID) as a tree of what caused what.

    Events caused by a command (or any message that is not an event of the request) are
    grouped under a node for it.
    """
    wanted = parse_uuid(correlation_id, "CORRELATION_ID")
    assert wanted is not None
    events: list[RecordedEvent] = []
    with session(dsn) as s:
        after: str | None = None
        while True:
            page = s.store.read_correlation(wanted, after=after, max_count=PAGE, conn=s.conn)
            events.extend(page)
            if len(page) < PAGE:
                break
            after = page[-1].checkpoint
    if not events:
        raise NotFound(f"no event with correlation id {wanted}")
    roots = causation_tree(events)
    if fmt == "json":
        click.echo(json.dumps([root.to_json() for root in roots], ensure_ascii=False, indent=2))
    elif fmt == "jsonl":
        for root in roots:
            click.echo(json.dumps(root.to_json(), ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.tree import Tree

        top = Tree(f"correlation {wanted} ({len(events)} events)")

        def add(branch: Tree, node: Node) -> None:
            sub = branch.add(_label(node))
            for child in node.children:
                add(sub, child)

        for root in roots:
            add(top, root)
        Console().print(top)


# -- streams -------------------------------------------------------------------------------


@click.group()
def streams() -> None:
    """List streams and look at one."""


STREAM_COLUMNS = ("stream_id", "category", "version", "created_at", "updated_at")


@streams.command("list")
@dsn_option
@format_option
@click.option("--prefix", help="Only streams whose id starts with this text.")
@click.option("--category", help="Only this category's streams.")
@limit_option(100, "At most this many streams.")
def streams_list(dsn: str | None, fmt: str, prefix: str | None, category: str | None, limit: int) -> None:
    """Streams in the order of their ids."""
    with session(dsn) as s:
        rows = s.query(
            "SELECT stream_id, category, version, created_at, updated_at FROM pyes.streams"
            " WHERE (%(prefix)s::text IS NULL OR starts_with(stream_id, %(prefix)s::text))"
            " AND (%(category)s::text IS NULL OR category = %(category)s::text)"
            " ORDER BY stream_id LIMIT %(limit)s",
            {"prefix": prefix, "category": category, "limit": limit},
        )
    cells = table_cells if fmt == "table" else (lambda row: {k: plain(v) for k, v in row.items()})
    emit([cells(row) for row in rows], fmt, columns=STREAM_COLUMNS, title="streams")


@streams.command("show")
@dsn_option
@format_option
@click.argument("stream")
@click.option("--events", "last", type=click.IntRange(min=0), default=5, show_default=True,
              help="How many of its last events to show.")
def streams_show(dsn: str | None, fmt: str, stream: str, last: int) -> None:
    """STREAM's row (version, metadata, times) and its last few events."""
    with session(dsn) as s:
        rows = s.query("SELECT stream_id, category, version, metadata, created_at, updated_at"
                       " FROM pyes.get_stream(%s)", (stream,))
        if not rows:
            raise NotFound(f"no stream {stream!r} (it has no events)")
        recent = s.store.read_stream(stream, max_count=last, backward=True, conn=s.conn)[::-1] if last else []
    row = {k: plain(v) for k, v in rows[0].items()}
    if fmt == "table":
        emit(key_value_rows(row), fmt, columns=("field", "value"), title=f"stream {stream}")
        if last:
            emit_events(recent, fmt, title=f"last {len(recent)} events")
    else:
        emit_object({"stream": row, "events": [event_json(e) for e in recent]}, fmt)


# -- stats ---------------------------------------------------------------------------------


@click.command()
@dsn_option
@format_option
@click.option("--days", type=click.IntRange(min=1), default=14, show_default=True,
              help="How many days (UTC, today included) to count events for.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many of the busiest streams to list.")
def stats(dsn: str | None, fmt: str, days: int, top: int) -> None:
    """Events per type, per category and per day, and the streams with the most events."""
    with session(dsn) as s:
        per_type = s.query("SELECT type, count(*) AS events FROM pyes.events GROUP BY type"
                           " ORDER BY events DESC, type")
        # A stream's version is its number of events: the category counts come from the
        # small table.
        per_category = s.query("SELECT category, count(*) AS streams, sum(version)::bigint AS events"
                               " FROM pyes.streams GROUP BY category ORDER BY events DESC, category")
        per_day = s.query(
            "WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS d),"
            " days AS (SELECT d - i AS day FROM today, generate_series(0, %(days)s::int - 1) AS i),"
            " counted AS (SELECT (recorded_at AT TIME ZONE 'UTC')::date AS day, count(*) AS events"
            "             FROM pyes.events, today"
            "             WHERE recorded_at >= (d - (%(days)s::int - 1))::timestamp AT TIME ZONE 'UTC'"
            "             GROUP BY 1)"
            " SELECT days.day, coalesce(counted.events, 0) AS events"
            " FROM days LEFT JOIN counted USING (day) ORDER BY days.day",
            {"days": days},
        )
        busiest = s.query("SELECT stream_id, category, version AS events, updated_at FROM pyes.streams"
                          " ORDER BY version DESC, stream_id LIMIT %s", (top,))
    report = {
        "per_type": per_type,
        "per_category": per_category,
        "per_day": [{k: plain(v) for k, v in row.items()} for row in per_day],
        "busiest_streams": [{k: plain(v) for k, v in row.items()} for row in busiest],
    }
    if fmt == "table":
        emit(report["per_type"], fmt, columns=("type", "events"), title="events per type")
        emit(report["per_category"], fmt, columns=("category", "streams", "events"), title="events per category")
        emit(report["per_day"], fmt, columns=("day", "events"), title=f"events per day (UTC, last {days} days)")
        emit([table_cells(row) for row in busiest], fmt, columns=("stream_id", "category", "events", "updated_at"),
             title=f"busiest streams (top {top})")
    else:
        emit_object(report, fmt)


COMMANDS: list[click.Command] = [append, read, tail, event, trace, streams, stats]
