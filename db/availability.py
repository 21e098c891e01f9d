"""Why a caller has, or has not, a report of a type and year: the query.

One row per organization where the caller holds an active assignment, with
whether any of those roles covers the report type and, when one does, the
release of that type and year that best answers the question, ranked:

1. a published release with a report for the organization, still available;
2. the same, expired;
3. a published release without a report for it: the file had no student of
   the organization (no grade-12 cohort; no LTEL or at-risk student);
4. a withdrawn release that had a report for it, then 5. any other release
   withdrawn after publication;
6. a release not yet published (or withdrawn before it was), or none.

Scope is in the SQL: reports are joined only for the caller's organizations
and only where the caller's role covers the type.
"""

from __future__ import annotations

from enum import IntEnum

REPORT_AVAILABILITY = """
with mine as (
    select ra.org_cds,
           array_agg(distinct ra.role order by ra.role) as roles,
           bool_or(rt.report_type is not null) as covered
    from role_assignments ra
    left join role_report_types rt on rt.role = ra.role and rt.report_type = $3
    where ra.issuer = $1 and ra.subject = $2 and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
    group by ra.org_cds
)
select m.org_cds, o.name as org_name, o.kind as org_kind, o.county as org_county,
       m.roles, m.covered, best.*
from mine m
join organizations o on o.cds_code = m.org_cds
left join lateral (
    select rel.id, rel.report_type, rel.year, rel.layout, rel.label, rel.notes,
           rel.status, rel.available_until, rel.published_at, rel.withdrawn_at,
           rel.withdrawal_reason, rel.supersedes, rel.superseded_by,
           r.id as report_id, r.student_count,
           case
               when r.id is not null and rel.status = 'published'
                    and rel.available_until >= current_date then 1
               when r.id is not null and rel.status = 'published' then 2
               when rel.status = 'published' then 3
               when rel.status = 'withdrawn' and rel.published_at is not null
                    and r.id is not null then 4
               when rel.status = 'withdrawn' and rel.published_at is not null then 5
               else 6
           end as rank
    from releases rel
    left join reports r on r.release_id = rel.id and r.org_cds = m.org_cds
    where m.covered and rel.report_type = $3 and rel.year = $4
    order by rank, rel.id desc
    limit 1
) best on true
order by m.org_cds
"""


class Rank(IntEnum):
    AVAILABLE = 1
    EXPIRED = 2
    NO_STUDENTS = 3
    WITHDRAWN_WITH_REPORT = 4
    WITHDRAWN = 5
    NOT_PUBLISHED = 6
