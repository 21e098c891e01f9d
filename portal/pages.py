"""The coordinator's pages: organizations and roles, releases, reports,
students a page at a time, and the download button."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal import api
from portal.columns import columns_for, student_selection
from portal.errors import BadForm
from portal.render import PURPOSES, render
from portal.signin import safe_next
from portal.web import (
    current_session,
    field,
    remember_viewer,
    require_session,
    store,
)

VIEWER = """
fragment ViewerParts on Viewer {
  subject
  name
  howToGetAccess
  assignments { role endsOn organization { cdsCode name kind } }
}
"""

RELEASE_FIELDS = """
  id reportType year label notes status availableUntil daysRemaining expired
  publishedAt withdrawnAt withdrawalReason
"""

_PAGE_SIZES = (25, 50, 100)
_MAX_CURSOR = 512


async def overview(request: Request) -> Response:
    session = await current_session(request)
    if session is None:
        return _sign_in_page(request)
    result = await api.call(
        request, session, VIEWER + "query Overview { viewer { ...ViewerParts } }"
    )
    viewer = result.data["viewer"]
    remember_viewer(request, viewer)
    return render(request, "overview.html", title="Overview", viewer=viewer)


def _sign_in_page(request: Request) -> Response:
    services = request.app.state.services
    next_path = safe_next(request.query_params.get("next"))
    message = None
    if request.query_params.get("signed_out"):
        message = "You have signed out of SOARS."
    elif next_path != "/":
        message = "Please sign in to continue."
    return render(
        request,
        "signin.html",
        title="Sign in",
        message=message,
        next=next_path,
        provider=services.settings.portal.client_id is not None,
        sample_users=services.settings.is_development
        and services.dev_issuer is not None,
    )


async def releases(request: Request) -> Response:
    session = await require_session(request)
    after = _cursor(request)
    result = await api.call(
        request,
        session,
        VIEWER
        + """
        query Releases($after: String) {
          viewer { ...ViewerParts }
          releases(first: 50, after: $after) {
            edges { node { """
        + RELEASE_FIELDS
        + """ } }
            pageInfo { hasNextPage endCursor }
          }
        }""",
        {"after": after},
    )
    remember_viewer(request, result.data["viewer"])
    connection = result.data["releases"]
    return render(
        request,
        "releases.html",
        title="Releases",
        viewer=result.data["viewer"],
        releases=[edge["node"] for edge in connection["edges"]],
        page_info=connection["pageInfo"],
        first_page=after is None,
    )


REPORTS = (
    VIEWER
    + """
query Reports {
  viewer { ...ViewerParts }
  reports(first: 200) {
    totalCount
    edges { node {
      id studentCount
      organization { cdsCode name kind }
      release { """
    + RELEASE_FIELDS
    + """ }
    } }
  }
  releases(first: 100) { edges { node { year } } }
}
"""
)

AVAILABILITY = """
fragment Answers on ReportAvailability {
  reportType year howToGetAccess
  organizations { status message roles organization { cdsCode name } }
}
query Availability($year: Int!) {
  cci: reportAvailability(reportType: CCI, year: $year) { ...Answers }
  ltel: reportAvailability(reportType: LTEL, year: $year) { ...Answers }
}
"""


async def reports(request: Request) -> Response:
    session = await require_session(request)
    result = await api.call(request, session, REPORTS)
    viewer = result.data["viewer"]
    remember_viewer(request, viewer)
    found = [edge["node"] for edge in result.data["reports"]["edges"]]

    # "Why is there no report?" for a year: the one asked for, else the
    # latest year the state has released anything this person can see.
    known = {edge["node"]["year"] for edge in result.data["releases"]["edges"]}
    this_year = datetime.date.today().year
    year = _year(request, default=max(known, default=this_year))
    answers = await api.call(request, session, AVAILABILITY, {"year": year})
    missing = [
        {"reportType": part["reportType"], **answer}
        for part in (answers.data["cci"], answers.data["ltel"])
        for answer in part["organizations"]
        if answer["status"] != "AVAILABLE"
    ]
    return render(
        request,
        "reports.html",
        title="Your reports",
        viewer=viewer,
        reports=found,
        total=result.data["reports"]["totalCount"],
        year=year,
        years=sorted({*known, *range(2017, this_year + 1)}, reverse=True),
        missing=missing,
    )


def _year(request: Request, *, default: int) -> int:
    raw = request.query_params.get("year", "")
    return int(raw) if raw.isdigit() and 2000 <= int(raw) <= 2100 else default


REPORT = (
    VIEWER
    + """
query Report($id: ID!) {
  viewer { ...ViewerParts }
  report(id: $id) {
    id studentCount
    organization { cdsCode name kind county }
    release { layout fields { graphqlName } """
    + RELEASE_FIELDS
    + """ }
  }
}
"""
)


async def report(request: Request) -> Response:
    session = await require_session(request)
    report_id = _report_id(request)
    result = await api.call(request, session, REPORT, {"id": report_id})
    remember_viewer(request, result.data["viewer"])
    return render(
        request,
        "report.html",
        title=_report_title(result.data["report"]),
        viewer=result.data["viewer"],
        report=result.data["report"],
        purpose=session.purpose,
        purpose_detail=session.purpose_detail,
    )


STUDENT_PAGE = """
query StudentPage(
  $id: ID!, $first: Int!, $after: String, $purpose: Purpose!, $detail: String
) {
  report(id: $id) {
    %(connection)s(
      first: $first, after: $after, purpose: $purpose, purposeDetail: $detail
    ) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { %(selection)s } }
    }
  }
}
"""


async def students(request: Request) -> Response:
    session = await require_session(request)
    report_id = _report_id(request)
    if session.purpose is None:
        return _ask_purpose(request)
    size = _page_size(request)
    after = _cursor(request)
    start = _start(request) if after else 1

    # First what the release's layout holds, then a page of exactly those
    # fields: the API refuses a field the layout lacks rather than invent it.
    described = await api.call(request, session, REPORT, {"id": report_id})
    remember_viewer(request, described.data["viewer"])
    found = described.data["report"]
    release = found["release"]
    fields = [field["graphqlName"] for field in release["fields"]]
    columns = columns_for(release["reportType"], fields)
    connection_name, selection = student_selection(
        release["reportType"], [column.field for column in columns]
    )
    page = await api.call(
        request,
        session,
        STUDENT_PAGE % {"connection": connection_name, "selection": selection},
        {
            "id": report_id,
            "first": size,
            "after": after,
            "purpose": session.purpose,
            "detail": session.purpose_detail,
        },
    )
    connection = page.data["report"][connection_name]
    rows = [edge["node"] for edge in connection["edges"]]
    next_link = None
    if connection["pageInfo"]["hasNextPage"]:
        next_link = "?" + urlencode(
            {
                "size": size,
                "after": connection["pageInfo"]["endCursor"],
                "from": start + len(rows),
            }
        )
    return render(
        request,
        "students.html",
        title="Students of " + _report_title(found),
        viewer=described.data["viewer"],
        report=found,
        columns=columns,
        cci=release["reportType"] == "CCI",
        students=rows,
        total=connection["totalCount"],
        start=start,
        size=size,
        sizes=_PAGE_SIZES,
        next_link=next_link,
        purpose=session.purpose,
    )


DOWNLOAD = """
mutation Download($id: ID!, $purpose: Purpose!, $detail: String) {
  createDownloadToken(reportId: $id, purpose: $purpose, purposeDetail: $detail) {
    url expiresAt
  }
}
"""


async def download(request: Request) -> Response:
    session = await require_session(request)
    report_id = _report_id(request)
    if session.purpose is None:
        return _ask_purpose(request, back=f"/reports/{quote(report_id)}")
    result = await api.call(
        request,
        session,
        DOWNLOAD,
        {"id": report_id, "purpose": session.purpose, "detail": session.purpose_detail},
    )
    # The browser fetches the single-use link itself; the file arrives as an
    # attachment, so the person stays on the report's page.
    return RedirectResponse(result.data["createDownloadToken"]["url"], status_code=303)


async def purpose(request: Request) -> Response:
    session = await require_session(request)
    if request.method == "GET":
        return render(
            request,
            "purpose.html",
            title="Why are you looking at student records?",
            next=safe_next(request.query_params.get("next")),
            chosen=session.purpose,
            detail=session.purpose_detail or "",
            error=None,
        )

    chosen = field(request, "purpose")
    detail = field(request, "detail")
    next_path = safe_next(field(request, "next"))
    problem = None
    if chosen not in PURPOSES:
        problem = "Choose the reason that fits best."
    elif len(detail) > 500:
        problem = "Keep the details to 500 characters or fewer."
    if problem:
        return render(
            request,
            "purpose.html",
            status=400,
            title="Why are you looking at student records?",
            next=next_path,
            chosen=chosen,
            detail=detail,
            error=problem,
        )
    await store(request).set_purpose(session.id, chosen, detail or None)
    return RedirectResponse(next_path, status_code=303)


def _ask_purpose(request: Request, back: str | None = None) -> Response:
    target = back or request.url.path + (
        f"?{request.url.query}" if request.url.query else ""
    )
    return RedirectResponse("/purpose?next=" + quote(target, safe=""), status_code=303)


def _report_title(found: dict[str, Any]) -> str:
    release = found["release"]
    return f"{found['organization']['name']}: {release['label']}"


def _report_id(request: Request) -> str:
    value = request.path_params["id"]
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise BadForm("That report address is not valid.")
    return value


def _cursor(request: Request) -> str | None:
    after = request.query_params.get("after") or None
    if after is not None and len(after) > _MAX_CURSOR:
        raise BadForm(
            "That page address is not valid; start again from the first page."
        )
    return after


def _page_size(request: Request) -> int:
    raw = request.query_params.get("size", "50")
    return int(raw) if raw.isdigit() and int(raw) in _PAGE_SIZES else 50


def _start(request: Request) -> int:
    raw = request.query_params.get("from", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 10_000_000 else 1
