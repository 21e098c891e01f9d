"""Long commands show a progress bar on a terminal and plain progress lines
otherwise (a log collector, CI, a pipe), on standard error, so that what a
command prints on standard output stays clean."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cde_data

from soars.progress import Progress, StepProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_at_an_interval_and_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()

    with Progress(
        "writing",
        total=1000,
        unit="students",
        stream=out,
        terminal=False,
        interval=5,
        clock=clock,
    ) as progress:
        for step in range(1, 101):
            clock.now = step * 0.25
            progress.advance(10)

    assert out.getvalue().splitlines() == [
        "writing:   0% 0 of 1,000 students (0:00)",
        "writing:  20% 200 of 1,000 students (0:05)",
        "writing:  40% 400 of 1,000 students (0:10)",
        "writing:  60% 600 of 1,000 students (0:15)",
        "writing:  80% 800 of 1,000 students (0:20)",
        "writing: 100% 1,000 of 1,000 students (0:25)",
    ]


def test_a_terminal_gets_one_bar_redrawn_in_place() -> None:
    out, clock = io.StringIO(), Clock()

    with Progress(
        "release 3: reading",
        total=40_000_000,
        unit="bytes",
        stream=out,
        terminal=True,
        clock=clock,
    ) as progress:
        clock.now = 1
        progress.update(20_000_000)
        clock.now = 2
        progress.update(40_000_000)

    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert re.match(r"release 3: reading \[#+\] 100% 40\.0 of 40\.0 MB 0:02", last)


def test_steps_of_a_load_each_get_their_own_line() -> None:
    out, clock = io.StringIO(), Clock()
    steps = StepProgress("release 3", stream=out, terminal=False, clock=clock)

    steps("reading", 0, 2_000_000)
    clock.now = 1
    steps("reading", 2_000_000, 2_000_000)
    steps("checking", 0, None)
    clock.now = 7
    steps("splitting", 0, None)
    steps.close()

    assert out.getvalue().splitlines() == [
        "release 3: reading:   0% 0.0 of 2.0 MB (0:00)",
        "release 3: reading: 100% 2.0 of 2.0 MB (0:01)",
        "release 3: checking: (0:01)",
        "release 3: checking: (0:07)",
        "release 3: splitting: (0:07)",
    ]


@pytest.fixture(scope="module")
def small_graduation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state rows and Alameda County's schools of the 2019 file."""
    source = (cde_data() / "graddownload2019.txt").read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    kept = [lines[0]] + [
        line for line in lines[1:] if line.startswith(("00000000000000", "01"))
    ]
    path = tmp_path_factory.mktemp("grad") / "graddownload2019-alameda.txt"
    path.write_text("".join(kept), encoding="utf-8")
    return path


def _sample_command(grad: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "soars.cli",
        "sample",
        "cci",
        "--grad",
        str(grad),
        "--out",
        str(out),
    ]


def test_a_sample_written_to_a_pipe_reports_plain_lines_on_stderr(
    small_graduation_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cci.csv"

    finished = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        _sample_command(small_graduation_file, out),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert "\r" not in finished.stderr
    written = sum(1 for _ in out.open(encoding="utf-8")) - 1
    assert finished.stderr.splitlines()[-1].startswith(
        f"writing cci.csv: 100% {written:,} of {written:,} students"
    )
    assert finished.stdout.splitlines() == [
        f"{out}: {written} students in "
        + finished.stdout.split(" students in ")[1].strip()
    ]


def test_a_sample_written_on_a_terminal_draws_a_bar(
    small_graduation_file: Path, tmp_path: Path
) -> None:
    leader, follower = pty.openpty()
    try:
        finished = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
            _sample_command(small_graduation_file, tmp_path / "cci.csv"),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            timeout=120,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)

    assert finished.returncode == 0
    text = shown.decode()
    assert "\r" in text
    assert "writing cci.csv [" + "#" * 40 + "] 100%" in text
