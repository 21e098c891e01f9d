"""Errors raised while loading the state's data files.

Every message names the file, the 1-based line (the header is line 1) and the
column. Messages may quote CDS codes, codes and column names; they never quote
student personal data (names, SSIDs, birth dates).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Rejection:
    """One line of a file that was refused, and why (never its values)."""

    line: int
    field: str | None
    message: str


class LoadError(Exception):
    """A data file could not be loaded: where, and why.

    `rejections` lists the refused lines found (the first of them is the one
    the error names), up to a limit; `bad_lines` counts all of them.
    """

    def __init__(
        self,
        path: Path | str,
        line: int,
        field: str | None,
        message: str,
        rejections: tuple[Rejection, ...] = (),
        bad_lines: int = 1,
    ) -> None:
        # Passing every argument on keeps the error picklable and copyable.
        super().__init__(path, line, field, message, rejections, bad_lines)
        self.path = Path(path)
        self.line = line
        self.field = field
        self.message = message
        self.rejections = rejections or (Rejection(line, field, message),)
        self.bad_lines = bad_lines

    def __str__(self) -> str:
        # Line 0 is the file as a whole (it cannot be opened, it lacks a
        # school's LEA): then no line or field is named.
        where = [str(self.path)]
        if self.line:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.message}"


class DirectoryError(LoadError):
    """A CDE directory or Dashboard file gave no valid organization record."""


class GraduationFileError(LoadError):
    """A Dashboard graduation indicator file cannot seed a CCI sample."""


class EnglishLearnerFileError(LoadError):
    """A Dashboard English Learner Progress file cannot seed an LTEL sample."""
