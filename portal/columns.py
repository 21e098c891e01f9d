"""Which student fields a page shows, by report type, and how.

A release's layout decides which fields its records have (the API refuses a
field the layout lacks), so a page asks for the intersection of these lists
and the release's `fields`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Column:
    field: str  # the student type's GraphQL field
    label: str
    kind: str  # code, text, date, flag, count, level, designation


CCI_COLUMNS = (
    Column("ssid", "SSID", "code"),
    Column("schoolCds", "School CDS code", "code"),
    Column("birthDate", "Birth date", "date"),
    Column("graduated", "Graduated", "flag"),
    Column("agComplete", "a–g complete", "flag"),
    Column("ctePathway", "CTE pathway", "flag"),
    Column("apExamsPassed", "AP exams passed", "count"),
    Column("ibExamsPassed", "IB exams passed", "count"),
    Column("collegeCreditSemesters", "College credit (semesters)", "count"),
    Column("sbacElaLevel", "Smarter Balanced ELA", "level"),
    Column("sbacMathLevel", "Smarter Balanced math", "level"),
    Column("sealOfBiliteracy", "Seal of Biliteracy", "flag"),
    Column("militaryScienceYears", "Leadership/Military Science (years)", "count"),
    Column("preApprenticeship", "Pre-apprenticeship", "text"),
)

LTEL_COLUMNS = (
    Column("ssid", "SSID", "code"),
    Column("designation", "Designation", "designation"),
    Column("schoolCds", "School CDS code", "code"),
    Column("birthDate", "Birth date", "date"),
    Column("grade", "Grade", "count"),
    Column("yearsInUsSchools", "Years in US schools", "count"),
    Column("elpacLevelCurrent", "ELPAC level", "level"),
    Column("elpacLevelPriorYear", "ELPAC level, prior year", "level"),
    Column("elpacLevelTwoYearsPrior", "ELPAC level, two years before", "level"),
    Column("sbacElaLevelPriorYear", "Smarter Balanced ELA, prior year", "level"),
)

_CCI_LEVEL = """
cciLevel {
  level derivable atLeast reason
  measuresMet { id description }
}
"""


def columns_for(report_type: str, fields: Sequence[str]) -> list[Column]:
    present = set(fields)
    listed = LTEL_COLUMNS if report_type == "LTEL" else CCI_COLUMNS
    return [column for column in listed if column.field in present]


def student_selection(report_type: str, columns: Sequence[str]) -> tuple[str, str]:
    """The connection field and the selection of one student's fields.

    Built only from the constant lists above (never from a request), so the
    query text is one of a small, fixed set.
    """
    chosen = " ".join(dict.fromkeys(["ssid", "lastName", "firstName", *columns]))
    if report_type == "LTEL":
        return "ltelStudents", f"... on LtelStudent {{ {chosen} }}"
    return "students", f"... on CciStudent {{ {chosen} {_CCI_LEVEL} }}"
