"""`pyes` commands for subscriptions (see docs/cli.md and docs/subscriptions.md):
``pyes subscriptions ...``, ``pyes parked ...``, ``pyes replay`` and ``pyes relay run``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from ..records import RecordedEvent
from ..store import EventStore
from ..subscriptions import Subscriptions, SubscriptionWorker, load_handler
from .common import dsn_option, emit, format_option, resolve


@contextmanager
def _store(dsn: str | None) -> Iterator[EventStore]:
    with EventStore(resolve(dsn), min_size=1, max_size=2) as store:
        yield store


def _handler(spec: str) -> Any:
    try:
        return load_handler(spec)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise click.BadParameter(str(error), param_hint="HANDLER") from None


def _ids(ids: tuple[int, ...], every: bool) -> list[int] | None:
    if every and ids:
        raise click.UsageError("give parked event ids or --all, not both")
    if not every and not ids:
        raise click.UsageError("give parked event ids (pyes parked list) or --all")
    return None if every else list(ids)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


definition = [
    click.option("--category", "categories", multiple=True, help="Follow this category (repeat for several; default: all)."),
    click.option("--type", "types", multiple=True, help="Deliver only this event type (repeat for several; default: all)."),
    click.option("--partitions", type=click.IntRange(1, 1024), default=1, show_default=True,
                 help="Partitions (fixed at creation): at most this many workers share the work."),
    click.option("--start", default="beginning", show_default=True,
                 help="Where a new subscription starts: beginning, now, or a checkpoint token."),
]


def _definition(fn: Any) -> Any:
    for option in reversed(definition):
        fn = option(fn)
    return fn


# -- pyes subscriptions --------------------------------------------------------------------


@click.group("subscriptions")
def subscriptions() -> None:
    """Persistent subscriptions: durable handlers of events."""


@subscriptions.command("list")
@dsn_option
@format_option
def subscriptions_list(dsn: str | None, fmt: str) -> None:
    """Every subscription with its live members, events handled, parked events and lowest
    checkpoint."""
    with _store(dsn) as store:
        infos = Subscriptions(store).all()
    rows = [{
        "name": i.name, "categories": i.categories, "types": i.types, "partitions": i.partitions,
        "members": i.members, "handled": i.handled, "parked": i.parked, "low_checkpoint": i.low_checkpoint,
    } for i in infos]
    emit(rows, fmt, columns=("name", "categories", "types", "partitions", "members", "handled", "parked", "low_checkpoint"),
         title="subscriptions")


@subscriptions.command("show")
@dsn_option
@format_option
@click.argument("name")
def subscriptions_show(dsn: str | None, fmt: str, name: str) -> None:
    """One subscription's partitions: checkpoint, holder and lease."""
    with _store(dsn) as store:
        parts = Subscriptions(store).partitions(name)
    rows = [{
        "partition": p.partition, "checkpoint": p.checkpoint, "owner": p.owner,
        "lease_expires_at": p.lease_expires_at, "handled": p.handled, "updated_at": p.updated_at,
    } for p in parts]
    emit(rows, fmt, columns=("partition", "checkpoint", "owner", "lease_expires_at", "handled", "updated_at"),
         title=f"subscription {name}")


@subscriptions.command("create")
@dsn_option
@_definition
@click.argument("name")
def subscriptions_create(dsn: str | None, categories: tuple[str, ...], types: tuple[str, ...], partitions: int,
                         start: str, name: str) -> None:
    """Create subscription NAME (nothing happens if it exists with the same definition)."""
    with _store(dsn) as store:
        created = Subscriptions(store).create(name, categories=categories or None, types=types or None,
                                              partitions=partitions, start=start)
    click.echo(f"created {name}" if created else f"{name} already exists with this definition")


@subscriptions.command("delete")
@dsn_option
@click.argument("name")
def subscriptions_delete(dsn: str | None, name: str) -> None:
    """Delete subscription NAME with its checkpoints and parked events."""
    with _store(dsn) as store:
        deleted = Subscriptions(store).delete(name)
    if not deleted:
        raise click.ClickException(f"no subscription named {name!r}")
    click.echo(f"deleted {name}")


@subscriptions.command("run")
@dsn_option
@_definition
@click.option("--member", help="This worker's member id (default: host-pid-random).")
@click.option("--no-listen", is_flag=True, help="Poll only (no LISTEN).")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--batch-size", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Attempts before an event is parked.")
@click.option("--retry-delay", type=click.FloatRange(min=0.0), default=0.1, show_default=True,
              help="First backoff in seconds (doubles each attempt).")
@click.option("--lease", "lease_seconds", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a partition lease lasts without renewal.")
@click.option("--until-idle", is_flag=True, help="Return once nothing is left to handle.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.argument("name")
@click.argument("handler", metavar="HANDLER")
def subscriptions_run(dsn: str | None, categories: tuple[str, ...], types: tuple[str, ...], partitions: int, start: str,
                      member: str | None, no_listen: bool, poll_interval: float, batch_size: int, max_attempts: int,
                      retry_delay: float, lease_seconds: float, until_idle: bool, log_level: str, name: str,
                      handler: str) -> None:
    """Run HANDLER (module:function, called with each event) as a worker of subscription
    NAME, created if missing. Stops cleanly on SIGTERM or Ctrl-C: the current event
    finishes and the checkpoint is saved."""
    fn = _handler(handler)
    _logging(log_level)
    worker = SubscriptionWorker(
        resolve(dsn), name, fn, categories=categories or None, types=types or None, partitions=partitions, start=start,
        member_id=member, listen=not no_listen, poll_interval=poll_interval, batch_size=batch_size,
        max_attempts=max_attempts, retry_delay=retry_delay, lease_seconds=lease_seconds,
    )
    stats = worker.run(until_idle=until_idle)
    click.echo(f"{name}: handled {stats.handled}, parked {stats.parked}, retried {stats.retried_ok}", err=True)


# -- pyes parked ---------------------------------------------------------------------------


@click.group("parked")
def parked() -> None:
    """Events whose handler kept failing: list, retry, discard."""


@parked.command("list")
@dsn_option
@format_option
@click.argument("name", required=False)
def parked_list(dsn: str | None, fmt: str, name: str | None) -> None:
    """Parked events of subscription NAME (default: of every subscription)."""
    with _store(dsn) as store:
        found = Subscriptions(store).parked(name)
    rows = [{
        "id": p.id, "subscription": p.subscription, "event_id": p.event_id, "stream_id": p.stream_id, "type": p.type,
        "attempts": p.attempts, "error": p.error, "parked_at": p.parked_at, "retry_requested_at": p.retry_requested_at,
    } for p in found]
    emit(rows, fmt, columns=("id", "subscription", "stream_id", "type", "attempts", "error", "parked_at", "retry_requested_at"),
         title="parked events")


@parked.command("retry")
@dsn_option
@click.option("--all", "every", is_flag=True, help="Every parked event of the subscription.")
@click.argument("name")
@click.argument("ids", nargs=-1, type=int)
def parked_retry(dsn: str | None, every: bool, name: str, ids: tuple[int, ...]) -> None:
    """Ask NAME's running workers to run the handler again on parked events IDS."""
    wanted = _ids(ids, every)
    with _store(dsn) as store:
        count = Subscriptions(store).retry_parked(name, wanted)
    click.echo(f"{count} parked event(s) of {name} marked for retry")


@parked.command("discard")
@dsn_option
@click.option("--all", "every", is_flag=True, help="Every parked event of the subscription.")
@click.argument("name")
@click.argument("ids", nargs=-1, type=int)
def parked_discard(dsn: str | None, every: bool, name: str, ids: tuple[int, ...]) -> None:
    """Forget parked events IDS of NAME."""
    wanted = _ids(ids, every)
    with _store(dsn) as store:
        count = Subscriptions(store).discard_parked(name, wanted)
    click.echo(f"{count} parked event(s) of {name} discarded")


# -- pyes replay ---------------------------------------------------------------------------


class Bound(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    name = "bound"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | datetime:
        from ..replay import parse_bound

        if isinstance(value, datetime):
            return value
        try:
            return parse_bound(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command("replay")
@dsn_option
@click.option("--from", "start", type=Bound(), help="Checkpoint token (excluded), ISO moment (included), or -30d.")
@click.option("--to", "end", type=Bound(), help="Checkpoint token (included), ISO moment (excluded), now, or -1d.")
@click.option("--type", "types", multiple=True, help="Only this event type (repeat for several).")
@click.option("--category", "categories", multiple=True, help="Only this category (repeat for several).")
@click.option("--page-size", type=click.IntRange(1, 100000), default=500, show_default=True)
@click.option("--stop-on-error", is_flag=True, help="Stop at the first handler error.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway when stderr is no terminal).")
@click.argument("handler", metavar="HANDLER")
def replay(dsn: str | None, start: str | datetime | None, end: str | datetime | None, types: tuple[str, ...],
           categories: tuple[str, ...], page_size: int, stop_on_error: bool, no_progress: bool, handler: str) -> None:
    """Run HANDLER (module:function) over the events of a past window, in the global order,
    without touching any subscription's checkpoint; print a summary. Exit code 1 if the
    handler failed on any event."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..replay import Window
    from ..replay import replay as run_replay

    fn = _handler(handler)
    window = Window(
        after=start if isinstance(start, str) else None,
        upto=end if isinstance(end, str) else None,
        since=start if isinstance(start, datetime) else None,
        until=end if isinstance(end, datetime) else None,
        categories=categories or None,
        types=types or None,
    )
    err = Console(stderr=True, markup=False)
    progress = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=no_progress, transient=False)
    task = progress.add_task("replay", total=None, failed=0)
    failed = 0

    def on_start(total: int) -> None:
        progress.update(task, total=total)

    def on_event(event: RecordedEvent, error: str | None) -> None:
        nonlocal failed
        if error is not None:
            failed += 1
        progress.update(task, advance=1, failed=failed)

    with _store(dsn) as store, progress:
        summary = run_replay(store, fn, window, page_size=page_size, stop_on_error=stop_on_error,
                             on_start=on_start, on_event=on_event)
    rows: list[dict[str, Any]] = [
        {"field": "events in window", "value": summary.events},
        {"field": "handled", "value": summary.handled},
        {"field": "failed", "value": summary.failed},
        {"field": "first", "value": f"{summary.first_checkpoint} at {summary.first_recorded_at}" if summary.first_checkpoint else ""},
        {"field": "last", "value": f"{summary.last_checkpoint} at {summary.last_recorded_at}" if summary.last_checkpoint else ""},
        {"field": "seconds", "value": f"{summary.seconds:.2f}"},
        {"field": "events/s", "value": f"{summary.events_per_second:.0f}"},
    ]
    rows += [{"field": f"type {name}", "value": count} for name, count in summary.by_type.most_common()]
    if summary.stopped_early:
        rows.append({"field": "stopped", "value": "at the first error (--stop-on-error)"})
    emit(rows, "table", columns=("field", "value"), title="replay summary")
    for event, error in summary.errors:
        click.echo(f"failed: {event.stream_id} v{event.version} {event.type} ({event.checkpoint}): {error}", err=True)
    if summary.failed:
        raise SystemExit(1)


# -- pyes relay ----------------------------------------------------------------------------


@click.group("relay")
def relay() -> None:
    """Publish events to a message broker (NATS JetStream)."""


@relay.command("run")
@dsn_option
@click.option("--category", "categories", multiple=True, help="Relay this category (repeat for several; default: all).")
@click.option("--type", "types", multiple=True, help="Relay only this type (repeat for several).")
@click.option("--start", default="beginning", show_default=True, help="beginning, now or a checkpoint token (at creation).")
@click.option("--nats-url", default="nats://127.0.0.1:4222", show_default=True, envvar="PYES_NATS_URL")
@click.option("--stream", default="PYES", show_default=True, help="JetStream stream (created if missing).")
@click.option("--subject-prefix", default="pyes", show_default=True, help="Subjects are PREFIX.<category>.<type>.")
@click.option("--duplicate-window", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds JetStream deduplicates by Nats-Msg-Id.")
@click.option("--until-idle", is_flag=True, help="Return once everything is published.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.argument("name")
def relay_run(dsn: str | None, categories: tuple[str, ...], types: tuple[str, ...], start: str, nats_url: str,
              stream: str, subject_prefix: str, duplicate_window: float, until_idle: bool, log_level: str, name: str) -> None:
    """Run relay NAME (a durable subscription) that publishes events to NATS JetStream."""
    from ..relay import NatsPublisher, Relay

    _logging(log_level)
    try:
        publisher = NatsPublisher(nats_url, stream=stream, subject_prefix=subject_prefix, duplicate_window=duplicate_window)
    except Exception as error:  # noqa: BLE001 - nats-py raises several kinds
        raise click.ClickException(f"cannot reach NATS JetStream at {nats_url}: {type(error).__name__}: {error}") from None
    try:
        runner = Relay(resolve(dsn), name, publisher, categories=categories or None, types=types or None, start=start)
        runner.run(until_idle=until_idle)
    finally:
        publisher.close()
    click.echo(f"{name}: published {runner.relay_stats.published} ({runner.relay_stats.duplicates} duplicates dropped by the broker)",
               err=True)


COMMANDS: list[click.Command] = [subscriptions, parked, replay, relay]
