"""Relay: publish the events of chosen categories to a message broker (the outbox, across
services), as a durable subscription like any other (docs/subscriptions.md, "Relay").

The relay is a :class:`~pyes.subscriptions.SubscriptionWorker` whose handler publishes each
event through a :class:`Publisher`; the checkpoint moves only after the broker acknowledged.
A crash between the acknowledgement and the checkpoint publishes the event again: the
message carries the event id as its deduplication id, and a broker that deduplicates
(NATS JetStream, within its duplicate window) stores it once.

Only :class:`Publisher` knows the broker. :class:`NatsPublisher` is the one shipped; another
broker (Kafka, RabbitMQ, SQS...) is a class with the same two methods, and the subscription
machinery does not change.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .records import RecordedEvent
from .store import EventStore
from .subscriptions import SubscriptionWorker, WorkerStats

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message:
    """What a publisher sends for one event: broker-neutral."""

    event: RecordedEvent
    #: The broker's deduplication id: the event id, the same on every redelivery.
    dedup_id: str
    #: Headers every publisher should carry (names as in HTTP: ``pyes-stream-id``...).
    headers: dict[str, str]
    #: The event as a JSON document (UTF-8).
    body: bytes


@dataclass(frozen=True, slots=True)
class PublishResult:
    #: True if the broker said it already had a message with this dedup id.
    duplicate: bool
    #: The broker's sequence number or offset for the message, if it gives one.
    sequence: int | None = None


class Publisher(Protocol):
    """A broker, seen from the relay. ``publish`` returns once the broker has stored the
    message durably (or raises: the relay retries, then parks the event)."""

    def publish(self, message: Message) -> PublishResult: ...

    def close(self) -> None: ...


def event_document(event: RecordedEvent) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "stream_id": event.stream_id,
        "category": event.category,
        "version": event.version,
        "type": event.type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata,
        "correlation_id": None if event.correlation_id is None else str(event.correlation_id),
        "causation_id": None if event.causation_id is None else str(event.causation_id),
        "recorded_at": event.recorded_at.isoformat(),
        "position": event.position,
        "checkpoint": event.checkpoint,
    }


def message_for(event: RecordedEvent) -> Message:
    headers = {
        "pyes-event-id": str(event.event_id),
        "pyes-stream-id": event.stream_id,
        "pyes-version": str(event.version),
        "pyes-type": event.type,
        "pyes-checkpoint": event.checkpoint,
        "content-type": "application/json",
    }
    body = json.dumps(event_document(event), ensure_ascii=False, separators=(",", ":")).encode()
    return Message(event, str(event.event_id), headers, body)


_UNSAFE = re.compile(r"[^A-Za-z0-9_\-:/$@!#&+=~^|]")


def subject_token(text: str) -> str:
    """A category or type as one NATS subject token: characters NATS gives a meaning to
    (``.``, ``*``, ``>``, spaces) and ``%`` are written ``%XX`` (their UTF-8 bytes), so two
    different names never share a subject."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text) or "%00"


class NatsPublisher:
    """Publishes to NATS JetStream with nats-py. Subject ``<prefix>.<category>.<type>``;
    header ``Nats-Msg-Id`` = the event id, so JetStream stores a message once per event
    within the stream's duplicate window (``duplicate_window`` seconds, default 2 minutes:
    a relay down for longer than that may publish an event twice, so consumers that must
    not see a duplicate also check the ``Nats-Msg-Id`` header).

    With ``ensure_stream`` the JetStream stream ``stream`` (subjects ``<prefix>.>``) is
    created if missing, or its duplicate window updated."""

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "PYES",
        subject_prefix: str = "pyes",
        duplicate_window: float = 120.0,
        ensure_stream: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.servers = list(servers) if not isinstance(servers, str) else servers
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.duplicate_window = duplicate_window
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pyes-nats", daemon=True)
        self._thread.start()
        try:
            self._connect()
            if ensure_stream:
                self._call(self._ensure_stream())
        except BaseException:
            self._stop_loop()
            raise

    def _connect(self) -> None:
        """Connect (again). A few attempts only: an unreachable server fails the call, and the
        relay's retries and backoff decide what happens next, rather than a client that waits
        forever."""
        import nats

        self._nc = self._call(nats.connect(
            self.servers, connect_timeout=self.timeout, max_reconnect_attempts=3, reconnect_time_wait=0.5,
        ))
        self._js = self._nc.jetstream(timeout=self.timeout)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout * 3)
        except BaseException:
            future.cancel()
            raise

    async def _ensure_stream(self) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        subjects = [f"{self.subject_prefix}.>"]
        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(StreamConfig(name=self.stream, subjects=subjects, duplicate_window=self.duplicate_window))
            return
        config = info.config
        if set(subjects) - set(config.subjects or []) or config.duplicate_window != self.duplicate_window:
            config.subjects = sorted(set(config.subjects or []) | set(subjects))
            config.duplicate_window = self.duplicate_window
            await self._js.update_stream(config)

    def subject(self, message: Message) -> str:
        return f"{self.subject_prefix}.{subject_token(message.event.category)}.{subject_token(message.event.type)}"

    def publish(self, message: Message) -> PublishResult:
        if self._nc.is_closed:
            self._connect()
        headers = dict(message.headers)
        headers["Nats-Msg-Id"] = message.dedup_id
        ack = self._call(self._js.publish(self.subject(message), message.body, headers=headers, stream=self.stream))
        return PublishResult(bool(ack.duplicate), ack.seq)

    def close(self) -> None:
        try:
            if not self._nc.is_closed:
                self._call(self._nc.drain())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@dataclass
class RelayStats:
    published: int = 0
    duplicates: int = 0


class Relay:
    """A durable subscription that publishes every event it is given: ``name`` is the
    subscription's name (its checkpoint), ``categories`` and ``types`` what it relays.
    Other keyword arguments go to :class:`~pyes.subscriptions.SubscriptionWorker`
    (``partitions`` for a group of relays, ``max_attempts``, ``poll_interval``...)."""

    def __init__(
        self,
        source: EventStore | str,
        name: str,
        publisher: Publisher,
        *,
        categories: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        **worker_options: Any,
    ) -> None:
        self.publisher = publisher
        self.relay_stats = RelayStats()
        # A broker outage should stall the relay, not park events: about 45 minutes of
        # attempts (backoff capped at 30 s) before an event is parked.
        worker_options.setdefault("max_attempts", 100)
        self.worker = SubscriptionWorker(source, name, self.handle, categories=categories, types=types, **worker_options)

    def handle(self, event: RecordedEvent) -> None:
        result = self.publisher.publish(message_for(event))
        self.relay_stats.published += 1
        if result.duplicate:
            self.relay_stats.duplicates += 1

    def run(self, *, until_idle: bool = False, handle_signals: bool = True) -> WorkerStats:
        return self.worker.run(until_idle=until_idle, handle_signals=handle_signals)

    def stop(self) -> None:
        self.worker.stop()
