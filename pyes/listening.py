"""Waiting for appends: channel ``pyes_events``.

Appends notify only while some session listens through ``pyes.listen()`` (or when the setting
``pyes.notify`` is ``on``), because PostgreSQL commits notifying transactions one at a time.
A listener must poll as well: a notification is lost across a reconnect.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg

CHANNEL = "pyes_events"


def listen(conn: psycopg.Connection[Any]) -> None:
    """LISTEN on ``pyes_events`` and register the session, so that appends notify. ``conn``
    should be in autocommit (both take effect at commit)."""
    conn.execute("SELECT pyes.listen()")


def close_listener(conn: psycopg.Connection[Any]) -> None:
    """Unregister the session (``pyes.unlisten()``) and close it. A connection that is broken
    is only closed: the next ``pyes.listen()`` forgets its session."""
    with contextlib.suppress(psycopg.Error):
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pyes.unlisten()")
    conn.close()
