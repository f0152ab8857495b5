"""pyes.append checks a batch inline, all at once, and calls pyes.validate_events (one event at
a time) only to name a problem. The two must agree on every input: property-tested here on
generated batches that mix valid and invalid fields."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

UUID = str(uuid.UUID("0b7e4a52-2f1c-4c5e-9d0a-4e4a3a1f6b10"))

types = st.sampled_from(["Deposited", "account.opened", "$rewind", "a:b/c-d", "_x", "T" * 255,
                         "", "1x", "a b", "T" * 256, "a\nb", "Ünicode", 7, None])
objects = st.sampled_from([{}, {"a": 1}, {"n": {"m": [1, 2]}}, [1], "x", None, 3])
ids = st.one_of(
    st.uuids().map(str),
    st.sampled_from([UUID.upper(), "{" + UUID + "}", UUID.replace("-", ""), "{" + UUID, UUID + "}",
                     "nope", "", UUID + "\n" + UUID, 42, None,
                     # 36 characters with the hyphens almost where a canonical uuid has them
                     # (one event's id is first tested for that form, before the full regex).
                     UUID[:-1] + "g", UUID[:13] + UUID[14] + "-" + UUID[15:], "-" * 36, UUID[:8] + "--" + UUID[10:]]),
)
versions = st.sampled_from([1, 2, 999999999, 0, -1, "1", "2", 1.0, 1.5, 10**10, None])
keys = {
    "type": types, "data": objects, "metadata": objects, "id": ids, "correlation_id": ids,
    "causation_id": ids, "schema_version": versions, "dat": objects,
}


@st.composite
def events(draw: Any) -> Any:
    chosen = draw(st.sets(st.sampled_from(sorted(keys)), max_size=5))
    event = {key: draw(keys[key]) for key in chosen}
    if "type" not in chosen and draw(st.booleans()):
        event["type"] = "Deposited"
    return event if draw(st.integers(0, 20)) else draw(st.sampled_from([1, "x", None, []]))


batches = st.one_of(st.lists(events(), min_size=0, max_size=4), st.sampled_from([{}, 5, "x", None]))


def outcome(conn: psycopg.Connection[Any], query: str, batch: Any) -> str | None:
    """The SQLSTATE the query raises for this batch, or None if it succeeds (rolled back)."""
    try:
        with conn.transaction():
            conn.execute("SET LOCAL pyes.max_event_bytes = '400'")
            conn.execute(query, (json.dumps(batch),))
            raise psycopg.Rollback()
    except psycopg.Error as error:
        return error.sqlstate
    return None


@pytest.fixture
def conn(connect: Any) -> psycopg.Connection[Any]:
    """One connection for all the examples of a test (hypothesis reuses function fixtures)."""
    return connect(autocommit=True)  # type: ignore[no-any-return]


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
# Cases hypothesis found once: keep them.
@example(batch=[{}, {"type": "Deposited"}])  # a missing key made a test NULL, and bool_and skips NULLs
@example(batch=[{"type": "Deposited", "causation_id": ""}])  # an empty string is not "no value"
@example(batch=[{"type": "Deposited", "causation_id": UUID + "\n" + UUID}])  # two uuids in one value
# One event in the form pyes's clients write gets a shorter test first (040_append.sql): each of
# these is one field away from passing it.
@example(batch=[{"id": UUID, "type": "Deposited", "data": {}, "metadata": {}, "schema_version": 1}])
@example(batch=[{"id": UUID, "type": "Deposited", "schema_version": 1.0}])
@example(batch=[{"id": UUID, "type": "Deposited", "schema_version": "1"}])
@example(batch=[{"id": UUID, "type": "Deposited", "schema_version": None}])
@example(batch=[{"id": UUID, "type": True}])
@example(batch=[{"id": UUID, "type": "Deposited", "data": None}])
@example(batch=[{"id": UUID, "type": "Deposited", "metadata": [{}]}])
@example(batch=[{"id": UUID.upper(), "type": "Deposited", "correlation_id": UUID, "causation_id": UUID[:35] + "x"}])
@example(batch=[{"id": UUID[:8] + "-" + UUID[8:12] + UUID[13:], "type": "Deposited"}])
# A batch's types, schema versions and ids are tested as lists of JSON text (040_append.sql).
@example(batch=[{"type": "A"}, {"type": "B", "id": 12345678901234567890123456789012}])
@example(batch=[{"type": "A"}, {"type": "B\nC"}])
@example(batch=[{"type": "A"}, {"type": True}])
@example(batch=[{"type": "A"}, {"type": "B", "schema_version": 1.0}])
@example(batch=[{"type": "A"}, {"type": "B", "schema_version": 0}])
@example(batch=[{"type": "A", "data": {}, "metadata": {}}, {"type": "B", "data": {"x": 1}, "metadata": []}])
@example(batch=[{"type": "A", "correlation_id": None}, {"type": "B", "causation_id": "{" + UUID + "}"}])
def test_inline_checks_agree_with_validate_events(conn: psycopg.Connection[Any], batch: Any) -> None:
    by_append = outcome(conn, "SELECT * FROM pyes.append('prop-1', %s::jsonb)", batch)
    by_validator = outcome(conn, "SELECT pyes.validate_events(%s::jsonb, 'prop-1')", batch)
    # Checks beyond the shape of each event: ids repeated in the batch (PE002), and a
    # "$rewind" that does not point into the stream's past (PE111).
    if by_append in ("PE002", "PE111"):
        by_append = None
    assert by_append == by_validator, batch
