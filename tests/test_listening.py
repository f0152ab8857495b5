"""After an append: one trigger, whose generated body has only the jobs with work to do (the
schema check, inline projections, the notification), and notifications only while a session
listens through pyes.listen() (130_append_trigger.sql)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from pyes import EventStore, NewEvent
from pyes.errors import InvalidArgument
from pyes.listening import close_listener, listen

pytestmark = pytest.mark.timeout(60)


def notifications(conn: psycopg.Connection[Any]) -> int:
    return sum(1 for _ in conn.notifies(timeout=0.5, stop_after=1))


def listeners(store: EventStore) -> list[int]:
    with store.pool.connection() as c:
        return [row[0] for row in c.execute("SELECT pid FROM pyes.listeners ORDER BY pid").fetchall()]


def test_appends_notify_only_while_a_session_listens(store: EventStore, connect: Any) -> None:
    plain = connect(autocommit=True)
    plain.execute("LISTEN pyes_events")  # listens, but is not registered
    store.append("item-1", [NewEvent("Noted", {})])
    assert notifications(plain) == 0

    registered = connect(autocommit=True)
    listen(registered)
    assert listeners(store) == [registered.info.backend_pid]
    writer = connect()
    store.append("item-1", [NewEvent("Noted", {})], conn=writer)
    store.append("item-2", [NewEvent("Noted", {})], conn=writer)
    writer.rollback()
    assert notifications(registered) == 0  # nothing for a transaction that rolls back
    store.append("item-1", [NewEvent("Noted", {})], conn=writer)
    store.append("item-2", [NewEvent("Noted", {})], conn=writer)
    writer.commit()
    assert notifications(registered) == 1  # one, at commit, for the whole transaction
    assert notifications(plain) == 1  # while someone is registered, every listener hears it
    assert notifications(registered) == 0

    registered.execute("SELECT pyes.unlisten()")
    assert listeners(store) == []
    store.append("item-1", [NewEvent("Noted", {})])
    assert notifications(registered) == 0 and notifications(plain) == 0


def test_the_notify_setting(store: EventStore, connect: Any) -> None:
    plain = connect(autocommit=True)
    plain.execute("LISTEN pyes_events")
    writer = connect(autocommit=True)
    writer.execute("SET pyes.notify = 'on'")  # every append, registered listener or not
    store.append("item-1", [NewEvent("Noted", {})], conn=writer)
    assert notifications(plain) == 1

    registered = connect(autocommit=True)
    listen(registered)
    writer.execute("SET pyes.notify = 'off'")  # never, even with a registered listener
    store.append("item-1", [NewEvent("Noted", {})], conn=writer)
    assert notifications(registered) == 0
    writer.execute("SET pyes.notify = 'auto'")
    store.append("item-1", [NewEvent("Noted", {})], conn=writer)
    assert notifications(registered) == 1

    writer.execute("SET pyes.notify = 'sometimes'")
    with pytest.raises(InvalidArgument) as raised:
        store.append("item-1", [NewEvent("Noted", {})], conn=writer)
    assert raised.value.sqlstate == "PE109" and "'auto'" in (raised.value.detail or "")
    assert [e.version for e in store.read_stream("item-1")] == [1, 2, 3]  # nothing was appended


def test_listen_forgets_sessions_that_ended(store: EventStore, connect: Any, dsn: str) -> None:
    gone = psycopg.connect(dsn, autocommit=True)
    listen(gone)
    pid = gone.info.backend_pid
    gone.close()  # without unlisten: its row stays, and costs needless notifications only
    admin = connect(autocommit=True)
    deadline = time.monotonic() + 10
    while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        assert time.monotonic() < deadline, "the closed session did not end"
        time.sleep(0.05)
    assert listeners(store) == [pid]
    fresh = connect(autocommit=True)
    listen(fresh)
    assert listeners(store) == [fresh.info.backend_pid]
    close_listener(fresh)
    assert listeners(store) == []


def test_one_trigger_runs_after_appends(store: EventStore, connect: Any) -> None:
    admin = connect(autocommit=True)

    def triggers() -> list[str]:
        rows = admin.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'pyes.events'::regclass"
                             " AND NOT tgisinternal ORDER BY tgname").fetchall()
        return [row[0] for row in rows]

    def source() -> str:
        return str(admin.execute("SELECT prosrc FROM pg_proc WHERE oid = 'pyes.project_inline()'::regprocedure").fetchone()[0])  # type: ignore[index]

    assert triggers() == ["events_immutable_rows", "events_immutable_table", "events_project_inline"]
    assert "check_new_events" not in source() and "pg_notify" in source()
    admin.execute("""SELECT pyes.register_event_schema('Noted', 1, '{"type": "object", "required": ["text"]}')""")
    assert "check_new_events" in source()  # registering a schema regenerated the trigger function
    with pytest.raises(psycopg.Error) as raised:
        admin.execute("""SELECT pyes.append('item-1', '[{"type": "Noted", "data": {}}]')""")
    assert raised.value.sqlstate == "PE601"
    admin.execute("SELECT pyes.unregister_event_schema('Noted', 1)")
    assert "check_new_events" not in source()
    admin.execute("""SELECT pyes.append('item-1', '[{"type": "Noted", "data": {}}]')""")
