"""Fast decoding of json and jsonb columns: orjson, with the standard library behind it for
what orjson refuses (integers beyond 64 bits, numbers beyond a float's range), so nothing is
lost. Writing keeps the standard library: orjson writes NaN as null, where json.dumps makes
PostgreSQL refuse it."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

# 19 digits in a row may be an integer beyond 64 bits, which orjson would turn into a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Decode json and jsonb columns of ``conn`` with :func:`loads`."""
    set_json_loads(loads, conn)
