"""Releases: creating them, loading their files with COPY, publishing them.

A file is loaded in one transaction: COPY into a bare temporary table (no
index, no constraint: the fastest path into PostgreSQL), then one INSERT ...
SELECT that splits the rows into one report per LEA and per charter school
and stores only lines that pass every check. Files are almost always good,
so that is tried first, in a savepoint; when it stores fewer lines than the
file has, or the database refuses one, the savepoint is rolled back and the
detailed checks run to name every bad line and field. A file with any bad
line leaves nothing behind but a record of why, for its summary.

Error messages name the file, the line and the field, never the value of a
field that holds personal data.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg

from db.errors import LoadError, Rejection
from db.layouts import STUDENT_GROUPS, Field, Kind, Layout, layout_for

STATE_CDS = "00000000000000"


# (step, done, total): what a long load reports to a progress display.
LoadProgress = Callable[[str, int, int | None], None]


class ReleaseError(Exception):
    """A release cannot be changed the way that was asked."""


class LiveReleaseConflict(ReleaseError):
    """Another release of the same report type and year is published."""


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
    Kind.COUNT: (
        "v is null or v !~ '^[0-9]{1,2}$'",
        "a count must be a whole number 0-99",
    ),
    Kind.LEVEL: ("v is not null and v !~ '^[1-4]$'", "a level must be 1-4 or empty"),
    Kind.GRADE: ("v is null or v !~ '^([1-9]|1[0-2])$'", "a grade must be 1-12"),
    Kind.YEARS: (
        "v is null or v !~ '^([0-9]|1[0-9]|20)$'",
        "a number of school years must be a whole number 0-20",
    ),
}

# How many refused lines a failed load keeps for its summary; the count of
# all of them is kept too.
MAX_REJECTIONS = 100


def _bad_value_sql(field: Field) -> tuple[str, str]:
    if field.kind is Kind.CHOICE:
        choices = ", ".join(f"'{choice}'" for choice in field.choices)
        condition = f"v is null or v not in ({choices})"
        message = f"must be one of {', '.join(field.choices)}"
    else:
        condition, message = _CHECKS[field.kind]
    return re.sub(r"\bv\b", f'"{field.name}"', condition), message


def _one_of(*values: str) -> str:
    # A list of constants (hashed from nine of them on) costs much less per
    # line than a regular expression.
    return "v in (" + ", ".join(f"'{value}'" for value in values) + ")"


# Bytes, not characters: trimming text is several times slower in a UTF-8
# database. Multi-byte characters are never ASCII digits, so this is exact.
_ALL_DIGITS = (
    "ltrim(convert_to(v, 'UTF8'), '\\x30313233343536373839'::bytea) = ''::bytea"
)

# The same rules as _CHECKS, as SQL conditions that are true for a GOOD value,
# written to cost as little as possible per line: they run on every line of
# every file, the detailed checks only on a file that fails them. A condition
# may raise an error for a bad value (a date that does not exist): that fails
# the attempt just as false does. tests/db/test_release_checks.py holds both
# to the same verdict on the values that tell them apart.
_GOOD: dict[Kind, str] = {
    Kind.SSID: f"octet_length(v) = 10 and {_ALL_DIGITS}",
    # Control characters: one expression over all the names (_good_row_sql).
    Kind.NAME: "length(v) <= 60",
    # With DateStyle ISO (set by the load), a date's text is the same as the
    # value only for a real date written YYYY-MM-DD.
    Kind.DATE: "octet_length(v) = 10 and left(v, 2) in ('19', '20') "
    "and v::date::text = v",
    Kind.GENDER: _one_of("F", "M", "X"),
    Kind.CDS: f"octet_length(v) = 14 and {_ALL_DIGITS}",
    Kind.GROUPS: "v is null or (v <> '' and string_to_array(v, ';') <@ array["
    + ", ".join(f"'{group}'" for group in STUDENT_GROUPS)
    + "])",
    Kind.FLAG: _one_of("Y", "N"),
    Kind.COUNT: _one_of(
        *(str(n) for n in range(10)), *(f"{n:02d}" for n in range(100))
    ),
    Kind.LEVEL: "v is null or " + _one_of("1", "2", "3", "4"),
    Kind.GRADE: _one_of(*(str(n) for n in range(1, 13))),
    Kind.YEARS: _one_of(*(str(n) for n in range(21))),
}

# The school's code is checked by the join with the directory instead: a
# line whose school is not there is not stored, and the directory's codes
# are 14 digits by constraint.
_JOINED = "school_cds"


def _good_value_sql(field: Field) -> str:
    if field.kind is Kind.CHOICE:
        condition = _one_of(*field.choices)
    else:
        condition = _GOOD[field.kind]
    return "(" + re.sub(r"\bv\b", f'"{field.name}"', condition) + ")"


def _good_row_sql(layout: Layout) -> str:
    """A condition over a staging line, true when the line passes every check
    of its layout (but the school's presence in the directory: a join)."""
    conditions = [
        _good_value_sql(field) for field in layout.fields if field.name != _JOINED
    ]
    names = [f'"{field.name}"' for field in layout.fields if field.kind is Kind.NAME]
    if names:
        conditions.append(f"concat({', '.join(names)}) !~ '[[:cntrl:]]'")
    # As in the CASE of the detailed checks, a rule holds unless it is true.
    conditions += [f"({check.bad_when}) is not true" for check in layout.checks]
    return "\n              and ".join(conditions)


def _bad_lines_sql(layout: Layout) -> str:
    # Column names and conditions come from the layout (code), never from the
    # file. The window count runs before the limit: it counts every bad line.
    branches = []
    for index, field in enumerate(layout.fields):
        condition, _ = _bad_value_sql(field)
        branches.append(f"when {condition} then {index}")
    for index, check in enumerate(layout.checks, start=len(layout.fields)):
        branches.append(f"when {check.bad_when} then {index}")
    return f"""
        select line, bad_check, count(*) over () as bad_lines from (
            select line, case {" ".join(branches)} end as bad_check
            from staging
        ) checked
        where bad_check is not null
        order by line
        limit {MAX_REJECTIONS}
    """


def _check_named(layout: Layout, index: int) -> tuple[str, str]:
    """The field a validation branch names, and its message."""
    if index < len(layout.fields):
        field = layout.fields[index]
        return field.name, _bad_value_sql(field)[1]
    check = layout.checks[index - len(layout.fields)]
    return check.field, check.message


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
    raise LoadError(path, 1, extra, f"layout {layout.name} has no column {extra!r}")


_COPY_LINE = re.compile(r"line (\d+)(?:, column (\w+))?")


def _copy_error(path: Path, exc: asyncpg.PostgresError) -> LoadError:
    # PostgreSQL's COPY context names the line and sometimes the column; its
    # message may quote the offending data, so only our own words are kept.
    where = getattr(exc, "context", None) or getattr(exc, "where", None) or ""
    match = _COPY_LINE.search(str(where))
    line = int(match[1]) if match else 0
    column = match[2] if match and match[2] else None
    message = str(getattr(exc, "message", "")) or type(exc).__name__
    if "0x00" in message:
        text = "holds a NUL byte, which no text can hold"
    elif "invalid byte sequence" in message or "encoding" in message:
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
    progress: LoadProgress | None = None,
) -> LoadSummary:
    """Load `path` into a draft release, all or nothing.

    `progress`, if given, is told each step: ("reading", bytes, file size),
    then ("checking", 0, None) while the lines are checked and stored.

    A refused file raises LoadError and leaves nothing of itself behind but a
    record of the refusal (lines, fields, messages) on the release, which
    the release's load summary shows.
    """
    import time

    clock = clock or time.perf_counter
    started = clock()
    release = await conn.fetchrow(
        "select report_type, year, layout, status from releases where id = $1",
        release_id,
    )
    if release is None:
        raise ReleaseError(f"release {release_id} does not exist")
    _check_draft(release_id, release["status"])
    layout = layout_for(release["report_type"], release["year"])

    try:
        _check_header(path, layout)
        async with conn.transaction():
            # Two loads into one draft: the second waits here, then finds
            # the release loaded.
            status = await conn.fetchval(
                "select status from releases where id = $1 for update", release_id
            )
            _check_draft(release_id, status)
            rows, reports = await _load_in_transaction(
                conn, release_id, path, layout, progress
            )
    except LoadError as error:
        await _record_failure(conn, release_id, path.name, error)
        raise
    return LoadSummary(release_id, rows, reports, clock() - started)


def _check_draft(release_id: int, status: str) -> None:
    if status != "draft":
        raise ReleaseError(
            f"release {release_id} is {status}; a file is loaded once, into "
            "a draft release (a correction is a new release that supersedes it)"
        )


async def _load_in_transaction(
    conn: asyncpg.Connection,
    release_id: int,
    path: Path,
    layout: Layout,
    progress: LoadProgress | None = None,
) -> tuple[int, int]:
    # The duplicate check hashes every SSID, and the student tables' trigger
    # keeps every new row in memory until the end of the statement; with the
    # default 4 MB both spill to disk.
    await conn.execute("set local work_mem = '128MB'")
    # The date check compares a date's text with the file's (see _GOOD).
    await conn.execute("set local datestyle = 'ISO, YMD'")
    # The staging table has no statistics and the checks are many conditions,
    # so the planner expects a handful of lines and would look up each line's
    # school and report with an index scan; hash joins are several times
    # faster for a whole file.
    await conn.execute("set local enable_nestloop = off")
    await conn.execute(_staging_sql(layout))
    try:
        copied = await conn.copy_to_table(
            "staging",
            source=path if progress is None else _read_chunks(path, progress),
            columns=list(layout.columns),
            format="csv",
            header=True,
            encoding="UTF8",
        )
    except asyncpg.PostgresError as exc:
        raise _copy_error(path, exc) from None
    rows = _row_count(copied)
    if rows == 0:
        raise LoadError(path, 2, None, "the file has a header but no students")

    if progress is not None:
        progress("checking", 0, None)
    try:
        # A savepoint: an attempt that is refused leaves nothing behind.
        async with conn.transaction():
            reports = await _store_checked(conn, release_id, layout, rows)
    except (
        _NotAllStored,
        asyncpg.DataError,
        asyncpg.IntegrityConstraintViolationError,
    ) as refused:
        await _diagnose(conn, path, layout)
        raise _unexplained(path, refused) from None

    await conn.execute(
        "update releases set status = 'loaded', loaded_at = now(), "
        "rows_loaded = $2, source_name = $3 where id = $1",
        release_id,
        rows,
        path.name,
    )
    return rows, reports


def _row_count(status: str) -> int:
    # "COPY 487017", "INSERT 0 487017": the count is the last word.
    return int(status.rsplit(" ", 1)[-1])


class _NotAllStored(Exception):
    """The optimistic store skipped a line or found a repeated SSID."""


# A charter school is its own LEA for SOARS; every other school's students go
# to its district's (or county office's) report. `o` is the line's school.
_REPORT_ORG = "case when o.kind = 'charter' then o.cds_code else o.lea_cds end"


async def _store_checked(
    conn: asyncpg.Connection, release_id: int, layout: Layout, rows: int
) -> int:
    """Split the staged lines into reports and store them, checked on the way
    (the optimistic path); raise _NotAllStored, or let the database's error
    through, when any line is bad. Returns the number of reports."""
    # Counting the lines of each school first joins a few thousand schools
    # with the directory instead of every line.
    reports = await conn.fetch(
        f"""
        insert into reports (release_id, org_cds, student_count)
        select $1, {_REPORT_ORG}, sum(lines)
        from (select school_cds, count(*) as lines from staging group by school_cds) s
        join organizations o on o.cds_code = s.school_cds
        where o.kind in ('school', 'charter')
        group by 2
        returning id
        """,
        release_id,
    )
    # Lines with a bad field or an unknown school are not selected: fewer
    # rows stored than copied is how the attempt learns of them. A school
    # whose LEA is missing fails the reports' foreign key above.
    names = ", ".join(f's."{name}"' for name in layout.columns)
    target = ", ".join(f'"{name}"' for name in layout.columns)
    stored = await conn.execute(
        f"""
        insert into {layout.report_type}_students (report_id, {target})
        select r.id, {names}
        from (
            select * from staging
            where {_good_row_sql(layout)}
        ) s
        join organizations o on o.cds_code = s.school_cds
        join reports r on r.release_id = $1 and r.org_cds = {_REPORT_ORG}
        where o.kind in ('school', 'charter')
        """,
        release_id,
    )
    if _row_count(stored) != rows:
        raise _NotAllStored()
    # An SSID repeated in two reports is caught by neither key; one repeated
    # within a report, by the students' primary key above.
    if await conn.fetchval(
        "select exists (select from staging group by ssid having count(*) > 1)"
    ):
        raise _NotAllStored()
    return len(reports)


async def _diagnose(conn: asyncpg.Connection, path: Path, layout: Layout) -> None:
    """Find and raise what the optimistic store refused: the bad lines and
    fields, in the order the checks take (fields, schools, duplicates, LEAs)."""
    await _validate(conn, path, layout)
    missing_lea = await conn.fetchval(
        """
        select min(o.lea_cds)
        from staging s join organizations o on o.cds_code = s.school_cds
        where o.kind = 'school'
          and not exists (select from organizations l where l.cds_code = o.lea_cds)
        """
    )
    if missing_lea is not None:
        raise LoadError(
            path,
            0,
            "school_cds",
            f"LEA {missing_lea} of a school in the file is not in the directory",
        )


def _unexplained(path: Path, refused: Exception) -> LoadError:
    # Every detailed check passed, so the optimistic checks disagree with
    # them: a defect. The database's own message may quote a value, so only
    # its SQLSTATE is kept.
    sqlstate = getattr(refused, "sqlstate", None) or "none"
    return LoadError(
        path,
        0,
        None,
        f"was refused (SQLSTATE {sqlstate}) although every line passed the "
        "detailed checks",
    )


async def _read_chunks(path: Path, progress: LoadProgress) -> AsyncIterator[bytes]:
    size = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, 1 << 20):
            done += len(chunk)
            progress("reading", done, size)
            yield chunk


async def _record_failure(
    conn: asyncpg.Connection, release_id: int, source_name: str, error: LoadError
) -> None:
    async with conn.transaction():
        failure_id = await conn.fetchval(
            "insert into release_load_failures (release_id, source_name, bad_lines) "
            "values ($1, $2, $3) returning id",
            release_id,
            source_name,
            error.bad_lines,
        )
        await conn.execute(
            """
            insert into release_load_rejections (failure_id, line, field, message)
            select $1, line, field, message
            from unnest($2::int[], $3::text[], $4::text[]) as r(line, field, message)
            """,
            failure_id,
            [rejection.line for rejection in error.rejections],
            [rejection.field for rejection in error.rejections],
            [rejection.message for rejection in error.rejections],
        )


def _rejected(path: Path, rejections: list[Rejection], bad_lines: int) -> LoadError:
    first = rejections[0]
    more = bad_lines - 1
    suffix = f" ({more} more bad lines)" if more else ""
    return LoadError(
        path,
        first.line,
        first.field,
        first.message + suffix,
        tuple(rejections),
        bad_lines,
    )


async def _validate(conn: asyncpg.Connection, path: Path, layout: Layout) -> None:
    # Line numbers in messages count the header as line 1, as an editor does.
    bad = await conn.fetch(_bad_lines_sql(layout))
    if bad:
        rejections = [
            Rejection(row["line"] + 1, *_check_named(layout, row["bad_check"]))
            for row in bad
        ]
        raise _rejected(path, rejections, bad[0]["bad_lines"])

    unknown = await conn.fetch(
        f"""
        select s.line, s.school_cds, o.kind, count(*) over () as bad_lines
        from staging s left join organizations o on o.cds_code = s.school_cds
        where o.cds_code is null or o.kind not in ('school', 'charter')
        order by s.line limit {MAX_REJECTIONS}
        """
    )
    if unknown:
        rejections = []
        for row in unknown:
            what = (
                "is not in the school directory (load it with `soars orgs load`)"
                if row["kind"] is None
                else f"is a {row['kind']} record, not a school"
            )
            message = f"school {row['school_cds']} {what}"
            rejections.append(Rejection(row["line"] + 1, "school_cds", message))
        raise _rejected(path, rejections, unknown[0]["bad_lines"])

    # Files almost never repeat an SSID: one hash aggregate answers that,
    # and only a file that does is numbered line by line below.
    repeated = await conn.fetchval(
        "select exists (select from staging group by ssid having count(*) > 1)"
    )
    if not repeated:
        return
    duplicates = await conn.fetch(
        f"""
        select line, count(*) over () as bad_lines from (
            select line, row_number() over (partition by ssid order by line) as copy
            from staging
        ) numbered
        where copy > 1
        order by line limit {MAX_REJECTIONS}
        """
    )
    if duplicates:
        rejections = [
            Rejection(
                row["line"] + 1,
                "ssid",
                "this SSID already appears on an earlier line of the file",
            )
            for row in duplicates
        ]
        raise _rejected(path, rejections, duplicates[0]["bad_lines"])


async def _today(conn: asyncpg.Connection) -> date:
    # The database's date, the one every availability check in SQL uses.
    today: date = await conn.fetchval("select current_date")
    return today


async def _locked(conn: asyncpg.Connection, release_id: int) -> asyncpg.Record:
    release = await conn.fetchrow(
        "select id, report_type, year, status, available_until, supersedes, "
        "superseded_by from releases where id = $1 for update",
        release_id,
    )
    if release is None:
        raise ReleaseError(f"release {release_id} does not exist")
    return release


@dataclass(frozen=True, slots=True)
class Published:
    previous_until: date | None  # set when the release was already published
    withdrew: int | None  # the release this one corrects, withdrawn by it


async def publish(conn: asyncpg.Connection, release_id: int, until: date) -> Published:
    """Publish a loaded release until `until` (inclusive), or move the date of
    a published one.

    A release that corrects another (`supersedes`) replaces it: the other is
    withdrawn in the same transaction and points at its correction.
    """
    async with conn.transaction():
        today = await _today(conn)
        if until <= today:
            raise ReleaseError(
                f"the availability end date {until} must be after today ({today})"
            )
        release = await _locked(conn, release_id)
        if release["status"] not in ("loaded", "published"):
            raise ReleaseError(
                f"release {release_id} is {release['status']}; only a loaded release "
                "can be published"
            )
        await conn.execute(
            "update releases set status = 'published', available_until = $2, "
            "published_at = coalesce(published_at, now()) where id = $1",
            release_id,
            until,
        )
        previous = None
        if release["status"] == "published":
            previous = release["available_until"]
        else:
            await _check_only_live(conn, release)
            # First publication: its students are about to be read, and can
            # be disclosed from now on.
            await conn.execute("select index_published_students($1)", release_id)
            await conn.execute(
                "select refresh_student_statistics($1)", release["report_type"]
            )

        withdrew = None
        if release["supersedes"] is not None:
            withdrew = await _replace(conn, release["supersedes"], release_id)
    return Published(previous_until=previous, withdrew=withdrew)


async def _check_only_live(conn: asyncpg.Connection, release: asyncpg.Record) -> None:
    """One live release per report type and year: a second would give each
    organization two reports of the same year to choose from. A correction
    replaces the one it supersedes (withdrawn in the same transaction)."""
    live = await conn.fetchval(
        "select min(id) from releases where report_type = $1 and year = $2 "
        "and status = 'published' and id <> $3 and id is distinct from $4",
        release["report_type"],
        release["year"],
        release["id"],
        release["supersedes"],
    )
    if live is not None:
        raise LiveReleaseConflict(
            f"release {live} ({release['report_type'].upper()} {release['year']}) is "
            "already published: publish this one as its correction (created with "
            f"supersedes) or withdraw release {live} first"
        )


async def _replace(conn: asyncpg.Connection, old_id: int, new_id: int) -> int | None:
    old = await _locked(conn, old_id)
    if old["superseded_by"] is not None and old["superseded_by"] != new_id:
        raise ReleaseError(
            f"release {old_id} is already corrected by release {old['superseded_by']}"
        )
    if old["status"] == "withdrawn":
        await conn.execute(
            "update releases set superseded_by = $2 where id = $1", old_id, new_id
        )
        return None
    await conn.execute(
        "update releases set status = 'withdrawn', withdrawn_at = now(), "
        "superseded_by = $2, withdrawal_reason = $3 where id = $1",
        old_id,
        new_id,
        f"Replaced by the correction, release {new_id}.",
    )
    return old_id


async def change_availability(
    conn: asyncpg.Connection, release_id: int, until: date
) -> date:
    """Move a published release's end date; return the date it had.

    The new date may be today (available through today) but not earlier: to
    stop access at once, withdraw the release.
    """
    async with conn.transaction():
        today = await _today(conn)
        release = await _locked(conn, release_id)
        if release["status"] != "published":
            raise ReleaseError(
                f"release {release_id} is {release['status']}; only a published "
                "release has an availability end date to change"
            )
        if until < today:
            raise ReleaseError(
                f"the availability end date {until} is already past (today is "
                f"{today}); to stop access now, withdraw the release"
            )
        await conn.execute(
            "update releases set available_until = $2 where id = $1", release_id, until
        )
    previous: date = release["available_until"]
    return previous


async def withdraw(conn: asyncpg.Connection, release_id: int, reason: str) -> str:
    """Withdraw a release at once; return the status it had.

    Reading and downloading stop with the transaction's commit: every read
    and every download token checks the status in its own SQL statement.
    """
    async with conn.transaction():
        release = await _locked(conn, release_id)
        if release["status"] == "withdrawn":
            raise ReleaseError(f"release {release_id} is already withdrawn")
        await conn.execute(
            "update releases set status = 'withdrawn', withdrawn_at = now(), "
            "withdrawal_reason = $2 where id = $1",
            release_id,
            reason,
        )
    status: str = release["status"]
    return status


LOAD_SUMMARY_REPORTS = """
select r.org_cds, o.name as org_name, o.kind as org_kind, o.county as org_county,
       r.student_count
from reports r join organizations o on o.cds_code = r.org_cds
where r.release_id = $1
order by r.org_cds
"""

LOAD_SUMMARY_FAILURES = """
select f.id, f.failed_at, f.source_name, f.bad_lines,
       coalesce(array_agg(j.line order by j.line)
                filter (where j.line is not null), '{}') as lines,
       coalesce(array_agg(j.field order by j.line)
                filter (where j.line is not null), '{}') as fields,
       coalesce(array_agg(j.message order by j.line)
                filter (where j.line is not null), '{}') as messages
from release_load_failures f
left join release_load_rejections j on j.failure_id = f.id
where f.release_id = $1
group by f.id
order by f.failed_at desc, f.id desc
limit $2
"""
