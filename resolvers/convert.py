"""From database rows to GraphQL objects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from resolvers.cursors import encode_id
from schema import types as t


def organization(cds: str, name: str, kind: str, county: str = "") -> t.Organization:
    return t.Organization(
        cds_code=cds, name=name, kind=t.OrganizationKind(kind), county=county
    )


def release(row: Mapping[str, Any]) -> t.Release:
    return t.Release(
        id=encode_id("Release", row["id"]),  # type: ignore[arg-type]
        report_type=t.ReportType(row["report_type"]),
        year=row["year"],
        layout=row["layout"],
        label=row["label"],
        notes=row.get("notes", ""),
        status=t.ReleaseStatus(row["status"]),
        available_until=row["available_until"],
        published_at=row.get("published_at"),
        withdrawn_at=row.get("withdrawn_at"),
        number=row["id"],
    )


def report(row: Mapping[str, Any]) -> t.Report:
    rel = release(
        {
            "id": row["release_id"],
            "report_type": row["report_type"],
            "year": row["year"],
            "layout": row["layout"],
            "label": row["label"],
            "status": row["status"],
            "available_until": row["available_until"],
            "withdrawn_at": row["withdrawn_at"],
        }
    )
    org = organization(row["org_cds"], row["org_name"], row["org_kind"], row["org_county"])
    return t.Report(
        id=encode_id("Report", row["id"]),  # type: ignore[arg-type]
        organization=org,
        release=rel,
        student_count=row["student_count"],
        role=row["role"],
        number=row["id"],
    )


def _flag(value: str) -> bool:
    return value == "Y"


def _level(value: str | None) -> int | None:
    return int(value) if value else None


def cci_student(row: Mapping[str, Any]) -> t.CciStudent:
    groups = row["student_groups"]
    return t.CciStudent(
        ssid=row["ssid"],
        last_name=row["last_name"],
        first_name=row["first_name"],
        birth_date=date.fromisoformat(row["birth_date"]),
        gender=row["gender"],
        school_cds=row["school_cds"],
        student_groups=groups.split(";") if groups else [],
        graduated=_flag(row["graduated"]),
        ag_complete=_flag(row["ag_complete"]),
        cte_pathway=_flag(row["cte_pathway"]),
        ap_exams_passed=int(row["ap_exams_passed"]),
        ib_exams_passed=int(row["ib_exams_passed"]),
        college_credit_semesters=int(row["college_credit_semesters"]),
        sbac_ela_level=_level(row.get("sbac_ela_level")),
        sbac_math_level=_level(row.get("sbac_math_level")),
        seal_of_biliteracy=_flag(row["seal_of_biliteracy"]),
        military_science_years=int(row["military_science_years"]),
        pre_apprenticeship=row.get("pre_apprenticeship"),
    )
