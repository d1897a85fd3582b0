"""Run the ``embhub`` command the way a user does, in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from embhub.cli import app
from embhub.cli.render import console
from embhub.plugins import load_plugins


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Outcome:
    """In-process, with freshly loaded plugins."""
    load_plugins(refresh=True)
    console.width = 250
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, terminal_width=200)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def run_cli_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Outcome:
    """As a separate process (``python -m embhub``), e.g. to see plugins installed by the test."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "embhub", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(outcome: Outcome, *fragments: str) -> None:
    assert outcome.exit_code != 0, outcome
    assert "Traceback" not in outcome.stderr + outcome.stdout
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
