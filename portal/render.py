"""Pages from templates, and the plain-language words for the API's values."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from portal import security

# The state's people read times in the state's own time zone.
DISPLAY_ZONE = ZoneInfo("America/Los_Angeles")

ROLE_NAMES = {
    "ACCOUNTABILITY_COORDINATOR": "Accountability coordinator",
    "DASHBOARD_COORDINATOR": "Dashboard coordinator",
    "CALPADS_COORDINATOR": "CALPADS coordinator",
    "COMPLIANCE_OFFICER": "Compliance officer",
    "STATE_ADMIN": "State administrator",
}

ROLE_COVERS = {
    "ACCOUNTABILITY_COORDINATOR": "College/Career Indicator reports",
    "DASHBOARD_COORDINATOR": "College/Career Indicator reports",
    "CALPADS_COORDINATOR": "Long-Term English Learner reports",
    "COMPLIANCE_OFFICER": "the audit trail",
    "STATE_ADMIN": "releases and role assignments, statewide",
}

REPORT_TYPE_NAMES = {
    "CCI": "College/Career Indicator",
    "LTEL": "Long-Term English Learners",
}

PURPOSES = {
    "ACCOUNTABILITY_REVIEW": "Reviewing our accountability results",
    "DATA_CORRECTION": "Finding and correcting data errors",
    "STUDENT_SUPPORT": "Planning support for students",
    "PROGRAM_PLANNING": "Planning programs",
    "SYSTEM_INTEGRATION": "Loading into our student information system",
    "COMPLIANCE_REVIEW": "Compliance review",
}

ACTIONS = {
    "report:students:read": "Read student records",
    "report:download:issued": "Download link issued",
    "report:download:revoked": "Download link cancelled",
    "report:download:started": "Download started",
    "report:download:completed": "Download completed",
    "report:download:aborted": "Download stopped before the end",
    "report:download:refused": "Download refused",
    "audit:events:read": "Searched the audit trail",
    "audit:disclosures:read": "Read a student's disclosure history",
    "admin:release:created": "Release created",
    "admin:release:loaded": "Release file loaded",
    "admin:release:published": "Release published",
    "admin:release:availability_changed": "Release end date changed",
    "admin:release:withdrawn": "Release withdrawn",
    "admin:role:granted": "Role given",
    "admin:role:revoked": "Role removed",
    "admin:organizations:loaded": "School directory loaded",
}

COORDINATOR_ROLES = (
    "ACCOUNTABILITY_COORDINATOR",
    "DASHBOARD_COORDINATOR",
    "CALPADS_COORDINATOR",
)

OUTCOMES = {"GRANTED": "Allowed", "DENIED": "Refused", "FAILED": "Failed"}

STATUS_NAMES = {
    "DRAFT": "Draft",
    "LOADED": "Loaded, not published",
    "PUBLISHED": "Published",
    "WITHDRAWN": "Withdrawn",
}

CCI_LEVELS = {
    "PREPARED": "Prepared",
    "APPROACHING_PREPARED": "Approaching Prepared",
    "NOT_PREPARED": "Not Prepared",
    "NOT_DERIVABLE": "Cannot be derived",
}


def _as_date(value: Any) -> datetime.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value)[:10])


def format_date(value: Any) -> str:
    day = _as_date(value)
    if day is None:
        return "no date set"
    return f"{day:%B} {day.day}, {day.year}"


def format_datetime(value: Any) -> str:
    if value in (None, ""):
        return ""
    moment = (
        value
        if isinstance(value, datetime.datetime)
        else datetime.datetime.fromisoformat(str(value))
    )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    local = moment.astimezone(DISPLAY_ZONE)
    hour = local.hour % 12 or 12
    return (
        f"{local:%B} {local.day}, {local.year}, "
        f"{hour}:{local:%M:%S} {local:%p} {local.tzname()}"
    )


def days_left(value: Any) -> str:
    if value is None:
        return ""
    if value == 0:
        return "last day today"
    return "1 day left" if value == 1 else f"{value:,} days left"


def availability(release: Mapping[str, Any]) -> dict[str, Any]:
    """Whether a release's records can be read now, in words and a tone."""
    status = release.get("status")
    until = _as_date(release.get("availableUntil"))
    if status == "WITHDRAWN":
        reason = release.get("withdrawalReason")
        return {
            "label": "Withdrawn",
            "tone": "bad",
            "open": False,
            "text": f"The state withdrew this release on "
            f"{format_date(release.get('withdrawnAt'))}"
            + (f" ({reason.rstrip('.')})" if reason else "")
            + ". Its records can no longer be read or downloaded.",
        }
    if status in ("DRAFT", "LOADED"):
        return {
            "label": "Not published",
            "tone": "warn",
            "open": False,
            "text": "Not yet published to coordinators.",
        }
    expired = release.get("expired")
    if expired is None:
        expired = until is not None and until < datetime.date.today()
    if expired:
        return {
            "label": "Expired",
            "tone": "bad",
            "open": False,
            "text": f"Was available until {format_date(until)}; it has expired.",
        }
    text = "Available"
    if until is not None:
        text = f"Available until {format_date(until)} " + (
            f"({days_left(release.get('daysRemaining'))})"
        )
    return {"label": "Available", "tone": "ok", "open": True, "text": text}


_BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome/", "Chrome (headless)"),
    ("Chrome/", "Chrome"),
    ("Version/", "Safari"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Mac OS X", "macOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def browser(user_agent: str | None) -> str:
    """A user agent in a few words: "Chrome 131 on Windows"; else the start of it."""
    if not user_agent:
        return "unknown browser"
    name = next((label for key, label in _BROWSERS if key in user_agent), None)
    system = next((label for key, label in _SYSTEMS if key in user_agent), None)
    if name is None:
        return user_agent[:40]
    key = next(key for key, label in _BROWSERS if label == name)
    version = user_agent.split(key, 1)[1].split(".", 1)[0].split(" ", 1)[0]
    words = f"{name} {version}" if version.isdigit() else name
    return f"{words} on {system}" if system else words


def _label(table: Mapping[str, str]) -> Any:
    def label(value: Any) -> str:
        text = "" if value is None else str(value)
        return table.get(text, text.replace("_", " ").capitalize())

    return label


def number(value: Any) -> str:
    return f"{int(value):,}" if value is not None else ""


_environment = Environment(
    loader=PackageLoader("portal", "templates"),
    autoescape=select_autoescape(("html",), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship with the package
)
_environment.filters.update(
    date=format_date,
    datetime=format_datetime,
    days_left=days_left,
    availability=availability,
    role=_label(ROLE_NAMES),
    covers=_label(ROLE_COVERS),
    report_type=_label(REPORT_TYPE_NAMES),
    purpose=_label(PURPOSES),
    action=_label(ACTIONS),
    outcome=_label(OUTCOMES),
    status=_label(STATUS_NAMES),
    cci_level=_label(CCI_LEVELS),
    number=number,
    browser=browser,
)
_environment.globals.update(PURPOSES=PURPOSES, ROLE_NAMES=ROLE_NAMES, ACTIONS=ACTIONS)


def render(
    request: Request, template: str, *, status: int = 200, **values: Any
) -> HTMLResponse:
    """A page: the template filled with `values`, the navigation and a CSRF token."""
    values.setdefault("viewer", None)
    values.setdefault("signed_in", getattr(request.state, "signed_in", None))
    values.setdefault("message", None)
    html = _environment.get_template(template).render(
        request=request,
        csrf=security.csrf_token(request),
        development=request.app.state.services.settings.is_development,
        nav=navigation(values["viewer"], request.url.path),
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status)


def navigation(
    viewer: Mapping[str, Any] | None, path: str
) -> list[tuple[str, str, bool]]:
    """The pages this person's roles open: (path, label, is the current page)."""
    if not viewer:
        return []
    roles = {assignment["role"] for assignment in viewer.get("assignments", [])}
    items = [("/", "Overview")]
    if roles & set(COORDINATOR_ROLES):
        items += [("/reports", "Reports"), ("/releases", "Releases")]
    if "COMPLIANCE_OFFICER" in roles:
        items += [
            ("/audit", "Audit trail"),
            ("/audit/student", "Student disclosures"),
            ("/audit/integrity", "Trail integrity"),
        ]
    if "STATE_ADMIN" in roles:
        items += [
            ("/admin/releases", "Manage releases"),
            ("/admin/roles", "Role assignments"),
        ]
    # The longest item that is the path or a folder of it is the current one.
    matching = [
        href
        for href, _ in items
        if path == href or path.startswith(href.rstrip("/") + "/")
    ]
    current = max(matching, key=len, default=None)
    return [(href, label, href == current) for href, label in items]
