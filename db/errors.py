"""Errors raised while loading the state's data files.

Every message names the file, the 1-based line (the header is line 1) and the
column. Messages may quote CDS codes, codes and column names; they never quote
student personal data (names, SSIDs, birth dates).
"""

from __future__ import annotations

from pathlib import Path


class LoadError(Exception):
    """A data file could not be loaded: where, and why."""

    def __init__(self, path: Path | str, line: int, field: str, message: str) -> None:
        # Passing every argument on keeps the error picklable and copyable.
        super().__init__(path, line, field, message)
        self.path = Path(path)
        self.line = line
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}, field {self.field}: {self.message}"


class DirectoryError(LoadError):
    """A CDE directory or Dashboard file gave no valid organization record."""


class GraduationFileError(LoadError):
    """A Dashboard graduation indicator file cannot seed a CCI sample."""
