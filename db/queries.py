"""The service's read queries. Every one that touches reports or students is
scoped in SQL by the caller's (issuer, subject) through role_assignments: a
report of another organization is simply not in the result, so the service
never holds rows it must then filter out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import asyncpg

from db.layouts import LAYOUTS, Field, Kind

# The assignments that let (issuer $1, subject $2) read a report `r` of
# release `rel` now: active, not ended, for that organization, and for a role
# that covers the release's report type.
_SCOPE = """
exists (
    select 1 from role_assignments ra
    join role_report_types rt on rt.role = ra.role
    where ra.issuer = $1 and ra.subject = $2
      and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
      and ra.org_cds = r.org_cds
      and rt.report_type = rel.report_type
)
"""

_REPORT_COLUMNS = """
r.id, r.release_id, r.org_cds, r.student_count,
o.name as org_name, o.kind as org_kind, o.county as org_county,
rel.report_type, rel.year, rel.layout, rel.label, rel.status,
rel.available_until, rel.withdrawn_at, rel.withdrawal_reason, rel.supersedes,
rel.superseded_by,
(
    select min(ra.role) from role_assignments ra
    join role_report_types rt on rt.role = ra.role
    where ra.issuer = $1 and ra.subject = $2 and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
      and ra.org_cds = r.org_cds and rt.report_type = rel.report_type
) as role
"""

SCOPED_REPORTS = f"""
select {_REPORT_COLUMNS}
from reports r
join releases rel on rel.id = r.release_id
join organizations o on o.cds_code = r.org_cds
where rel.status in ('published', 'withdrawn')
  and {_SCOPE}
  and ($3::text is null or rel.report_type = $3)
  and ($4::int is null or rel.year = $4)
  and (r.release_id, r.org_cds) > ($5::bigint, $6::text)
order by r.release_id, r.org_cds
limit $7
"""

SCOPED_REPORTS_COUNT = f"""
select count(*) from reports r
join releases rel on rel.id = r.release_id
where rel.status in ('published', 'withdrawn')
  and {_SCOPE}
  and ($3::text is null or rel.report_type = $3)
  and ($4::int is null or rel.year = $4)
"""

SCOPED_REPORT = f"""
select {_REPORT_COLUMNS}
from reports r
join releases rel on rel.id = r.release_id
join organizations o on o.cds_code = r.org_cds
where r.id = $3 and rel.status in ('published', 'withdrawn') and {_SCOPE}
"""

# Which organization a report belongs to, read only to record a denied or
# not-found attempt in the audit trail of the organization it concerned.
REPORT_ORG = "select org_cds from reports where id = $1"


# How each kind of field is typed by the page query, so that asyncpg decodes
# the values the GraphQL types hold (in C) and a row needs no conversion in
# Python: the same expressions the loader's checks guarantee are valid.
_TYPED = {
    Kind.DATE: "{c}::date",
    Kind.GROUPS: "coalesce(string_to_array(nullif({c}, ''), ';'), '{{}}')",
    Kind.FLAG: "coalesce({c} = 'Y', false)",
    Kind.COUNT: "{c}::int",
    Kind.GRADE: "{c}::int",
    Kind.YEARS: "{c}::int",
    Kind.LEVEL: "nullif({c}, '')::int",
}


def _typed_column(field: Field) -> str:
    column = f's."{field.name}"'
    expression = _TYPED.get(field.kind)
    if expression is None:
        return column
    return f'{expression.format(c=column)} as "{field.name}"'


@cache
def student_page_sql(layout_name: str) -> str:
    """A keyset page of a report's students, scope re-checked in the same query.

    $1 issuer, $2 subject, $3 report id, $4 ssid after (or ''), $5 limit.
    Each column comes typed as its GraphQL field is: a date, booleans for
    flags, integers for counts and levels (null for an empty level), the
    student groups as a list of text.
    """
    layout = LAYOUTS[layout_name]
    columns = ", ".join(f's."{name}"' for name in layout.columns)
    typed = ", ".join(_typed_column(field) for field in layout.fields)
    table = f"{layout.report_type}_students"
    # Typed after the limit: when PostgreSQL sorts the report's remaining
    # rows rather than read them in index order (it does without statistics),
    # it would otherwise convert every one of them, not just the page's.
    return f"""
        select {typed} from (
            select {columns}
            from {table} s
            where s.report_id = $3 and s.ssid > $4
              and exists (
                  select 1 from reports r join releases rel on rel.id = r.release_id
                  where r.id = $3 and rel.status = 'published'
                    and rel.available_until >= current_date
                    and {_SCOPE}
              )
            order by s.ssid
            limit $5
        ) s
        order by s.ssid
    """


VISIBLE_RELEASES = """
select rel.id, rel.report_type, rel.year, rel.layout, rel.label, rel.notes,
       rel.status, rel.available_until, rel.published_at, rel.withdrawn_at,
       rel.supersedes, rel.superseded_by, rel.withdrawal_reason
from releases rel
where ($3::text is null or rel.report_type = $3)
  and rel.id > $4
  and (
    -- State administrators see every release, drafts included.
    exists (select 1 from role_assignments ra
            where ra.issuer = $1 and ra.subject = $2 and ra.role = 'state_admin'
              and ra.revoked_at is null
              and (ra.ends_on is null or ra.ends_on >= current_date))
    or (
      rel.status in ('published', 'withdrawn')
      and exists (select 1 from role_assignments ra
                  left join role_report_types rt on rt.role = ra.role
                  where ra.issuer = $1 and ra.subject = $2
                    and ra.revoked_at is null
                    and (ra.ends_on is null or ra.ends_on >= current_date)
                    and (rt.report_type = rel.report_type
                         or ra.role = 'compliance_officer'))
    )
  )
order by rel.id
limit $5
"""


async def fetch_student_page(
    conn: asyncpg.Pool | asyncpg.Connection,
    *,
    layout_name: str,
    issuer: str,
    subject: str,
    report_id: int,
    after_ssid: str,
    limit: int,
) -> Sequence[asyncpg.Record]:
    return await conn.fetch(
        student_page_sql(layout_name), issuer, subject, report_id, after_ssid, limit
    )
