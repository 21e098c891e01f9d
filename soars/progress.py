"""Progress of long commands: a bar on a terminal, plain lines elsewhere.

Written here rather than taken from tqdm or rich: the service image would
carry either for four commands, and what a log collector needs (a whole line
now and then, never carriage returns) is most of the code anyway.

Progress goes to standard error, so that a command's output (an export, a
token) stays clean on standard output.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Final, Self, TextIO

#: Seconds between plain progress lines when the output is not a terminal.
LINE_INTERVAL_S: Final = 5.0
#: Seconds between redraws of the bar on a terminal.
REDRAW_INTERVAL_S: Final = 0.1

Clock = Callable[[], float]


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


class Progress:
    """Counts work done towards an optional total and shows it.

    `unit` names what is counted ("rows", "events"); with `unit="bytes"` the
    figures are shown in MB. `update` sets the amount done, `advance` adds to
    it; `stage` starts a new step of the same task. `close` prints the final
    state once, whatever the output.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "",
        stream: TextIO | None = None,
        terminal: bool | None = None,
        interval: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = is_terminal(self.stream) if terminal is None else terminal
        default = REDRAW_INTERVAL_S if self.terminal else LINE_INTERVAL_S
        self.interval = default if interval is None else interval
        self._clock = clock
        self._started = clock()
        self._shown_at = -float("inf")
        self._drawn = False
        self._last_line = ""
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._show(force=not self.terminal)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stage(self, label: str, *, total: int | None = None, unit: str = "") -> None:
        self._show(force=True)  # where the step before ended
        self._finish_bar()
        self.label, self.total, self.unit, self.done = label, total, unit, 0
        self._show(force=True)

    def update(self, done: int) -> None:
        self.done = done
        self._show()

    def advance(self, amount: int = 1) -> None:
        self.update(self.done + amount)

    def counted(self, done: int, total: int) -> None:
        """(done, total) as a callback: for work that learns its total late."""
        self.total = total
        self.update(done)

    def close(self) -> None:
        self._show(force=True)
        self._finish_bar()

    # -- drawing ----------------------------------------------------------

    def _show(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._shown_at < self.interval:
            return
        self._shown_at = now
        if self.terminal:
            self.stream.write("\r" + self._bar(now) + "\x1b[K")
            self._drawn = True
        else:
            line = self._line(now)
            if line == self._last_line:
                return  # the closing line, just printed on schedule
            self._last_line = line
            self.stream.write(line + "\n")
        self.stream.flush()

    def _finish_bar(self) -> None:
        if self.terminal and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _amount(self) -> str:
        if self.total is None and not self.done:
            return ""  # a step with nothing to count: the elapsed time says it
        if self.unit == "bytes":
            done = f"{self.done / 1e6:,.1f}"
            total = f" of {self.total / 1e6:,.1f}" if self.total is not None else ""
            return f"{done}{total} MB"
        total = f" of {self.total:,}" if self.total is not None else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.done:,}{total}{unit}"

    def _fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def _elapsed(self, now: float) -> str:
        seconds = int(now - self._started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _line(self, now: float) -> str:
        fraction = self._fraction()
        percent = f"{fraction:4.0%} " if fraction is not None else ""
        amount = self._amount()
        amount = f"{amount} " if amount else ""
        return f"{self.label}: {percent}{amount}({self._elapsed(now)})"

    def _bar(self, now: float) -> str:
        fraction = self._fraction()
        amount = self._amount()
        tail = f" {amount} {self._elapsed(now)}" if amount else f" {self._elapsed(now)}"
        width = shutil.get_terminal_size((80, 24)).columns
        room = width - len(self.label) - len(tail) - 10
        if fraction is None or room < 10:
            spinner = "|/-\\"[int(now * 4) % 4]
            return f"{self.label} {spinner}{tail}"[: width - 1]
        size = min(room, 40)
        filled = int(fraction * size)
        bar = "#" * filled + "." * (size - filled)
        return f"{self.label} [{bar}] {fraction:4.0%}{tail}"[: width - 1]


class StepProgress:
    """A `Progress` driven by (step, done, total) reports, as a release load
    gives them: each new step starts a new stage."""

    def __init__(self, label: str, **options: object) -> None:
        self._label = label
        self._options = options
        self._progress: Progress | None = None
        self._step: str | None = None

    def __call__(self, step: str, done: int, total: int | None) -> None:
        if self._progress is None:
            self._progress = Progress(
                f"{self._label}: {step}",
                total=total,
                unit=_unit(step),
                **self._options,  # type: ignore[arg-type]
            )
        elif step != self._step:
            self._progress.stage(
                f"{self._label}: {step}", total=total, unit=_unit(step)
            )
        self._step = step
        self._progress.update(done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()


def _unit(step: str) -> str:
    return "bytes" if step == "reading" else ""
