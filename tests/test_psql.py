"""The SQL API of pyes driven through the ``psql`` binary, as a shell script or another
language would use it: no psycopg, no Python layer."""

from __future__ import annotations

import json
import time

from _psql import run_psql

OPEN_AND_DEPOSIT = """[{"type": "Opened", "data": {"owner": "ann"}},
                      {"type": "Deposited", "data": {"amount": 10}, "metadata": {"by": "psql"}}]"""


def _append_two(dsn: str) -> None:
    out = run_psql(dsn, f"SELECT stream_version FROM pyes.append('account-1', '{OPEN_AND_DEPOSIT}'::jsonb);")
    assert out.lines == ["2"]


def _count_events(dsn: str, stream_id: str | None = None) -> int:
    if stream_id is None:
        return int(run_psql(dsn, "SELECT count(*) FROM pyes.events;").lines[0])
    out = run_psql(dsn, "SELECT count(*) FROM pyes.events WHERE stream_id = :'sid';", variables={"sid": stream_id})
    return int(out.lines[0])


def test_append_two_events_and_read_them_back(dsn: str) -> None:
    out = run_psql(
        dsn,
        f"""
        SELECT stream_version, cardinality(positions)
          FROM pyes.append('account-1', '{OPEN_AND_DEPOSIT}'::jsonb);
        \\echo ---
        SELECT version, type, data::text, metadata::text, stream_id, category, schema_version
          FROM pyes.read_stream('account-1');
        \\echo ---
        SELECT version, type FROM pyes.read_stream('account-1', NULL, 1000, 'backward');
        """,
    )
    first, forward, backward = "\n".join(out.lines).split("\n---\n")
    assert first == "2|2"
    assert forward.splitlines() == [
        '1|Opened|{"owner": "ann"}|{}|account-1|account|1',
        '2|Deposited|{"amount": 10}|{"by": "psql"}|account-1|account|1',
    ]
    assert backward.splitlines() == ["2|Deposited", "1|Opened"]


def test_positions_and_checkpoints_of_an_append(dsn: str) -> None:
    out = run_psql(
        dsn,
        f"""
        SELECT array_to_string(positions, ',') FROM pyes.append('account-1', '{OPEN_AND_DEPOSIT}'::jsonb);
        SELECT string_agg(position::text, ',' ORDER BY version),
               bool_and(checkpoint = transaction_id::text || '/' || position::text)
          FROM pyes.read_stream('account-1');
        """,
    )
    positions, (read_positions, checkpoints_ok) = out.lines[0], out.lines[1].split("|")
    assert positions == read_positions
    assert len(positions.split(",")) == 2
    assert checkpoints_ok == "t"


def test_exact_expected_version_as_text_and_as_bigint(dsn: str) -> None:
    _append_two(dsn)
    out = run_psql(
        dsn,
        """
        SELECT stream_version FROM pyes.append('account-1', '[{"type": "Deposited", "data": {"amount": 1}}]'::jsonb, '2');
        SELECT stream_version FROM pyes.append('account-1', '[{"type": "Deposited", "data": {"amount": 2}}]'::jsonb, 3);
        SELECT stream_version FROM pyes.append('account-1', '[{"type": "Deposited", "data": {"amount": 3}}]'::jsonb, 4::bigint);
        SELECT stream_version FROM pyes.append('account-2', '[{"type": "Opened"}]'::jsonb, 0);
        SELECT stream_version FROM pyes.append('account-3', '[{"type": "Opened"}]'::jsonb, '0');
        SELECT string_agg(version::text || ':' || (data ->> 'amount'), ',' ORDER BY version)
          FROM pyes.read_stream('account-1', 3);
        """,
    )
    assert out.lines == ["3", "4", "5", "1", "1", "3:1,4:2,5:3"]


def test_version_conflict_reports_pe001_with_its_detail(dsn: str) -> None:
    _append_two(dsn)
    text_form = run_psql(
        dsn,
        """SELECT * FROM pyes.append('account-1', '[{"type": "Deposited"}]'::jsonb, '1');""",
        verbose=True,
        check=False,
    )
    assert text_form.returncode != 0
    assert text_form.sqlstate == "PE001", text_form.stderr
    assert text_form.message == "wrong expected version for stream 'account-1'"
    assert text_form.detail == 'stream "account-1" is at version 2; the append expected version 1.'

    bigint_form = run_psql(
        dsn,
        """SELECT * FROM pyes.append('account-1', '[{"type": "Deposited"}]'::jsonb, 7);""",
        verbose=True,
        check=False,
    )
    assert bigint_form.returncode != 0
    assert bigint_form.sqlstate == "PE001", bigint_form.stderr
    assert bigint_form.detail == 'stream "account-1" is at version 2; the append expected version 7.'

    absent = run_psql(
        dsn,
        """SELECT * FROM pyes.append('account-9', '[{"type": "Opened"}]'::jsonb, 'stream_exists');""",
        verbose=True,
        check=False,
    )
    assert absent.sqlstate == "PE001", absent.stderr
    assert absent.detail == 'stream "account-9" is at version 0; the append expected an existing stream.'

    assert _count_events(dsn, "account-1") == 2
    assert _count_events(dsn) == 2
    assert run_psql(dsn, "SELECT pyes.stream_version('account-1');").lines == ["2"]


def test_sqlstate_is_also_in_psql_last_error_variable(dsn: str) -> None:
    _append_two(dsn)
    out = run_psql(
        dsn,
        """
        \\set ON_ERROR_STOP 0
        SELECT * FROM pyes.append('account-1', '[{"type": "Deposited"}]'::jsonb, 'no_stream');
        \\echo :LAST_ERROR_SQLSTATE
        SELECT * FROM pyes.append('', '[{"type": "Deposited"}]'::jsonb);
        \\echo :LAST_ERROR_SQLSTATE
        """,
        check=True,
    )
    assert out.lines == ["PE001", "PE101"]


def test_invalid_input_has_its_own_sqlstate_and_writes_nothing(dsn: str) -> None:
    _append_two(dsn)
    cases = [
        # (SQL, SQLSTATE, start of the DETAIL)
        ("""SELECT * FROM pyes.append('', '[{"type": "Opened"}]'::jsonb)""", "PE101", "A stream id is 1 to 255"),
        ("""SELECT * FROM pyes.append('account-5', '[{"type": "9bad"}]'::jsonb)""", "PE102", "Event 1 for stream"),
        ("""SELECT * FROM pyes.append('account-5', '[{"type": "A", "dta": {}}]'::jsonb)""", "PE103", "Event 1"),
        ("""SELECT * FROM pyes.append('account-5', '[{"type": "A", "id": "nope"}]'::jsonb)""", "PE106", "Event 1"),
        ("""SELECT * FROM pyes.append('account-5', '[{"type": "A"}]'::jsonb, 'often')""", "PE105", "The expected"),
        ("""SELECT * FROM pyes.append('account-5', '[]'::jsonb)""", "PE107", "pyes.append('account-5', ...)"),
        ("""SELECT * FROM pyes.append('account-1', '{"type": "A"}'::jsonb)""", "PE107", "pyes.append('account-1'"),
        ("""SELECT * FROM pyes.read_all('garbage')""", "PE108", "A checkpoint is"),
        ("""SELECT * FROM pyes.read_stream('account-1', NULL, 0)""", "PE109", "A read returns"),
        # The second event is bad: the first must not be written either.
        (
            """SELECT * FROM pyes.append('account-1', '[{"type": "Ok"}, {"type": "Bad", "data": [1]}]'::jsonb)""",
            "PE103",
            "Event 2 for stream 'account-1' has data of type array.",
        ),
    ]
    for sql, sqlstate, detail_start in cases:
        result = run_psql(dsn, sql + ";", verbose=True, check=False)
        assert result.returncode != 0, sql
        assert result.sqlstate == sqlstate, (sql, result.stderr)
        assert result.detail is not None and result.detail.startswith(detail_start), (sql, result.stderr)
    assert _count_events(dsn) == 2
    assert _count_events(dsn, "account-1") == 2
    assert run_psql(dsn, "SELECT count(*), max(version) FROM pyes.streams;").lines == ["1|2"]


def test_a_failed_append_in_a_psql_transaction_rolls_back_the_batch(dsn: str) -> None:
    result = run_psql(
        dsn,
        """
        BEGIN;
        SELECT stream_version FROM pyes.append('account-1', '[{"type": "Opened"}]'::jsonb);
        SELECT stream_version FROM pyes.append('account-2', '[{"type": "Opened"}]'::jsonb, 5);
        COMMIT;
        """,
        verbose=True,
        check=False,
    )
    assert result.returncode != 0
    assert result.lines == ["BEGIN", "1"]
    assert result.sqlstate == "PE001"
    assert _count_events(dsn) == 0
    assert run_psql(dsn, "SELECT count(*) FROM pyes.streams;").lines == ["0"]


def test_read_all_pages_by_checkpoint_return_every_event_exactly_once(dsn: str) -> None:
    # Several transactions and streams, so that pages cut across both.
    batches = [
        ("account-1", 3),
        ("order-1", 1),
        ("account-2", 2),
        ("account-1", 1),
        ("order-2", 4),
        ("account-2", 1),
    ]
    for n, (stream_id, count) in enumerate(batches):
        events = json.dumps([{"type": "Happened", "data": {"batch": n, "i": i}} for i in range(count)])
        run_psql(
            dsn, "SELECT * FROM pyes.append(:'sid', :'events'::jsonb);", variables={"sid": stream_id, "events": events}
        )
    total = sum(count for _, count in batches)

    stored = run_psql(dsn, "SELECT event_id FROM pyes.events ORDER BY transaction_id, position;").lines
    assert len(stored) == total

    page_size = 4
    seen: list[str] = []
    after = ""  # '' means from the beginning
    pages = 0
    deadline = time.monotonic() + 60
    while len(seen) < total:
        # read_all stops below the oldest running transaction of the whole cluster; on a
        # shared server another session may hold that line back for a moment.
        assert time.monotonic() < deadline, f"read_all returned {len(seen)} of {total} events"
        page = run_psql(
            dsn,
            "SELECT event_id, checkpoint FROM pyes.read_all(NULLIF(:'after', ''), :max);",
            variables={"after": after, "max": str(page_size)},
        ).lines
        if not page:
            time.sleep(0.1)
            continue
        assert len(page) <= page_size
        pages += 1
        for line in page:
            event_id, checkpoint = line.split("|")
            seen.append(event_id)
            after = checkpoint
    assert pages >= total // page_size
    assert seen == stored
    assert len(set(seen)) == total
    # Nothing after the last checkpoint, and the empty string also means "from the beginning".
    assert run_psql(dsn, "SELECT count(*) FROM pyes.read_all(:'after');", variables={"after": after}).lines == ["0"]
    assert run_psql(dsn, "SELECT count(*) FROM pyes.read_all('');").lines == [str(total)]
    # The type filter and the category read over the same events.
    assert run_psql(dsn, "SELECT count(*) FROM pyes.read_all(NULL, 1000, ARRAY['Nope']);").lines == ["0"]
    assert run_psql(dsn, "SELECT count(*) FROM pyes.read_category('order');").lines == ["5"]


def test_stream_version(dsn: str) -> None:
    assert run_psql(dsn, "SELECT pyes.stream_version('account-1');").lines == ["0"]
    _append_two(dsn)
    run_psql(dsn, """SELECT * FROM pyes.append('account-1', '[{"type": "Closed"}]'::jsonb, 2);""")
    out = run_psql(
        dsn,
        """
        SELECT pyes.stream_version('account-1');
        SELECT pyes.stream_version('account-2');
        SELECT version, category FROM pyes.get_stream('account-1');
        """,
    )
    assert out.lines == ["3", "0", "3|account"]


def test_events_are_immutable(dsn: str) -> None:
    _append_two(dsn)
    before = run_psql(dsn, "SELECT event_id, type, data::text FROM pyes.events ORDER BY position;").lines
    for sql in (
        "UPDATE pyes.events SET type = 'Tampered';",
        "UPDATE pyes.events SET data = '{}'::jsonb WHERE version = 2;",
        "DELETE FROM pyes.events;",
        "TRUNCATE pyes.events;",
    ):
        result = run_psql(dsn, sql, verbose=True, check=False)
        assert result.returncode != 0, sql
        assert result.sqlstate == "PE201", (sql, result.stderr)
        assert result.message is not None and result.message.startswith("events are immutable"), result.stderr
    deleted = run_psql(dsn, "DELETE FROM pyes.streams;", verbose=True, check=False)
    assert deleted.sqlstate == "PE202", deleted.stderr
    assert run_psql(dsn, "SELECT event_id, type, data::text FROM pyes.events ORDER BY position;").lines == before
    assert run_psql(dsn, "SELECT pyes.stream_version('account-1');").lines == ["2"]
