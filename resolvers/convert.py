"""From database rows to GraphQL objects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import strawberry

from db.layouts import CCI_COLUMNS, LTEL_2019
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
    org = organization(
        row["org_cds"], row["org_name"], row["org_kind"], row["org_county"]
    )
    return t.Report(
        id=encode_id("Report", row["id"]),  # type: ignore[arg-type]
        organization=org,
        release=rel,
        student_count=row["student_count"],
        role=row["role"],
        number=row["id"],
    )


# A student's attributes are its record's columns, as the page query types
# them (`db.queries.student_page_sql`); the few that need more than that are
# converted here. The plain-field execution path (`schema.execution`) reads
# the same records through the same conversions, so both paths agree.
CCI_CONVERSIONS: dict[str, Callable[[Any], Any]] = {}
LTEL_CONVERSIONS: dict[str, Callable[[Any], Any]] = {"designation": LtelDesignation}


def _attributes(
    row: Mapping[str, Any],
    columns: tuple[str, ...],
    conversions: Mapping[str, Callable[[Any], Any]],
) -> dict[str, Any]:
    # A column the release's layout lacks is None (GraphQL refuses to be
    # asked for it; `cciLevel` reads it as "no result").
    values = {column: row.get(column) for column in columns}
    for column, convert in conversions.items():
        values[column] = convert(values[column])
    return values


def cci_student(row: Mapping[str, Any], layout: str) -> t.CciStudent:
    return t.CciStudent(**_attributes(row, CCI_COLUMNS, CCI_CONVERSIONS), layout=layout)


def ltel_student(row: Mapping[str, Any]) -> t.LtelStudent:
    return t.LtelStudent(**_attributes(row, LTEL_2019.columns, LTEL_CONVERSIONS))
