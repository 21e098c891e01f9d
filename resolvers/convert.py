"""From database rows to GraphQL objects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import strawberry

from resolvers.cursors import encode_id
from schema import types as t
from schema.layouts import LtelDesignation


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
        withdrawal_reason=row.get("withdrawal_reason"),
        supersedes=_release_id(row.get("supersedes")),
        superseded_by=_release_id(row.get("superseded_by")),
    )


def _release_id(number: int | None) -> strawberry.ID | None:
    return strawberry.ID(encode_id("Release", number)) if number is not None else None


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
            "withdrawal_reason": row.get("withdrawal_reason"),
            "supersedes": row.get("supersedes"),
            "superseded_by": row.get("superseded_by"),
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


def cci_student(row: Mapping[str, Any], layout: str) -> t.CciStudent:
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
        layout=layout,
    )


def ltel_student(row: Mapping[str, Any]) -> t.LtelStudent:
    return t.LtelStudent(
        ssid=row["ssid"],
        last_name=row["last_name"],
        first_name=row["first_name"],
        birth_date=date.fromisoformat(row["birth_date"]),
        school_cds=row["school_cds"],
        grade=int(row["grade"]),
        years_in_us_schools=int(row["years_in_us_schools"]),
        elpac_level_current=_level(row["elpac_level_current"]),
        elpac_level_prior_year=_level(row["elpac_level_prior_year"]),
        elpac_level_two_years_prior=_level(row["elpac_level_two_years_prior"]),
        sbac_ela_level_prior_year=_level(row["sbac_ela_level_prior_year"]),
        designation=LtelDesignation(row["designation"]),
    )
