"""Replay: run a handler over a past window of events, to debug it, without touching any
subscription's checkpoint (docs/subscriptions.md, "Replay").

    summary = replay(store, handler, since=datetime(2026, 10, 1, tzinfo=UTC),
                     until=datetime(2026, 11, 1, tzinfo=UTC), categories=["user"], types=["UserSignedUp"])

A window is ``(after, upto]`` in checkpoint tokens and ``[since, until)`` in ``recorded_at``;
any bound left out is open. Events come in the gap-free global order, the same as a
subscription sees them. The replay writes nothing: whatever the handler writes is its own.
"""

from __future__ import annotations

import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .errors import translate
from .records import RECORDED_COLUMNS, RecordedEvent
from .store import EventStore

Handler = Callable[[RecordedEvent], object]

_READ = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_window(%s, %s, %s, %s, %s, %s, %s)"


@dataclass(frozen=True, slots=True)
class Window:
    after: str | None = None
    upto: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    categories: Sequence[str] | None = None
    types: Sequence[str] | None = None


@dataclass
class ReplaySummary:
    #: Events in the window when the replay started.
    events: int = 0
    handled: int = 0
    failed: int = 0
    #: (event, error) of the first failures (at most ``keep_errors``).
    errors: list[tuple[RecordedEvent, str]] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)
    first_checkpoint: str | None = None
    last_checkpoint: str | None = None
    first_recorded_at: datetime | None = None
    last_recorded_at: datetime | None = None
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def events_per_second(self) -> float:
        return (self.handled + self.failed) / self.seconds if self.seconds > 0 else 0.0


def window_size(store: EventStore, window: Window) -> tuple[int, str | None, str | None]:
    """(events in the window, checkpoint just before the first, checkpoint of the last)."""
    with store.pool.connection() as conn:
        try:
            row = conn.execute(
                "SELECT events, after, upto FROM pyes.window_bounds(%s, %s, %s, %s, %s, %s)",
                (window.after, window.upto, window.since, window.until, _list(window.categories), _list(window.types)),
            ).fetchone()
        except Exception as error:
            raise _translated(error) from error
    assert row is not None
    return int(row[0]), row[1], row[2]


def replay(
    store: EventStore,
    handler: Handler,
    window: Window | None = None,
    *,
    after: str | None = None,
    upto: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    categories: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
    page_size: int = 500,
    stop_on_error: bool = False,
    keep_errors: int = 20,
    on_start: Callable[[int], object] | None = None,
    on_event: Callable[[RecordedEvent, str | None], object] | None = None,
) -> ReplaySummary:
    """Run ``handler`` on every event of the window, in order. A handler error is counted
    (and the first ``keep_errors`` kept) and the replay goes on, unless ``stop_on_error``.
    ``on_start(total)`` and ``on_event(event, error or None)`` report progress."""
    if window is None:
        window = Window(after, upto, since, until, categories, types)
    summary = ReplaySummary()
    started = time.perf_counter()
    total, lower, upper = window_size(store, window)
    summary.events = total
    if on_start is not None:
        on_start(total)
    bounded = Window(lower, upper, window.since, window.until, window.categories, window.types)
    cursor = lower
    try:
        while total and cursor != upper:
            with store.pool.connection() as conn:
                try:
                    rows = conn.execute(
                        _READ,
                        (cursor, upper, bounded.since, bounded.until, _list(bounded.categories), _list(bounded.types), page_size),
                    ).fetchall()
                except Exception as error:
                    raise _translated(error) from error
            if not rows:
                break
            for row in rows:
                event = RecordedEvent(*row)
                error_text: str | None = None
                try:
                    handler(event)
                except Exception as error:  # noqa: BLE001 - counted and reported
                    error_text = "".join(traceback.format_exception_only(type(error), error)).strip()
                _account(summary, event, error_text, keep_errors)
                if on_event is not None:
                    on_event(event, error_text)
                cursor = event.checkpoint
                if error_text is not None and stop_on_error:
                    summary.stopped_early = True
                    return summary
            if len(rows) < page_size:
                break
    finally:
        summary.seconds = time.perf_counter() - started
    return summary


def _account(summary: ReplaySummary, event: RecordedEvent, error: str | None, keep_errors: int) -> None:
    if error is None:
        summary.handled += 1
    else:
        summary.failed += 1
        if len(summary.errors) < keep_errors:
            summary.errors.append((event, error))
    summary.by_type[event.type] += 1
    if summary.first_checkpoint is None:
        summary.first_checkpoint = event.checkpoint
        summary.first_recorded_at = event.recorded_at
    summary.last_checkpoint = event.checkpoint
    summary.last_recorded_at = event.recorded_at


def _list(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def _translated(error: Exception) -> Exception:
    import psycopg

    return translate(error) if isinstance(error, psycopg.Error) else error


_TOKEN = re.compile(r"^[0-9]{1,19}/[0-9]{1,18}$")
_RELATIVE = re.compile(r"^(?:now)?-(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_bound(text: str, *, now: datetime | None = None) -> str | datetime:
    """A ``--from``/``--to`` value: a checkpoint token ('771/42'), an ISO 8601 moment
    ('2026-10-01', '2026-10-01T12:00:00+02:00'; without an offset it is UTC), 'now', or a
    moment before now ('-30d', 'now-12h'; units s m h d w). Raises ValueError otherwise."""
    value = text.strip()
    if _TOKEN.match(value):
        return value
    current = now or datetime.now(UTC)
    if value == "now":
        return current
    relative = _RELATIVE.match(value)
    if relative:
        return current - timedelta(**{_UNITS[relative.group(2)]: float(relative.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a checkpoint token (771/42), an ISO 8601 moment (2026-10-01T12:00:00Z) "
            "nor a moment before now (-30d, now-12h)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
