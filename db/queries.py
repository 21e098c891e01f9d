"""The service's read queries. Every one that touches reports or students is
scoped in SQL by the caller's (issuer, subject) through role_assignments: a
report of another organization is simply not in the result, so the service
never holds rows it must then filter out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache

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


def _typed(field: Field) -> str:
    expression = _TYPED.get(field.kind)
    column = f's."{field.name}"'
    return column if expression is None else expression.format(c=column)


def _page_rows(layout_name: str) -> str:
    """The page's rows as stored: $3 report, after ssid $4, $5 rows at most."""
    layout = LAYOUTS[layout_name]
    columns = ", ".join(f's."{name}"' for name in layout.columns)
    table = f"{layout.report_type}_students"
    return f"""
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
            limit $5"""


@cache
def student_page_sql(layout_name: str) -> str:
    """A keyset page of a report's students, scope re-checked in the same query.

    $1 issuer, $2 subject, $3 report id, $4 ssid after (or ''), $5 limit.
    Each column comes typed as its GraphQL field is: a date, booleans for
    flags, integers for counts and levels (null for an empty level), the
    student groups as a list of text.
    """
    typed = ", ".join(
        f'{_typed(field)} as "{field.name}"' for field in LAYOUTS[layout_name].fields
    )
    # Typed after the limit: when PostgreSQL sorts the report's remaining
    # rows rather than read them in index order (it does without statistics),
    # it would otherwise convert every one of them, not just the page's.
    return f"""
        select {typed} from ({_page_rows(layout_name)}
        ) s
        order by s.ssid
    """


# The GraphQL type (leaf name, without !) each kind of column is answered
# as; a CHOICE column answered as an enum comes with its values' names.
_GRAPHQL_TYPES = {
    Kind.SSID: "String",
    Kind.NAME: "String",
    Kind.GENDER: "String",
    Kind.CDS: "String",
    Kind.CHOICE: "String",
    Kind.DATE: "Date",
    Kind.GROUPS: "[String!]",
    Kind.FLAG: "Boolean",
    Kind.COUNT: "Int",
    Kind.GRADE: "Int",
    Kind.YEARS: "Int",
    Kind.LEVEL: "Int",
}
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_IDENTIFIER_MAX = 63  # NAMEDATALEN - 1
# The node's row. Unqualified in row_to_json, a column of the same name would
# win over the row: the name has a space, which no GraphQL name has.
_NODE = '"node row"'
# A node of more fields than this (aliases of aliases) is answered in Python.
JSON_FIELDS_MAX = 100

# (response name, column, GraphQL type as `node_fields` gives it, and for an
# enum each stored value with its name)
JsonField = tuple[str, str, str, tuple[tuple[str, str], ...]]


@lru_cache(maxsize=256)
def student_page_json_sql(
    layout_name: str, fields: tuple[JsonField, ...]
) -> str | None:
    """The same page, each student written as the JSON object GraphQL would
    answer with `fields`, keys in their order; None if a field is not one
    this can write exactly. Each row: ssid, node (JSON text) and complete
    (false if a field whose type refuses null is null: the caller then
    reads the page the typed way, which words that error).

    The values are the typed page's, written by PostgreSQL's JSON output:
    strings escaped as orjson escapes them, dates as YYYY-MM-DD, flags as
    booleans, the groups as a list (tests/test_page_json.py compares the
    bytes with the answers built in Python, for every field of every layout).
    """
    layout = LAYOUTS[layout_name]
    by_name = {field.name: field for field in layout.fields}
    if len(fields) > JSON_FIELDS_MAX:
        return None
    selected: list[str] = []
    refusing_null: list[str] = []
    for response_name, column, graphql_type, enum in fields:
        field = by_name.get(column)
        if (
            field is None
            or not _GRAPHQL_NAME.fullmatch(response_name)
            # PostgreSQL would cut a longer name to 63 bytes: the key written
            # would not be the one asked for.
            or len(response_name) > _IDENTIFIER_MAX
        ):
            return None
        refuses_null = graphql_type.endswith("!")
        leaf = graphql_type.removesuffix("!")
        if enum:
            if field.kind is not Kind.CHOICE or not all(
                _GRAPHQL_NAME.fullmatch(name) and "'" not in value
                for value, name in enum
            ):
                return None
            cases = " ".join(f"when '{value}' then '{name}'" for value, name in enum)
            expression = f'case s."{column}" {cases} end'
        elif _GRAPHQL_TYPES[field.kind] == leaf:
            expression = _typed(field)
        else:
            return None
        selected.append(f'{expression} as "{response_name}"')
        if refuses_null:
            refusing_null.append(f'{_NODE}."{response_name}"')
    complete = f"num_nulls({', '.join(refusing_null)}) = 0" if refusing_null else "true"
    return f"""
        select s.ssid, row_to_json({_NODE})::text as node, {complete} as complete
        from ({_page_rows(layout_name)}
        ) s
        cross join lateral (select {", ".join(selected)}) {_NODE}
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
    sql: str,
    *,
    issuer: str,
    subject: str,
    report_id: int,
    after_ssid: str,
    limit: int,
) -> Sequence[asyncpg.Record]:
    """A page by `student_page_sql` or `student_page_json_sql`."""
    return await conn.fetch(sql, issuer, subject, report_id, after_ssid, limit)
