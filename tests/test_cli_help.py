"""`soars --help` and every command's `--help` say what it does and show an
example, for commands added later too (the tree is walked, not listed)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import REPO

from soars.cli import build_parser, subcommands


def _every_command(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for name, _, sub in subcommands(parser):
        yield (*path, name), sub
        yield from _every_command(sub, (*path, name))


COMMANDS = list(_every_command(build_parser()))


def test_the_top_level_help_says_what_soars_is_and_shows_examples() -> None:
    text = build_parser().format_help()

    assert "audited" in text
    assert "examples:" in text
    for name, _, _ in subcommands(build_parser()):
        assert name in text


@pytest.mark.parametrize(
    "path, parser", COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS]
)
def test_each_command_says_what_it_does_with_an_example(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    text = parser.format_help()

    assert parser.description and len(parser.description) > 10, path
    assert "example" in text
    examples = (parser.epilog or "").splitlines()[1:]
    assert examples and all(
        line.strip().startswith("soars " + path[0]) for line in examples if line.strip()
    ), parser.epilog


def test_help_runs_from_the_installed_command() -> None:
    finished = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "soars.cli", "audit", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 0
    assert "soars audit verify" in finished.stdout
