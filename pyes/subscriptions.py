"""Persistent subscriptions: run a handler on every event of some categories and types,
reliably, after commit (docs/subscriptions.md).

* :class:`SubscriptionWorker` runs a handler under a durable name. Its checkpoints live in
  PostgreSQL (``pyes.subscription_partitions``) and move only after the handler succeeded, so
  delivery is at least once, in order within a stream, and never skips a late commit.
* It wakes up on ``LISTEN pyes_events`` (a NOTIFY sent at commit) and polls as well, so a
  lost notification only costs the poll interval.
* Several workers under one name form a consumer group: the subscription's partitions
  (streams spread by a hash of their id) are dealt among them through leases in the
  database; a stream is handled by one member at a time, in order.
* A handler that keeps failing is retried with backoff, then its event is parked
  (``pyes.parked_events``) and the subscription moves on. :class:`Subscriptions` lists,
  retries and discards parked events.
* :func:`idempotent` makes a handler that writes to the same database apply each event once.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

import psycopg

from .errors import LeaseLost, translate
from .listening import close_listener, listen
from .records import RECORDED_COLUMNS, RecordedEvent
from .store import EventStore

log = logging.getLogger("pyes.subscriptions")

#: The channel pyes.append notifies at commit (sql/functions/045_notify.sql).

Handler = Callable[[RecordedEvent], object]

_READ = (
    f"SELECT h.head, {RECORDED_COLUMNS} FROM pyes.head_checkpoint() AS h(head) "
    "LEFT JOIN LATERAL pyes.read_subscription(%s, %s, %s, %s) AS r ON true"
)


def checkpoint_key(token: str | None) -> tuple[int, int]:
    """A checkpoint token as a sortable pair (transaction id, position); None is the start."""
    if not token:
        return (0, 0)
    xid, _, position = token.partition("/")
    return (int(xid), int(position))


def default_member_id() -> str:
    """hostname-pid-random: unique per process, readable in ``pyes subscriptions show``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _conninfo(source: EventStore | str) -> str:
    if isinstance(source, str):
        return source
    conninfo = source.pool.conninfo
    return conninfo() if callable(conninfo) else conninfo


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as error:
        raise translate(error) from error


# -- administration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    name: str
    categories: list[str] | None
    types: list[str] | None
    partitions: int
    start_checkpoint: str
    created_at: datetime
    members: int
    handled: int
    parked: int
    #: The lowest checkpoint among the partitions: everything before it has been handled.
    low_checkpoint: str


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    checkpoint: str
    owner: str | None
    lease_expires_at: datetime | None
    handled: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    id: int
    subscription: str
    event_id: uuid.UUID
    position: int
    stream_id: str
    type: str
    checkpoint: str
    error: str
    attempts: int
    parked_at: datetime
    last_attempt_at: datetime
    retry_requested_at: datetime | None


_INFO = """
SELECT s.name, s.categories, s.types, s.partitions, s.start_checkpoint, s.created_at,
       (SELECT count(*) FROM pyes.subscription_members m WHERE m.subscription = s.name AND m.expires_at > clock_timestamp()),
       (SELECT coalesce(sum(p.handled), 0) FROM pyes.subscription_partitions p WHERE p.subscription = s.name),
       (SELECT count(*) FROM pyes.parked_events pe WHERE pe.subscription = s.name),
       (SELECT pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position) FROM pyes.subscription_partitions p
         WHERE p.subscription = s.name ORDER BY p.checkpoint_xid, p.checkpoint_position LIMIT 1)
  FROM pyes.subscriptions s
"""


class Subscriptions:
    """Define, inspect and delete subscriptions; list, retry and discard parked events."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    @contextmanager
    def _conn(self, conn: psycopg.Connection[Any] | None) -> Iterator[psycopg.Connection[Any]]:
        with _translated():
            if conn is not None:
                yield conn
            else:
                with self.store.pool.connection() as own:
                    yield own

    def create(
        self,
        name: str,
        *,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        partitions: int = 1,
        start: str = "beginning",
        conn: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Create the subscription; True if created, False if it already existed with this
        definition (a different one raises :class:`~pyes.errors.SubscriptionConflict`).
        ``start`` ('beginning', 'now' or a checkpoint token) applies at creation only."""
        with self._conn(conn) as c:
            row = c.execute(
                "SELECT pyes.create_subscription(%s, %s, %s, %s, %s)",
                (name, _list(categories), _list(types), partitions, start),
            ).fetchone()
        assert row is not None
        return bool(row[0])

    def delete(self, name: str, *, conn: psycopg.Connection[Any] | None = None) -> bool:
        with self._conn(conn) as c:
            row = c.execute("SELECT pyes.delete_subscription(%s)", (name,)).fetchone()
        assert row is not None
        return bool(row[0])

    def all(self, *, conn: psycopg.Connection[Any] | None = None) -> list[SubscriptionInfo]:
        with self._conn(conn) as c:
            rows = c.execute(_INFO + " ORDER BY s.name").fetchall()
        return [SubscriptionInfo(*row) for row in rows]

    def get(self, name: str, *, conn: psycopg.Connection[Any] | None = None) -> SubscriptionInfo:
        """The subscription; :class:`~pyes.errors.SubscriptionNotFound` if there is none."""
        with self._conn(conn) as c:
            c.execute("SELECT pyes.get_subscription(%s)", (name,))
            row = c.execute(_INFO + " WHERE s.name = %s", (name,)).fetchone()
        assert row is not None
        return SubscriptionInfo(*row)

    def partitions(self, name: str, *, conn: psycopg.Connection[Any] | None = None) -> list[PartitionInfo]:
        with self._conn(conn) as c:
            c.execute("SELECT pyes.get_subscription(%s)", (name,))
            rows = c.execute(
                """SELECT p.partition, pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position), p.owner,
                          p.lease_expires_at, p.handled, p.updated_at
                     FROM pyes.subscription_partitions p WHERE p.subscription = %s ORDER BY p.partition""",
                (name,),
            ).fetchall()
        return [PartitionInfo(*row) for row in rows]

    def checkpoint(self, name: str, partition: int = 0, *, conn: psycopg.Connection[Any] | None = None) -> str:
        """The saved checkpoint of one partition."""
        for info in self.partitions(name, conn=conn):
            if info.partition == partition:
                return str(info.checkpoint)
        raise ValueError(f"subscription {name!r} has no partition {partition}")

    def parked(self, name: str | None = None, *, conn: psycopg.Connection[Any] | None = None) -> list[ParkedEvent]:
        """Parked events of one subscription (None: of all), oldest first."""
        with self._conn(conn) as c:
            if name is not None:
                c.execute("SELECT pyes.get_subscription(%s)", (name,))
            rows = c.execute(
                """SELECT id, subscription, event_id, position, stream_id, type, checkpoint, error, attempts,
                          parked_at, last_attempt_at, retry_requested_at
                     FROM pyes.parked_events WHERE %s::text IS NULL OR subscription = %s ORDER BY id""",
                (name, name),
            ).fetchall()
        return [ParkedEvent(*row) for row in rows]

    def retry_parked(
        self, name: str, ids: Sequence[int] | None = None, *, conn: psycopg.Connection[Any] | None = None
    ) -> int:
        """Ask the subscription's running workers to run the handler again on these parked
        events (None: all). Returns how many were marked."""
        with self._conn(conn) as c:
            row = c.execute("SELECT pyes.retry_parked(%s, %s)", (name, _list(ids))).fetchone()
        assert row is not None
        return int(row[0])

    def discard_parked(
        self, name: str, ids: Sequence[int] | None = None, *, conn: psycopg.Connection[Any] | None = None
    ) -> int:
        """Forget these parked events (None: all of the subscription's). Returns how many."""
        with self._conn(conn) as c:
            row = c.execute("SELECT pyes.discard_parked(%s, %s)", (name, _list(ids))).fetchone()
        assert row is not None
        return int(row[0])


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


# -- idempotency ---------------------------------------------------------------------------


def record_processed(conn: psycopg.Connection[Any], consumer: str, event_id: uuid.UUID) -> bool:
    """Record, in ``conn``'s transaction, that ``consumer`` applied the event: True the first
    time, False if it already had (a redelivery: do nothing)."""
    with _translated():
        row = conn.execute("SELECT pyes.record_processed(%s, %s)", (consumer, event_id)).fetchone()
    assert row is not None
    return bool(row[0])


def idempotent(
    store: EventStore, consumer: str
) -> Callable[[Callable[[RecordedEvent, psycopg.Connection[Any]], object]], Handler]:
    """Turn ``fn(event, conn)``, which writes to the store's database through ``conn``, into a
    handler that applies each event once: the event id is recorded in the same transaction
    as ``fn``'s writes, and a redelivered event is skipped::

        @idempotent(store, "CreditLoyaltyPoints")
        def credit(event: RecordedEvent, conn: psycopg.Connection) -> None:
            conn.execute("UPDATE points SET total = total + 1 WHERE account = %s", (event.stream_id,))
    """

    def decorate(fn: Callable[[RecordedEvent, psycopg.Connection[Any]], object]) -> Handler:
        def handler(event: RecordedEvent) -> None:
            with store.connection() as conn:
                if record_processed(conn, consumer, event.event_id):
                    fn(event, conn)

        handler.__name__ = getattr(fn, "__name__", "handler")
        handler.__doc__ = fn.__doc__
        return handler

    return decorate


# -- the worker ----------------------------------------------------------------------------


@dataclass
class _Partition:
    number: int
    cursor: str  # last event handled, or passed over (in memory)
    saved: str  # what pyes.subscription_partitions holds
    unsaved: int = 0  # events handled since the last save
    last_save: float = field(default_factory=time.monotonic)


@dataclass
class WorkerStats:
    handled: int = 0
    failures: int = 0
    parked: int = 0
    retried_ok: int = 0
    lease_lost: int = 0
    notifications: int = 0
    polls: int = 0


class SubscriptionWorker:
    """Runs ``handler(event)`` on every event of the subscription ``name``.

    With ``create`` (the default) the subscription is created on start if it does not exist
    (``categories``, ``types``, ``partitions`` and ``start`` define it; an existing one must
    have the same definition). Run several workers with the same name, in as many
    processes, to share the work: each takes part of the ``partitions``.

    :meth:`run` blocks until :meth:`stop` (or SIGTERM / SIGINT, when run in the main
    thread): the current event finishes, the checkpoints are saved, the partitions are
    handed back. ``run(until_idle=True)``, for a lone worker, returns once it holds every
    partition and nothing is left to handle.
    """

    def __init__(
        self,
        source: EventStore | str,
        name: str,
        handler: Handler,
        *,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        partitions: int = 1,
        start: str = "beginning",
        create: bool = True,
        member_id: str | None = None,
        listen: bool = True,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        max_attempts: int = 5,
        retry_delay: float = 0.1,
        max_retry_delay: float = 30.0,
        lease_seconds: float = 10.0,
        checkpoint_interval: float = 1.0,
        synchronous_checkpoints: bool = False,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if batch_size < 1 or batch_size > 100000:
            raise ValueError("batch_size must be 1 to 100000")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.conninfo = _conninfo(source)
        self.name = name
        self.handler = handler
        self.categories = _list(categories)
        self.types = _list(types)
        self.partition_count = partitions
        self.start = start
        self.create = create
        self.member_id = member_id or default_member_id()
        self.listen = listen
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.lease_seconds = lease_seconds
        self.checkpoint_interval = checkpoint_interval
        self.synchronous_checkpoints = synchronous_checkpoints
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._owned: dict[int, _Partition] = {}
        # partition -> (checkpoint, keep: dealt to this member, held: its lease is ours)
        self._assignment: dict[int, tuple[str, bool, bool]] = {}
        self._lease_deadline = 0.0
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._listen_conn: psycopg.Connection[Any] | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()
        self._last_retry_check = 0.0
        self._partitions_total = partitions

    # -- public ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current event (safe from any thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def owned_partitions(self) -> list[int]:
        return sorted(self._owned)

    def run(self, *, until_idle: bool = False, handle_signals: bool = True) -> WorkerStats:
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            self._start()
            self._loop(until_idle)
        finally:
            self._finish()
            for sig, old in previous.items():
                signal.signal(sig, old)
        return self.stats

    # -- start and stop --------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: signal %s, stopping after the current event", self.name, signum)
        self.stop()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=True, application_name=f"pyes:{self.name}"[:63],
                               connect_timeout=10)

    def _start(self) -> None:
        self._conn = self._connect()
        if self.create:
            with _translated():
                self._conn.execute(
                    "SELECT pyes.create_subscription(%s, %s, %s, %s, %s)",
                    (self.name, self.categories, self.types, self.partition_count, self.start),
                )
        with _translated():
            row = self._conn.execute("SELECT partitions FROM pyes.get_subscription(%s)", (self.name,)).fetchone()
        assert row is not None
        self._partitions_total = int(row[0])
        if self.listen:
            self._open_listener()
        self._join(self._conn)
        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name=f"pyes-heartbeat-{self.name}", daemon=True)
        self._heartbeat_thread.start()

    def _open_listener(self) -> None:
        try:
            self._listen_conn = self._connect()
            listen(self._listen_conn)
        except psycopg.OperationalError as error:
            log.warning("%s: cannot LISTEN (%s); polling only until it can", self.name, error)
            self._listen_conn = None

    def _finish(self) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=self.lease_seconds)
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                for part in list(self._owned.values()):
                    self._save(part, force=True, durable=True)
                with _translated():
                    conn.execute("SELECT pyes.leave_subscription(%s, %s)", (self.name, self.member_id))
            except (psycopg.Error, LeaseLost) as error:
                log.warning("%s: could not save or hand back on stop: %s", self.name, error)
            conn.close()
        if self._listen_conn is not None:
            close_listener(self._listen_conn)
        self._owned.clear()

    # -- leases ----------------------------------------------------------------------------

    def _join(self, conn: psycopg.Connection[Any]) -> None:
        started = time.monotonic()
        with _translated():
            rows = conn.execute(
                "SELECT partition, checkpoint, keep, held FROM pyes.join_subscription(%s, %s, %s)",
                (self.name, self.member_id, self.lease_seconds),
            ).fetchall()
        with self._lock:
            self._assignment = {int(p): (str(cp), bool(keep), bool(held)) for p, cp, keep, held in rows}
            # The database counts the lease from when it ran the call, which is after started.
            self._lease_deadline = started + self.lease_seconds * 0.9

    def _heartbeat_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._heartbeat_stop.wait(self.lease_seconds / 3):
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                self._join(conn)
            except Exception as error:  # noqa: BLE001 - keep beating; the lease deadline guards
                log.warning("%s: heartbeat failed: %s", self.name, error)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _apply_assignment(self) -> None:
        """Take partitions newly dealt to this member, hand back those it should give up,
        forget those it lost."""
        with self._lock:
            assignment = dict(self._assignment)
            valid = time.monotonic() < self._lease_deadline
        if not valid:
            # The lease may have run out: handle nothing until a heartbeat renews it.
            if self._owned:
                log.warning("%s: lease not renewed in time, pausing", self.name)
            self._owned.clear()
            return
        for number in list(self._owned):
            if number not in assignment or not assignment[number][2]:
                log.info("%s: partition %s was taken over", self.name, number)
                self.stats.lease_lost += 1
                del self._owned[number]
        to_release = []
        for number, (checkpoint, keep, held) in assignment.items():
            if not held:
                continue
            if keep and number not in self._owned:
                self._owned[number] = _Partition(number, checkpoint, checkpoint)
            elif not keep and number in self._owned:
                part = self._owned.pop(number)
                try:
                    self._save(part, force=True)
                    to_release.append(number)
                except LeaseLost:
                    self.stats.lease_lost += 1
        if to_release:
            assert self._conn is not None
            with _translated():
                self._conn.execute("SELECT pyes.release_partitions(%s, %s, %s)", (self.name, self.member_id, to_release))
            with self._lock:
                for number in to_release:
                    self._assignment.pop(number, None)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, until_idle: bool) -> None:
        # After a notification whose read found nothing, the committed events may not be below
        # the read line yet (an older transaction is still open somewhere): re-read at 4, 8,
        # ... up to 250 ms apart for a while (at most 5 s or the poll interval) before going
        # back to waiting for the next notification or poll.
        quick = 0
        hot_until = 0.0
        while not self._stop.is_set():
            try:
                self._apply_assignment()
                progressed = self._pass()
                progressed += self._parked_retries(idle=progressed == 0)
            except psycopg.OperationalError as error:
                log.warning("%s: connection lost (%s), reconnecting", self.name, error)
                self._reconnect()
                continue
            if progressed:
                quick, hot_until = 0, 0.0
                continue
            if until_idle and self._caught_up():
                return
            now = time.monotonic()
            if now < hot_until:
                quick += 1
                delay = min(0.25, 0.002 * 2 ** min(quick, 10), hot_until - now)
            else:
                delay = self.poll_interval
            woke = self._wait(delay)
            if woke:
                self.stats.notifications += 1
                quick, hot_until = 0, time.monotonic() + min(self.poll_interval, 5.0)
            else:
                self.stats.polls += 1

    def _caught_up(self) -> bool:
        """For ``until_idle``, meant for a lone worker: it holds every partition (one still
        held by a worker that died counts once its lease ran out) and a pass found nothing."""
        return len(self._owned) == self._partitions_total

    def _reconnect(self) -> None:
        for conn in (self._conn, self._listen_conn):
            if conn is not None:
                conn.close()
        self._owned.clear()
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
                if self.listen:
                    self._open_listener()
                self._join(self._conn)
                return
            except psycopg.OperationalError as error:
                log.warning("%s: cannot reconnect (%s)", self.name, error)
                self._stop.wait(self.poll_interval)

    def _wait(self, timeout: float) -> bool:
        """Wait for a notification (True) or the timeout (False), whichever comes first;
        returns early, False, on stop."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            step = min(remaining, 0.1)
            if self._listen_conn is None:
                if self.listen and self._conn is not None:
                    self._open_listener()
                if self._listen_conn is None:
                    self._stop.wait(step)
                    continue
            try:
                for _notify in self._listen_conn.notifies(timeout=step, stop_after=1):
                    return True
            except psycopg.OperationalError as error:
                log.warning("%s: LISTEN connection lost (%s); polling", self.name, error)
                self._listen_conn.close()
                self._listen_conn = None
        return False

    def _pass(self) -> int:
        """One page from every partition held; returns how many events were handled."""
        done = 0
        for number in sorted(self._owned):
            if self._stop.is_set():
                break
            part = self._owned.get(number)
            if part is not None:
                done += self._partition_page(part)
        return done

    def _partition_page(self, part: _Partition) -> int:
        assert self._conn is not None
        with _translated():
            rows = self._conn.execute(_READ, (self.name, part.number, part.cursor, self.batch_size)).fetchall()
        head = str(rows[0][0])
        events = [RecordedEvent(*row[1:]) for row in rows if row[1] is not None]
        done = 0
        for event in events:
            if self._stop.is_set() or part.number not in self._owned:
                break
            if not self._deliver(part, event):
                break
            done += 1
        else:
            if len(events) < self.batch_size and checkpoint_key(head) > checkpoint_key(part.cursor):
                # Nothing of this partition is left below the read line: move past it, so the
                # next read starts there (saved with the next checkpoint).
                part.cursor = head
        if part.number in self._owned:
            try:
                self._save(part, force=done > 0)
            except LeaseLost:
                self._lost(part)
        return done

    def _deliver(self, part: _Partition, event: RecordedEvent) -> bool:
        """Run the handler, retrying with backoff, parking after max_attempts. False if the
        worker is stopping before the event succeeded (nothing is saved for it)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                self.handler(event)
            except Exception as error:  # noqa: BLE001 - any handler error is retried, then parked
                self.stats.failures += 1
                if attempt >= self.max_attempts:
                    self._park(part, event, error, attempt)
                    return True
                delay = min(self.max_retry_delay, self.retry_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                log.info("%s: handler failed on %s (attempt %s), retrying in %.2fs: %r",
                         self.name, event.event_id, attempt, delay, error)
                if self._stop.wait(delay):
                    return False
                continue
            part.cursor = event.checkpoint
            part.unsaved += 1
            self.stats.handled += 1
            return True

    def _park(self, part: _Partition, event: RecordedEvent, error: BaseException, attempts: int) -> None:
        assert self._conn is not None
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        try:
            self._save(part, force=True)
            with _translated():
                self._conn.execute(
                    "SELECT pyes.park_event(%s, %s, %s, %s, %s, %s)",
                    (self.name, self.member_id, part.number, event.event_id, text[:10000], attempts),
                )
        except LeaseLost:
            self._lost(part)
            return
        log.warning("%s: parked event %s after %s attempts: %s", self.name, event.event_id, attempts, text)
        self.stats.parked += 1
        part.cursor = part.saved = event.checkpoint

    def _save(self, part: _Partition, *, force: bool = False, durable: bool = False) -> None:
        """Save the partition's checkpoint. Unless ``durable`` (or ``synchronous_checkpoints``),
        the save commits with synchronous_commit off, for its own transaction only: it does not
        wait for the WAL flush, and a server crash may lose the last saves, which means those
        events are delivered again (at least once), never that one is skipped."""
        if part.cursor == part.saved:
            return
        now = time.monotonic()
        if not force and part.unsaved == 0 and now - part.last_save < self.checkpoint_interval:
            return
        conn = self._conn
        assert conn is not None
        params = (self.name, self.member_id, part.number, part.cursor, part.unsaved)
        with _translated():
            if durable or self.synchronous_checkpoints:
                conn.execute("SELECT pyes.save_checkpoint(%s, %s, %s, %s, %s)", params)
            else:
                with conn.transaction():
                    conn.execute("SET LOCAL synchronous_commit = off")
                    conn.execute("SELECT pyes.save_checkpoint(%s, %s, %s, %s, %s)", params)
        part.saved, part.unsaved, part.last_save = part.cursor, 0, now

    def _lost(self, part: _Partition) -> None:
        log.warning("%s: lost partition %s to another member", self.name, part.number)
        self.stats.lease_lost += 1
        self._owned.pop(part.number, None)
        with self._lock:
            self._assignment.pop(part.number, None)

    def _parked_retries(self, *, idle: bool) -> int:
        now = time.monotonic()
        if not idle and now - self._last_retry_check < self.poll_interval:
            return 0
        self._last_retry_check = now
        assert self._conn is not None
        with _translated():
            taken = self._conn.execute(
                "SELECT id, event_id, attempts FROM pyes.take_parked_retries(%s, 10)", (self.name,)
            ).fetchall()
        done = 0
        for parked_id, event_id, _attempts in taken:
            with _translated():
                rows = self._conn.execute(f"SELECT {RECORDED_COLUMNS} FROM pyes.get_event(%s)", (event_id,)).fetchall()
            error_text: str | None = None
            try:
                self.handler(RecordedEvent(*rows[0]))
            except Exception as error:  # noqa: BLE001 - recorded on the parked row
                error_text = "".join(traceback.format_exception_only(type(error), error)).strip()[:10000]
            with _translated():
                self._conn.execute("SELECT pyes.finish_parked_retry(%s, %s, 1)", (parked_id, error_text))
            if error_text is None:
                self.stats.retried_ok += 1
                done += 1
        return done


def load_handler(spec: str) -> Handler:
    """The callable named ``module:function`` (``module:Class.method`` works too), imported
    with the current directory on ``sys.path``, as ``python -m`` would."""
    import importlib
    import sys

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{spec!r} is not module:function (for example myapp.handlers:send_notification)")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def run_worker(source: EventStore | str, name: str, handler: Handler, **options: Any) -> WorkerStats:
    """Shorthand: ``SubscriptionWorker(source, name, handler, **options).run()``."""
    return SubscriptionWorker(source, name, handler, **options).run()


def subscriptions_rows(infos: Sequence[SubscriptionInfo]) -> list[dict[str, Any]]:
    """Rows for tables and JSON output."""
    out = []
    for info in infos:
        out.append({
            "name": info.name,
            "categories": info.categories,
            "types": info.types,
            "partitions": info.partitions,
            "members": info.members,
            "handled": info.handled,
            "parked": info.parked,
            "low_checkpoint": info.low_checkpoint,
        })
    return out
