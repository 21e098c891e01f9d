"""The compliance officer's pages: the audit trail, a student's disclosure
history, and the trail's latest verification.

Searches are POSTed, never put in the address: a student's SSID in a URL
would land in browser history, proxy logs and access logs.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal import api
from portal.errors import ApiFailure
from portal.pages import VIEWER
from portal.render import ACTIONS, DISPLAY_ZONE, render
from portal.web import field, remember_viewer, require_session

EVENT = """
fragment EventParts on AuditEvent {
  id occurredAt action outcome studentCount purpose purposeDetail
  reportId releaseId requestId clientAddress userAgent
  actor { issuer subject kind role }
  organization { cdsCode name }
}
"""

TRAIL = (
    VIEWER
    + EVENT
    + """
query Trail($filter: AuditEventFilter, $after: String) {
  viewer { ...ViewerParts }
  auditEvents(filter: $filter, first: 50, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { ...EventParts } }
  }
}
"""
)

DISCLOSURES = (
    VIEWER
    + EVENT
    + """
query Disclosures($ssid: String!, $after: String) {
  viewer { ...ViewerParts }
  studentDisclosures(ssid: $ssid, first: 50, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { ...EventParts } }
  }
}
"""
)

INTEGRITY = (
    VIEWER
    + """
query Integrity {
  viewer { ...ViewerParts }
  auditIntegrity {
    latestCheckpoint { number madeAt keyId chainCount signatureValid }
    latestVerification { ranAt ok chainsChecked eventsChecked problems }
  }
}
"""
)

_SSID = re.compile(r"^[0-9]{10}$")
_CDS = re.compile(r"^[0-9]{14}$")
FILTER_FIELDS = ("from", "to", "person", "action", "outcome", "report", "ssid", "org")


async def trail(request: Request) -> Response:
    session = await require_session(request)
    values = {name: "" for name in FILTER_FIELDS}
    after = None
    if request.method == "POST":
        values = {name: field(request, name) for name in FILTER_FIELDS}
        after = field(request, "after") or None
    problems, audit_filter = _filter(values)
    if problems:
        found: dict[str, Any] = {"edges": [], "pageInfo": {"hasNextPage": False}}
        viewer = (await api.call(request, session, VIEWER + _VIEWER_ONLY)).data[
            "viewer"
        ]
    else:
        result = await api.call(
            request, session, TRAIL, {"filter": audit_filter, "after": after}
        )
        viewer, found = result.data["viewer"], result.data["auditEvents"]
    remember_viewer(request, viewer)
    return render(
        request,
        "audit.html",
        status=400 if problems else 200,
        title="Audit trail",
        viewer=viewer,
        values=values,
        problems=problems,
        events=[edge["node"] for edge in found["edges"]],
        page_info=found["pageInfo"],
        searched=request.method == "POST",
        actions=ACTIONS,
    )


async def student(request: Request) -> Response:
    session = await require_session(request)
    ssid = field(request, "ssid") if request.method == "POST" else ""
    after = field(request, "after") or None if request.method == "POST" else None
    problem = None
    if request.method == "POST" and not _SSID.match(ssid):
        problem = "An SSID is exactly 10 digits."
    events: list[dict[str, Any]] = []
    page_info: dict[str, Any] = {"hasNextPage": False}
    if request.method == "POST" and problem is None:
        result = await api.call(
            request, session, DISCLOSURES, {"ssid": ssid, "after": after}
        )
        viewer = result.data["viewer"]
        connection = result.data["studentDisclosures"]
        events = [edge["node"] for edge in connection["edges"]]
        page_info = connection["pageInfo"]
    else:
        viewer = (await api.call(request, session, VIEWER + _VIEWER_ONLY)).data[
            "viewer"
        ]
    remember_viewer(request, viewer)
    return render(
        request,
        "disclosures.html",
        status=400 if problem else 200,
        title="A student's disclosure history",
        viewer=viewer,
        ssid=ssid,
        problem=problem,
        events=events,
        page_info=page_info,
        searched=request.method == "POST" and problem is None,
    )


async def integrity(request: Request) -> Response:
    session = await require_session(request)
    missing = None
    try:
        result = await api.call(request, session, INTEGRITY)
        viewer, state = result.data["viewer"], result.data["auditIntegrity"]
    except ApiFailure as failure:
        if failure.code != "GRAPHQL_VALIDATION_FAILED":
            raise
        # The API does not offer this yet (see INTEGRITY above).
        viewer = (await api.call(request, session, VIEWER + _VIEWER_ONLY)).data[
            "viewer"
        ]
        state = None
        missing = (
            "This service does not report the trail's verification to the portal "
            "yet. Run `soars audit verify` on the server to check the trail."
        )
    remember_viewer(request, viewer)
    return render(
        request,
        "integrity.html",
        title="Is the audit trail intact?",
        viewer=viewer,
        state=state,
        missing=missing,
    )


_VIEWER_ONLY = "query Viewer { viewer { ...ViewerParts } }"


def _filter(values: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    """The API's AuditEventFilter from the form, and what is wrong with it."""
    problems = []
    audit_filter: dict[str, Any] = {}
    for name, key, shift in (("from", "occurredFrom", 0), ("to", "occurredBefore", 1)):
        if values[name]:
            try:
                day = datetime.date.fromisoformat(values[name])
            except ValueError:
                problems.append(f"The '{name}' date must be a date like 2026-05-31.")
                continue
            # Whole days in the state's time zone: "to May 31" includes May 31.
            moment = datetime.datetime.combine(
                day + datetime.timedelta(days=shift), datetime.time(), DISPLAY_ZONE
            )
            audit_filter[key] = moment.isoformat()
    if values["person"]:
        audit_filter["actorSubject"] = values["person"][:200]
    if values["action"]:
        if values["action"] in ACTIONS:
            audit_filter["actions"] = [values["action"]]
        else:
            problems.append("Choose an action from the list.")
    if values["outcome"]:
        if values["outcome"] in ("GRANTED", "DENIED", "FAILED"):
            audit_filter["outcome"] = values["outcome"]
        else:
            problems.append("Choose an outcome from the list.")
    if values["report"]:
        audit_filter["reportId"] = values["report"][:64]
    if values["ssid"]:
        if _SSID.match(values["ssid"]):
            audit_filter["ssid"] = values["ssid"]
        else:
            problems.append("An SSID is exactly 10 digits.")
    if values["org"]:
        if _CDS.match(values["org"]):
            audit_filter["organization"] = values["org"]
        else:
            problems.append("A CDS code is exactly 14 digits.")
    return problems, audit_filter
