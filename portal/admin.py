"""The state administrator's pages: releases, their load summaries and
lifecycle (publish, change the end date, withdraw), and role assignments.

Each change is one GraphQL mutation, audited by the API like any other; a
refusal (a date in the past, a non-charter school) is shown on the same page.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal import api
from portal.errors import ApiFailure, BadForm
from portal.pages import RELEASE_FIELDS, VIEWER
from portal.render import ROLE_NAMES, render
from portal.sessions import PortalSession
from portal.web import field, form, remember_viewer, require_session
from resolvers.cursors import decode_id

RELEASES = (
    VIEWER
    + """
query AdminReleases($after: String) {
  viewer { ...ViewerParts }
  releases(first: 100, after: $after) {
    edges { node { """
    + RELEASE_FIELDS
    + """ supersedes supersededBy } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
)

CREATE = """
mutation Create(
  $type: ReportType!, $year: Int!, $label: String, $notes: String!, $supersedes: ID
) {
  createRelease(
    reportType: $type, year: $year, label: $label, notes: $notes, supersedes: $supersedes
  ) { id }
}
"""

SUMMARY = (
    VIEWER
    + """
query Summary($id: ID!) {
  viewer { ...ViewerParts }
  releaseLoadSummary(id: $id) {
    release { layout supersedes supersededBy """
    + RELEASE_FIELDS
    + """ }
    sourceName rowsLoaded loadedAt reportCount
    reports { studentCount organization { cdsCode name kind } }
    failures { failedAt sourceName badLines rejections { line field message } }
  }
}
"""
)

PUBLISH = """
mutation Publish($id: ID!, $until: Date!) {
  publishRelease(id: $id, availableUntil: $until) { id }
}
"""
CHANGE = """
mutation Change($id: ID!, $until: Date!) {
  changeAvailability(id: $id, availableUntil: $until) { id }
}
"""
WITHDRAW = """
mutation Withdraw($id: ID!, $reason: String!) {
  withdrawRelease(id: $id, reason: $reason) { id }
}
"""

GRANT_FIELDS = """
  id issuer subject role endsOn grantedAt grantedBy revokedAt revokedBy
  organization { cdsCode name }
"""
GRANT = (
    """
mutation Grant(
  $subject: String!, $org: String!, $role: Role!, $endsOn: Date, $issuer: String
) {
  grantRole(
    subject: $subject, organization: $org, role: $role, endsOn: $endsOn, issuer: $issuer
  ) {"""
    + GRANT_FIELDS
    + "} }"
)
REVOKE = (
    """
mutation Revoke($subject: String!, $org: String!, $role: Role!, $issuer: String) {
  revokeRole(subject: $subject, organization: $org, role: $role, issuer: $issuer) {"""
    + GRANT_FIELDS
    + "} }"
)
ASSIGNMENTS = (
    """
query Assignments($org: String, $subject: String) {
  roleAssignments(organization: $org, subject: $subject, first: 100) {
    edges { node {"""
    + GRANT_FIELDS
    + "} } } }"
)

_VIEWER_ONLY = VIEWER + "query Viewer { viewer { ...ViewerParts } }"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DONE = {
    "created": "The release was created as a draft. Load its file on the server, "
    "then publish it here.",
    "published": "The release is published; coordinators can see it now.",
    "changed": "The end date was changed.",
    "withdrawn": "The release was withdrawn. Reading and downloading stopped at once.",
}


async def releases(request: Request) -> Response:
    session = await require_session(request)
    error = None
    if request.method == "POST":
        try:
            created = await _create(request, session)
        except ApiFailure as failure:
            if failure.status >= 500:
                raise
            error = failure.message
        else:
            return RedirectResponse(
                f"/admin/releases/{quote(created)}?done=created", status_code=303
            )
    result = await api.call(request, session, RELEASES, {"after": None})
    remember_viewer(request, result.data["viewer"])
    return render(
        request,
        "admin_releases.html",
        status=400 if error else 200,
        title="Manage releases",
        viewer=result.data["viewer"],
        releases=[edge["node"] for edge in result.data["releases"]["edges"]],
        error=error,
        values=dict(form(request)) if error else {},
    )


async def _create(request: Request, session: PortalSession) -> str:
    kind = field(request, "report_type")
    year = field(request, "year")
    if kind not in ("CCI", "LTEL") or not year.isdigit():
        raise ApiFailure("BAD_USER_INPUT", "Choose a report type and enter a year.")
    result = await api.call(
        request,
        session,
        CREATE,
        {
            "type": kind,
            "year": int(year),
            "label": field(request, "label") or None,
            "notes": field(request, "notes"),
            "supersedes": field(request, "supersedes") or None,
        },
    )
    created: str = result.data["createRelease"]["id"]
    return created


async def release(request: Request) -> Response:
    session = await require_session(request)
    release_id = request.path_params["id"]
    if not 0 < len(release_id) <= 64:
        raise BadForm("That release address is not valid.")
    error = None
    if request.method == "POST":
        try:
            done = await _change(request, session, release_id)
        except ApiFailure as failure:
            if failure.status >= 500:
                raise
            error = failure.message
        else:
            return RedirectResponse(
                f"/admin/releases/{quote(release_id)}?done={done}", status_code=303
            )

    result = await api.call(request, session, SUMMARY, {"id": release_id})
    remember_viewer(request, result.data["viewer"])
    summary = result.data["releaseLoadSummary"]
    largest = sorted(summary["reports"], key=lambda r: -r["studentCount"])
    return render(
        request,
        "admin_release.html",
        status=400 if error else 200,
        title=summary["release"]["label"],
        viewer=result.data["viewer"],
        summary=summary,
        release=summary["release"],
        number=decode_id("Release", release_id),
        largest=largest[:50],
        error=error,
        message=_DONE.get(request.query_params.get("done", "")),
    )


async def _change(request: Request, session: PortalSession, release_id: str) -> str:
    action = field(request, "action")
    until = field(request, "until")
    if action in ("publish", "change"):
        if not _DATE.match(until):
            raise ApiFailure("BAD_USER_INPUT", "Enter the last day it is available.")
        document = PUBLISH if action == "publish" else CHANGE
        await api.call(request, session, document, {"id": release_id, "until": until})
        return "published" if action == "publish" else "changed"
    if action == "withdraw":
        reason = field(request, "reason")
        if not reason:
            raise ApiFailure(
                "BAD_USER_INPUT",
                "Say why the release is withdrawn; coordinators see it.",
            )
        if field(request, "confirm") != "yes":
            raise ApiFailure(
                "BAD_USER_INPUT", "Tick the box to confirm that reading must stop now."
            )
        await api.call(request, session, WITHDRAW, {"id": release_id, "reason": reason})
        return "withdrawn"
    raise BadForm(
        "SOARS did not understand what was asked; use the buttons on the page."
    )


async def roles(request: Request) -> Response:
    session = await require_session(request)
    viewer = (await api.call(request, session, _VIEWER_ONLY)).data["viewer"]
    remember_viewer(request, viewer)
    error = None
    changed: dict[str, Any] | None = None
    done = None
    listed: list[dict[str, Any]] | None = None
    missing = None
    action = field(request, "action") if request.method == "POST" else ""
    try:
        if action in ("grant", "revoke"):
            changed = await _assign(request, session, action)
            done = "given" if action == "grant" else "removed"
        elif action == "look":
            listed, missing = await _look_up(request, session)
        elif request.method == "POST":
            raise BadForm("SOARS did not understand what was asked.")
    except ApiFailure as failure:
        if failure.status >= 500:
            raise
        error = failure.message
    return render(
        request,
        "admin_roles.html",
        status=400 if error else 200,
        title="Role assignments",
        viewer=viewer,
        roles=ROLE_NAMES,
        error=error,
        changed=changed,
        done=done,
        listed=listed,
        missing=missing,
        values=dict(form(request)) if request.method == "POST" else {},
    )


async def _assign(request: Request, session: PortalSession, action: str) -> Any:
    role = field(request, "role")
    ends_on = field(request, "ends_on")
    if role not in ROLE_NAMES:
        raise ApiFailure("BAD_USER_INPUT", "Choose a role.")
    if ends_on and not _DATE.match(ends_on):
        raise ApiFailure("BAD_USER_INPUT", "The end date must be a date.")
    variables = {
        "subject": field(request, "subject"),
        "org": field(request, "organization"),
        "role": role,
        "issuer": field(request, "issuer") or None,
    }
    if action == "grant":
        variables["endsOn"] = ends_on or None
        result = await api.call(request, session, GRANT, variables)
        return result.data["grantRole"]
    result = await api.call(request, session, REVOKE, variables)
    return result.data["revokeRole"]


async def _look_up(
    request: Request, session: PortalSession
) -> tuple[list[dict[str, Any]] | None, str | None]:
    variables = {
        "org": field(request, "organization") or None,
        "subject": field(request, "subject") or None,
    }
    try:
        result = await api.call(request, session, ASSIGNMENTS, variables)
    except ApiFailure as failure:
        if failure.code != "GRAPHQL_VALIDATION_FAILED":
            raise
        return None, "This service cannot list role assignments to the portal yet."
    edges = result.data["roleAssignments"]["edges"]
    return [edge["node"] for edge in edges], None
