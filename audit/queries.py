"""The compliance officer's queries over the audit trail, scoped in SQL.

A compliance officer's scope comes from role_assignments in the same
statement: an assignment at an LEA or charter school shows the events whose
organization is that one; an assignment at the state (00000000000000) shows
every event, those without an organization included. Events of other
organizations are never read, so nothing is filtered after the fact.

Every query takes $1 issuer and $2 subject of the caller. The pool forces
custom plans (db/pool.py), so the `($n is null or ...)` filters fold away
and each query plans for the filters actually given.
"""

from __future__ import annotations

from audit.tags import Action, Outcome, Purpose

STATE = "00000000000000"
OFFICER_ROLE = "compliance_officer"

# What discloses a student's record: a page read names the student's SSID; a
# whole-file download that started names only its report (a file holds up to
# tens of thousands of students), and discloses every student in it.
PAGE_DISCLOSURES = (Action.REPORT_STUDENTS_READ.value,)
# Written into the SQL (and the partial index of migration 0004) as a literal,
# so that the planner sees the index's exact predicate.
FILE_DISCLOSURE = Action.REPORT_DOWNLOAD_STARTED.value

_OFFICER = f"""
officer as materialized (
    select ra.org_cds from role_assignments ra
    where ra.issuer = $1 and ra.subject = $2 and ra.role = '{OFFICER_ROLE}'
      and ra.revoked_at is null
      and (ra.ends_on is null or ra.ends_on >= current_date)
),
statewide as materialized (
    select exists (select 1 from officer where org_cds = '{STATE}') as yes
)
"""

_COLUMNS = """
e.id, e.occurred_at, e.action, e.outcome, e.actor_issuer, e.actor_subject,
e.actor_kind, e.actor_role, e.org_cds, e.purpose, e.purpose_detail,
e.release_id, e.report_id, e.student_count, e.request_id, e.trace_id,
e.client_addr, e.user_agent, e.detail, e.chain_org, e.seq, e.prev_hash, e.hash
"""

_FILTERS = """
  and ($3::timestamptz is null or e.occurred_at >= $3)
  and ($4::timestamptz is null or e.occurred_at < $4)
  and ($5::text is null or e.actor_issuer = $5)
  and ($6::text is null or e.actor_subject = $6)
  and ($7::text is null or e.org_cds = $7)
  and ($8::text[] is null or e.action = any($8))
  and ($9::text is null or e.outcome = $9)
  and ($10::bigint is null or e.report_id = $10)
  and ($11::bigint is null or e.release_id = $11)
  and ($12::text is null or e.ssids @> array[$12]::text[])
  and ($13::timestamptz is null or (e.occurred_at, e.id) < ($13, $14::bigint))
"""

# Newest first. Two branches, one of which the statewide flag switches off
# before it runs: a statewide officer reads the trail in time order; an LEA
# officer reads each of their organizations' events in time order through
# (org_cds, occurred_at), and never walks past other organizations' events.
# Each branch is cut to the page size before they are merged.
EVENTS = f"""
with {_OFFICER}
select p.*, o.name as org_name, o.kind as org_kind, o.county as org_county
from (
    (select {_COLUMNS} from audit_events e
     where (select yes from statewide) {_FILTERS}
     order by e.occurred_at desc, e.id desc limit $15)
    union all
    (select mine.* from officer cross join lateral (
        select {_COLUMNS} from audit_events e
        where not (select yes from statewide)
          and e.org_cds = officer.org_cds {_FILTERS}
        order by e.occurred_at desc, e.id desc limit $15
     ) mine)
    order by occurred_at desc, id desc limit $15
) p
left join organizations o on o.cds_code = p.org_cds
order by p.occurred_at desc, p.id desc
"""

# The SSIDs of events already returned to this caller, re-scoped.
EVENT_SSIDS = f"""
with {_OFFICER}
select e.id, e.ssids from audit_events e
where e.id = any($3::bigint[])
  and ((select yes from statewide)
       or e.org_cds = any(array(select org_cds from officer)))
"""


# Every disclosure of one student ($3), newest first, in two branches each cut
# to the page size before they are merged: page reads that named the SSID
# (the GIN index on ssids), and whole-file downloads of the reports the
# student is in, newest first per report (the partial index of downloads by
# report and time), so a report downloaded every night adds at most a page of
# rows. Download events carry no SSIDs; the student's published reports come
# from student_reports (migration 0011, filled when a release is published),
# one index probe, then one probe of the download index per such report.
_SCOPE = """((select yes from statewide)
       or e.org_cds = any(array(select org_cds from officer)))"""
_AFTER = "($5::timestamptz is null or (e.occurred_at, e.id) < ($5, $6::bigint))"

_DISCLOSURE_SOURCES = f"""
{_OFFICER},
students_reports as materialized (
    -- The student's few published reports, read first: otherwise the planner
    -- walks every report in scope (a thousand for the state) and filters last.
    select report_id from student_reports where ssid = $3
),
member_of as materialized (
    select sr.report_id as id from students_reports sr
    where exists (
          select 1 from reports r
          where r.id = sr.report_id
            and ((select yes from statewide)
                 or r.org_cds = any(array(select org_cds from officer))))
      and exists (
          select 1 from audit_events d
          where d.report_id = sr.report_id and d.action = '{FILE_DISCLOSURE}'
            and d.outcome = 'granted'
          limit 1)
)
"""

_DISCLOSURE_PAGE = f"""(
    (select {_COLUMNS} from audit_events e
     where e.ssids @> array[$3]::text[] and e.action = any($4::text[])
       and e.outcome = 'granted' and {_SCOPE} and {_AFTER}
     order by e.occurred_at desc, e.id desc limit $7)
    union all
    (select downloads.* from member_of m cross join lateral (
        select {_COLUMNS} from audit_events e
        where e.report_id = m.id and e.action = '{FILE_DISCLOSURE}'
          and e.outcome = 'granted' and {_SCOPE} and {_AFTER}
        order by e.occurred_at desc, e.id desc limit $7
     ) downloads)
    order by occurred_at desc, id desc limit $7
)"""

_ORG = "o.name as org_name, o.kind as org_kind, o.county as org_county"

# The bare read: what the benchmark measures the request against.
DISCLOSURES = f"""
with {_DISCLOSURE_SOURCES}
select p.*, {_ORG}
from {_DISCLOSURE_PAGE} p
left join organizations o on o.cds_code = p.org_cds
order by p.occurred_at desc, p.id desc
"""

# The read and its audit event in one statement, which the service sends as
# its own transaction: one event per organization the officer reviews, in its
# chain, naming the SSID and how many events the page shows ($7 is the page
# size plus one). The statement returns its rows only once it has succeeded,
# event included, and the service sends nothing before that; if the event
# cannot be stored, the statement fails and no row is returned. The events are
# inserted in organization order, so two officers of several organizations
# take the chain heads in the same order. One row always comes back (`recorded`,
# the events written, and the page's columns, null when it is empty): zero
# events means the caller holds no officer role any more.
# $8 actor kind, $9 request id, $10 trace id, $11 client address, $12 user agent.
DISCLOSURES_RECORDED = f"""
with {_DISCLOSURE_SOURCES},
page as materialized (select * from {_DISCLOSURE_PAGE} p),
recorded as (
    insert into audit_events (
        action, outcome, actor_issuer, actor_subject, actor_kind, actor_role,
        org_cds, purpose, ssids, student_count, request_id, trace_id,
        client_addr, user_agent, detail)
    select '{Action.AUDIT_DISCLOSURES_READ.value}', '{Outcome.GRANTED.value}', $1, $2,
           $8, '{OFFICER_ROLE}', officer.org_cds, '{Purpose.COMPLIANCE_REVIEW.value}',
           array[$3]::text[], 1, $9, $10, $11, $12,
           '{{"events":' || (select least(count(*), $7 - 1) from page) || '}}'
    from officer
    order by officer.org_cds
    returning id
)
select (select count(*) from recorded) as recorded, p.*, {_ORG}
from (values (true)) as always (yes)
left join page p on true
left join organizations o on o.cds_code = p.org_cds
order by p.occurred_at desc, p.id desc
"""
