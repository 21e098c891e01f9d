"""Organizations (county offices, districts, charter and other schools).

Two sources, read in this order by the loader:

* the CDE "Public Schools and Districts" directory (`pubschls.txt`), every
  school and district record the state has assigned a CDS code, in either the
  2018 49-column layout or the current 46-column one;
* a California School Dashboard download file (`graddownload2019.txt`,
  `elpidownload2019.txt`, ...), whose LEA and school rows fill the gaps a
  directory snapshot leaves: schools opened or reorganized after it was taken.

The loader never lets a Dashboard record overwrite a directory record; these
readers only yield what each file says.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from db.errors import DirectoryError, LoadError

__all__ = [
    "DirectoryError",
    "Organization",
    "OrganizationKind",
    "read_dashboard_organizations",
    "read_directory",
    "read_tab_file",
]

OrganizationKind = Literal["coe", "lea", "charter", "school"]
Source = Literal["directory", "dashboard"]

STATUSES: Final = frozenset({"Active", "Closed", "Merged", "Pending"})
FUNDING_TYPES: Final = frozenset(
    {"Directly funded", "Locally funded", "Not in CS funding model"}
)

# The CDE's own .txt export writes this in every empty cell.
_NO_DATA: Final = "No Data"
_LEA_SUFFIX: Final = "0000000"
_COE_DOC: Final = "00"

_DIRECTORY_COLUMNS: Final = (
    "CDSCode",
    "StatusType",
    "County",
    "District",
    "School",
    "Charter",
    "FundingType",
    "DOC",
    "DOCType",
    "SOCType",
    "GSserved",
)
_DASHBOARD_COLUMNS: Final = (
    "cds",
    "rtype",
    "schoolname",
    "districtname",
    "countyname",
    "charter_flag",
    "coe_flag",
)


@dataclass(frozen=True, slots=True)
class Organization:
    """A county office, district, or school, keyed by its 14-digit CDS code."""

    cds_code: str
    kind: OrganizationKind
    name: str
    lea_cds: str  # first 7 digits + "0000000"; an LEA's is its own code
    county: str
    charter: bool
    funding_type: str | None
    status: str
    doc_type: str | None
    soc_type: str | None
    grades_served: str | None
    source: Source


def read_directory(path: Path) -> Iterator[Organization]:
    """Yield one organization per record of a CDE directory file.

    Raises `DirectoryError` (naming line and column) for a missing column, a
    row of the wrong width, a CDS code that is not 14 digits, or an unknown
    StatusType, Charter or FundingType value.
    """
    rows = read_tab_file(path, required=_DIRECTORY_COLUMNS, error=DirectoryError)
    for line, row in rows:
        yield _directory_organization(path, line, row)


def read_dashboard_organizations(path: Path) -> Iterator[Organization]:
    """Yield the LEAs and schools of a Dashboard download file, once each.

    The state row (rtype X) is skipped; every other row becomes an active
    organization with source "dashboard". A CDS code seen before is skipped:
    these files repeat each organization once per student group.
    """
    seen: set[str] = set()
    rows = read_tab_file(path, required=_DASHBOARD_COLUMNS, error=DirectoryError)
    for line, row in rows:
        rtype = row["rtype"].strip()
        if rtype == "X":
            continue

        cds = _cds_code(path, line, "cds", row["cds"])
        if cds in seen:
            continue
        seen.add(cds)

        yield _dashboard_organization(path, line, row, rtype, cds)


def read_tab_file(
    path: Path,
    *,
    required: Sequence[str],
    error: type[LoadError],
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row by column name) for a tab-delimited CDE file.

    The text is decoded as UTF-8, else as cp1252 (the encoding of most CDE
    downloads). Fields quoted the CSV way, as spreadsheet exports write them,
    are unquoted. Blank lines are skipped. Line numbers are 1-based and the
    header is line 1, so they match what an editor shows.
    """
    text = _decode(path, error)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")

    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in required if name not in header]
    if missing:
        raise error(
            path,
            1,
            ", ".join(missing),
            f"required column(s) missing from the header; found {len(header)} columns",
        )

    try:
        for row in reader:
            if not row or row == [""]:
                continue
            if len(row) != len(header):
                raise error(
                    path,
                    reader.line_num,
                    _column_at(header, min(len(row), len(header))),
                    f"row has {len(row)} columns, the header has {len(header)}",
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        # An opening quote with no closing one runs on to the end of the file.
        raise error(path, reader.line_num, "(row)", f"unreadable row: {exc}") from exc


def _directory_organization(path: Path, line: int, row: dict[str, str]) -> Organization:
    cds = _cds_code(path, line, "CDSCode", row["CDSCode"])
    status = _value(row["StatusType"])
    if status not in STATUSES:
        raise DirectoryError(
            path,
            line,
            "StatusType",
            f"unknown status {status!r} for {cds}; expected one of "
            f"{', '.join(sorted(STATUSES))}",
        )

    charter_flag = _value(row["Charter"])
    if charter_flag not in (None, "Y", "N"):
        raise DirectoryError(
            path, line, "Charter", f"expected Y or N for {cds}, not {charter_flag!r}"
        )

    funding_type = _value(row["FundingType"])
    if funding_type is not None and funding_type not in FUNDING_TYPES:
        raise DirectoryError(
            path,
            line,
            "FundingType",
            f"unknown funding type {funding_type!r} for {cds}",
        )

    doc = _value(row["DOC"])
    kind: OrganizationKind
    if _is_lea(cds):
        kind = "coe" if doc == _COE_DOC else "lea"
        name_column = "District"
    else:
        kind = "charter" if charter_flag == "Y" else "school"
        name_column = "School"

    return Organization(
        cds_code=cds,
        kind=kind,
        name=_required(path, line, row, name_column, cds),
        lea_cds=_lea_cds(cds),
        county=_required(path, line, row, "County", cds),
        charter=charter_flag == "Y",
        funding_type=funding_type,
        status=status,
        doc_type=_value(row["DOCType"]),
        soc_type=_value(row["SOCType"]),
        grades_served=_value(row["GSserved"]),
        source="directory",
    )


def _dashboard_organization(
    path: Path, line: int, row: dict[str, str], rtype: str, cds: str
) -> Organization:
    charter = row["charter_flag"].strip() == "Y"
    kind: OrganizationKind
    if rtype == "D":
        if not _is_lea(cds):
            raise DirectoryError(
                path, line, "cds", f"LEA row (rtype D) {cds} does not end in 0000000"
            )
        kind = "coe" if row["coe_flag"].strip() == "Y" else "lea"
        name_column = "districtname"
    elif rtype == "S":
        if _is_lea(cds):
            raise DirectoryError(
                path, line, "cds", f"school row (rtype S) {cds} ends in 0000000"
            )
        kind = "charter" if charter else "school"
        name_column = "schoolname"
    else:
        raise DirectoryError(
            path, line, "rtype", f"unknown row type {rtype!r}; expected X, D or S"
        )

    return Organization(
        cds_code=cds,
        kind=kind,
        name=_required(path, line, row, name_column, cds),
        lea_cds=_lea_cds(cds),
        county=_required(path, line, row, "countyname", cds),
        charter=charter,
        funding_type=None,
        status="Active",
        doc_type=None,
        soc_type=None,
        grades_served=None,
        source="dashboard",
    )


def _decode(path: Path, error: type[LoadError]) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass

    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        # cp1252 leaves five byte values undefined; point at the first one.
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = data.count(b"\t", line_start, exc.start)
        header = data.split(b"\n", 1)[0].decode("latin-1").rstrip("\r").split("\t")
        raise error(
            path,
            line,
            _column_at(header, column),
            f"byte 0x{data[exc.start]:02x} is neither UTF-8 nor cp1252 text",
        ) from exc


def _column_at(header: Sequence[str], index: int) -> str:
    if index < len(header):
        return header[index]
    return f"column {index + 1}"


def _value(raw: str) -> str | None:
    value = raw.strip()
    if not value or value == _NO_DATA:
        return None
    return value


def _required(path: Path, line: int, row: dict[str, str], column: str, cds: str) -> str:
    value = _value(row[column])
    if value is None:
        raise DirectoryError(path, line, column, f"empty for {cds}")
    return value


def _cds_code(path: Path, line: int, column: str, raw: str) -> str:
    cds = raw.strip()
    if len(cds) != 14 or not cds.isascii() or not cds.isdigit():
        raise DirectoryError(path, line, column, f"CDS code {cds!r} is not 14 digits")
    return cds


def _is_lea(cds: str) -> bool:
    return cds.endswith(_LEA_SUFFIX)


def _lea_cds(cds: str) -> str:
    return cds[:7] + _LEA_SUFFIX
