"""The built wheel works on its own: installed into a fresh virtual environment, outside the
repository, it carries its SQL and migrations, runs ``pyes db upgrade`` and appends events."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _clean_environment() -> dict[str, str]:
    """The environment of the test run, minus what could make the repository importable or
    point the commands at another database or interpreter."""
    env = dict(os.environ)
    for name in (
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "VIRTUAL_ENV",
        "PYES_DATABASE_URL",
        "__PYVENV_LAUNCHER__",
    ):
        env.pop(name, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(command: list[str], *, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        command, check=False, cwd=cwd, env=_clean_environment(), capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, (
        f"{command} exited with {completed.returncode}\n--- stdout:\n{completed.stdout}\n--- stderr:\n{completed.stderr}"
    )
    return completed


def _build_wheel(outdir: Path, cwd: Path) -> Path:
    if importlib.util.find_spec("build") is not None:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(REPO)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(outdir), str(REPO)]
    _run(command, cwd=cwd)
    wheels = sorted(outdir.glob("pyes_eventstore-*.whl"))
    assert len(wheels) == 1, list(outdir.iterdir())
    return wheels[0]


def _check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for required in (
        "pyes/__init__.py",
        "pyes/py.typed",
        "pyes/_sql/install.sql",
        "pyes/_migrations/env.py",
        "pyes/_migrations/script.py.mako",
    ):
        assert required in names, f"{required} is missing from {wheel.name}"
    # Every SQL file and every migration of the checkout, under its packaged name.
    for folder, packaged in (("sql", "pyes/_sql"), ("migrations", "pyes/_migrations")):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                name = f"{packaged}/{path.relative_to(REPO / folder).as_posix()}"
                assert name in names, f"{name} is missing from {wheel.name}"
    # Each file that install.sql includes is in the wheel too (it is read at migration time).
    for line in (REPO / "sql" / "install.sql").read_text().splitlines():
        if line.startswith("\\ir "):
            assert f"pyes/_sql/{line.split()[1]}" in names, line
    assert not any(name.startswith(("tests/", "sql/", "migrations/")) for name in names), sorted(names)
    assert any(name.endswith(".dist-info/entry_points.txt") for name in names)


def test_wheel_installs_and_runs_outside_the_repository(tmp_path: Path, empty_dsn: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    assert REPO not in outside.resolve().parents

    wheel = _build_wheel(tmp_path / "dist", cwd=outside)
    _check_wheel_contents(wheel)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=outside)
    python = venv / "bin" / "python"
    pyes_command = venv / "bin" / "pyes"
    _run([str(python), "-m", "pip", "install", str(wheel)], cwd=outside, timeout=540)
    assert pyes_command.exists()

    # The installed package, not the checkout, answers: its code, its SQL, its migrations.
    located = _run(
        [
            str(python),
            "-c",
            "import pyes, pyes.sqlfiles as s; print(pyes.__file__); print(s.sql_dir()); print(s.migrations_dir())",
        ],
        cwd=outside,
    ).stdout.splitlines()
    venv_root = venv.resolve()
    for path in located:
        assert Path(path).resolve().is_relative_to(venv_root), located
        assert not Path(path).resolve().is_relative_to(REPO), located
    assert Path(located[1]).name == "_sql"
    assert Path(located[2]).name == "_migrations"

    wheel_version = wheel.name.split("-")[1]
    version = _run([str(pyes_command), "--version"], cwd=outside).stdout
    assert version.strip().endswith(f"version {wheel_version}"), version

    upgraded = _run([str(pyes_command), "db", "upgrade", "--dsn", empty_dsn], cwd=outside)
    assert upgraded.stdout.startswith("pyes schema at pyes_"), upgraded.stdout
    current = _run([str(pyes_command), "db", "current", "--dsn", empty_dsn], cwd=outside)
    assert current.stdout.strip() == upgraded.stdout.strip().removeprefix("pyes schema at ")

    script = textwrap.dedent(
        """
        import sys
        import pyes
        from pyes import EventStore, NewEvent

        print(pyes.__file__)
        with EventStore(sys.argv[1], max_size=1) as store:
            result = store.append("account-1", [NewEvent("Opened", {"owner": "ann"})], "no_stream")
            events = store.read_stream("account-1")
            print(result.stream_version)
            print(";".join(f"{e.version}:{e.type}:{e.data['owner']}" for e in events))
            print(store.stream_version("account-1"))
        """
    )
    ran = _run([str(python), "-c", script, empty_dsn], cwd=outside).stdout.splitlines()
    assert Path(ran[0]).resolve().is_relative_to(venv_root), ran
    assert ran[1:] == ["1", "1:Opened:ann", "1"]

    # And the migration goes down cleanly from the installed package too.
    downgraded = _run([str(pyes_command), "db", "downgrade", "--dsn", empty_dsn, "base"], cwd=outside)
    assert downgraded.stdout.strip() == "pyes schema at base"

    # An application's own alembic project includes pyes's revisions, as the README shows.
    project = outside / "app"
    (project / "versions").mkdir(parents=True)
    (project / "alembic.ini").write_text(textwrap.dedent(
        """
        [alembic]
        script_location = %(here)s
        version_locations = %(here)s/versions pyes:_migrations/versions
        """
    ))
    (project / "env.py").write_text(textwrap.dedent(
        """
        import os
        import psycopg
        import sqlalchemy
        from alembic import context

        engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(os.environ["APP_DSN"]))
        with engine.begin() as connection:
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
        """
    ))
    (project / "versions" / "app_0001_orders.py").write_text(textwrap.dedent(
        """
        from alembic import op

        revision = "app_0001"
        down_revision = None
        branch_labels = ("app",)
        depends_on = None

        def upgrade():
            op.execute("CREATE TABLE app_orders (id int PRIMARY KEY)")

        def downgrade():
            op.execute("DROP TABLE app_orders")
        """
    ))
    alembic_env = {"APP_DSN": empty_dsn}
    completed = subprocess.run(
        [str(venv / "bin" / "alembic"), "-c", str(project / "alembic.ini"), "upgrade", "heads"],
        check=False, cwd=outside, env={**_clean_environment(), **alembic_env}, capture_output=True, text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    script = textwrap.dedent(
        """
        import sys
        import psycopg
        from pyes import EventStore, NewEvent

        import pyes.migrate
        with psycopg.connect(sys.argv[1]) as conn:
            heads = sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
            print(heads == sorted(["app_0001", pyes.migrate.head()]))
            print(conn.execute("SELECT to_regclass('app_orders') IS NOT NULL").fetchone()[0])
        with EventStore(sys.argv[1], max_size=1) as store:
            print(store.append("order-1", [NewEvent("Placed")]).stream_version)
        """
    )
    ran = _run([str(python), "-c", script, empty_dsn], cwd=outside).stdout.splitlines()
    assert ran == ["True", "True", "1"], ran

    # The README's demo, run by the fresh environment's Python from outside the checkout, on
    # a database of its own.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(empty_dsn)
    demo_db = f"{params['dbname']}_demo"
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{demo_db}"')
    try:
        demo = subprocess.run(
            [str(python), str(REPO / "examples" / "demo.py")],
            check=False, cwd=outside, capture_output=True, text=True, timeout=300,
            env={**_clean_environment(), "PYES_DATABASE_URL": make_conninfo(empty_dsn, dbname=demo_db)},
        )
    finally:
        with psycopg.connect(empty_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{demo_db}" WITH (FORCE)')
    assert demo.returncode == 0, demo.stderr
    assert "Done." in demo.stdout and "$rewind" in demo.stdout
