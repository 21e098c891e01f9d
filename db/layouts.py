"""Student-level record layouts, one per report type and layout version.

A release carries the layout of its year. The layout names the columns of the
file the state loads, in order, and the same columns (in the same order) are
what a download gives back. Fields a year did not collect are absent from its
layout: they are not in the file, not in the download, and GraphQL says so
when asked for them.

`docs/layouts.md` documents every field for coordinators.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a field is written in a file, and checked when it is loaded."""

    SSID = "ssid"  # exactly 10 digits
    NAME = "name"  # 1-60 characters, no control characters
    DATE = "date"  # YYYY-MM-DD, a real calendar date
    GENDER = "gender"  # F, M or X
    CDS = "cds"  # 14 digits, a school known to the directory
    GROUPS = "groups"  # student group codes separated by ";", may be empty
    FLAG = "flag"  # Y or N
    COUNT = "count"  # a whole number from 0 to 99
    LEVEL = "level"  # 1-4, or empty when the student has no result
    GRADE = "grade"  # 1-12
    CHOICE = "choice"  # one of the field's choices
    YEARS = "years"  # a whole number of school years, 0 to 20


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    description: str
    choices: tuple[str, ...] = ()
    optional: bool = False  # empty allowed (LEVEL is always optional)


# Dashboard student groups used by the CCI file (2017-2024 layouts).
STUDENT_GROUPS = (
    "AA", "AI", "AS", "FI", "HI", "PI", "WH", "MR",
    "EL", "SED", "SWD", "FOS", "HOM",
)  # fmt: skip

_IDENTITY = (
    Field("ssid", Kind.SSID, "Statewide student identifier (10 digits)"),
    Field("last_name", Kind.NAME, "Student's legal last name"),
    Field("first_name", Kind.NAME, "Student's legal first name"),
    Field("birth_date", Kind.DATE, "Date of birth"),
    Field("gender", Kind.GENDER, "Gender as reported to CALPADS: F, M or X"),
    Field("school_cds", Kind.CDS, "14-digit CDS code of the school of record"),
)

_CCI_COMMON = (
    Field(
        "student_groups",
        Kind.GROUPS,
        "Dashboard student groups, ';'-separated (AA, AI, AS, FI, HI, PI, WH, MR, "
        "EL, SED, SWD, FOS, HOM)",
    ),
    Field("graduated", Kind.FLAG, "Earned a regular high school diploma in the cohort"),
    Field("ag_complete", Kind.FLAG, "Completed the a-g course sequence (C or better)"),
    Field(
        "cte_pathway",
        Kind.FLAG,
        "Completed a CTE pathway with C- or better in the capstone course",
    ),
    Field("ap_exams_passed", Kind.COUNT, "AP exams with a score of 3 or higher"),
    Field("ib_exams_passed", Kind.COUNT, "IB exams with a score of 4 or higher"),
    Field(
        "college_credit_semesters",
        Kind.COUNT,
        "Semesters of academic or CTE college credit courses passed, C- or better "
        "(two quarters or trimesters count as one semester)",
    ),
)

_SBAC = (
    Field(
        "sbac_ela_level",
        Kind.LEVEL,
        "Smarter Balanced ELA level in grade 11: 1 not met, 2 nearly met, 3 met, "
        "4 exceeded; empty when not tested",
    ),
    Field(
        "sbac_math_level",
        Kind.LEVEL,
        "Smarter Balanced mathematics level in grade 11, as for ELA",
    ),
)

_CCI_MORE = (
    Field("seal_of_biliteracy", Kind.FLAG, "Earned the State Seal of Biliteracy"),
    Field(
        "military_science_years",
        Kind.COUNT,
        "Years of Leadership/Military Science courses completed",
    ),
)

_PRE_APPRENTICESHIP = (
    Field(
        "pre_apprenticeship",
        Kind.CHOICE,
        "Completed a pre-apprenticeship: REGISTERED (state-registered), "
        "NONREGISTERED, or NONE",
        choices=("NONE", "REGISTERED", "NONREGISTERED"),
    ),
)


@dataclass(frozen=True, slots=True)
class RowCheck:
    """A rule across the fields of one row, checked when a file is loaded.

    `bad_when` is a SQL condition over the row's columns (written by us,
    never from input) that is true for a row breaking the rule; `field` is
    the column the rejection names.
    """

    field: str
    bad_when: str
    message: str


@dataclass(frozen=True, slots=True)
class Layout:
    """One version of a report type's record layout."""

    name: str
    report_type: str
    fields: tuple[Field, ...]
    notes: str
    checks: tuple[RowCheck, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    def has(self, column: str) -> bool:
        return column in self.columns


CCI_2017 = Layout(
    "cci-2017",
    "cci",
    _IDENTITY + _CCI_COMMON + _SBAC + _CCI_MORE,
    "Dashboard CCI layout used for the 2017 through 2020 cohorts.",
)
CCI_2021 = Layout(
    "cci-2021",
    "cci",
    _IDENTITY + _CCI_COMMON + _CCI_MORE,
    "The 2021 and 2022 releases carry no Smarter Balanced results: testing was "
    "suspended in spring 2020 and limited in spring 2021.",
)
CCI_2023 = Layout(
    "cci-2023",
    "cci",
    _IDENTITY + _CCI_COMMON + _SBAC + _CCI_MORE + _PRE_APPRENTICESHIP,
    "Smarter Balanced results return; pre-apprenticeship completion is added.",
)

# Long-term English learners and students at risk of becoming one, as
# California Education Code 313.1 defines them. A release of year Y lists the
# English learners of school year (Y-1)-Y so designated; "prior year" is the
# spring of Y-1. The summative ELPAC was first given in spring 2018.
_LTEL_FIELDS = (
    Field("ssid", Kind.SSID, "Statewide student identifier (10 digits)"),
    Field("last_name", Kind.NAME, "Student's legal last name"),
    Field("first_name", Kind.NAME, "Student's legal first name"),
    Field("birth_date", Kind.DATE, "Date of birth"),
    Field("school_cds", Kind.CDS, "14-digit CDS code of the school of record"),
    Field("grade", Kind.GRADE, "Grade level in the release year, 1-12"),
    Field(
        "years_in_us_schools",
        Kind.YEARS,
        "School years enrolled in US schools, kindergarten and the release year "
        "included",
    ),
    Field(
        "elpac_level_current",
        Kind.LEVEL,
        "Summative ELPAC overall level in the spring of the release year: "
        "1 minimally, 2 somewhat, 3 moderately, 4 well developed; empty when "
        "not tested",
    ),
    Field(
        "elpac_level_prior_year",
        Kind.LEVEL,
        "Summative ELPAC overall level one year before, as for the current year",
    ),
    Field(
        "elpac_level_two_years_prior",
        Kind.LEVEL,
        "Summative ELPAC overall level two years before; empty when not tested "
        "(and for every student of the 2019 release: the ELPAC began in 2018)",
    ),
    Field(
        "sbac_ela_level_prior_year",
        Kind.LEVEL,
        "Smarter Balanced ELA level one year before: 1 not met, 2 nearly met, "
        "3 met, 4 exceeded; empty when not tested (grades 2, 9 and 10 are not)",
    ),
    Field(
        "designation",
        Kind.CHOICE,
        "LTEL (long-term English learner) or AT_RISK (at risk of becoming one), "
        "by Education Code 313.1",
        choices=("LTEL", "AT_RISK"),
    ),
)

LTEL_2019 = Layout(
    "ltel-2019",
    "ltel",
    _LTEL_FIELDS,
    "Long-term English learners and students at risk, Education Code 313.1; "
    "ELPAC levels of the release year and the two years before.",
    checks=(
        RowCheck(
            "designation",
            "designation = 'LTEL' and (grade::int < 6 or years_in_us_schools::int < 6)",
            "an LTEL is in grades 6-12 with 6 or more years in US schools",
        ),
        RowCheck(
            "designation",
            "designation = 'AT_RISK' and (grade::int < 3 "
            "or years_in_us_schools::int not in (4, 5))",
            "a student at risk is in grades 3-12 with 4 or 5 years in US schools",
        ),
    ),
)

LAYOUTS = {layout.name: layout for layout in (CCI_2017, CCI_2021, CCI_2023, LTEL_2019)}

# Every CCI column the database can hold, in storage order: the union of layouts.
CCI_COLUMNS: tuple[str, ...] = CCI_2023.columns

# The first year of each report type that has a layout.
FIRST_YEAR = {"cci": 2017, "ltel": 2019}
# The releases table accepts no later year (its check constraint).
LAST_YEAR = 2100


def layout_for(report_type: str, year: int) -> Layout:
    """The layout a release of this report type and year is loaded with.

    Raises ValueError for a report type or year no layout covers.
    """
    if year > LAST_YEAR:
        raise ValueError(f"no layout covers {year}: the last year is {LAST_YEAR}")
    if report_type == "cci":
        if year < FIRST_YEAR["cci"]:
            raise ValueError(
                f"no CCI layout covers {year}: the first is for 2017, the first "
                "cohort the Dashboard's CCI was reported for"
            )
        if year <= 2020:
            return CCI_2017
        if year <= 2022:
            return CCI_2021
        return CCI_2023
    if report_type == "ltel":
        if year < FIRST_YEAR["ltel"]:
            raise ValueError(
                f"no LTEL layout covers {year}: the first is for 2019, the year "
                "after the summative ELPAC was first given"
            )
        return LTEL_2019
    raise ValueError(f"no layout is defined for report type {report_type!r}")


def columns_of(report_type: str) -> frozenset[str]:
    """Every column any layout of a report type has."""
    return frozenset(
        column
        for layout in LAYOUTS.values()
        if layout.report_type == report_type
        for column in layout.columns
    )
