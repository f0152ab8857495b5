"""`pyes` commands for projections (see docs/cli.md)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
