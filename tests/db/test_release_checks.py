"""The two sets of checks a load runs agree on every line.

A load first stores the file with cheap checks folded into its INSERT, and
runs the detailed checks (which name line and field) only when that attempt
stores fewer lines than the file has or fails. A line the cheap checks let
through that the detailed ones would refuse would be stored unchecked; a
line they refuse that the detailed ones accept would fail a good file. So
each is held to the same verdict, one field changed at a time, on the values
that tell formats apart.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest

from db.layouts import Field, Kind, Layout, layout_for
from db.releases import _JOINED, _bad_lines_sql, _good_row_sql, _staging_sql

CCI = layout_for("cci", 2023)  # every CCI field, the pre-apprenticeship choice too
LTEL = layout_for("ltel", 2019)
# A CDS code the load does not join with the directory: checked as a value.
OTHER_CDS = Layout("probe", "cci", (Field("other_cds", Kind.CDS, "probe"),), "")

GOOD_CCI = {
    "ssid": "1000000001",
    "last_name": "Rivera",
    "first_name": "Ana",
    "birth_date": "2001-03-04",
    "gender": "F",
    "school_cds": "19647331932334",
    "student_groups": "HI;SED",
    "graduated": "Y",
    "ag_complete": "Y",
    "cte_pathway": "N",
    "ap_exams_passed": "2",
    "ib_exams_passed": "0",
    "college_credit_semesters": "0",
    "sbac_ela_level": "3",
    "sbac_math_level": None,
    "seal_of_biliteracy": "N",
    "military_science_years": "0",
    "pre_apprenticeship": "NONE",
}
GOOD_LTEL = {
    "ssid": "1000000001",
    "last_name": "Rivera",
    "first_name": "Ana",
    "birth_date": "2009-03-04",
    "school_cds": "19647331932334",
    "grade": "8",
    "years_in_us_schools": "7",
    "elpac_level_current": "2",
    "elpac_level_prior_year": None,
    "elpac_level_two_years_prior": None,
    "sbac_ela_level_prior_year": "1",
    "designation": "LTEL",
}

# None is an empty field in the file (COPY reads it as NULL); "" a quoted one.
VALUES: dict[Kind, list[str | None]] = {
    Kind.SSID: [
        "1234567890",
        "0000000000",
        "123456789",
        "12345678901",
        "12345678AB",
        " 123456789",
        "123456789 ",
        "+123456789",
        "-123456789",
        "1_23456789",
        "0x12345678",
        "１２３４５６７８９０",
        "١٢٣٤٥٦٧٨٩٠",
        "12345é789",
        "",
        None,
    ],
    Kind.NAME: [
        "Ana",
        "O'Brien",
        "Zoë",
        "x" * 60,
        "é" * 60,
        "x" * 61,
        "é" * 61,
        "",
        None,
        "Ana\tMaria",
        "Ana\nMaria",
        "Ana\x7f",
        "Ana\x01",
        "Ana\u0085",
        "Ana\u00a0Maria",
        " ",
    ],
    Kind.DATE: [
        "2001-03-04",
        "1900-01-01",
        "2099-12-31",
        "2000-02-29",
        "2004-02-29",
        "1900-02-29",
        "2001-02-29",
        "2001-02-30",
        "2001-04-31",
        "2001-13-01",
        "2001-00-10",
        "2001-01-00",
        "1899-12-31",
        "2100-01-01",
        "2001-3-4",
        "20010304",
        "03/04/2001",
        "2001-03-04 ",
        " 2001-03-04",
        "2001-03-0a",
        "2001-03-04 BC",
        "19999-12-3",
        "20 current",
        "20 epoch  ",
        "epoch",
        "today",
        "infinity",
        "J2451000",
        "2001/03/04",
        "",
        None,
    ],
    Kind.GENDER: ["F", "M", "X", "f", "FM", "", None, " F"],
    Kind.CDS: [
        "19647331932334",
        "00000000000000",
        "1964733193233",
        "196473319323345",
        "1964733193233A",
        " 1964733193233",
        "１９６４７３３１９３２３３４",
        "",
        None,
    ],
    Kind.GROUPS: [
        "HI;SED",
        "HI",
        "HI;HI",
        "SED;SWD;FOS;HOM",
        "AA;AI;AS;FI;HI;PI;WH;MR;EL",
        None,
        "",
        "HI;",
        ";HI",
        "HI;;SED",
        "hi",
        "HI;XYZ",
        "HI SED",
        "HI;SED ",
        ";",
        "SEDX",
    ],
    Kind.FLAG: ["Y", "N", "y", "YES", "", None, "Y "],
    Kind.COUNT: [
        "0",
        "9",
        "10",
        "99",
        "00",
        "05",
        "100",
        "-1",
        "+1",
        " 1",
        "1.0",
        "1e1",
        "٣",
        "",
        None,
        "a",
    ],
    Kind.LEVEL: ["1", "4", None, "0", "5", "01", "1 ", "", "one"],
    Kind.GRADE: ["1", "9", "10", "12", "0", "13", "01", "-1", "", None, "K"],
    Kind.YEARS: ["0", "9", "10", "20", "21", "00", "05", "-1", "", None],
    Kind.CHOICE: [
        "NONE",
        "REGISTERED",
        "NONREGISTERED",
        "LTEL",
        "AT_RISK",
        "ltel",
        "NONE ",
        "",
        None,
    ],
}

# Rules across fields (LTEL designations), with the fields that decide them.
LTEL_ROWS: list[dict[str, str | None]] = [
    {"designation": "LTEL", "grade": "6", "years_in_us_schools": "6"},
    {"designation": "LTEL", "grade": "5", "years_in_us_schools": "7"},
    {"designation": "LTEL", "grade": "8", "years_in_us_schools": "5"},
    {"designation": "AT_RISK", "grade": "3", "years_in_us_schools": "4"},
    {"designation": "AT_RISK", "grade": "12", "years_in_us_schools": "5"},
    {"designation": "AT_RISK", "grade": "2", "years_in_us_schools": "4"},
    {"designation": "AT_RISK", "grade": "5", "years_in_us_schools": "6"},
    {"designation": "AT_RISK", "grade": "5", "years_in_us_schools": "x"},
    {"designation": "LTEL", "grade": "x", "years_in_us_schools": "7"},
]


def _cases() -> Iterator[tuple[Layout, dict[str, str | None], str]]:
    for layout, good in ((CCI, GOOD_CCI), (LTEL, GOOD_LTEL)):
        for field in layout.fields:
            if field.name == _JOINED:
                continue
            for value in VALUES[field.kind]:
                yield layout, {**good, field.name: value}, f"{field.name}={value!r}"
    for changes in LTEL_ROWS:
        yield LTEL, {**GOOD_LTEL, **changes}, repr(changes)
    for value in VALUES[Kind.CDS]:
        yield OTHER_CDS, {"other_cds": value}, f"other_cds={value!r}"


async def _verdicts(
    conn: asyncpg.Connection, layout: Layout, row: dict[str, str | None]
) -> tuple[bool, bool]:
    """(detailed checks accept the line, optimistic checks accept it)."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("set local datestyle = 'ISO, YMD'")
        await conn.execute(_staging_sql(layout))
        columns = ", ".join(f'"{name}"' for name in layout.columns)
        params = ", ".join(f"${n}" for n in range(1, len(layout.columns) + 1))
        await conn.execute(
            f"insert into staging ({columns}) values ({params})",
            *(row[name] for name in layout.columns),
        )
        detailed = not await conn.fetch(_bad_lines_sql(layout))
        try:
            async with conn.transaction():
                optimistic = bool(
                    await conn.fetchval(
                        f"select count(*) from staging where {_good_row_sql(layout)}"
                    )
                )
        except asyncpg.DataError:
            # A value the cast refuses fails the attempt, as false does.
            optimistic = False
        return detailed, optimistic
    finally:
        await transaction.rollback()


async def test_both_checks_give_the_same_verdict_on_every_value(
    owner: asyncpg.Connection,
) -> None:
    disagree = []
    accepted = refused = 0
    for layout, row, case in _cases():
        detailed, optimistic = await _verdicts(owner, layout, row)
        if detailed != optimistic:
            disagree.append(
                f"{layout.name} {case}: detailed {detailed}, optimistic {optimistic}"
            )
        accepted += detailed
        refused += not detailed
    assert not disagree, "\n".join(disagree)
    # Both verdicts were exercised, many times.
    assert accepted > 50 and refused > 100


@pytest.mark.parametrize("layout", [CCI, LTEL], ids=lambda layout: layout.name)
async def test_the_good_lines_pass_both(
    owner: asyncpg.Connection, layout: Layout
) -> None:
    good = GOOD_CCI if layout is CCI else GOOD_LTEL
    assert await _verdicts(owner, layout, good) == (True, True)


async def test_directory_codes_are_fourteen_digits_so_the_join_checks_the_school(
    owner: asyncpg.Connection,
) -> None:
    # The optimistic store checks a line's school only by finding it in the
    # directory; that is a format check because the directory refuses any
    # other code.
    with pytest.raises(asyncpg.CheckViolationError):
        async with owner.transaction():
            await owner.execute(
                "insert into organizations (cds_code, kind, name, lea_cds, status, source) "
                "values ('1964733193233A', 'school', 'x', '19647330000000', 'Active', 'state')"
            )
