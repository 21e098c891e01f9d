"""Releases: creating them, loading their files with COPY, publishing them.

A file is loaded in one transaction: COPY into a bare temporary table (no
index, no constraint: the fastest path into PostgreSQL), one validation pass
in SQL that finds the first bad line and field, then one INSERT ... SELECT
that splits the rows into one report per LEA and per charter school. A file
with any bad line leaves nothing behind.

Error messages name the file, the line and the field, never the value of a
field that holds personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg

from db.errors import LoadError
from db.layouts import Field, Kind, Layout, STUDENT_GROUPS, layout_for

STATE_CDS = "00000000000000"


class ReleaseError(Exception):
    """A release cannot be changed the way that was asked."""


@dataclass(frozen=True, slots=True)
class LoadSummary:
    release_id: int
    rows: int
    reports: int
    seconds: float


# What each kind of field must look like, as a SQL condition that is true for
# a BAD value `v`, and the message a state administrator sees for it.
_GROUP = "(" + "|".join(STUDENT_GROUPS) + ")"
_CHECKS: dict[Kind, tuple[str, str]] = {
    Kind.SSID: ("v is null or v !~ '^[0-9]{10}$'", "an SSID must be exactly 10 digits"),
    Kind.NAME: (
        "v is null or length(v) > 60 or v ~ '[[:cntrl:]]'",
        "a name must have 1 to 60 characters and no control characters",
    ),
    Kind.DATE: (
        "v is null or v !~ '^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' "
        "or to_char(make_date(substr(v, 1, 4)::int, substr(v, 6, 2)::int, 1) "
        "+ (substr(v, 9, 2)::int - 1), 'YYYY-MM-DD') <> v",
        "a date must be a real calendar date written YYYY-MM-DD",
    ),
    Kind.GENDER: ("v is null or v not in ('F', 'M', 'X')", "gender must be F, M or X"),
    Kind.CDS: ("v is null or v !~ '^[0-9]{14}$'", "a CDS code must be 14 digits"),
    Kind.GROUPS: (
        f"v is not null and v !~ '^{_GROUP}(;{_GROUP})*$'",
        "student groups must be codes from the layout separated by ';'",
    ),
    Kind.FLAG: ("v is null or v not in ('Y', 'N')", "a flag must be Y or N"),
    Kind.COUNT: ("v is null or v !~ '^[0-9]{1,2}$'", "a count must be a whole number 0-99"),
    Kind.LEVEL: ("v is not null and v !~ '^[1-4]$'", "a level must be 1-4 or empty"),
    Kind.GRADE: ("v is null or v !~ '^([1-9]|1[0-2])$'", "a grade must be 1-12"),
}


def _bad_value_sql(field: Field) -> tuple[str, str]:
    if field.kind is Kind.CHOICE:
        choices = ", ".join(f"'{choice}'" for choice in field.choices)
        condition = f"v is null or v not in ({choices})"
        message = f"must be one of {', '.join(field.choices)}"
    else:
        condition, message = _CHECKS[field.kind]
    return re.sub(r"\bv\b", f'"{field.name}"', condition), message


def _first_bad_line_sql(layout: Layout) -> str:
    # Column names come from the layout (code), never from the file.
    branches = []
    for index, field in enumerate(layout.fields):
        condition, _ = _bad_value_sql(field)
        branches.append(f"when {condition} then {index}")
    return f"""
        select line, bad_field, count(*) over () as bad_lines from (
            select line, case {' '.join(branches)} end as bad_field
            from staging
        ) checked
        where bad_field is not null
        order by line
        limit 1
    """


def _staging_sql(layout: Layout) -> str:
    columns = ", ".join(f'"{name}" text' for name in layout.columns)
    return (
        "create temporary table staging (line bigint generated always as identity, "
        f"{columns}) on commit drop"
    )


async def create_release(
    conn: asyncpg.Connection,
    *,
    report_type: str,
    year: int,
    label: str | None = None,
    notes: str = "",
    supersedes: int | None = None,
) -> int:
    layout = layout_for(report_type, year)
    release_id: int = await conn.fetchval(
        "insert into releases (report_type, year, layout, label, notes, supersedes) "
        "values ($1, $2, $3, $4, $5, $6) returning id",
        report_type,
        year,
        layout.name,
        label or f"{report_type.upper()} {year}",
        notes,
        supersedes,
    )
    return release_id


def _read_header(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            raw = handle.readline()
    except OSError as exc:
        raise LoadError(path, 0, None, f"cannot be read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError(path, 1, None, "the header is not UTF-8") from None
    return [name.strip() for name in text.rstrip("\r\n").split(",")]


def _check_header(path: Path, layout: Layout) -> None:
    header = _read_header(path)
    if header == list(layout.columns):
        return
    for position, expected in enumerate(layout.columns):
        found = header[position] if position < len(header) else None
        if found != expected:
            raise LoadError(
                path,
                1,
                expected,
                f"column {position + 1} of the header should be {expected!r} for "
                f"layout {layout.name}, found {found!r}",
            )
    extra = header[len(layout.columns)]
    raise LoadError(
        path, 1, extra, f"layout {layout.name} has no column {extra!r}"
    )


_COPY_LINE = re.compile(r"line (\d+)(?:, column (\w+))?")


def _copy_error(path: Path, exc: asyncpg.PostgresError) -> LoadError:
    # PostgreSQL's COPY context names the line and sometimes the column; its
    # message may quote the offending data, so only our own words are kept.
    where = getattr(exc, "context", None) or getattr(exc, "where", None) or ""
    match = _COPY_LINE.search(str(where))
    line = int(match[1]) if match else 0
    column = match[2] if match and match[2] else None
    message = str(getattr(exc, "message", "")) or type(exc).__name__
    if "invalid byte sequence" in message or "encoding" in message:
        text = "is not valid UTF-8 (save the file as UTF-8)"
    elif "extra data after last expected column" in message:
        text = "has more columns than the header"
    elif "missing data for column" in message:
        text = "has fewer columns than the header"
    elif "unterminated CSV quoted field" in message:
        text = "has a quoted field that is never closed"
    else:
        text = "could not be read as CSV"
    return LoadError(path, line, column, text)


async def load_release_file(
    conn: asyncpg.Connection,
    release_id: int,
    path: Path,
    *,
    clock: Callable[[], float] | None = None,
) -> LoadSummary:
    """Load `path` into a draft release, all or nothing."""
    import time

    clock = clock or time.perf_counter
    started = clock()
    release = await conn.fetchrow(
        "select report_type, year, layout, status from releases where id = $1",
        release_id,
    )
    if release is None:
        raise ReleaseError(f"release {release_id} does not exist")
    if release["status"] != "draft":
        raise ReleaseError(
            f"release {release_id} is {release['status']}; a file is loaded once, into "
            "a draft release (a correction is a new release that supersedes it)"
        )
    layout = layout_for(release["report_type"], release["year"])
    _check_header(path, layout)

    async with conn.transaction():
        await conn.execute(_staging_sql(layout))
        try:
            await conn.copy_to_table(
                "staging",
                source=path,
                columns=list(layout.columns),
                format="csv",
                header=True,
                encoding="UTF8",
            )
        except asyncpg.PostgresError as exc:
            raise _copy_error(path, exc) from None

        await _validate(conn, path, layout)
        reports = await _split_into_reports(conn, release_id, layout)
        rows = await conn.fetchval("select count(*) from staging")
        if rows == 0:
            raise LoadError(path, 2, None, "the file has a header but no students")
        await conn.execute(
            "update releases set status = 'loaded', loaded_at = now(), "
            "rows_loaded = $2, source_name = $3 where id = $1",
            release_id,
            rows,
            path.name,
        )
    return LoadSummary(release_id, rows, reports, clock() - started)


async def _validate(conn: asyncpg.Connection, path: Path, layout: Layout) -> None:
    bad = await conn.fetchrow(_first_bad_line_sql(layout))
    if bad is not None:
        field = layout.fields[bad["bad_field"]]
        _, message = _bad_value_sql(field)
        more = bad["bad_lines"] - 1
        suffix = f" ({more} more bad lines)" if more else ""
        raise LoadError(path, bad["line"] + 1, field.name, message + suffix)

    unknown = await conn.fetchrow(
        """
        select s.line, s.school_cds, o.kind
        from staging s left join organizations o on o.cds_code = s.school_cds
        where o.cds_code is null or o.kind not in ('school', 'charter')
        order by s.line limit 1
        """
    )
    if unknown is not None:
        what = (
            "is not in the school directory (load it with `soars orgs load`)"
            if unknown["kind"] is None
            else f"is a {unknown['kind']} record, not a school"
        )
        raise LoadError(
            path, unknown["line"] + 1, "school_cds", f"school {unknown['school_cds']} {what}"
        )

    duplicate = await conn.fetchrow(
        """
        select max(line) as line, count(*) as copies from staging
        group by ssid having count(*) > 1 order by 1 limit 1
        """
    )
    if duplicate is not None:
        raise LoadError(
            path,
            duplicate["line"] + 1,
            "ssid",
            "this SSID already appears on an earlier line of the file",
        )


async def _split_into_reports(
    conn: asyncpg.Connection, release_id: int, layout: Layout
) -> int:
    # A charter school is its own LEA for SOARS; every other school's students
    # go to its district's (or county office's) report.
    await conn.execute(
        """
        create temporary table staged_org on commit drop as
        select s.line, case when o.kind = 'charter' then o.cds_code else o.lea_cds end
               as report_org
        from staging s join organizations o on o.cds_code = s.school_cds
        """
    )
    missing_lea = await conn.fetchval(
        """
        select min(t.report_org) from staged_org t
        left join organizations o on o.cds_code = t.report_org where o.cds_code is null
        """
    )
    if missing_lea is not None:
        raise LoadError(
            Path("-"),
            0,
            "school_cds",
            f"LEA {missing_lea} of a school in the file is not in the directory",
        )
    reports = await conn.fetch(
        """
        insert into reports (release_id, org_cds, student_count)
        select $1, report_org, count(*) from staged_org group by report_org
        returning id
        """,
        release_id,
    )
    names = ", ".join(f's."{name}"' for name in layout.columns)
    target = ", ".join(f'"{name}"' for name in layout.columns)
    table = f"{layout.report_type}_students"
    await conn.execute(
        f"""
        insert into {table} (report_id, {target})
        select r.id, {names}
        from staging s
        join staged_org t on t.line = s.line
        join reports r on r.release_id = $1 and r.org_cds = t.report_org
        """,
        release_id,
    )
    return len(reports)


async def publish(conn: asyncpg.Connection, release_id: int, until: date) -> None:
    if until <= date.today():
        raise ReleaseError(f"the availability end date {until} must be in the future")
    status = await conn.fetchval(
        "update releases set status = 'published', available_until = $2, "
        "published_at = coalesce(published_at, now()) "
        "where id = $1 and status in ('loaded', 'published') returning status",
        release_id,
        until,
    )
    if status is None:
        current = await conn.fetchval("select status from releases where id = $1", release_id)
        if current is None:
            raise ReleaseError(f"release {release_id} does not exist")
        raise ReleaseError(
            f"release {release_id} is {current}; only a loaded release can be published"
        )
